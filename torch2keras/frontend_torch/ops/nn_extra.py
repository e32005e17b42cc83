"""Neural-network ops beyond the kept-whole layers: pooling with indices and arbitrary windows,
resizing in every torch mode, batch statistics, norms with computed weights, grid sampling,
embedding bags, distances, bilinear forms and fold (col2im).

Geometry is resolved at lowering time: pooling windows become constant tables of element ids
(one gather, then a reduction), resizing becomes one constant interpolation matrix per axis
(nearest modes: one constant index per output position), exactly as torch computes them.
"""

from __future__ import annotations

import builtins
import math
from typing import Optional, Sequence

import numpy as np

from ...ir import Value
from ..registry import LoweringContext, lowering
from ._util import aten, norm_axis
from .elementwise import binary
from .shape import permute, slice_

__all__ = ["along_axis", "batch_norm_batch_stats", "pool_windows", "window_max_pool"]

# ----------------------------------------------------------------------------- helpers


def _const(v: Optional[Value]):
    from ._util import static_value

    return None if v is None else static_value(v)


def _numel(shape: Sequence[int]) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def along_axis(ctx: LoweringContext, x: Value, axis: int, matrix: np.ndarray) -> Value:
    """``y[..., o, ...] = sum_i matrix[o, i] * x[..., i, ...]`` along ``axis`` (a ``linear`` with a
    constant weight, between permutes the layout pass makes free where it can)."""
    r = x.type.rank
    perm = [a for a in range(r) if a != axis] + [axis]
    y = permute(ctx, x, perm)
    y = ctx.emit("linear", [y, ctx.const(np.ascontiguousarray(matrix, np.float32), x.type.dtype)])
    return permute(ctx, y, [perm.index(a) for a in range(r)])


def _per_channel(ctx, v: Value, rank: int) -> Value:
    """A [C] vector shaped to broadcast over an N, C, *spatial tensor."""
    return ctx.reshape(v, [1, v.type.shape[0]] + [1] * (rank - 2))


# ----------------------------------------------------------------------------- pooling windows


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
    s = _numel(in_spatial)
    flat = ctx.reshape(x, lead + [s])
    floating = x.type.dtype in ("f16", "bf16", "f32", "f64")
    fill = -np.inf if floating else np.iinfo(np.dtype({"i8": "int8", "u8": "uint8", "i16": "int16", "i32": "int32",
                                                      "i64": "int64"}[x.type.dtype])).min
    if (table < 0).any():  # the padding slot: one extra element holding the identity of max
        pad = ctx.const(np.full(lead + [1], fill), x.type.dtype)
        flat = ctx.emit("concat", [flat, pad], axis=len(lead))
    ids = np.where(table < 0, s, table)
    windows = ctx.emit("index_select", [flat, ctx.const(ids, "i64")], axis=len(lead))  # lead + [O, K]
    axis = len(lead) + 1
    values = ctx.emit("reduce", [windows], kind="max", axes=[axis], keepdim=False)
    best = ctx.emit("argreduce", [windows], kind="argmax", axes=[axis], keepdim=False)  # lead + [O]
    o, k = ids.shape
    linear = ctx.emit("add", [best, ctx.const(np.arange(o, dtype=np.int64) * k, "i64")])
    index = ctx.emit("index_select", [ctx.const(np.maximum(table, 0).reshape(-1), "i64"), linear], axis=0)
    shape = lead + list(out_spatial)
    return ctx.reshape(values, shape), ctx.reshape(index, shape)


def _tuple(v, n):
    if isinstance(v, (list, tuple)):
        v = list(v)
        return v * n if len(v) == 1 else v
    return [v] * n


