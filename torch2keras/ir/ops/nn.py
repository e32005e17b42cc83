"""Dense layers and convolutions: conv (N-d, grouped, dilated, transposed), linear and matmul."""

from __future__ import annotations

import itertools

import numpy as np

from ..symbolic import dim_add, dim_floordiv, dim_mul, dim_sub, is_symbolic
from ..types import TensorType
from .common import broadcast_shapes
from .schema import define

FAMILY = "nn"


def _matmul_type(types, a):
    x, y = types
    xs, ys = list(x.shape), list(y.shape)
    if len(xs) == 1:
        xs = [1] + xs
    if len(ys) == 1:
        ys = ys + [1]
    if xs[-1] != ys[-2] and not (is_symbolic(xs[-1]) or is_symbolic(ys[-2])):
        raise ValueError(f"matmul {x.shape} @ {y.shape}: inner dims differ")
    batch = broadcast_shapes(xs[:-2], ys[:-2])
    shape = list(batch) + [xs[-2], ys[-1]]
    if len(x.shape) == 1:
        shape.pop(-2)
    if len(y.shape) == 1:
        shape.pop(-1)
    return [TensorType(shape, x.dtype)]


def _linear_type(types, a):
    x, w = types[0], types[1]
    return [TensorType(list(x.shape[:-1]) + [w.shape[0]], x.dtype)]


def conv_out_size(size, k, s, p_lo, p_hi, d):
    """Output length of a convolution along one spatial axis."""
    return dim_add(dim_floordiv(dim_add(size, p_lo + p_hi - d * (k - 1) - 1), s), 1)


def _conv_type(types, a):
    x, w = types[0], types[1]
    n = x.rank - 2
    pads = a["padding"]
    spatial = []
    for i in range(n):
        k = w.shape[2 + i]
        if a["transposed"]:
            size = dim_add(dim_mul(dim_sub(x.shape[2 + i], 1), a["stride"][i]),
                           - pads[2 * i] - pads[2 * i + 1] + a["dilation"][i] * (k - 1) + a["output_padding"][i] + 1)
        else:
            size = conv_out_size(x.shape[2 + i], k, a["stride"][i], pads[2 * i], pads[2 * i + 1], a["dilation"][i])
        spatial.append(size)
    out_ch = w.shape[1] * a["groups"] if a["transposed"] else w.shape[0]
    return [TensorType([x.shape[0], out_ch, *spatial], x.dtype)]


def _conv_forward(x, w, stride, padding, dilation, groups):
    """Reference convolution (cross-correlation) of NC... ``x`` with torch-layout ``w``."""
    n = x.ndim - 2
    x = np.pad(x, [(0, 0), (0, 0)] + [(padding[2 * i], padding[2 * i + 1]) for i in range(n)])
    kernel = w.shape[2:]
    out_sizes = [(x.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(n)]
    cin, cout = x.shape[1] // groups, w.shape[0] // groups
    out = np.zeros((x.shape[0], w.shape[0], *out_sizes), np.result_type(x, w))
    for offset in itertools.product(*[range(k) for k in kernel]):
        window = x[(slice(None), slice(None)) + tuple(
            slice(offset[i] * dilation[i], offset[i] * dilation[i] + (out_sizes[i] - 1) * stride[i] + 1, stride[i])
            for i in range(n))]
        for g in range(groups):
            part = window[:, g * cin:(g + 1) * cin]
            taps = w[(slice(g * cout, (g + 1) * cout), slice(None)) + offset]  # [cout, cin]
            out[:, g * cout:(g + 1) * cout] += np.einsum("nc...,oc->no...", part, taps)
    return out


def _conv_transpose(x, w, stride, padding, dilation, groups, output_padding):
    """Reference transposed convolution: each input element scatters ``w`` into the output."""
    n = x.ndim - 2
    kernel = w.shape[2:]
    cin, cout = x.shape[1] // groups, w.shape[1]
    full = [(x.shape[2 + i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 + output_padding[i]
            for i in range(n)]
    out = np.zeros((x.shape[0], cout * groups, *full), np.result_type(x, w))
    for offset in itertools.product(*[range(k) for k in kernel]):
        target = (slice(None), slice(None)) + tuple(
            slice(offset[i] * dilation[i], offset[i] * dilation[i] + (x.shape[2 + i] - 1) * stride[i] + 1, stride[i])
            for i in range(n))
        for g in range(groups):
            taps = w[(slice(g * cin, (g + 1) * cin), slice(None)) + offset]  # [cin, cout]
            contribution = np.einsum("nc...,co->no...", x[:, g * cin:(g + 1) * cin], taps)
            out[(target[0], slice(g * cout, (g + 1) * cout)) + target[2:]] += contribution
    crop = tuple(slice(padding[2 * i], full[i] - padding[2 * i + 1]) for i in range(n))
    return out[(slice(None), slice(None)) + crop]


def _conv(x, w, b=None, *, stride, padding, dilation, groups, transposed, output_padding):
    if transposed:
        out = _conv_transpose(x, w, stride, padding, dilation, groups, output_padding or [0] * (x.ndim - 2))
    else:
        out = _conv_forward(x, w, stride, padding, dilation, groups)
    if b is not None:
        out = out + b.reshape((1, -1) + (1,) * (x.ndim - 2))
    return out.astype(x.dtype)


def _linear(x, w, b=None):
    out = x @ w.T
    return out if b is None else out + b


_CONV_ATTRS = {
    "stride": ("ints",), "padding": ("ints",), "dilation": ("ints",), "groups": ("int", 1),
    "transposed": ("bool", False), "output_padding": ("ints", None),
}
define("conv", FAMILY, ["x", "w", "b?"], _conv_type, "channel", _CONV_ATTRS, reference=_conv,
       tflite=("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D", "CONV_3D_TRANSPOSE"),
       doc="N-d convolution; w in torch's layout; padding: (before, after) per spatial axis")
define("linear", FAMILY, ["x", "w", "b?"], _linear_type, "last_axis", reference=_linear,
       tflite=("FULLY_CONNECTED",), doc="x @ w.T + b, weight in torch's [out, in] form")
define("matmul", FAMILY, ["x", "y"], _matmul_type, "fixed", reference=np.matmul,
       tflite=("FULLY_CONNECTED", "BATCH_MATMUL"),
       delegate_notes={"EdgeTPU": {"BATCH_MATMUL": "only FULLY_CONNECTED with constant weights maps; activation x "
                                                   "activation matmuls (attention) stay on the CPU"}})
