"""IR ops for dynamic shapes: sizes known only at run time, as values.

A size that depends on a symbolic dim is an ``i32`` scalar value: ``dim`` reads one axis of a
tensor's run-time shape, and integer elementwise ops (``add``, ``mul``, ``floor_divide``, ...)
compute with it. Ops whose sizes are such values take them as inputs; their result types still
carry the symbolic dims (as attributes, in torch's spelling), so type inference stays exact.
Static sizes never come here: they stay attributes of the ordinary ops.

Layout class ``shape``: the op reads only its input's sizes, so the input may be stored in any
layout (the backend reads the physical axis).
"""

from __future__ import annotations

from .ops import _define, _norm_axis
from .symbolic import dim_mul
from .types import TensorType

__all__: list[str] = []


def _dim(types, a):
    _norm_axis(a["axis"], types[0].rank)
    return [TensorType((), "i32")]


def _with_shape(types, a):
    return [TensorType(a["shape"], types[0].dtype)]


def _dynamic_slice(types, a):
    x = types[0]
    shape = list(x.shape)
    shape[_norm_axis(a["axis"], x.rank)] = a["length"]
    return [TensorType(shape, x.dtype)]


def _arange(types, a):
    return [TensorType([a["length"]], a["dtype"])]


def _resize_scale(types, a):
    x = types[0]
    n = len(a["scale"])
    lead = list(x.shape[: x.rank - n])
    return [TensorType(lead + [dim_mul(d, s) for d, s in zip(x.shape[x.rank - n:], a["scale"])], x.dtype)]


_define("dim", ["x"], _dim, "shape", {"axis": ("int",)},
        doc="the run-time size of logical axis `axis` of x, as an i32 scalar")
_define("dynamic_reshape", ["x", "sizes"], _with_shape, "fixed", {"shape": ("ints",)},
        doc="x reshaped to `sizes` (an i32 vector, logical order, at most one -1); `shape` is the "
            "result's logical shape with its symbolic dims")
_define("dynamic_expand", ["x", "sizes"], _with_shape, "fixed", {"shape": ("ints",)},
        doc="x broadcast to `sizes` (an i32 vector, logical order); `shape` is the result's shape")
_define("dynamic_slice", ["x", "start", "end"], _dynamic_slice, "axis",
        {"axis": ("int",), "step": ("int", 1), "length": ("any",)},
        doc="x[start:end:step] along `axis`, with i32 scalar bounds in Python's convention (negative "
            "counts from the end, out-of-range clamps); `length` is the result's size along `axis`")
_define("arange", ["start", "end", "step"], _arange, "fixed", {"dtype": ("dtype",), "length": ("any",)},
        doc="start, start + step, ... below end (scalar inputs); `length` is the result's size")
_define("resize_scale", ["x"], _resize_scale, "channel", {"scale": ("ints",), "mode": ("str", "nearest")},
        doc="upsampling of the trailing spatial axes by integer factors `scale` (nearest | bilinear with "
            "half-pixel centres, torch's align_corners=False), for inputs of run-time spatial size")
