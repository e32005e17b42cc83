"""The convolution emitter: CONV_2D (grouped too), DEPTHWISE_CONV_2D and TRANSPOSE_CONV, 1-d
convolutions as 2-d ones over a height of 1, with the fused activation the plan gives.

The input is channels-last (the layout pass puts every conv there). Weights are rearranged from
torch's [out, in / groups, *kernel] to TFLite's [out, *kernel, in / groups] (depthwise:
[1, *kernel, in * multiplier]; transposed: torch's [in, out, *kernel] to [out, *kernel, in]).
torch's explicit padding becomes TFLite's ``SAME`` where both place the windows alike (the same
number of outputs and the same padding before), else a PAD and ``VALID``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..ir import Node
from .context import Context, DirectExportError, emitter
from .schema import fb

__all__ = ["Window", "padding_mode", "same_pad_before"]

_SAME, _VALID = fb.Padding.SAME, fb.Padding.VALID


def same_pad_before(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(output size, padding before) of TensorFlow's ``SAME`` padding along one axis."""
    out = -(-size // stride)
    effective = dilation * (kernel - 1) + 1
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2


class Window:
    """A 2-d sliding window's geometry (height, width), torch's padding as (before, after) pairs."""

    def __init__(self, size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], pads: Sequence[int],
                 dilation: Sequence[int], out: Sequence[int]) -> None:
        self.size, self.kernel, self.stride = list(size), list(kernel), list(stride)
        self.pads, self.dilation, self.out = list(pads), list(dilation), list(out)

    @property
    def padded(self) -> bool:
        return any(self.pads)

    def same(self) -> bool:
        """Whether TFLite's SAME padding places the windows as torch's padding does."""
        for i in range(2):
            out, before = same_pad_before(self.size[i], self.kernel[i], self.stride[i], self.dilation[i])
            if out != self.out[i] or before != self.pads[2 * i]:
                return False
        return True


def padding_mode(ctx: Context, x: int, window: Window, value: float = 0.0) -> tuple[int, int]:
    """(input tensor, SAME or VALID): the input padded by an explicit PAD/PADV2 (with ``value``)
    where neither padding mode places the windows as torch does."""
    if not window.padded:
        return x, _VALID
    if window.same():
        return x, _SAME
    p = window.pads
    paddings = ctx.ints([[0, 0], [p[0], p[1]], [p[2], p[3]], [0, 0]], "paddings")
    n, h, w, c = ctx.shape(x)
    padded = ctx.temp([n, h + p[0] + p[1], w + p[2] + p[3], c], ctx.dtype(x), "pad")
    if value == 0.0:
        ctx.op("PAD", [x, paddings], [padded])
    else:
        ctx.op("PADV2", [x, paddings, ctx.scalar(value, ctx.dtype(x), "pad_value")], [padded])
    return padded, _VALID


def _as_2d(node: Node) -> dict:
    """The conv's attributes as a 2-d conv's (a 1-d conv is one over a height of 1)."""
    a = node.attrs
    w = node.inputs[1].type.shape
    if len(w) == 4:
        return dict(kernel=list(w[2:]), stride=list(a["stride"]), pads=list(a["padding"]),
                    dilation=list(a["dilation"]), output_padding=list(a["output_padding"] or [0, 0]))
    return dict(kernel=[1, w[2]], stride=[1, a["stride"][0]], pads=[0, 0, *a["padding"]],
                dilation=[1, a["dilation"][0]], output_padding=[0, *(a["output_padding"] or [0])])


@emitter("conv")
def emit_conv(ctx: Context, node: Node) -> int:
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    if x.type.rank not in (3, 4):
        raise DirectExportError(node, f"{x.type.rank - 2}-d convolution is not supported (1-d and 2-d are)")
    if not ctx.is_const(w) or (b is not None and not ctx.is_const(b)):
        raise DirectExportError(node, "with weights computed by the model is not supported")
    if x.type.dtype not in ("f32", "f16"):
        raise DirectExportError(node, f"on {x.type.dtype} values is not supported (float only)")
    geometry = _as_2d(node)
    tensor = ctx.tensor(x)
    n = x.type.shape[0]
    if x.type.rank == 3:  # [N, L, C] -> [N, 1, L, C]
        tensor = ctx.reshape(tensor, [n, 1, x.type.shape[2], x.type.shape[1]], "as_2d")
    weight = ctx.const(w).astype(np.float32).reshape(*w.type.shape[:2], *geometry["kernel"])
    bias = ctx.const(b).astype(np.float32) if b is not None else None
    if node.id in ctx.plan.bias_shift:  # (a hardsigmoid's + 3, see plan.py)
        bias = (bias if bias is not None else np.zeros(w.type.shape[1 if node.attrs["transposed"] else 0],
                                                       np.float32)) + np.float32(ctx.plan.bias_shift[node.id])
    out_shape = list(node.output.type.physical_shape)
    out_2d = out_shape if x.type.rank == 4 else [n, 1, out_shape[1], out_shape[2]]
    result = ctx.result(node) if x.type.rank == 4 else ctx.temp(out_2d, np.float32, "conv_2d")
    if node.attrs["transposed"]:
        _transpose_conv(ctx, node, tensor, weight, bias, geometry, result)
    else:
        _conv(ctx, node, tensor, weight, bias, geometry, result)
    return result if x.type.rank == 4 else ctx.reshape(result, out_shape, out=ctx.result(node))