def max_pool(ctx, x, n, kernel_size, stride, padding, dilation, out_spatial) -> tuple[Value, Value]:
    """Max pooling of any geometry (dilation, ceil_mode) with torch's indices."""
    kernel = _tuple(kernel_size, n)
    stride = _tuple(stride, n) if stride not in (None, [], ()) else kernel
    padding, dilation = _tuple(padding, n), _tuple(dilation, n)
    in_spatial = list(x.type.shape[-n:])
    per_axis = [[[o * stride[d] - padding[d] + j * dilation[d] for j in range(kernel[d])]
                 for o in range(out_spatial[d])] for d in range(n)]
    return window_max_pool(ctx, x, in_spatial, out_spatial, pool_windows(in_spatial, per_axis))


def _adaptive_windows(size: int, out: int) -> list[list[int]]:
    return [list(range((o * size) // out, -(-((o + 1) * size) // out))) for o in range(out)]


def adaptive_max_pool(ctx, x: Value, output_size) -> tuple[Value, Value]:
    n = len(output_size)
    out = list(ctx.meta_val[0].shape[-n:])
    in_spatial = list(x.type.shape[-n:])
    per_axis = [_adaptive_windows(in_spatial[d], out[d]) for d in range(n)]
    return window_max_pool(ctx, x, in_spatial, out, pool_windows(in_spatial, per_axis))


@lowering(aten.adaptive_max_pool3d.default)
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


def _source_scale(in_size: int, out_size: int, align_corners: bool, scale: Optional[float]) -> float:
    """torch's area_pixel_compute_scale."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return 1.0 / scale if scale else in_size / out_size


def nearest_indices(in_size: int, out_size: int, scale: Optional[float], exact: bool) -> np.ndarray:
    s = 1.0 / scale if scale else in_size / out_size
    dst = np.arange(out_size, dtype=np.float64)
    src = np.floor((dst + 0.5) * s) if exact else np.floor(dst * np.float32(s))
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
    return _tuple(scale_factors, n)


def keras_resize_matches(in_spatial, out, scales, align_corners) -> bool:
    """Whether Keras' resize (half-pixel centres, scale in/out) computes torch's coordinates."""
    if align_corners:
        return False
    scales = scales or [None] * len(out)
    return all(s is None or abs(i / o - 1.0 / s) < 1e-12 for i, o, s in zip(in_spatial, out, scales))


@lowering(aten._upsample_nearest_exact1d.vec, aten._upsample_nearest_exact3d.vec)
def lower_upsample_nearest_nd(ctx, x, output_size=None, scale_factors=None):
    n = x.type.rank - 2
    mode = "nearest-exact" if "exact" in ctx.loc.op else "nearest"
    return resize(ctx, x, list(ctx.out_type.shape[-n:]), mode, scales=_scales(scale_factors, n))


@lowering(aten.upsample_linear1d.vec, aten.upsample_trilinear3d.vec)
def lower_upsample_linear_nd(ctx, x, output_size, align_corners, scale_factors=None):
    n = x.type.rank - 2
    return resize(ctx, x, list(ctx.out_type.shape[-n:]), "linear", bool(align_corners), _scales(scale_factors, n))


# ----------------------------------------------------------------------------- norms


def batch_norm_batch_stats(ctx, x: Value, w: Optional[Value], b: Optional[Value], eps: float):
    """Normalisation by the batch's own statistics (training-mode batch norm, instance norm):
    (output, mean [C], inverse std [C], unbiased variance [C])."""
    rank = x.type.rank
    axes = [0] + list(range(2, rank))
    mean = ctx.emit("reduce", [x], kind="mean", axes=axes, keepdim=True)
    var = ctx.emit("var", [x], axes=axes, correction=0.0, keepdim=True)
    rstd = ctx.emit("rsqrt", [binary(ctx, "add", var, float(eps), x.type.dtype)])
    out = ctx.emit("mul", [ctx.emit("sub", [x, mean]), rstd])
    if w is not None:
        out = ctx.emit("mul", [out, _per_channel(ctx, w, rank)])
    if b is not None:
        out = ctx.emit("add", [out, _per_channel(ctx, b, rank)])
    c = x.type.shape[1]
    count = _numel([d for i, d in enumerate(x.type.shape) if i != 1])
    unbiased = binary(ctx, "mul", var, count / max(count - 1, 1), x.type.dtype)
    return out, ctx.reshape(mean, [c]), ctx.reshape(rstd, [c]), ctx.reshape(unbiased, [c])


def _running(ctx, old: Optional[Value], new: Value, momentum: float) -> Optional[Value]:
    if old is None:
        return None
    return ctx.emit("add", [binary(ctx, "mul", old, 1.0 - momentum, old.type.dtype),
                            binary(ctx, "mul", new, float(momentum), old.type.dtype)])


@lowering(aten._native_batch_norm_legit_functional.default)
def lower_batch_norm_functional(ctx, x, w, b, running_mean, running_var, training, momentum, eps):
    if not training:
        from .nn import batch_norm

        return batch_norm(ctx, x, w, b, running_mean, running_var, eps), None, None, running_mean, running_var
    out, mean, rstd, unbiased = batch_norm_batch_stats(ctx, x, w, b, eps)
    return out, mean, rstd, _running(ctx, running_mean, mean, momentum), _running(ctx, running_var, unbiased, momentum)


@lowering(aten._native_batch_norm_legit.no_stats)
def lower_batch_norm_no_stats(ctx, x, w, b, training, momentum, eps):
    out, mean, rstd, _ = batch_norm_batch_stats(ctx, x, w, b, eps)
    return out, mean, rstd


def layer_norm_stats(ctx, x: Value, num_axes: int, eps: float) -> tuple[Value, Value]:
    """Mean and inverse std over the trailing ``num_axes`` axes (kept as size-1 axes)."""
    axes = list(range(x.type.rank - num_axes, x.type.rank))
    mean = ctx.emit("reduce", [x], kind="mean", axes=axes, keepdim=True)
    var = ctx.emit("var", [x], axes=axes, correction=0.0, keepdim=True)
    return mean, ctx.emit("rsqrt", [binary(ctx, "add", var, float(eps), x.type.dtype)])


def group_norm_stats(ctx, x: Value, groups: int, eps: float) -> tuple[Value, Value]:
    """Mean and inverse std per (sample, group): [N, groups]."""
    n = x.type.shape[0]
    g = ctx.reshape(x, [n, groups, x.type.numel // (n * groups)])
    mean, rstd = layer_norm_stats(ctx, g, 1, eps)
    return ctx.reshape(mean, [n, groups]), ctx.reshape(rstd, [n, groups])


# ----------------------------------------------------------------------------- grid sampling

_GRID_MODES = {0: "bilinear", 1: "nearest", 2: "bicubic"}
_GRID_PADDING = {0: "zeros", 1: "border", 2: "reflection"}


@lowering(aten.grid_sampler_2d.default, aten.grid_sampler_3d.default, aten.grid_sampler.default)
def lower_grid_sampler(ctx, x, grid, interpolation_mode, padding_mode, align_corners):
    return ctx.emit("grid_sample", [x, ctx.cast(grid, x.type.dtype)], mode=_GRID_MODES[interpolation_mode],
                    padding_mode=_GRID_PADDING[padding_mode], align_corners=bool(align_corners))


# ----------------------------------------------------------------------------- embedding bags


@lowering(aten._embedding_bag.default, aten._embedding_bag_forward_only.default)
def lower_embedding_bag(ctx, weight, indices, offsets, scale_grad_by_freq=False, mode=0, sparse=False,
                        per_sample_weights=None, include_last_offset=False, padding_idx=-1):
    """Bags of embedding rows reduced by sum (0), mean (1) or max (2); offsets must be constants
    (they fix which bag each index belongs to)."""
    offs = _const(offsets)
    if offs is None:
        raise ctx.fail("embedding_bag with offsets computed by the model is not supported (data-dependent bags)")
    offs = offs.astype(np.int64).reshape(-1)
    idx_const = _const(indices)
    n_idx = indices.type.numel
    bags = len(offs) - 1 if include_last_offset else len(offs)
    bounds = list(offs[:bags]) + ([int(offs[bags])] if include_last_offset else [n_idx])
    bag_of = np.full(n_idx, -1, np.int64)
    for k in range(bags):
        bag_of[bounds[k]:bounds[k + 1]] = k
    idx = ctx.reshape(indices, [n_idx])
    rows = ctx.emit("index_select", [weight, idx], axis=0)  # [n, D]
    d = weight.type.shape[1]
    keep = np.ones(n_idx, bool) if padding_idx is None or padding_idx < 0 else None
    if keep is None:
        if idx_const is None:
            raise ctx.fail("embedding_bag with padding_idx and computed indices is not supported")
        keep = idx_const.reshape(-1) != padding_idx
    member = np.zeros((bags, n_idx), np.float32)
    for i, k in enumerate(bag_of):
        if k >= 0 and keep[i]:
            member[k, i] = 1.0
    if per_sample_weights is not None:
        rows = ctx.emit("mul", [rows, ctx.reshape(per_sample_weights, [n_idx, 1])])
    if mode == 2:
        ids = (np.where(bag_of >= 0, bag_of, 0)[:, None] * d + np.arange(d)[None, :]).astype(np.int64)
        ids = ids[keep & (bag_of >= 0)]
        picked = ctx.emit("index_select", [rows, ctx.const(np.nonzero(keep & (bag_of >= 0))[0], "i64")], axis=0)
        out = ctx.emit("scatter_flat", [ctx.const(np.zeros((bags, d), np.float32), weight.type.dtype),
                                        ctx.const(ids, "i64"), picked], reduce="amax", include_self=False)
    else:
        if mode == 1:
            member = member / np.maximum(member.sum(axis=1, keepdims=True), 1.0)
        out = ctx.emit("matmul", [ctx.const(member, weight.type.dtype), rows])
    return out, None, None, None


@lowering(aten.embedding_renorm.default)
def lower_embedding_renorm(ctx, weight, indices, max_norm, norm_type):
    """The rows that indices use, scaled down to max_norm where their norm exceeds it (torch
    renormalises those rows of the weight in place before the lookup)."""
    used = ctx.emit("scatter_flat", [ctx.const(np.zeros(weight.type.shape[0]), "bool"),
                                     ctx.reshape(indices, [indices.type.numel]),
                                     ctx.const(np.ones(indices.type.numel), "bool")], reduce="none", include_self=True)
    norm = ctx.reshape(_norm_last(ctx, weight, float(norm_type)), [weight.type.shape[0], 1])
    scale = ctx.emit("div", [ctx.const(float(max_norm), weight.type.dtype),
                             binary(ctx, "add", norm, 1e-7, weight.type.dtype)])
    shrink = ctx.emit("logical_and", [ctx.reshape(used, [weight.type.shape[0], 1]),
                                      binary(ctx, "gt", norm, float(max_norm), weight.type.dtype)])
    return ctx.emit("where", [shrink, ctx.emit("mul", [weight, scale]), weight])


# ----------------------------------------------------------------------------- distances and forms


def _norm_last(ctx, diff: Value, p: float) -> Value:
    dtype = diff.type.dtype
    mag = ctx.emit("abs", [diff])
    axis = diff.type.rank - 1
    if p == 0:
        return ctx.emit("reduce", [ctx.cast(binary(ctx, "ne", diff, 0.0, dtype), dtype)], kind="sum", axes=[axis])
    if p == float("inf"):
        return ctx.emit("reduce", [mag], kind="max", axes=[axis])
    if p == 1:
        return ctx.emit("reduce", [mag], kind="sum", axes=[axis])
    if p == 2:
        return ctx.emit("sqrt", [ctx.emit("reduce", [ctx.emit("mul", [mag, mag])], kind="sum", axes=[axis])])
    total = ctx.emit("reduce", [binary(ctx, "pow", mag, float(p), dtype)], kind="sum", axes=[axis])
    return binary(ctx, "pow", total, 1.0 / float(p), dtype)


@lowering(aten._cdist_forward.default)
def lower_cdist(ctx, x1, x2, p, compute_mode=None):
    """||x1[..., i, :] - x2[..., j, :]||_p for every pair (i, j)."""
    a = ctx.reshape(x1, list(x1.type.shape[:-1]) + [1, x1.type.shape[-1]])
    b = ctx.reshape(x2, list(x2.type.shape[:-2]) + [1] + list(x2.type.shape[-2:]))
    return _norm_last(ctx, ctx.emit("sub", [a, b]), float(p))


@lowering(aten._pdist_forward.default)
def lower_pdist(ctx, x, p=2.0):
    """||x[i] - x[j]||_p for the pairs i < j, in row-major order."""
    n = x.type.shape[0]
    i, j = np.triu_indices(n, 1)
    a = ctx.emit("index_select", [x, ctx.const(i.astype(np.int64), "i64")], axis=0)
    b = ctx.emit("index_select", [x, ctx.const(j.astype(np.int64), "i64")], axis=0)
    return _norm_last(ctx, ctx.emit("sub", [a, b]), float(p))


@lowering(aten._trilinear.default)
def lower_trilinear(ctx, i1, i2, i3, expand1, expand2, expand3, sumdim, unroll_dim=1):
    """Each input with size-1 axes inserted at its ``expand`` positions, multiplied, summed over
    ``sumdim`` (the kernel behind nn.functional.bilinear)."""
    def expanded(t, dims):
        shape = list(t.type.shape)
        for d in sorted(dims):
            shape.insert(d, 1)
        return ctx.reshape(t, shape)

    prod = ctx.emit("mul", [ctx.emit("mul", [expanded(i1, expand1), expanded(i2, expand2)]), expanded(i3, expand3)])
    if not sumdim:
        return prod
    return ctx.emit("reduce", [prod], kind="sum", axes=sorted(norm_axis(d, prod.type.rank) for d in sumdim),
                    keepdim=False)


@lowering(aten.col2im.default)
def lower_col2im(ctx, x, output_size, kernel_size, dilation, padding, stride):
    """fold: sums the sliding blocks of [N, C * kh * kw, L] into [N, C, H, W]."""
    batched = x.type.rank == 3
    if not batched:
        x = ctx.reshape(x, [1] + list(x.type.shape))
    n, ck, length = x.type.shape
    kh, kw = _tuple(kernel_size, 2)
    dh, dw = _tuple(dilation, 2)
    ph, pw = _tuple(padding, 2)
    sh, sw = _tuple(stride, 2)
    h, w = _tuple(output_size, 2)
    c = ck // (kh * kw)
    hp, wp = h + 2 * ph, w + 2 * pw
    blocks_w = (wp - (dw * (kw - 1) + 1)) // sw + 1
    l_idx = np.arange(length)
    by, bx = l_idx // blocks_w, l_idx % blocks_w
    ki, kj = np.divmod(np.arange(kh * kw), kw)
    rows = by[None, :] * sh + ki[:, None] * dh  # [k, L]
    cols = bx[None, :] * sw + kj[:, None] * dw
    pos = rows * wp + cols  # [k, L] within one padded channel plane
    ids = (np.arange(n)[:, None, None, None] * c + np.arange(c)[None, :, None, None]) * (hp * wp) + pos[None, None]
    zeros = ctx.const(np.zeros((n, c, hp, wp)), x.type.dtype)
    src = ctx.reshape(x, [n, c, kh * kw, length])
    out = ctx.emit("scatter_flat", [zeros, ctx.const(ids.astype(np.int64), "i64"), src], reduce="sum",
                   include_self=True)
    out = slice_(ctx, slice_(ctx, out, 2, ph, ph + h), 3, pw, pw + w)
    return out if batched else ctx.reshape(out, [c, h, w])


# ----------------------------------------------------------------------------- products


def _scaled(ctx, v: Value, factor) -> Value:
    return v if factor == 1 else binary(ctx, "mul", v, factor, v.type.dtype)


def _beta_plus(ctx, x: Value, product: Value, beta, alpha) -> Value:
    product = _scaled(ctx, product, alpha)
    if beta == 0:  # torch ignores the input then (NaNs in it do not propagate)
        shape = list(ctx.out_type.shape)
        return product if tuple(product.type.shape) == tuple(shape) else ctx.emit("expand", [product], shape=shape)
    return ctx.emit("add", [_scaled(ctx, ctx.cast(x, product.type.dtype), beta), product])


@lowering(aten.addbmm.default)
def lower_addbmm(ctx, x, batch1, batch2, *, beta=1, alpha=1):
    """beta * x + alpha * sum over the batch of batch1 @ batch2."""
    product = ctx.emit("reduce", [ctx.emit("matmul", [batch1, batch2])], kind="sum", axes=[0], keepdim=False)
    return _beta_plus(ctx, x, product, beta, alpha)


@lowering(aten.addmv.default)
def lower_addmv(ctx, x, mat, vec, *, beta=1, alpha=1):
    return _beta_plus(ctx, x, ctx.emit("matmul", [mat, vec]), beta, alpha)


@lowering(aten.dist.default)
def lower_dist(ctx, x, other, p=2):
    diff = ctx.emit("sub", [ctx.cast(x, ctx.out_dtype), ctx.cast(other, ctx.out_dtype)])
    flat = ctx.reshape(diff, [1, diff.type.numel])
    return ctx.reshape(_norm_last(ctx, flat, float(p)), [])


# ----------------------------------------------------------------------------- bucketing and histograms


def _count_below(ctx, values: Value, edges: Value, inclusive: bool, dtype: str) -> Value:
    """For each value, how many of the (sorted) edges along the last axis are < value (<= when
    inclusive), with the edges broadcast against the values' leading axes."""
    v = ctx.reshape(values, list(values.type.shape) + [1])
    if edges.type.rank > 1:  # one sorted row per leading index: [..., 1, E] against [..., V, 1]
        edges = ctx.reshape(edges, list(edges.type.shape[:-1]) + [1, edges.type.shape[-1]])
    hit = ctx.emit("le" if inclusive else "lt", [edges, v])
    return ctx.emit("reduce", [ctx.cast(hit, dtype)], kind="sum", axes=[v.type.rank - 1], keepdim=False)


@lowering(aten.bucketize.Tensor)
def lower_bucketize(ctx, x, boundaries, *, out_int32=False, right=False):
    return _count_below(ctx, x, boundaries, bool(right), "i32" if out_int32 else "i64")


@lowering(aten.searchsorted.Tensor)
def lower_searchsorted(ctx, sorted_sequence, x, *, out_int32=False, right=False, side=None, sorter=None):
    if sorter is not None:
        sorted_sequence = ctx.emit("gather", [sorted_sequence, sorter], axis=sorted_sequence.type.rank - 1)
    inclusive = bool(right) or side == "right"
    return _count_below(ctx, x, sorted_sequence, inclusive, "i32" if out_int32 else "i64")


def _range(ctx, x: Value, low, high, widen: float) -> tuple[Value, Value]:
    """torch's histogram range: the given one, else the data's min and max (widened when equal)."""
    dtype = x.type.dtype
    if low != high:
        return ctx.const(float(low), dtype), ctx.const(float(high), dtype)
    lo = ctx.emit("reduce", [x], kind="min", axes=None, keepdim=False)
    hi = ctx.emit("reduce", [x], kind="max", axes=None, keepdim=False)
    same = ctx.emit("eq", [lo, hi])
    lo = ctx.emit("where", [same, binary(ctx, "sub", lo, widen, dtype), lo])
    hi = ctx.emit("where", [same, binary(ctx, "add", hi, widen, dtype), hi])
    return lo, hi


def _one_hot_counts(ctx, pos: Value, keep: Value, bins: int, weight: Optional[Value], dtype: str) -> Value:
    flat_pos = ctx.reshape(pos, [pos.type.numel, 1])
    hit = ctx.emit("logical_and", [ctx.emit("eq", [flat_pos, ctx.const(np.arange(bins, dtype=np.int64)[None], "i64")]),
                                   ctx.reshape(keep, [keep.type.numel, 1])])
    hit = ctx.cast(hit, dtype)
    if weight is not None:
        hit = ctx.emit("mul", [hit, ctx.reshape(ctx.cast(weight, dtype), [weight.type.numel, 1])])
    return ctx.emit("reduce", [hit], kind="sum", axes=[0], keepdim=False)


@lowering(aten.histc.default)
def lower_histc(ctx, x, bins=100, min=0, max=0):
    """Counts per bin of [min, max] (torch's bin index: trunc((x - min) * bins / (max - min)))."""
    dtype = x.type.dtype
    lo, hi = _range(ctx, x, min, max, 1.0)
    scaled = ctx.emit("div", [binary(ctx, "mul", ctx.emit("sub", [x, lo]), float(bins), dtype),
                              ctx.emit("sub", [hi, lo])])
    pos = ctx.cast(ctx.emit("trunc", [scaled]), "i64")
    pos = binary(ctx, "minimum", pos, bins - 1, "i64")
    keep = ctx.emit("logical_and", [ctx.emit("ge", [x, lo]), ctx.emit("le", [x, hi])])
    return _one_hot_counts(ctx, pos, keep, bins, None, dtype)


def _linspace_edges(ctx, lo: Value, hi: Value, bins: int) -> Value:
    """torch.linspace(lo, hi, bins + 1) with lo, hi as values (torch's two-sided formula)."""
    dtype = lo.type.dtype
    steps = bins + 1
    step = binary(ctx, "div", ctx.emit("sub", [hi, lo]), float(bins), dtype)
    i = np.arange(steps)
    half = steps // 2
    front = ctx.emit("add", [lo, ctx.emit("mul", [step, ctx.const(i.astype(np.float32), dtype)])])
    back = ctx.emit("sub", [hi, ctx.emit("mul", [step, ctx.const((steps - i - 1).astype(np.float32), dtype)])])
    return ctx.emit("where", [ctx.const(i < half, "bool"), front, back])


@lowering(aten.histogram.bin_ct)
def lower_histogram(ctx, x, bins=100, *, range=None, weight=None, density=False):
    """Counts per bin (the last bin closed), and the bin edges; an element goes to the last edge
    at or below it (what torch's search among the edges finds)."""
    dtype = x.type.dtype
    lo, hi = _range(ctx, x, *(range if range is not None else (0, 0)), 0.5)
    edges = _linspace_edges(ctx, ctx.reshape(lo, [1]), ctx.reshape(hi, [1]), bins)
    inner = slice_(ctx, edges, 0, 1, bins)
    pos = _count_below(ctx, ctx.reshape(x, [x.type.numel]), inner, True, "i64")
    keep = ctx.emit("logical_and", [ctx.emit("ge", [x, lo]), ctx.emit("le", [x, hi])])
    hist = _one_hot_counts(ctx, pos, keep, bins, weight, dtype)
    if density:
        width = ctx.emit("sub", [slice_(ctx, edges, 0, 1, bins + 1), slice_(ctx, edges, 0, 0, bins)])
        total = ctx.emit("reduce", [hist], kind="sum", axes=None, keepdim=False)
        hist = ctx.emit("div", [hist, ctx.emit("mul", [width, total])])
    return hist, edges


def _histogram_counts(ctx, columns: list, edges: list, weight: Optional[Value], density: bool, dtype: str) -> Value:
    """Counts of the points (one column per dimension) in the cells of the given edges (each
    bin half-open but the last closed), as torch's histogramdd."""
    bins = [e.type.shape[0] - 1 for e in edges]
    strides = [_numel(bins[d + 1:]) for d in range(len(bins))]
    linear, keep = None, None
    for col, e, b, stride in zip(columns, edges, bins, strides):
        pos = _count_below(ctx, col, slice_(ctx, e, 0, 1, b), True, "i64")
        inside = ctx.emit("logical_and", [ctx.emit("ge", [col, slice_(ctx, e, 0, 0, 1)]),
                                          ctx.emit("le", [col, slice_(ctx, e, 0, b, b + 1)])])
        part = binary(ctx, "mul", pos, stride, "i64") if stride != 1 else pos
        linear = part if linear is None else ctx.emit("add", [linear, part])
        keep = inside if keep is None else ctx.emit("logical_and", [keep, inside])
    hist = ctx.reshape(_one_hot_counts(ctx, linear, keep, _numel(bins), weight, dtype), bins)
    if density:
        volume = None
        for d, e in enumerate(edges):
            width = ctx.emit("sub", [slice_(ctx, e, 0, 1, bins[d] + 1), slice_(ctx, e, 0, 0, bins[d])])
            width = ctx.reshape(width, [1] * d + [bins[d]] + [1] * (len(bins) - d - 1))
            volume = width if volume is None else ctx.emit("mul", [volume, width])
        total = ctx.emit("reduce", [hist], kind="sum", axes=None, keepdim=False)
        hist = ctx.emit("div", [hist, ctx.emit("mul", [volume, total])])
    return hist


@lowering(aten.histogram.bins_tensor)
def lower_histogram_edges(ctx, x, bins, *, weight=None, density=False):
    flat = ctx.reshape(x, [x.type.numel])
    return _histogram_counts(ctx, [flat], [bins], weight, density, x.type.dtype), bins


def _histogramdd_edges(ctx, x: Value, bins, range_) -> list:
    n, dims = x.type.shape
    edges = []
    for d in range(dims):
        col = ctx.reshape(slice_(ctx, x, 1, d, d + 1), [n])
        low, high = (range_[2 * d], range_[2 * d + 1]) if range_ is not None else (0, 0)
        lo, hi = _range(ctx, col, low, high, 0.5)
        edges.append(_linspace_edges(ctx, ctx.reshape(lo, [1]), ctx.reshape(hi, [1]), bins[d]))
    return edges


@lowering(aten._histogramdd_bin_edges.default)
def lower_histogramdd_bin_edges(ctx, x, bins, *, range=None, weight=None, density=False):
    return _histogramdd_edges(ctx, x, bins, range)


@lowering(aten._histogramdd_from_bin_cts.default)
def lower_histogramdd(ctx, x, bins, *, range=None, weight=None, density=False):
    n, dims = x.type.shape
    columns = [ctx.reshape(slice_(ctx, x, 1, d, d + 1), [n]) for d in builtins.range(dims)]
    return _histogram_counts(ctx, columns, _histogramdd_edges(ctx, x, bins, range), weight, density, x.type.dtype)


@lowering(aten._histogramdd_from_bin_tensors.default)
def lower_histogramdd_tensors(ctx, x, bins, *, weight=None, density=False):
    n, dims = x.type.shape
    columns = [ctx.reshape(slice_(ctx, x, 1, d, d + 1), [n]) for d in builtins.range(dims)]
    return _histogram_counts(ctx, columns, list(bins), weight, density, x.type.dtype)



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
    flat = ctx.reshape(x, lead + [_numel(in_spatial)])
    if (table < 0).any():  # the padding slot holds 0
        flat = ctx.emit("concat", [flat, ctx.const(np.zeros(lead + [1]), x.type.dtype)], axis=len(lead))
    ids = np.where(table < 0, _numel(in_spatial), table)
    windows = ctx.emit("index_select", [flat, ctx.const(ids, "i64")], axis=len(lead))
    total = ctx.emit("reduce", [windows], kind="sum", axes=[len(lead) + 1], keepdim=False)
    d = ctx.const(np.maximum(np.abs(divisor), 1), x.type.dtype)
    q = ctx.emit("floor_divide", [ctx.emit("abs", [total]), d])  # truncation toward zero, exactly
    negative = binary(ctx, "lt", total, 0, x.type.dtype)
    if (divisor < 0).any():
        negative = ctx.emit("logical_xor", [negative, ctx.const(divisor < 0, "bool")])
    q = ctx.emit("where", [negative, ctx.emit("neg", [q]), q])
    return ctx.reshape(q, lead + list(out_spatial))
