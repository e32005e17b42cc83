"""Pooling, resizing and resampling: max/average/adaptive pooling, upsampling in every torch mode,
pixel (un)shuffle and grid sampling.

What Keras' pooling and resizing layers compute as torch does stays one IR op; other geometry is
resolved at lowering time: pooling windows become constant tables of element ids (one gather,
then a reduction), resizing becomes one constant interpolation matrix per axis (nearest modes:
one constant index per output position), exactly as torch computes them.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import sympy

from ...ir import Value
from ..registry import LoweringContext, lowering
from ..symbolic import expression
from .common import aten, axis_values, binary, numel, permute

__all__ = ["along_axis", "pool_windows", "window_max_pool"]

_WINDOW_MAX_OPS = ("index_select", "where", "reduce", "argreduce", "add")  # window_max_pool
_ALONG_AXIS_OPS = ("permute", "linear")  # along_axis


def along_axis(ctx: LoweringContext, x: Value, axis: int, matrix: np.ndarray) -> Value:
    """``y[..., o, ...] = sum_i matrix[o, i] * x[..., i, ...]`` along ``axis`` (a ``linear`` with a
    constant weight, between permutes the layout pass makes free where it can)."""
    r = x.type.rank
    perm = [a for a in range(r) if a != axis] + [axis]
    y = permute(ctx, x, perm)
    y = ctx.emit("linear", [y, ctx.const(np.ascontiguousarray(matrix, np.float32), x.type.dtype)])
    return permute(ctx, y, [perm.index(a) for a in range(r)])


# ----------------------------------------------------------------------------- max pooling


def pool_windows(in_spatial: Sequence[int], per_axis: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
    """Element ids (row-major over the spatial axes) of every window: [outputs, window size],
    -1 where a window reaches into the padding. ``per_axis[d][o]`` lists the input positions of
    output o along axis d (possibly outside the input)."""
    tables = []
    for size, windows in zip(in_spatial, per_axis):
        k = max(len(w) for w in windows)
        t = np.full((len(windows), k), -1, np.int64)
        for o, w in enumerate(windows):
            pos = np.asarray(w, np.int64)
            t[o, :len(pos)] = np.where((pos >= 0) & (pos < size), pos, -1)
        tables.append(t)
    ids = np.zeros((1, 1), np.int64)
    valid = np.ones((1, 1), bool)
    for size, t in zip(in_spatial, tables):  # cartesian product, axis by axis
        o, k = t.shape
        ids = (ids[:, None, :, None] * size + np.maximum(t, 0)[None, :, None, :]).reshape(ids.shape[0] * o, -1)
        valid = (valid[:, None, :, None] & (t >= 0)[None, :, None, :]).reshape(ids.shape)
    return np.where(valid, ids, -1)


def window_max_pool(ctx: LoweringContext, x: Value, in_spatial: Sequence[int], out_spatial: Sequence[int],
                    table: np.ndarray) -> tuple[Value, Value]:
    """Max over each window of ``table`` (see ``pool_windows``) and the flat spatial index of the
    first maximum (torch's ``indices``)."""
    lead = list(x.type.shape[: x.type.rank - len(in_spatial)])
    s = numel(in_spatial)
    flat = ctx.reshape(x, lead + [s])
    floating = x.type.dtype in ("f16", "bf16", "f32", "f64")
    fill = -np.inf if floating else np.iinfo(np.dtype({"i8": "int8", "u8": "uint8", "i16": "int16", "i32": "int32",
                                                      "i64": "int64"}[x.type.dtype])).min
    ids = np.maximum(table, 0)
    windows = ctx.emit("index_select", [flat, ctx.const(ids, "i64")], axis=len(lead))  # lead + [O, K]
    if (table < 0).any():  # window slots in the padding hold the identity of max (lead: any sizes)
        windows = ctx.emit("where", [ctx.const(table >= 0, "bool"), windows, ctx.const(np.asarray(fill), x.type.dtype)])
    axis = len(lead) + 1
    values = ctx.emit("reduce", [windows], kind="max", axes=[axis], keepdim=False)
    best = ctx.emit("argreduce", [windows], kind="argmax", axes=[axis], keepdim=False)  # lead + [O]
    o, k = ids.shape
    linear = ctx.emit("add", [best, ctx.const(np.arange(o, dtype=np.int64) * k, "i64")])
    index = ctx.emit("index_select", [ctx.const(np.maximum(table, 0).reshape(-1), "i64"), linear], axis=0)
    shape = lead + list(out_spatial)
    return ctx.reshape(values, shape), ctx.reshape(index, shape)


def max_pool(ctx, x, n, kernel_size, stride, padding, dilation, out_spatial) -> tuple[Value, Value]:
    """Max pooling of any geometry (dilation, ceil_mode) with torch's indices."""
    kernel = axis_values(kernel_size, n)
    stride = axis_values(stride, n) if stride not in (None, [], ()) else kernel
    padding, dilation = axis_values(padding, n), axis_values(dilation, n)
    in_spatial = list(x.type.shape[-n:])
    per_axis = [[[o * stride[d] - padding[d] + j * dilation[d] for j in range(kernel[d])]
                 for o in range(out_spatial[d])] for d in range(n)]
    return window_max_pool(ctx, x, in_spatial, out_spatial, pool_windows(in_spatial, per_axis))


def _pool_args(x, kernel, stride, padding, n):
    kernel = axis_values(kernel, n)
    stride = axis_values(stride, n) if stride not in (None, [], ()) else kernel
    return kernel, stride, axis_values(padding, n)


@lowering(aten.max_pool1d.default, aten.max_pool2d.default, aten.max_pool3d.default, keep_whole=True,
          emits=("max_pool",) + _WINDOW_MAX_OPS)
@lowering(aten.max_pool2d_with_indices.default, aten.max_pool3d_with_indices.default,
          emits=("max_pool",) + _WINDOW_MAX_OPS)
def lower_max_pool(ctx, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    n = len(axis_values(kernel_size, 1)) if isinstance(kernel_size, (list, tuple)) and len(kernel_size) > 1 \
        else int(ctx.loc.op.split("max_pool")[1][0])
    if any(d != 1 for d in axis_values(dilation, n)) or x.type.dtype not in ("f16", "bf16", "f32", "f64"):
        out, indices = max_pool(ctx, x, n, kernel_size, stride, padding, dilation, list(ctx.out_type.shape[-n:]))
        return (out, indices) if "with_indices" in ctx.loc.op else out
    kernel_, stride_, padding_ = _pool_args(x, kernel_size, stride, padding, n)
    out = ctx.emit("max_pool", [x], kernel=kernel_, stride=stride_, padding=padding_,
                   dilation=axis_values(dilation, n), ceil_mode=bool(ceil_mode))
    if "with_indices" in ctx.loc.op:  # (dead code elimination drops the indices where nothing reads them)
        return out, max_pool(ctx, x, n, kernel_size, stride, padding, dilation, list(ctx.out_type.shape[-n:]))[1]
    return out


# ----------------------------------------------------------------------------- average pooling


@lowering(aten.avg_pool1d.default, aten.avg_pool2d.default, aten.avg_pool3d.default,
          emits=("avg_pool", "concat", "index_select", "reduce", "abs", "floor_divide", "lt", "logical_xor", "neg",
                 "where"))
def lower_avg_pool(ctx, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                   divisor_override=None):
    n = int(ctx.loc.op.split("avg_pool")[1][0])
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding, n)
    if x.type.dtype not in ("f16", "bf16", "f32", "f64"):  # integer: exact window sums, truncating division
        return integer_avg_pool(ctx, x, kernel, stride, padding, bool(count_include_pad), divisor_override,
                                list(ctx.out_type.shape[-n:]))
    return ctx.emit("avg_pool", [x], kernel=kernel, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
                    count_include_pad=bool(count_include_pad), divisor_override=divisor_override)


def integer_avg_pool(ctx, x: Value, kernel, stride, padding, count_include_pad: bool, divisor_override,
                     out_spatial) -> Value:
    """Average pooling of integers as torch computes it: the window's sum divided (truncating) by
    the window size -- within the padded input when count_include_pad, else within the input --
    or by divisor_override."""
    n = len(kernel)
    in_spatial = list(x.type.shape[-n:])
    per_axis, sizes = [], []
    for d in range(n):
        windows, counts = [], []
        for o in range(out_spatial[d]):
            start = o * stride[d] - padding[d]
            end = min(start + kernel[d], in_spatial[d] + padding[d])
            windows.append(list(range(start, start + kernel[d])))
            counts.append((end - start) if count_include_pad else (min(end, in_spatial[d]) - max(start, 0)))
        per_axis.append(windows)
        sizes.append(np.asarray(counts, np.int64))
    divisor = sizes[0]
    for s in sizes[1:]:
        divisor = (divisor[:, None] * s[None, :]).reshape(-1)
    if divisor_override:
        divisor = np.full_like(divisor, int(divisor_override))
    table = pool_windows(in_spatial, per_axis)
    lead = list(x.type.shape[:-n])
    flat = ctx.reshape(x, lead + [numel(in_spatial)])
    if (table < 0).any():  # the padding slot holds 0
        flat = ctx.emit("concat", [flat, ctx.const(np.zeros(lead + [1]), x.type.dtype)], axis=len(lead))
    ids = np.where(table < 0, numel(in_spatial), table)
    windows = ctx.emit("index_select", [flat, ctx.const(ids, "i64")], axis=len(lead))
    total = ctx.emit("reduce", [windows], kind="sum", axes=[len(lead) + 1], keepdim=False)
    d = ctx.const(np.maximum(np.abs(divisor), 1), x.type.dtype)
    q = ctx.emit("floor_divide", [ctx.emit("abs", [total]), d])  # truncation toward zero, exactly
    negative = binary(ctx, "lt", total, 0, x.type.dtype)
    if (divisor < 0).any():
        negative = ctx.emit("logical_xor", [negative, ctx.const(divisor < 0, "bool")])
    q = ctx.emit("where", [negative, ctx.emit("neg", [q]), q])
    return ctx.reshape(q, lead + list(out_spatial))


# ----------------------------------------------------------------------------- adaptive pooling


@lowering(aten.adaptive_avg_pool1d.default, aten.adaptive_avg_pool2d.default, keep_whole=True,
          emits=("adaptive_avg_pool",) + _ALONG_AXIS_OPS)
@lowering(aten._adaptive_avg_pool2d.default, aten.adaptive_avg_pool3d.default, aten._adaptive_avg_pool3d.default,
          emits=("adaptive_avg_pool",) + _ALONG_AXIS_OPS)
def lower_adaptive_avg_pool(ctx, x, output_size):
    n = len(output_size)
    out = list(ctx.out_type.shape[-n:])
    if _dynamic_spatial(ctx, x, n, out, "adaptive average pooling"):
        return ctx.emit("adaptive_avg_pool", [x], output_size=out)
    if any(s % o for s, o in zip(x.type.shape[-n:], out)) or x.type.rank == n + 1:  # averaging matrices
        return adaptive_avg_pool(ctx, x, out)
    return ctx.emit("adaptive_avg_pool", [x], output_size=out)


def _dynamic_spatial(ctx, x, n: int, out, what: str) -> bool:
    """Whether x's pooled axes have a run-time size; only global pooling (to 1) is supported then."""
    if all(isinstance(d, int) for d in x.type.shape[-n:]):
        return False
    if x.type.rank != n + 2 or any(o != 1 for o in out):
        raise ctx.fail(f"{what} of a run-time size {list(x.type.shape[-n:])} to {out} is not supported yet "
                       "(only to size 1)")
    return True


@lowering(aten.adaptive_max_pool1d.default, aten.adaptive_max_pool2d.default,
          emits=("adaptive_max_pool",) + _WINDOW_MAX_OPS)
def lower_adaptive_max_pool(ctx, x, output_size):
    n = len(output_size)
    out = list(ctx.meta_val[0].shape[-n:])
    if _dynamic_spatial(ctx, x, n, out, "adaptive max pooling"):
        return ctx.emit("adaptive_max_pool", [x], output_size=out), None  # (no indices of a run-time size)
    values, indices = adaptive_max_pool(ctx, x, output_size)
    if x.type.rank == n + 2 and x.type.dtype in ("f16", "f32", "f64") and \
            not any(s % o for s, o in zip(x.type.shape[-n:], out)):  # a Keras pooling layer
        values = ctx.emit("adaptive_max_pool", [x], output_size=out)
    return values, indices


def _adaptive_windows(size: int, out: int) -> list[list[int]]:
    return [list(range((o * size) // out, -(-((o + 1) * size) // out))) for o in range(out)]


def adaptive_max_pool(ctx, x: Value, output_size) -> tuple[Value, Value]:
    n = len(output_size)
    out = list(ctx.meta_val[0].shape[-n:])
    in_spatial = list(x.type.shape[-n:])
    per_axis = [_adaptive_windows(in_spatial[d], out[d]) for d in range(n)]
    return window_max_pool(ctx, x, in_spatial, out, pool_windows(in_spatial, per_axis))


@lowering(aten.adaptive_max_pool3d.default, emits=_WINDOW_MAX_OPS)
def lower_adaptive_max_pool3d(ctx, x, output_size):
    return adaptive_max_pool(ctx, x, output_size)


def adaptive_avg_pool(ctx, x: Value, out: Sequence[int]) -> Value:
    """Adaptive average pooling to any size: one averaging matrix per spatial axis."""
    n = len(out)
    for d in range(n):
        axis = x.type.rank - n + d
        size = x.type.shape[axis]
        m = np.zeros((out[d], size), np.float32)
        for o, w in enumerate(_adaptive_windows(size, out[d])):
            m[o, w] = 1.0 / len(w)
        x = along_axis(ctx, x, axis, m)
    return x


# ----------------------------------------------------------------------------- resizing


@lowering(aten.upsample_nearest2d.vec, keep_whole=True, emits=("upsample", "resize_scale", "index_select"))
@lowering(aten.upsample_nearest1d.vec, aten.upsample_nearest3d.vec, aten.upsample_nearest2d.default,
          aten._upsample_nearest_exact2d.vec, emits=("upsample", "resize_scale", "index_select"))
def lower_upsample_nearest(ctx, x, output_size=None, scale_factors=None, *args):
    n = x.type.rank - 2
    out = list(ctx.out_type.shape[-n:])
    scales = axis_values(scale_factors, n) if scale_factors is not None else [None] * n
    if ctx.loc.op.endswith(".default"):  # (self, output_size, scales_h=None, scales_w=None)
        scales = ([scale_factors] + list(args) + [None, None])[:2]
    spatial = x.type.shape[-n:]
    if any(isinstance(d, str) for d in spatial):
        return _resize_scale(ctx, x, out, "nearest", "exact" in ctx.loc.op)
    if "exact" in ctx.loc.op or n != 2 or x.type.rank != 4 or any(
            o % i or (s is not None and s != o // i) for i, o, s in zip(spatial, out, scales)):
        return resize(ctx, x, out, "nearest-exact" if "exact" in ctx.loc.op else "nearest", scales=scales)
    return ctx.emit("upsample", [x], size=out, mode="nearest")


@lowering(aten.upsample_bilinear2d.vec, keep_whole=True, emits=("upsample", "resize_scale") + _ALONG_AXIS_OPS)
@lowering(aten.upsample_bilinear2d.default, aten.upsample_bicubic2d.vec,
          emits=("upsample", "resize_scale") + _ALONG_AXIS_OPS)
def lower_upsample_bilinear(ctx, x, output_size, align_corners, scale_factors=None, *args):
    mode = "bicubic" if "bicubic" in ctx.loc.op else "bilinear"
    out = list(ctx.out_type.shape[-2:])
    scales = axis_values(scale_factors, 2) if scale_factors is not None else None
    if ctx.loc.op.endswith(".default"):  # (self, output_size, align_corners, scales_h=None, scales_w=None)
        scales = ([scale_factors] + list(args) + [None, None])[:2]
    if any(isinstance(d, str) for d in x.type.shape[-2:]):
        return _resize_scale(ctx, x, out, mode, bool(align_corners))
    if mode == "bicubic" or x.type.rank != 4 or not keras_resize_matches(x.type.shape[-2:], out, scales, align_corners):
        return resize(ctx, x, out, mode, bool(align_corners), scales)  # torch's coordinates and cubic kernel
    return ctx.emit("upsample", [x], size=out, mode=mode, align_corners=bool(align_corners))


def _resize_scale(ctx, x, out, mode: str, unsupported_flag: bool):
    """Upsampling of a run-time spatial size: integer factors only (``resize_scale``)."""
    n = len(out)
    scale = [integer_ratio(o, i) for o, i in zip(out, x.type.shape[-n:])]
    if None in scale or unsupported_flag or mode == "bicubic" or x.type.rank != n + 2 or n != 2:
        raise ctx.fail(f"{mode} resizing of a run-time size {list(x.type.shape[-n:])} to {out} is supported for "
                       "2-d nearest and bilinear (align_corners=False) upsampling by integer factors only")
    return ctx.emit("resize_scale", [x], scale=scale, mode=mode)


def integer_ratio(out_dim: Any, in_dim: Any) -> Optional[int]:
    """``out_dim / in_dim`` when it is a positive integer for every size (by torch's expressions)."""
    try:
        ratio = sympy.simplify(expression(out_dim) / expression(in_dim))
    except Exception:  # noqa: BLE001 - no expression known: no ratio
        return None
    return int(ratio) if ratio.is_Integer and int(ratio) > 0 else None


def _source_scale(in_size: int, out_size: int, align_corners: bool, scale: Optional[float]) -> float:
    """torch's area_pixel_compute_scale."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return 1.0 / scale if scale else in_size / out_size


def nearest_indices(in_size: int, out_size: int, scale: Optional[float], exact: bool) -> np.ndarray:
    """torch's source index of each output position, computed as torch does: in float32
    (``floorf(dst * scale)``; 3 * float32(10 / 6) rounds to 5.0 there, not to 4.99999...)."""
    s = np.float32(1.0 / scale if scale else in_size / out_size)
    dst = np.arange(out_size, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s) if exact else np.floor(dst * s)
    return np.minimum(src, in_size - 1).astype(np.int64)


def linear_matrix(in_size: int, out_size: int, align_corners: bool, scale: Optional[float]) -> np.ndarray:
    s = _source_scale(in_size, out_size, align_corners, scale)
    m = np.zeros((out_size, in_size), np.float64)
    for o in range(out_size):
        src = o * s if align_corners else max((o + 0.5) * s - 0.5, 0.0)
        i0 = min(int(math.floor(src)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        frac = src - i0
        m[o, i0] += 1.0 - frac
        m[o, i1] += frac
    return m


def cubic_matrix(in_size: int, out_size: int, align_corners: bool, scale: Optional[float], a: float = -0.75):
    s = _source_scale(in_size, out_size, align_corners, scale)
    m = np.zeros((out_size, in_size), np.float64)
    for o in range(out_size):
        src = o * s if align_corners else (o + 0.5) * s - 0.5
        i = int(math.floor(src))
        t = src - i
        w = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
             ((a + 2) * t - (a + 3)) * t * t + 1,
             ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
             ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
        for j in range(4):
            m[o, min(max(i - 1 + j, 0), in_size - 1)] += w[j]
    return m


def resize(ctx, x: Value, out: Sequence[int], mode: str, align_corners: bool = False,
           scales: Optional[Sequence[Optional[float]]] = None) -> Value:
    """Resize the trailing ``len(out)`` axes as torch's interpolate does, axis by axis."""
    n = len(out)
    scales = list(scales) if scales else [None] * n
    for d in range(n):
        axis = x.type.rank - n + d
        size = x.type.shape[axis]
        if mode in ("nearest", "nearest-exact"):
            index = nearest_indices(size, out[d], scales[d], mode == "nearest-exact")
            if not np.array_equal(index, np.arange(size)) or out[d] != size:
                x = ctx.emit("index_select", [x, ctx.const(index, "i64")], axis=axis)
        else:
            make = cubic_matrix if mode == "bicubic" else linear_matrix
            m = make(size, out[d], align_corners, scales[d])
            if not (m.shape[0] == m.shape[1] and np.allclose(m, np.eye(size))):
                x = along_axis(ctx, x, axis, m)
    return x


def _scales(scale_factors, n) -> Optional[list]:
    if scale_factors is None:
        return None
    return axis_values(scale_factors, n)


def keras_resize_matches(in_spatial, out, scales, align_corners) -> bool:
    """Whether Keras' resize (half-pixel centres, scale in/out) computes torch's coordinates."""
    if align_corners:
        return False
    scales = scales or [None] * len(out)
    return all(s is None or abs(i / o - 1.0 / s) < 1e-12 for i, o, s in zip(in_spatial, out, scales))


@lowering(aten._upsample_nearest_exact1d.vec, aten._upsample_nearest_exact3d.vec, emits=("index_select",))
def lower_upsample_nearest_nd(ctx, x, output_size=None, scale_factors=None):
    n = x.type.rank - 2
    mode = "nearest-exact" if "exact" in ctx.loc.op else "nearest"
    return resize(ctx, x, list(ctx.out_type.shape[-n:]), mode, scales=_scales(scale_factors, n))


@lowering(aten.upsample_linear1d.vec, aten.upsample_trilinear3d.vec, emits=_ALONG_AXIS_OPS)
def lower_upsample_linear_nd(ctx, x, output_size, align_corners, scale_factors=None):
    n = x.type.rank - 2
    return resize(ctx, x, list(ctx.out_type.shape[-n:]), "linear", bool(align_corners), _scales(scale_factors, n))


# ----------------------------------------------------------------------------- pixel shuffle and grid sampling


def _tf_channel_order(channels: int, r: int) -> np.ndarray:
    """For each channel k = (i * r + j) * C + c of TensorFlow's depth layout, the torch channel
    c * r * r + i * r + j (pixel shuffle's order)."""
    c_out = channels // (r * r)
    k = np.arange(channels)
    block, c = k // c_out, k % c_out
    return (c * r * r + block).astype(np.int64)


@lowering(aten.pixel_shuffle.default, keep_whole=True, emits=("index_select", "depth_to_space"))
def lower_pixel_shuffle(ctx, x, factor):
    """pixel_shuffle = depth_to_space after a channel permutation (which passes fold into a conv)."""
    if factor == 1:
        return x
    if x.type.rank != 4:  # batch axes merged into one, and split again after
        lead = list(x.type.shape[:-3])
        y = lower_pixel_shuffle(ctx, ctx.reshape(x, [int(np.prod(lead))] + list(x.type.shape[-3:])), factor)
        return ctx.reshape(y, lead + list(y.type.shape[1:]))
    order = _tf_channel_order(x.type.shape[1], factor)
    x = ctx.emit("index_select", [x, ctx.const(order, "i64", name=f"{ctx.name}_order")], axis=1)
    return ctx.emit("depth_to_space", [x], block=factor)


@lowering(aten.pixel_unshuffle.default, keep_whole=True, emits=("space_to_depth", "index_select"))
def lower_pixel_unshuffle(ctx, x, factor):
    """pixel_unshuffle = space_to_depth followed by a channel permutation."""
    if factor == 1:
        return x
    if x.type.rank != 4:
        lead = list(x.type.shape[:-3])
        y = lower_pixel_unshuffle(ctx, ctx.reshape(x, [int(np.prod(lead))] + list(x.type.shape[-3:])), factor)
        return ctx.reshape(y, lead + list(y.type.shape[1:]))
    y = ctx.emit("space_to_depth", [x], block=factor)
    order = np.argsort(_tf_channel_order(y.type.shape[1], factor))
    return ctx.emit("index_select", [y, ctx.const(order, "i64", name=f"{ctx.name}_order")], axis=1)


_GRID_MODES = {0: "bilinear", 1: "nearest", 2: "bicubic"}


_GRID_PADDING = {0: "zeros", 1: "border", 2: "reflection"}


@lowering(aten.grid_sampler_2d.default, aten.grid_sampler_3d.default, aten.grid_sampler.default,
          emits=("grid_sample",))
def lower_grid_sampler(ctx, x, grid, interpolation_mode, padding_mode, align_corners):
    return ctx.emit("grid_sample", [x, ctx.cast(grid, x.type.dtype)], mode=_GRID_MODES[interpolation_mode],
                    padding_mode=_GRID_PADDING[padding_mode], align_corners=bool(align_corners))