def _conv(ctx: Context, node: Node, x: int, weight: np.ndarray, bias: Optional[np.ndarray], g: dict,
          out: int) -> None:
    groups = node.attrs["groups"]
    in_ch, out_ch = ctx.shape(x)[3], weight.shape[0]
    window = Window(ctx.shape(x)[1:3], g["kernel"], g["stride"], g["pads"], g["dilation"], ctx.shape(out)[1:3])
    x, padding = padding_mode(ctx, x, window)
    bias_t = ctx.constant(bias if bias is not None else np.zeros(out_ch, np.float32), f"{ctx.scope(node)}/bias",
                          weight=True)
    if groups == in_ch and groups > 1:  # depthwise: torch [C * m, 1, kh, kw] -> [1, kh, kw, C * m]
        options = fb.DepthwiseConv2DOptionsT()
        options.depthMultiplier = out_ch // in_ch
        kernel = weight[:, 0].transpose(1, 2, 0)[None]
        op = "DEPTHWISE_CONV_2D"
    else:
        if in_ch % weight.shape[1]:
            raise DirectExportError(node, f"with {in_ch} input channels and weights {weight.shape} is malformed")
        options = fb.Conv2DOptionsT()
        kernel = weight.transpose(0, 2, 3, 1)  # [O, I/g, kh, kw] -> [O, kh, kw, I/g]
        op = "CONV_2D"
    options.padding = padding
    options.strideH, options.strideW = g["stride"]
    options.dilationHFactor, options.dilationWFactor = g["dilation"]
    options.fusedActivationFunction = ctx.activation(node)
    filter_t = ctx.constant(np.ascontiguousarray(kernel), f"{ctx.scope(node)}/filter", weight=True)
    ctx.op(op, [x, filter_t, bias_t], [out], options)


def _transpose_conv(ctx: Context, node: Node, x: int, weight: np.ndarray, bias: Optional[np.ndarray], g: dict,
                    out: int) -> None:
    """TRANSPOSE_CONV computes the full output ((in - 1) * stride + kernel (+ output padding));
    torch's padding crops it: SAME where that matches, else a crop by STRIDED_SLICE."""
    if node.attrs["groups"] != 1 or any(d != 1 for d in g["dilation"]):
        raise DirectExportError(node, "grouped or dilated transposed convolution has no TFLite builtin")
    n, h, w, _ = ctx.shape(x)
    pads, s, k = g["pads"], g["stride"], g["kernel"]
    full = [(h - 1) * s[0] + k[0] + g["output_padding"][0], (w - 1) * s[1] + k[1] + g["output_padding"][1]]
    want = ctx.shape(out)[1:3]
    same = all(-(-want[i] // s[i]) == size and max((size - 1) * s[i] + k[i] - want[i], 0) // 2 == pads[2 * i]
               for i, size in enumerate((h, w)))
    options = fb.TransposeConvOptionsT()
    options.padding = _SAME if same else _VALID
    options.strideH, options.strideW = s
    options.fusedActivationFunction = ctx.activation(node)
    kernel = np.ascontiguousarray(weight.transpose(1, 2, 3, 0))  # torch [I, O, kh, kw] -> [O, kh, kw, I]
    out_ch = kernel.shape[0]
    bias_t = ctx.constant(bias if bias is not None else np.zeros(out_ch, np.float32), f"{ctx.scope(node)}/bias",
                          weight=True)
    filter_t = ctx.constant(kernel, f"{ctx.scope(node)}/filter", weight=True)
    target = out if same else ctx.temp([n, *full, out_ch], np.float32, "full")
    shape = ctx.ints(ctx.shape(target), "output_shape")
    ctx.op("TRANSPOSE_CONV", [shape, filter_t, x, bias_t], [target], options)
    if same:
        return
    begins = ctx.ints([0, pads[0], pads[2], 0], "crop_begin")
    ends = ctx.ints([n, pads[0] + want[0], pads[2] + want[1], out_ch], "crop_end")
    ctx.op("STRIDED_SLICE", [target, begins, ends, ctx.ints([1, 1, 1, 1], "crop_strides")], [out],
           fb.StridedSliceOptionsT())
