"""Dynamic shapes: sizes known only at run time, as values.

A size that depends on a symbolic dim is an ``i32`` scalar value: ``dim`` reads one axis of a
tensor's run-time shape, and integer elementwise ops (``add``, ``mul``, ``floor_divide``, ...)
compute with it. Ops whose sizes are such values take them as inputs; their result types still
carry the symbolic dims (as attributes, in torch's spelling: the ``dim_attrs``), so type
inference stays exact. Static sizes never come here: they stay attributes of the ordinary ops. ``dynamic_update_slice``
writes rows at a position known only at run time (a key/value cache's next rows).

Layout rule ``shape`` (``dim``): the op reads only its input's sizes, so the input may be stored
in any layout (the backend reads the physical axis).
"""

from __future__ import annotations

import numpy as np

from ..symbolic import dim_mul
from ..types import TensorType, dtype_to_numpy
from .common import norm_axis
from .pool import _upsample
from .schema import define

FAMILY = "dynamic"


def _dim_type(types, a):
    norm_axis(a["axis"], types[0].rank)
    return [TensorType((), "i32")]


def _with_shape(types, a):
    return [TensorType(a["shape"], types[0].dtype)]


def _dynamic_slice_type(types, a):
    x = types[0]
    shape = list(x.shape)
    shape[norm_axis(a["axis"], x.rank)] = a["length"]
    return [TensorType(shape, x.dtype)]


def _update_slice_type(types, a):
    x, update, start = types
    ax = norm_axis(a["axis"], x.rank)
    others = [d for k, d in enumerate(x.shape) if k != ax]
    if update.rank != x.rank or [d for k, d in enumerate(update.shape) if k != ax] != others \
            or update.dtype != x.dtype:
        raise ValueError(f"dynamic_update_slice: update {update} does not fit {x} along axis {ax}")
    if start.rank != 0 or start.dtype[0] not in "iu":
        raise ValueError(f"dynamic_update_slice: start must be an integer scalar, got {start}")
    return [x.replace(layout=None)]


def _update_slice(x, update, start, *, axis):
    out = np.array(x, copy=True)
    rows = update.shape[axis]
    at = int(np.clip(int(start), 0, x.shape[axis] - rows))
    index = [slice(None)] * x.ndim
    index[axis] = slice(at, at + rows)
    out[tuple(index)] = update
    return out


def _arange_type(types, a):
    return [TensorType([a["length"]], a["dtype"])]


def _resize_scale_type(types, a):
    x = types[0]
    n = len(a["scale"])
    lead = list(x.shape[: x.rank - n])
    return [TensorType(lead + [dim_mul(d, s) for d, s in zip(x.shape[x.rank - n:], a["scale"])], x.dtype)]


def _dynamic_slice(x, start, end, *, axis, step, length):
    index = [slice(None)] * x.ndim
    index[axis] = slice(int(start), int(end), step)
    return x[tuple(index)]


def _resize_scale(x, *, scale, mode):
    size = [d * s for d, s in zip(x.shape[x.ndim - len(scale):], scale)]
    return _upsample(x, size=size, mode=mode, align_corners=False)


define("dim", FAMILY, ["x"], _dim_type, "shape", {"axis": ("int",)},
       reference=lambda x, axis: np.array(x.shape[axis], np.int32), tflite=("SHAPE", "STRIDED_SLICE"),
       doc="the run-time size of logical axis `axis` of x, as an i32 scalar")
define("dynamic_reshape", FAMILY, ["x", "sizes"], _with_shape, "fixed", {"shape": ("ints",)}, dim_attrs=("shape",),
       reference=lambda x, sizes, shape: x.reshape([int(s) for s in sizes]), tflite=("RESHAPE",),
       doc="x reshaped to `sizes` (an i32 vector, logical order, at most one -1); `shape` is the "
           "result's logical shape with its symbolic dims")
define("dynamic_expand", FAMILY, ["x", "sizes"], _with_shape, "fixed", {"shape": ("ints",)}, dim_attrs=("shape",),
       reference=lambda x, sizes, shape: np.broadcast_to(x, [int(s) for s in sizes]), tflite=("BROADCAST_TO",),
       doc="x broadcast to `sizes` (an i32 vector, logical order); `shape` is the result's shape")
define("dynamic_slice", FAMILY, ["x", "start", "end"], _dynamic_slice_type, "axis",
       {"axis": ("int",), "step": ("int", 1), "length": ("any",)}, dim_attrs=("length",), reference=_dynamic_slice,
       tflite=("STRIDED_SLICE",),
       doc="x[start:end:step] along `axis`, with i32 scalar bounds in Python's convention (negative "
           "counts from the end, out-of-range clamps); `length` is the result's size along `axis`")
define("dynamic_update_slice", FAMILY, ["x", "update", "start"], _update_slice_type, "axis", {"axis": ("int",)},
       reference=_update_slice, tflite=("DYNAMIC_UPDATE_SLICE",),
       doc="x with its rows start ... start + n - 1 along `axis` replaced by update's n rows (update: x's "
           "shape but n along `axis`); start: an integer scalar, clamped into [0, size - n] as TFLite and "
           "XLA clamp it")
define("arange", FAMILY, ["start", "end", "step"], _arange_type, "fixed", {"dtype": ("dtype",), "length": ("any",)},
       dim_attrs=("length",), tflite=("RANGE",),
       reference=lambda start, end, step, dtype, length: np.arange(start, end, step).astype(dtype_to_numpy(dtype)),
       doc="start, start + step, ... below end (scalar inputs); `length` is the result's size")
define("resize_scale", FAMILY, ["x"], _resize_scale_type, "channel", {"scale": ("ints",), "mode": ("str", "nearest")},
       reference=_resize_scale, tflite=("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"),
       doc="upsampling of the trailing spatial axes by integer factors `scale` (nearest | bilinear with "
           "half-pixel centres, torch's align_corners=False), for inputs of run-time spatial size")
