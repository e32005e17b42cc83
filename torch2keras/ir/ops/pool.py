"""Pooling and resampling: max/avg pooling, adaptive pooling, upsampling, depth/space moves and
grid sampling (all on NC... logical tensors, channels-last when laid out)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..symbolic import dim_add, dim_floordiv, dim_mul, is_symbolic
from ..types import TensorType
from .schema import define

__all__ = ["pool_out_size"]

FAMILY = "pool"


def pool_out_size(size, k, s, p, d, ceil_mode):
    """Output length of a pooling window along one axis (torch's rule, ceil_mode included)."""
    eff = d * (k - 1) + 1
    if is_symbolic(size):
        if ceil_mode:
            return f"pool_ceil({size}, {k}, {s}, {p}, {d})"  # a stand-in: torch names the result
        return dim_add(dim_floordiv(dim_add(size, 2 * p - eff), s), 1)
    if ceil_mode:
        out = -(-(size + 2 * p - eff) // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out
    return (size + 2 * p - eff) // s + 1


def _pool_type(types, a):
    x = types[0]
    n = len(a["kernel"])
    dil = a.get("dilation") or [1] * n
    spatial = [pool_out_size(x.shape[x.rank - n + i], a["kernel"][i], a["stride"][i], a["padding"][i], dil[i],
                             a["ceil_mode"]) for i in range(n)]
    return [TensorType([*x.shape[: x.rank - n], *spatial], x.dtype)]


def _adaptive_type(types, a):
    x = types[0]
    n = len(a["output_size"])
    return [TensorType([*x.shape[: x.rank - n], *a["output_size"]], x.dtype)]


def _upsample_type(types, a):
    x = types[0]
    n = len(a["size"])
    return [TensorType([*x.shape[: x.rank - n], *a["size"]], x.dtype)]


def _depth_to_space_type(types, a):
    n, c, h, w = types[0].shape
    r = a["block"]
    return [TensorType([n, dim_floordiv(c, r * r), dim_mul(h, r), dim_mul(w, r)], types[0].dtype)]


def _space_to_depth_type(types, a):
    n, c, h, w = types[0].shape
    r = a["block"]
    return [TensorType([n, dim_mul(c, r * r), dim_floordiv(h, r), dim_floordiv(w, r)], types[0].dtype)]


def _windows(padded, kernel, stride, dilation, out_sizes):
    """[..., *out, *kernel] views of the pooling windows of the trailing axes of ``padded``."""
    n = len(kernel)
    eff = [dilation[i] * (kernel[i] - 1) + 1 for i in range(n)]
    view = sliding_window_view(padded, eff, axis=tuple(range(padded.ndim - n, padded.ndim)))
    index = (Ellipsis,) + tuple(slice(0, (out_sizes[i] - 1) * stride[i] + 1, stride[i]) for i in range(n)) \
        + tuple(slice(None, None, dilation[i]) for i in range(n))
    return view[index]


def _pool_geometry(x, kernel, stride, padding, dilation, ceil_mode):
    n = len(kernel)
    out = [pool_out_size(x.shape[x.ndim - n + i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
           for i in range(n)]
    extra = [max((out[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - (x.shape[x.ndim - n + i]
                                                                                   + 2 * padding[i]), 0)
             for i in range(n)]
    pads = [(0, 0)] * (x.ndim - n) + [(padding[i], padding[i] + extra[i]) for i in range(n)]
    return out, pads


def _max_pool(x, *, kernel, stride, padding, ceil_mode, dilation=None):
    n = len(kernel)
    dilation = dilation or [1] * n
    out, pads = _pool_geometry(x, kernel, stride, padding, dilation, ceil_mode)
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    padded = np.pad(x, pads, constant_values=low)
    return _windows(padded, kernel, stride, dilation, out).max(axis=tuple(range(-n, 0)))


def _avg_pool(x, *, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    n = len(kernel)
    out, pads = _pool_geometry(x, kernel, stride, padding, [1] * n, ceil_mode)
    axes = tuple(range(-n, 0))
    sums = _windows(np.pad(x.astype(np.float64), pads), kernel, stride, [1] * n, out).sum(axis=axes)
    if divisor_override:
        return (sums / divisor_override).astype(x.dtype)
    spatial = x.shape[x.ndim - n:]
    if count_include_pad:  # the window clipped to the input plus its symmetric padding
        ones = np.pad(np.ones([s + 2 * p for s, p in zip(spatial, padding)]),
                      [(0, pads[x.ndim - n + i][1] - padding[i]) for i in range(n)])
    else:
        ones = np.pad(np.ones(spatial), pads[x.ndim - n:])
    counts = _windows(ones, kernel, stride, [1] * n, out).sum(axis=axes)
    return (sums / counts).astype(x.dtype)


def _adaptive_bounds(size: int, out: int) -> list[tuple[int, int]]:
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive(x, output_size, reduce):
    n = len(output_size)
    result = x
    for k in range(n):
        axis = x.ndim - n + k
        parts = [reduce(np.take(result, range(lo, hi), axis=axis), axis=axis, keepdims=True)
                 for lo, hi in _adaptive_bounds(x.shape[axis], output_size[k])]
        result = np.concatenate(parts, axis=axis)
    return result.astype(x.dtype)


def _source_coords(out: int, size: int, mode: str, align_corners: bool) -> np.ndarray:
    dst = np.arange(out, dtype=np.float64)
    if mode == "nearest":
        return np.minimum(np.floor(dst * (size / out)), size - 1)
    if align_corners:
        return dst * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    return np.maximum((dst + 0.5) * (size / out) - 0.5, 0.0)


def _upsample(x, *, size, mode, align_corners):
    if mode not in ("nearest", "bilinear", "linear", "trilinear"):
        raise NotImplementedError(f"reference of {mode} upsampling")
    out = x.astype(np.float64)
    n = len(size)
    for k in range(n):
        axis = x.ndim - n + k
        src = _source_coords(size[k], x.shape[axis], mode, align_corners)
        if mode == "nearest":
            out = np.take(out, src.astype(np.int64), axis=axis)
            continue
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, x.shape[axis] - 1)
        frac = (src - lo).reshape([-1 if i == axis else 1 for i in range(x.ndim)])
        out = np.take(out, lo, axis=axis) * (1 - frac) + np.take(out, hi, axis=axis) * frac
    return out.astype(x.dtype)


def _depth_to_space(x, block):
    n, c, h, w = x.shape
    y = x.reshape(n, block, block, c // (block * block), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (block * block), h * block, w * block)


def _space_to_depth(x, block):
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // block, block, w // block, block).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * block * block, h // block, w // block)


def _grid_sample_type(types, a):
    x, grid = types
    return [TensorType([x.shape[0], x.shape[1], *grid.shape[1:-1]], x.dtype)]


_POOL = {"kernel": ("ints",), "stride": ("ints",), "padding": ("ints",), "ceil_mode": ("bool", False)}
define("max_pool", FAMILY, ["x"], _pool_type, "channel", {**_POOL, "dilation": ("ints", None)}, reference=_max_pool,
       tflite=("MAX_POOL_2D",))
define("avg_pool", FAMILY, ["x"], _pool_type, "channel",
       {**_POOL, "count_include_pad": ("bool", True), "divisor_override": ("int", None)}, reference=_avg_pool,
       tflite=("AVERAGE_POOL_2D",))
define("adaptive_avg_pool", FAMILY, ["x"], _adaptive_type, "channel", {"output_size": ("ints",)},
       reference=lambda x, output_size: _adaptive(x, output_size, np.mean), tflite=("MEAN", "AVERAGE_POOL_2D"))
define("adaptive_max_pool", FAMILY, ["x"], _adaptive_type, "channel", {"output_size": ("ints",)},
       reference=lambda x, output_size: _adaptive(x, output_size, np.max), tflite=("REDUCE_MAX", "MAX_POOL_2D"))
define("upsample", FAMILY, ["x"], _upsample_type, "channel",
       {"size": ("ints",), "mode": ("str", "nearest"), "align_corners": ("bool", False)}, dim_attrs=("size",),
       reference=_upsample, tflite=("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"),
       doc="mode: nearest | bilinear | bicubic; size: the output's spatial size")
define("depth_to_space", FAMILY, ["x"], _depth_to_space_type, "channel", {"block": ("int",)},
       reference=_depth_to_space, tflite=("DEPTH_TO_SPACE",),
       doc="TensorFlow's depth_to_space on NCHW-logical x: input channel (i * block + j) * C + c "
           "moves to output (c, h * block + i, w * block + j); pixel_shuffle is this after a channel permutation")
define("space_to_depth", FAMILY, ["x"], _space_to_depth_type, "channel", {"block": ("int",)},
       reference=_space_to_depth, tflite=("SPACE_TO_DEPTH",),
       doc="TensorFlow's space_to_depth (the inverse of depth_to_space)")
define("grid_sample", FAMILY, ["x", "grid"], _grid_sample_type, "fixed",
       {"mode": ("str", "bilinear"), "padding_mode": ("str", "zeros"), "align_corners": ("bool", False)},
       no_reference="data-dependent sampling of a model input: a constant grid over a constant image does not occur",
       doc="torch's grid_sample on NC[D]HW x with an N[D]HW2/3 grid of (x, y[, z]) in [-1, 1]")
