"""Emitters of the layers with weights: ``conv`` and the matrix products ``linear`` and ``matmul``.

``conv``: CONV_2D (grouped too), DEPTHWISE_CONV_2D and TRANSPOSE_CONV, 1-d convolutions as 2-d
ones over a height of 1, CONV_3D and CONV_3D_TRANSPOSE, with the fused activation the plan gives. The input is channels-last
(the layout pass puts every conv there). Weights are rearranged from torch's
[out, in / groups, *kernel] to TFLite's [out, *kernel, in / groups] (depthwise:
[1, *kernel, in * multiplier]; transposed: torch's [in, out, *kernel] to [out, *kernel, in]).
torch's explicit padding becomes TFLite's ``SAME`` where both place the windows alike (the same
number of outputs and the same padding before), else a PAD and ``VALID``.

``linear`` is FULLY_CONNECTED (torch's [out, in] weights as they are), ``matmul``
FULLY_CONNECTED against a constant matrix, else BATCH_MATMUL. Linears reading one value (q, k and
v; gate and up) run as one FULLY_CONNECTED over their stacked filters where the plan says so
(``plan.parallel``), its result cut into theirs. A linear layer's input keeps its
features physically last (the layout pass guarantees it), so FULLY_CONNECTED with
``keep_num_dims`` runs on the stored rows in whatever order they are kept; where the plan merges
its rows (``flatten_rows``) it writes [rows, out] directly. With a weight quantization mode
(``weight_quantization.py``) the filter is int8 / int4 and FULLY_CONNECTED runs dynamic-range.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import Node, Value
from ...ir.ops.shape import XNNPACK_SPLIT_MAX_PIECES
from ..context import Context, DirectExportError, emitter
from ..schema import fb
from .common import Window, batch_matmul, binary, matmul_shape, padding_mode
from .shape import strided_slice

__all__ = ["fully_connected"]

_SAME, _VALID = fb.Padding.SAME, fb.Padding.VALID


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
    if x.type.rank not in (3, 4, 5):
        raise DirectExportError(node, f"{x.type.rank - 2}-d convolution is not supported (1-d to 3-d are)")
    if not ctx.is_const(w) or (b is not None and not ctx.is_const(b)):
        raise DirectExportError(node, "with weights computed by the model is not supported")
    if x.type.dtype not in ("f32", "f16"):
        raise DirectExportError(node, f"on {x.type.dtype} values is not supported (float only)")
    bias = ctx.const(b).astype(np.float32) if b is not None else None
    if node.id in ctx.plan.bias_shift:  # (a hardsigmoid's + 3, see plan.py)
        bias = (bias if bias is not None else np.zeros(w.type.shape[1 if node.attrs["transposed"] else 0],
                                                       np.float32)) + np.float32(ctx.plan.bias_shift[node.id])
    if x.type.rank == 5:
        return _conv_3d(ctx, node, ctx.const(w).astype(np.float32), bias)
    geometry = _as_2d(node)
    tensor = ctx.tensor(x)
    n = x.type.shape[0]
    if x.type.rank == 3:  # [N, L, C] -> [N, 1, L, C]
        tensor = ctx.reshape(tensor, [n, 1, x.type.shape[2], x.type.shape[1]], "as_2d")
    weight = ctx.const(w).astype(np.float32).reshape(*w.type.shape[:2], *geometry["kernel"])
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
    torch's padding crops it: SAME where that matches, else a crop by STRIDED_SLICE. TFLite takes
    at most stride - 1 rows of output padding: more (torch allows up to the dilation) are rows no
    tap reaches -- zeros PADded after a bias-free product, the bias added last."""
    weight, g = _plain_transposed_kernel(weight, node.attrs["groups"], g)
    n, h, w, _ = ctx.shape(x)
    pads, s, k = g["pads"], g["stride"], g["kernel"]
    extra = [max(g["output_padding"][i] - (s[i] - 1), 0) for i in range(2)]
    full = [(h - 1) * s[0] + k[0] + g["output_padding"][0] - extra[0],
            (w - 1) * s[1] + k[1] + g["output_padding"][1] - extra[1]]
    want = ctx.shape(out)[1:3]
    same = not any(extra) and all(-(-want[i] // s[i]) == size and
                                  max((size - 1) * s[i] + k[i] - want[i], 0) // 2 == pads[2 * i]
                                  for i, size in enumerate((h, w)))
    options = fb.TransposeConvOptionsT()
    options.padding = _SAME if same else _VALID
    options.strideH, options.strideW = s
    kernel = np.ascontiguousarray(weight.transpose(1, 2, 3, 0))  # torch [I, O, kh, kw] -> [O, kh, kw, I]
    out_ch = kernel.shape[0]
    bias = bias if bias is not None else np.zeros(out_ch, np.float32)
    if not any(extra):
        options.fusedActivationFunction = ctx.activation(node)
    bias_t = ctx.constant(np.zeros(out_ch, np.float32) if any(extra) else bias, f"{ctx.scope(node)}/bias", weight=True)
    filter_t = ctx.constant(kernel, f"{ctx.scope(node)}/filter", weight=True)
    target = out if same else ctx.temp([n, *full, out_ch], np.float32, "full")
    ctx.op("TRANSPOSE_CONV", [ctx.ints(ctx.shape(target), "output_shape"), filter_t, x, bias_t], [target], options)
    if same:
        return
    if any(extra):
        paddings = ctx.ints([[0, 0], [0, extra[0]], [0, extra[1]], [0, 0]], "output_padding")
        padded = ctx.temp([n, full[0] + extra[0], full[1] + extra[1], out_ch], np.float32, "output_padded")
        ctx.op("PAD", [target, paddings], [padded])
        target = padded
    cropped = ctx.temp([n, *want, out_ch], np.float32, "cropped") if any(extra) else out
    begins = ctx.ints([0, pads[0], pads[2], 0], "crop_begin")
    ends = ctx.ints([n, pads[0] + want[0], pads[2] + want[1], out_ch], "crop_end")
    ctx.op("STRIDED_SLICE", [target, begins, ends, ctx.ints([1, 1, 1, 1], "crop_strides")], [cropped],
           fb.StridedSliceOptionsT())
    if any(extra):
        binary(ctx, "ADD", cropped, ctx.constant(bias, f"{ctx.scope(node)}/bias_after"), out, ctx.activation(node))


def _plain_transposed_kernel(weight: np.ndarray, groups: int, g: dict) -> tuple[np.ndarray, dict]:
    """TRANSPOSE_CONV has neither groups nor dilation: torch's [I, O / groups, kh, kw] kernel as
    the equivalent dense, undilated one -- block-diagonal over the groups (each group's outputs
    read only its inputs), with zeros between the taps of a dilated kernel (same output size).
    The zeros cost compute (groups x, dilation^2 x) but the result is exact."""
    if groups > 1:
        i, o = weight.shape[:2]
        dense = np.zeros((i, o * groups, *weight.shape[2:]), np.float32)
        step = i // groups
        for j in range(groups):
            dense[j * step:(j + 1) * step, j * o:(j + 1) * o] = weight[j * step:(j + 1) * step]
        weight = dense
    dilation = g["dilation"]
    if any(d != 1 for d in dilation):
        kh, kw = weight.shape[2:]
        spread = np.zeros((*weight.shape[:2], dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1), np.float32)
        spread[:, :, ::dilation[0], ::dilation[1]] = weight
        weight = spread
        g = {**g, "kernel": list(spread.shape[2:]), "dilation": [1, 1]}
    return weight, g


# ---------------------------------------------------------------------------- 3-d convolutions


def _dense_kernel(weight: np.ndarray, groups: int, dilation) -> np.ndarray:
    """torch's kernel ([O, I / g, *k], transposed [I, O / g, *k]) as the dense undilated one
    (CONV_3D and CONV_3D_TRANSPOSE have no groups; the transposed one no dilation): block-diagonal
    over the groups, zeros between the taps of a dilated kernel. Exact; the zeros cost compute."""
    if groups > 1:
        rows, cols = weight.shape[:2]
        dense = np.zeros((rows, cols * groups, *weight.shape[2:]), np.float32)
        step = rows // groups
        for j in range(groups):
            dense[j * step:(j + 1) * step, j * cols:(j + 1) * cols] = weight[j * step:(j + 1) * step]
        weight = dense
    if any(d != 1 for d in dilation):
        k = weight.shape[2:]
        spread = np.zeros((*weight.shape[:2], *[d * (s - 1) + 1 for d, s in zip(dilation, k)]), np.float32)
        spread[(slice(None), slice(None), *[slice(None, None, d) for d in dilation])] = weight
        weight = spread
    return weight


def _conv_3d(ctx: Context, node: Node, weight: np.ndarray, bias: Optional[np.ndarray]) -> int:
    """CONV_3D (torch's padding as a PAD, VALID windows), or for a transposed convolution
    CONV_3D_TRANSPOSE to the full size, its output padding PADded, torch's padding cropped and the
    bias added last (with the fused activation). Input and output stored [N, D, H, W, C]."""
    x, a = node.inputs[0], node.attrs
    if x.type.perm != (0, 2, 3, 4, 1):
        raise DirectExportError(node, f"3-d convolution of a value stored as {x.type} (not channels-last) is not "
                                      f"supported")
    tensor, pads, out = ctx.tensor(x), list(a["padding"]), ctx.result(node)
    options = fb.Conv3DOptionsT()
    options.padding = _VALID
    options.strideD, options.strideH, options.strideW = a["stride"]
    if not a["transposed"]:
        kernel = _dense_kernel(weight, a["groups"], [1, 1, 1]).transpose(2, 3, 4, 1, 0)  # [kd, kh, kw, I, O]
        options.dilationDFactor, options.dilationHFactor, options.dilationWFactor = a["dilation"]
        options.fusedActivationFunction = ctx.activation(node)
        if any(pads):
            tensor = _pad_5d(ctx, tensor, [(0, 0)] + [(pads[2 * i], pads[2 * i + 1]) for i in range(3)] + [(0, 0)])
        bias_t = ctx.constant(bias if bias is not None else np.zeros(kernel.shape[-1], np.float32),
                              f"{ctx.scope(node)}/bias", weight=True)
        filter_t = ctx.constant(np.ascontiguousarray(kernel), f"{ctx.scope(node)}/filter", weight=True)
        ctx.op("CONV_3D", [tensor, filter_t, bias_t], [out], options)
        return out
    kernel = _dense_kernel(weight, a["groups"], a["dilation"]).transpose(2, 3, 4, 1, 0)  # [kd, kh, kw, O, I]
    n, *size, _ = ctx.shape(tensor)
    full = [n, *[(d - 1) * s + k for d, s, k in zip(size, a["stride"], kernel.shape[:3])], kernel.shape[3]]
    target = ctx.temp(full, np.float32, "full")
    filter_t = ctx.constant(np.ascontiguousarray(kernel), f"{ctx.scope(node)}/filter", weight=True)
    ctx.op("CONV_3D_TRANSPOSE", [ctx.ints(full, "output_shape"), filter_t, tensor], [target], options)
    extra = list(a["output_padding"] or [0, 0, 0])
    if any(extra):
        target = _pad_5d(ctx, target, [(0, 0)] + [(0, e) for e in extra] + [(0, 0)])
    want = list(ctx.shape(out))
    cropped = ctx.temp(want, np.float32, "cropped")
    ctx.op("SLICE", [target, ctx.ints([0, pads[0], pads[2], pads[4], 0], "crop_begin"), ctx.ints(want, "crop_size")],
           [cropped])
    bias = bias if bias is not None else np.zeros(want[-1], np.float32)
    return binary(ctx, "ADD", cropped, ctx.constant(bias, f"{ctx.scope(node)}/bias"), out, ctx.activation(node))


def _pad_5d(ctx: Context, x: int, pairs: list) -> int:
    shape = [d + lo + hi for d, (lo, hi) in zip(ctx.shape(x), pairs)]
    out = ctx.temp(shape, ctx.dtype(x), "pad")
    ctx.op("PAD", [x, ctx.ints([list(p) for p in pairs], "paddings")], [out])
    return out


# ---------------------------------------------------------------------------- matrix products


def fully_connected(ctx: Context, x: int, weight: int, bias: Optional[int], out: int, keep_dims: bool,
                    activation: int = 0) -> int:
    options = fb.FullyConnectedOptionsT()
    options.keepNumDims = keep_dims
    options.fusedActivationFunction = activation
    ctx.op("FULLY_CONNECTED", [x, weight, -1 if bias is None else bias], [out], options)
    return out


def _bias(ctx: Context, node: Node, b: Optional[Value]) -> Optional[int]:
    """The bias tensor, with the plan's constant added (a hardsigmoid's + 3 after the layer)."""
    shift = ctx.plan.bias_shift.get(node.id)
    if shift is None:
        return ctx.tensor(b) if b is not None else None
    out = node.inputs[1].type.shape[0]
    bias = (ctx.const(b) if b is not None else np.zeros(out, np.float32)) + np.float32(shift)
    return ctx.constant(bias.astype(np.float32), ctx.local_name("bias_shifted"), weight=True)


@emitter("linear")
def emit_linear(ctx: Context, node: Node) -> int:
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    if x.type.perm[-1] != x.type.rank - 1:
        raise DirectExportError(node, f"on a value stored as {x.type} (features not last) is not supported")
    group = _parallel(ctx, node)
    if group is not None:
        return _emit_parallel(ctx, node, group)
    tensor = ctx.tensor(x)
    weight = ctx.linear_filter(w, node)
    weight = ctx.tensor(w) if weight is None else weight
    bias = _bias(ctx, node, b)
    act = ctx.activation(node)
    if node.id in ctx.plan.into_reshape:  # the reshape merging the rows reads this: write [rows, out]
        reshape = ctx.graph.node(ctx.plan.into_reshape[node.id])
        return fully_connected(ctx, tensor, weight, bias, ctx.result(reshape), False, act)
    if x.type.rank == 1:
        flat = ctx.reshape(tensor, [1, x.type.shape[0]], "row")
        result = fully_connected(ctx, flat, weight, bias, ctx.temp([1, w.type.shape[0]], np.float32, "fc"), False, act)
        return ctx.reshape(result, ctx.shape(ctx.result(node)), out=ctx.result(node))
    return fully_connected(ctx, tensor, weight, bias, ctx.result(node), x.type.rank > 2, act)


def _parallel(ctx: Context, node: Node) -> Optional[list[Node]]:
    """The linears ``node`` runs with as one FULLY_CONNECTED (``plan.parallel``: those whose
    weights the weight mode treats as it treats ``node``'s), or None where it runs alone."""
    ids = ctx.plan.parallel.get(node.id)
    if ids is None:
        return None
    quantized = ctx.quantizes(node.inputs[1], node)
    group = [m for m in (ctx.graph.node(i) for i in ids) if ctx.quantizes(m.inputs[1], m) == quantized]
    return group if len(group) > 1 else None


def _emit_parallel(ctx: Context, node: Node, group: list[Node]) -> int:
    """``group`` (linears reading one value) as one FULLY_CONNECTED over their stacked filters,
    its result cut into theirs along the features: a SPLIT when they are equal (and at most
    ``XNNPACK_SPLIT_MAX_PIECES``), else a STRIDED_SLICE each. Writes every member's result;
    returns ``node``'s."""
    tensor = ctx.tensor(node.inputs[0])
    sizes = [m.inputs[1].type.shape[0] for m in group]
    weight = ctx.stacked_linear_filter([m.inputs[1] for m in group], group)
    bias = None
    if any(len(m.inputs) > 2 for m in group):
        parts = [ctx.const(m.inputs[2]).astype(np.float32) if len(m.inputs) > 2 else np.zeros(n, np.float32)
                 for m, n in zip(group, sizes)]
        bias = ctx.constant(np.concatenate(parts), ctx.local_name("stacked_bias"), weight=True)
    shape = [*ctx.shape(tensor)[:-1], sum(sizes)]
    stacked = fully_connected(ctx, tensor, weight, bias, ctx.temp(shape, np.float32, "stacked"), len(shape) > 2)
    outs = [ctx.result(m) for m in group]
    axis = len(shape) - 1
    if len(set(sizes)) == 1 and len(group) <= XNNPACK_SPLIT_MAX_PIECES:
        options = fb.SplitOptionsT()
        options.numSplits = len(group)
        ctx.op("SPLIT", [ctx.ints(axis, "split_axis"), stacked], outs, options)
    else:
        starts = np.cumsum([0, *sizes])
        for out, start, end in zip(outs, starts, starts[1:]):
            strided_slice(ctx, stacked, axis, int(start), int(end), 1, out)
    for m, out in zip(group, outs):
        ctx.tensors[m.output.id] = out
    return ctx.tensors[node.output.id]


@emitter("matmul")
def emit_matmul(ctx: Context, node: Node) -> int:
    x, y = node.inputs
    if x.type.layout is not None or y.type.layout is not None:
        raise DirectExportError(node, "on re-laid-out operands is not supported")
    if ctx.is_const(y) and y.type.rank == 2 and x.type.rank >= 2 and x.type.dtype == "f32":
        weight = ctx.linear_filter(y, node, transposed=True)
        if weight is None:
            weight = ctx.constant(np.ascontiguousarray(ctx.const(y).T), f"{y.name_hint}/transposed", weight=True)
        return fully_connected(ctx, ctx.tensor(x), weight, None, ctx.result(node), x.type.rank > 2)
    a, b = ctx.tensor(x), ctx.tensor(y)
    if x.type.rank == 1:
        a = ctx.reshape(a, [1, x.type.shape[0]], "row")
    if y.type.rank == 1:
        b = ctx.reshape(b, [y.type.shape[0], 1], "column")
    if x.type.rank >= 2 and y.type.rank >= 2:
        return batch_matmul(ctx, a, b, ctx.result(node))
    shape = matmul_shape(ctx.shape(a), ctx.shape(b))
    product = batch_matmul(ctx, a, b, ctx.temp(shape, ctx.dtype(a), "product"))
    return ctx.reshape(product, node.output.type.physical_shape, out=ctx.result(node))
