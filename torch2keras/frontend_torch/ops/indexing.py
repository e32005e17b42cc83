"""Indexing with tensors: gathers (index_select, gather, embeddings), advanced indexing,
index_put, the scatter family, masked_scatter, and the strided views (diagonal, as_strided,
unfold, fold) with their scatter twins.

Everything reduces to two IR ops over the row-major flattened tensor: ``index_select`` (a
gather by element ids) and ``scatter_flat`` (a write or reduction at element ids). With static
shapes the ids are constants wherever the indices are, and otherwise a little integer
arithmetic on the index tensors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...ir import Value
from ...ir.ops.common import broadcast_shapes
from ...ir.symbolic import is_symbolic
from ...ir.types import Dim
from ..registry import LoweringContext, lowering
from .common import (aten, axis_values, binary, expand, norm_axis, numel, overloads, permute, slice_, static_value,
                     vector_norm_last)

__all__ = ["index_tensor", "index_put", "gather_flat", "scatter_flat"]



def _strides(shape: Sequence[Dim]) -> list[Dim]:
    """Row-major strides of ``shape`` (symbolic where a later size is)."""
    return [numel(shape[i + 1:]) for i in range(len(shape))]


def _size_operand(ctx: LoweringContext, d: Dim) -> "int | Value":
    """A size as an operand of i64 index arithmetic: the int, or its run-time value."""
    v = ctx.sizes.value(d)
    return ctx.cast(v, "i64") if isinstance(v, Value) else int(v)


# ops whose integer results are positions (never negative): their indices need no wrapping
_POSITIONS = {"sort": 1, "topk": 1, "cumulative_extreme": 1, "argreduce": 0}


def _is_position(index: Value) -> bool:
    node = index.producer
    return node.op in _POSITIONS and node.outputs[_POSITIONS[node.op]] is index


def normalize_index(ctx: LoweringContext, index: Value, size: Dim) -> Value:
    """Negative indices count from the end (as torch's); positions a sort or an arg-reduction
    computed are never negative."""
    if _is_position(index):
        return ctx.cast(index, "i64")
    value = static_value(index)
    if value is not None and (not is_symbolic(size) or not (value < 0).any()):
        return ctx.const(np.where(value < 0, value + (0 if is_symbolic(size) else size), value).astype(np.int64),
                         "i64")
    index = ctx.cast(index, "i64")
    negative = binary(ctx, "lt", index, 0, "i64")
    return ctx.emit("where", [negative, binary(ctx, "add", index, _size_operand(ctx, size), "i64"), index])


def _mul_add(ctx, terms: list[tuple[Value | np.ndarray, Dim]]) -> Value:
    """sum(index * stride) over ``terms``, broadcast (constants with static strides folded in
    numpy; symbolic strides are computed at run time)."""
    const = [(t, s) for t, s in terms if isinstance(t, np.ndarray) and not is_symbolic(s)]
    dynamic = [(t if isinstance(t, Value) else ctx.const(t.astype(np.int64), "i64"), s)
               for t, s in terms if not isinstance(t, np.ndarray) or is_symbolic(s)]
    folded = None
    if const:
        folded = sum(t.astype(np.int64) * s for t, s in const)
    out = None
    for t, s in dynamic:
        part = t if s == 1 else binary(ctx, "mul", t, _size_operand(ctx, s), "i64")
        out = part if out is None else ctx.emit("add", [out, part])
    if folded is not None:
        return ctx.const(np.asarray(folded, np.int64), "i64") if out is None else \
            ctx.emit("add", [out, ctx.const(np.asarray(folded, np.int64), "i64")])
    return out


def gather_flat(ctx: LoweringContext, x: Value, ids: np.ndarray) -> Value:
    """``x.flatten()[ids]``: an array of the shape of ``ids`` (constant element ids)."""
    ids = np.asarray(ids, np.int64)
    flat = ctx.reshape(x, [x.type.numel])
    if ids.ndim == 0:
        out = ctx.emit("index_select", [flat, ctx.const(ids.reshape(1), "i64")], axis=0)
        return ctx.reshape(out, [])
    return ctx.emit("index_select", [flat, ctx.const(ids, "i64")], axis=0)


def scatter_flat(ctx: LoweringContext, x: Value, ids, src: Value, reduce: str = "none",
                 include_self: bool = True) -> Value:
    """x with element ``ids[i]`` (row-major ids) combined with ``src[i]`` (see IR ``scatter_flat``)."""
    if not isinstance(ids, Value):
        ids = ctx.const(np.asarray(ids, np.int64), "i64")
    src = ctx.cast(src, x.type.dtype) if isinstance(src, Value) else ctx.const(src, x.type.dtype)
    if ids.type.rank == 0:
        ids = ctx.reshape(ids, [1])
        src = ctx.reshape(src, [1]) if src.type.rank == 0 else src
    if tuple(src.type.shape) != tuple(ids.type.shape):
        src = ctx.emit("expand", [ctx.reshape(src, [1] * (ids.type.rank - src.type.rank) + list(src.type.shape))],
                       shape=list(ids.type.shape)) if src.type.rank <= ids.type.rank else src
    return ctx.emit("scatter_flat", [x, ids, src], reduce=reduce, include_self=bool(include_self))


# ----------------------------------------------------------------------------- advanced indexing

# what index_tensor emits: the element ids of several indices (normalized, multiplied by strides
# and added, broadcast), one gather, and the permutes around it
_INDEX_OPS = ("index_select", "permute", "where", "lt", "add", "mul", "expand", "dynamic_expand")


def _expand_masks(ctx, x: Value, indices) -> list:
    """Boolean masks among the indices become the integer indices of their True elements (the
    mask must be a constant: otherwise the result's shape depends on the data)."""
    out: list = []
    for t in indices:
        if t is None or t.type.dtype not in ("bool", "u8"):
            out.append(t)
            continue
        mask = static_value(t)
        if mask is None:
            raise ctx.fail("indexing with a boolean mask computed by the model: the result's shape is "
                           "data-dependent (not supported with static shapes)")
        out.extend(ctx.const(i.astype(np.int64), "i64") for i in np.nonzero(mask.astype(bool)))
    return out + [None] * (x.type.rank - len(out))


def _broadcast(shapes) -> tuple:
    return broadcast_shapes(*[tuple(s) for s in shapes])


def _linear_ids(ctx, x: Value, present) -> tuple[Value, list[int], tuple]:
    """Element ids into the indexed axes (row-major over them), with the broadcast shape."""
    axes = [a for a, _ in present]
    sizes = [x.type.shape[a] for a in axes]
    strides = _strides(sizes)
    terms = []
    for (axis, t), stride in zip(present, strides):
        t = normalize_index(ctx, t, x.type.shape[axis])
        value = static_value(t)
        terms.append((value if value is not None else t, stride))
    shape = _broadcast([t.type.shape for _, t in present])
    ids = _mul_add(ctx, terms)
    if tuple(ids.type.shape) != shape:
        ids = expand(ctx, ctx.reshape(ids, [1] * (len(shape) - ids.type.rank) + list(ids.type.shape)), list(shape))
    return ids, axes, shape


def index_tensor(ctx: LoweringContext, x: Value, indices) -> Value:
    """``x[indices]`` with any number of index tensors (None for full slices), as torch's."""
    indices = _expand_masks(ctx, x, indices)
    present = [(a, t) for a, t in enumerate(indices) if t is not None]
    if not present:
        return x
    if len(present) == 1:
        axis, t = present[0]
        return ctx.emit("index_select", [x, normalize_index(ctx, t, x.type.shape[axis])], axis=axis)
    ids, axes, bshape = _linear_ids(ctx, x, present)
    rest = [a for a in range(x.type.rank) if a not in axes]
    moved = permute(ctx, x, axes + rest)
    merged = ctx.reshape(moved, [numel([x.type.shape[a] for a in axes])] + [x.type.shape[a] for a in rest])
    out = ctx.emit("index_select", [merged, ids], axis=0)  # shape: bshape + rest
    first = axes[0]
    if axes == list(range(first, axes[-1] + 1)) and first > 0:  # adjacent: the index dims stay in place
        nb = len(bshape)
        out = permute(ctx, out, list(range(nb, nb + first)) + list(range(nb)) + list(range(nb + first, out.type.rank)))
    return out


@lowering(aten.index.Tensor, emits=_INDEX_OPS)
def lower_index(ctx, x, indices):
    """x[idx] with one index tensor (the others None), or several that broadcast together."""
    return index_tensor(ctx, x, indices)


@lowering(*overloads("_unsafe_index", "Tensor"), emits=_INDEX_OPS)
def lower_unsafe_index(ctx, x, indices):
    return index_tensor(ctx, x, indices)


def index_put(ctx: LoweringContext, x: Value, indices, values: Value, accumulate: bool = False) -> Value:
    """``x[indices] = values`` (``+=`` with accumulate) as a scatter over flattened ids."""
    if not isinstance(values, Value):
        values = ctx.const(values, x.type.dtype)
    values = ctx.cast(values, x.type.dtype)
    dynamic_masks = [t for t in indices if t is not None and t.type.dtype in ("bool", "u8") and static_value(t) is None]
    if dynamic_masks:
        return _masked_put(ctx, x, indices, values, accumulate)
    indices = _expand_masks(ctx, x, indices)
    present = [(a, t) for a, t in enumerate(indices) if t is not None]
    ids, axes, bshape = _linear_ids(ctx, x, present)
    rest = [a for a in range(x.type.rank) if a not in axes]
    rest_shape = [x.type.shape[a] for a in rest]
    r = numel(rest_shape)
    if is_symbolic(r):
        raise ctx.fail(f"index_put with the unindexed axes of run-time size {r} is not supported yet (index "
                       f"every axis of a run-time size, or give those axes a static size)")
    order = axes + rest
    moved = permute(ctx, x, order)
    # element ids in `moved`'s row-major order: ids * r + position within the rest
    full = ctx.emit("add", [binary(ctx, "mul", ctx.reshape(ids, list(bshape) + [1]), r, "i64"),
                            ctx.const(np.arange(r, dtype=np.int64).reshape([1] * len(bshape) + [r]), "i64")])
    first = axes[0]
    adjacent = axes == list(range(first, axes[-1] + 1))
    before = [x.type.shape[a] for a in range(first)] if adjacent else []
    after = [x.type.shape[a] for a in rest if not adjacent or a > axes[-1]]
    result_shape = before + list(bshape) + after if adjacent else list(bshape) + rest_shape
    v = values
    if tuple(v.type.shape) != tuple(result_shape):
        v = ctx.emit("expand", [ctx.reshape(v, [1] * (len(result_shape) - v.type.rank) + list(v.type.shape))],
                     shape=result_shape)
    if adjacent and first > 0:  # bring the index dims first, as in `moved`
        nb, nbefore = len(bshape), len(before)
        v = permute(ctx, v, list(range(nbefore, nbefore + nb)) + list(range(nbefore)) +
                    list(range(nbefore + nb, len(result_shape))))
    v = ctx.reshape(v, list(bshape) + [r])
    out = scatter_flat(ctx, moved, full, v, "sum" if accumulate else "none")
    inverse = [order.index(a) for a in range(x.type.rank)]
    return permute(ctx, out, inverse)


def _masked_put(ctx, x, indices, values, accumulate):
    """``x[mask] = v`` with a mask computed by the model: a ``where`` when v broadcasts over the
    selected elements (a scalar, or one row for all of them)."""
    present = [(a, t) for a, t in enumerate(indices) if t is not None]
    if len(present) != 1 or present[0][0] != 0:
        raise ctx.fail("index_put with a computed boolean mask among other indices is not supported "
                       "(data-dependent shapes)")
    mask = ctx.cast(present[0][1], "bool")
    k = mask.type.rank
    after = list(x.type.shape[k:])
    v = values
    if v.type.rank > len(after):
        if v.type.shape[0] != 1 or v.type.rank != len(after) + 1:
            raise ctx.fail("index_put of a value per selected element with a computed mask: the count is "
                           "data-dependent (not supported)")
        v = ctx.reshape(v, list(v.type.shape[1:]))
    mask_b = ctx.reshape(mask, list(mask.type.shape) + [1] * len(after))
    v_b = ctx.reshape(v, [1] * (x.type.rank - v.type.rank) + list(v.type.shape))
    if accumulate:
        v_b = binary(ctx, "add", x, v_b, x.type.dtype)
    return ctx.emit("where", [mask_b, v_b, x])


@lowering(*overloads("index_put", "default"), *overloads("_unsafe_index_put", "default"),
          emits=("where", "lt", "add", "logical_or", "mul", "expand", "permute", "scatter_flat"))
def lower_index_put(ctx, x, indices, values, accumulate=False):
    return index_put(ctx, x, indices, values, accumulate)


# ----------------------------------------------------------------------------- gathers and embeddings


@lowering(aten.index_select.default, emits=("index_select",))
def lower_index_select(ctx, x, dim, index):
    if x.type.rank == 0:  # the only index is 0
        return x
    return ctx.emit("index_select", [x, index], axis=norm_axis(dim, x.type.rank))


@lowering(aten.gather.default, emits=("gather",))
def lower_gather(ctx, x, dim, index, sparse_grad=False):
    if x.type.rank == 0:  # gathering from a single element
        out = ctx.emit("gather", [ctx.reshape(x, [1]), ctx.reshape(index, [max(index.type.numel, 1)])], axis=0)
        return ctx.reshape(out, ctx.out_type.shape)
    return ctx.emit("gather", [x, index], axis=norm_axis(dim, x.type.rank))


@lowering(aten.take_along_dim.default, keep_whole=True, emits=("gather", "expand", "dynamic_expand", "where", "lt",
                                                               "add"))
def lower_take_along_dim(ctx, x, indices, dim=None):
    """torch.take_along_dim kept whole: x and the indices broadcast to each other but along dim,
    negative indices counted from the end, then a gather. (torch's decomposition wraps the indices
    by the size dim had when exported: a constant 1 under a dynamic batch of example size 1.)"""
    if dim is None:
        flat = ctx.reshape(x, [numel(x.type.shape)])
        picked = ctx.reshape(indices, [numel(indices.type.shape)])
        return ctx.emit("gather", [flat, normalize_index(ctx, picked, flat.type.shape[0])], axis=0)
    axis = norm_axis(dim, x.type.rank)
    # (the shapes broadcast here, not torch's result type: its meta has the same constant)
    rest = list(broadcast_shapes(*[[d for k, d in enumerate(v.type.shape) if k != axis] for v in (x, indices)]))
    index_shape = rest[:axis] + [indices.type.shape[axis]] + rest[axis:]
    x_shape = rest[:axis] + [x.type.shape[axis]] + rest[axis:]
    if tuple(indices.type.shape) != tuple(index_shape):
        indices = expand(ctx, indices, index_shape)
    if tuple(x.type.shape) != tuple(x_shape):
        x = expand(ctx, x, x_shape)
    return ctx.emit("gather", [x, normalize_index(ctx, indices, x.type.shape[axis])], axis=axis)


@lowering(aten.embedding.default, keep_whole=True, emits=("embedding",))
def lower_embedding(ctx, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    if indices.type.rank == 0:
        return ctx.reshape(ctx.emit("embedding", [weight, ctx.reshape(indices, [1])]), [weight.type.shape[1]])
    return ctx.emit("embedding", [weight, indices])


@lowering(aten._embedding_bag.default, aten._embedding_bag_forward_only.default,
          emits=("index_select", "mul", "scatter_flat", "matmul"))
def lower_embedding_bag(ctx, weight, indices, offsets, scale_grad_by_freq=False, mode=0, sparse=False,
                        per_sample_weights=None, include_last_offset=False, padding_idx=-1):
    """Bags of embedding rows reduced by sum (0), mean (1) or max (2); offsets must be constants
    (they fix which bag each index belongs to)."""
    offs = static_value(offsets)
    if offs is None:
        raise ctx.fail("embedding_bag with offsets computed by the model is not supported (data-dependent bags)")
    offs = offs.astype(np.int64).reshape(-1)
    idx_const = static_value(indices)
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


@lowering(aten.embedding_renorm.default, emits=("scatter_flat", "abs", "reduce", "ne", "sqrt", "mul", "pow", "add",
                                                  "div", "logical_and", "gt", "where"))
def lower_embedding_renorm(ctx, weight, indices, max_norm, norm_type):
    """The rows that indices use, scaled down to max_norm where their norm exceeds it (torch
    renormalises those rows of the weight in place before the lookup)."""
    used = ctx.emit("scatter_flat", [ctx.const(np.zeros(weight.type.shape[0]), "bool"),
                                     ctx.reshape(indices, [indices.type.numel]),
                                     ctx.const(np.ones(indices.type.numel), "bool")], reduce="none", include_self=True)
    norm = ctx.reshape(vector_norm_last(ctx, weight, float(norm_type)), [weight.type.shape[0], 1])
    scale = ctx.emit("div", [ctx.const(float(max_norm), weight.type.dtype),
                             binary(ctx, "add", norm, 1e-7, weight.type.dtype)])
    shrink = ctx.emit("logical_and", [ctx.reshape(used, [weight.type.shape[0], 1]),
                                      binary(ctx, "gt", norm, float(max_norm), weight.type.dtype)])
    return ctx.emit("where", [shrink, ctx.emit("mul", [weight, scale]), weight])


# ----------------------------------------------------------------------------- scatter along a dim

# what scatter emits: the element ids (normalized indices times strides), the part of src it reads
# and the scatter
_SCATTER_OPS = ("where", "lt", "add", "mul", "slice", "dynamic_slice", "expand", "scatter_flat")


def _as_rank1(ctx, *values):
    return [ctx.reshape(v, [1]) if isinstance(v, Value) and v.type.rank == 0 else v for v in values]


def _scatter_ids(ctx, x: Value, dim: int, index: Value) -> Value:
    """Row-major element ids of x that ``scatter(dim, index)`` writes, one per element of index."""
    shape = list(x.type.shape)
    ishape = list(index.type.shape)
    strides = _strides(shape)
    grid = np.indices(ishape, dtype=np.int64)
    base = sum((grid[d] * strides[d] for d in range(len(shape)) if d != dim), np.zeros(ishape, np.int64))
    index = normalize_index(ctx, index, shape[dim])
    value = static_value(index)
    if value is not None:
        return ctx.const(base + value * strides[dim], "i64")
    return _mul_add(ctx, [(index, strides[dim]), (base, 1)])


def _src_region(ctx, src, ishape):
    """The part of src that scatter reads: src[:i0, :i1, ...] for an index of shape ishape (torch
    requires src to hold it: where src's size is known at run time only, the slice has length i)."""
    for axis, size in enumerate(ishape):
        if src.type.shape[axis] != size:
            src = slice_(ctx, src, axis, 0, size, length=size)
    return src


def scatter(ctx: LoweringContext, x, dim, index, src, reduce="none", include_self=True) -> Value:
    rank0 = x.type.rank == 0
    if rank0:
        x, index = _as_rank1(ctx, x, index)
        src = _as_rank1(ctx, src)[0]
    dim = norm_axis(dim, x.type.rank)
    if index.type.rank == 0:
        index = ctx.reshape(index, [1] * x.type.rank)
    ishape = list(index.type.shape)
    if isinstance(src, Value):
        if src.type.rank == 0:
            src = ctx.reshape(src, [1] * x.type.rank)
        src = _src_region(ctx, ctx.cast(src, x.type.dtype), ishape) if src.type.rank == len(ishape) else src
    else:
        src = ctx.const(src, x.type.dtype)
    out = scatter_flat(ctx, x, _scatter_ids(ctx, x, dim, index), src, reduce, include_self)
    return ctx.reshape(out, []) if rank0 else out


_TORCH_REDUCE = {"add": "sum", "multiply": "prod", "sum": "sum", "prod": "prod", "amax": "amax", "amin": "amin",
                 "mean": "mean"}


@lowering(aten.scatter.src, aten.scatter.value, emits=_SCATTER_OPS)
def lower_scatter(ctx, x, dim, index, src):
    return scatter(ctx, x, dim, index, src)


@lowering(aten.scatter.reduce, aten.scatter.value_reduce, emits=_SCATTER_OPS)
def lower_scatter_reduce_old(ctx, x, dim, index, src, *, reduce):
    return scatter(ctx, x, dim, index, src, _TORCH_REDUCE[reduce])


@lowering(aten.scatter_add.default, emits=_SCATTER_OPS)
def lower_scatter_add(ctx, x, dim, index, src):
    return scatter(ctx, x, dim, index, src, "sum")


@lowering(aten.scatter_reduce.two, emits=_SCATTER_OPS)
def lower_scatter_reduce(ctx, x, dim, index, src, reduce, *, include_self=True):
    return scatter(ctx, x, dim, index, src, _TORCH_REDUCE[reduce], include_self)


@lowering(aten.index_reduce.default, emits=_SCATTER_OPS)
def lower_index_reduce(ctx, x, dim, index, source, reduce, *, include_self=True):
    """x's slices ``index[j]`` along dim reduced with source's slice j."""
    if x.type.rank == 0:
        out = lower_index_reduce(ctx, ctx.reshape(x, [1]), 0, ctx.reshape(index, [1]), ctx.reshape(source, [1]),
                                 reduce, include_self=include_self)
        return ctx.reshape(out, [])
    dim = norm_axis(dim, x.type.rank)
    shape = list(source.type.shape)
    idx = ctx.reshape(index, [1] * dim + [shape[dim]] + [1] * (len(shape) - dim - 1))
    idx = ctx.emit("expand", [idx], shape=shape) if tuple(idx.type.shape) != tuple(shape) else idx
    return scatter(ctx, x, dim, idx, source, _TORCH_REDUCE[reduce], include_self)


@lowering(aten.masked_scatter.default, emits=("expand", "cumsum", "sub", "maximum", "index_select", "where"))
def lower_masked_scatter(ctx, x, mask, source):
    """Source elements fill the True positions of the mask in row-major order: the k-th True
    element takes source.flatten()[k], with k a running count of the mask."""
    shape = list(ctx.out_type.shape)
    mask = ctx.cast(mask, "bool")
    if tuple(mask.type.shape) != tuple(shape):
        mask = ctx.emit("expand", [ctx.reshape(mask, [1] * (len(shape) - mask.type.rank) + list(mask.type.shape))],
                        shape=shape)
    if tuple(x.type.shape) != tuple(shape):
        x = ctx.emit("expand", [ctx.reshape(x, [1] * (len(shape) - x.type.rank) + list(x.type.shape))], shape=shape)
    n = numel(shape)
    flat_mask = ctx.reshape(mask, [n])
    k = binary(ctx, "sub", ctx.emit("cumsum", [ctx.cast(flat_mask, "i64")], axis=0), 1, "i64")
    k = binary(ctx, "maximum", k, 0, "i64")  # (before the first True element)
    picked = ctx.emit("index_select", [ctx.reshape(ctx.cast(source, x.type.dtype), [source.type.numel]), k], axis=0)
    return ctx.emit("where", [mask, ctx.reshape(picked, shape), x])


@lowering(aten.put.default, emits=("where", "lt", "add", "expand", "scatter_flat"))
def lower_put(ctx, x, index, source, accumulate=False):
    ids = normalize_index(ctx, ctx.reshape(index, [index.type.numel]), x.type.numel)
    return scatter_flat(ctx, x, ids, ctx.reshape(source, [source.type.numel]), "sum" if accumulate else "none")


# ----------------------------------------------------------------------------- strided views


def _element_ids(shape) -> np.ndarray:
    return np.arange(numel(shape), dtype=np.int64).reshape(shape)


@lowering(*overloads("diagonal", "default"), emits=("index_select", "permute"))
def lower_diagonal(ctx, x, offset=0, dim1=0, dim2=1):
    dim1, dim2 = norm_axis(dim1, x.type.rank), norm_axis(dim2, x.type.rank)
    shape = list(x.type.shape)
    if all(isinstance(d, int) for d in shape):
        return gather_flat(ctx, x, np.ascontiguousarray(np.diagonal(_element_ids(shape), offset, dim1, dim2)))
    if not isinstance(shape[dim1], int) or not isinstance(shape[dim2], int):
        raise ctx.fail(f"the diagonal of dims {dim1} and {dim2} needs their sizes known when converting (got "
                       f"{shape[dim1]} and {shape[dim2]}): make them static in dynamic_shapes")
    return _diagonal_of_static_dims(ctx, x, offset, dim1, dim2)


def _diagonal_of_static_dims(ctx, x: Value, offset: int, dim1: int, dim2: int) -> Value:
    """The diagonal where other dims are symbolic: the two dims moved last and merged, then the
    diagonal's element ids taken along the merged axis (the result's last axis, as torch's)."""
    shape = list(x.type.shape)
    others = [k for k in range(len(shape)) if k not in (dim1, dim2)]
    moved = ctx.emit("permute", [x], perm=others + [dim1, dim2])
    merged = ctx.reshape(moved, [shape[k] for k in others] + [shape[dim1] * shape[dim2]])
    ids = np.diagonal(_element_ids([shape[dim1], shape[dim2]]), offset)
    return ctx.emit("index_select", [merged, ctx.const(np.ascontiguousarray(ids), "i64")], axis=len(others))


@lowering(aten.diagonal_scatter.default, emits=("expand", "scatter_flat"))
def lower_diagonal_scatter(ctx, x, src, offset=0, dim1=0, dim2=1):
    ids = np.diagonal(_element_ids(x.type.shape), offset, norm_axis(dim1, x.type.rank), norm_axis(dim2, x.type.rank))
    return scatter_flat(ctx, x, np.ascontiguousarray(ids), src)


def _strided_ids(ctx, x, size, stride, storage_offset) -> np.ndarray:
    grid = np.indices(list(size), dtype=np.int64)
    ids = sum((grid[d] * stride[d] for d in range(len(size))), np.zeros(list(size), np.int64)) + (storage_offset or 0)
    if ids.size and (ids.max() >= max(x.type.numel, 1) or ids.min() < 0):
        raise ctx.fail("as_strided reads outside the input's elements")
    return ids


@lowering(*overloads("as_strided", "default"), emits=("index_select",))
def lower_as_strided(ctx, x, size, stride, storage_offset=None):
    """Strides over the input's own row-major elements (functional graphs have no other storage)."""
    return gather_flat(ctx, x, _strided_ids(ctx, x, size, stride, storage_offset))


@lowering(aten.as_strided_scatter.default, emits=("expand", "scatter_flat"))
def lower_as_strided_scatter(ctx, x, src, size, stride, storage_offset=None):
    return scatter_flat(ctx, x, _strided_ids(ctx, x, size, stride, storage_offset), src)


@lowering(*overloads("unfold", "default"), emits=("index_select",))
def lower_unfold(ctx, x, dimension, size, step):
    """Windows of ``size`` every ``step`` along ``dimension``, as a new last axis."""
    if x.type.rank == 0:
        return ctx.reshape(x, [1])
    axis = norm_axis(dimension, x.type.rank)
    windows = np.lib.stride_tricks.sliding_window_view(_element_ids(x.type.shape), size, axis=axis)
    index = [slice(None)] * windows.ndim
    index[axis] = slice(None, None, step)
    return gather_flat(ctx, x, np.ascontiguousarray(windows[tuple(index)]))


@lowering(aten.col2im.default, emits=("scatter_flat", "slice"))
def lower_col2im(ctx, x, output_size, kernel_size, dilation, padding, stride):
    """fold: sums the sliding blocks of [N, C * kh * kw, L] into [N, C, H, W]."""
    batched = x.type.rank == 3
    if not batched:
        x = ctx.reshape(x, [1] + list(x.type.shape))
    n, ck, length = x.type.shape
    kh, kw = axis_values(kernel_size, 2)
    dh, dw = axis_values(dilation, 2)
    ph, pw = axis_values(padding, 2)
    sh, sw = axis_values(stride, 2)
    h, w = axis_values(output_size, 2)
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


# ----------------------------------------------------------------------------- nonzero


@lowering(aten.nonzero_static.default, emits=("ne", "cumsum", "sub", "lt", "logical_and", "where", "expand",
                                                 "scatter_flat", "slice", "ge", "floor_divide", "remainder", "concat"))
def lower_nonzero_static(ctx, x, *, size, fill_value=-1):
    """The coordinates of the first ``size`` nonzero elements (row-major), padded with fill_value:
    a running count of the nonzero elements gives each one its output row."""
    n = max(x.type.numel, 1)
    shape = list(x.type.shape) or [1]
    nonzero = ctx.reshape(binary(ctx, "ne", x, 0, x.type.dtype) if x.type.dtype != "bool" else x, [n])
    row = binary(ctx, "sub", ctx.emit("cumsum", [ctx.cast(nonzero, "i64")], axis=0), 1, "i64")
    keep = ctx.emit("logical_and", [nonzero, binary(ctx, "lt", row, size, "i64")])
    target = ctx.emit("where", [keep, row, ctx.const(np.int64(size), "i64")])  # the rest: a spare slot
    slots = ctx.const(np.full(size + 1, -1, np.int64), "i64")
    element = scatter_flat(ctx, slots, target, ctx.const(np.arange(n, dtype=np.int64), "i64"))
    element = slice_(ctx, element, 0, 0, size)
    found = binary(ctx, "ge", element, 0, "i64")
    columns = []
    for d, stride in enumerate(_strides(shape)):
        coord = binary(ctx, "remainder", binary(ctx, "floor_divide", element, stride, "i64"), shape[d], "i64")
        coord = ctx.emit("where", [found, coord, ctx.const(np.int64(fill_value), "i64")])
        columns.append(ctx.reshape(coord, [size, 1]))
    if x.type.rank == 0:  # no coordinates to give
        return ctx.const(np.zeros((size, 0), np.int64), "i64")
    return columns[0] if len(columns) == 1 else ctx.emit("concat", columns, axis=1)
