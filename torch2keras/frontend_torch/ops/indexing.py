"""Indexing with tensors: advanced indexing, index_put, the scatter family, masked_scatter, and
the strided views (diagonal, as_strided, unfold) with their scatter twins.

Everything reduces to two IR ops over the row-major flattened tensor: ``index_select`` (a
gather by element ids) and ``scatter_flat`` (a write or reduction at element ids). With static
shapes the ids are constants wherever the indices are, and otherwise a little integer
arithmetic on the index tensors.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ...ir import Value
from ..registry import LoweringContext, lowering
from ._util import aten, norm_axis, overloads
from .elementwise import binary
from .shape import permute

__all__ = ["index_tensor", "index_put", "gather_flat", "scatter_flat"]


def _const(v: Value) -> Optional[np.ndarray]:
    from ._util import static_value

    return static_value(v)


def _numel(shape: Sequence[int]) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def _strides(shape: Sequence[int]) -> list[int]:
    return [_numel(shape[i + 1:]) for i in range(len(shape))]


def normalize_index(ctx: LoweringContext, index: Value, size: int) -> Value:
    """Negative indices count from the end (as torch's)."""
    value = _const(index)
    if value is not None:
        return ctx.const(np.where(value < 0, value + size, value).astype(np.int64), "i64")
    index = ctx.cast(index, "i64")
    negative = binary(ctx, "lt", index, 0, "i64")
    return ctx.emit("where", [negative, binary(ctx, "add", index, size, "i64"), index])


def _mul_add(ctx, terms: list[tuple[Value | np.ndarray, int]]) -> Value:
    """sum(index * stride) over ``terms``, broadcast (constants folded in numpy)."""
    const = [(t, s) for t, s in terms if isinstance(t, np.ndarray)]
    dynamic = [(t, s) for t, s in terms if not isinstance(t, np.ndarray)]
    folded = None
    if const:
        folded = sum(t.astype(np.int64) * s for t, s in const)
    out = None
    for t, s in dynamic:
        part = t if s == 1 else binary(ctx, "mul", t, s, "i64")
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


def _expand_masks(ctx, x: Value, indices) -> list:
    """Boolean masks among the indices become the integer indices of their True elements (the
    mask must be a constant: otherwise the result's shape depends on the data)."""
    out: list = []
    for t in indices:
        if t is None or t.type.dtype not in ("bool", "u8"):
            out.append(t)
            continue
        mask = _const(t)
        if mask is None:
            raise ctx.fail("indexing with a boolean mask computed by the model: the result's shape is "
                           "data-dependent (not supported with static shapes)")
        out.extend(ctx.const(i.astype(np.int64), "i64") for i in np.nonzero(mask.astype(bool)))
    return out + [None] * (x.type.rank - len(out))


def _broadcast(shapes) -> tuple:
    return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))


def _linear_ids(ctx, x: Value, present) -> tuple[Value, list[int], tuple]:
    """Element ids into the indexed axes (row-major over them), with the broadcast shape."""
    axes = [a for a, _ in present]
    sizes = [x.type.shape[a] for a in axes]
    strides = _strides(sizes)
    terms = []
    for (axis, t), stride in zip(present, strides):
        t = normalize_index(ctx, t, x.type.shape[axis])
        value = _const(t)
        terms.append((value if value is not None else t, stride))
    shape = _broadcast([t.type.shape for _, t in present])
    ids = _mul_add(ctx, terms)
    if tuple(ids.type.shape) != shape:
        ids = ctx.emit("expand", [ctx.reshape(ids, [1] * (len(shape) - ids.type.rank) + list(ids.type.shape))],
                       shape=list(shape))
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
    merged = ctx.reshape(moved, [_numel([x.type.shape[a] for a in axes])] + [x.type.shape[a] for a in rest])
    out = ctx.emit("index_select", [merged, ids], axis=0)  # shape: bshape + rest
    first = axes[0]
    if axes == list(range(first, axes[-1] + 1)) and first > 0:  # adjacent: the index dims stay in place
        nb = len(bshape)
        out = permute(ctx, out, list(range(nb, nb + first)) + list(range(nb)) + list(range(nb + first, out.type.rank)))
    return out


@lowering(*overloads("_unsafe_index", "Tensor"))
def lower_unsafe_index(ctx, x, indices):
    return index_tensor(ctx, x, indices)


def index_put(ctx: LoweringContext, x: Value, indices, values: Value, accumulate: bool = False) -> Value:
    """``x[indices] = values`` (``+=`` with accumulate) as a scatter over flattened ids."""
    if not isinstance(values, Value):
        values = ctx.const(values, x.type.dtype)
    values = ctx.cast(values, x.type.dtype)
    dynamic_masks = [t for t in indices if t is not None and t.type.dtype in ("bool", "u8") and _const(t) is None]
    if dynamic_masks:
        return _masked_put(ctx, x, indices, values, accumulate)
    indices = _expand_masks(ctx, x, indices)
    present = [(a, t) for a, t in enumerate(indices) if t is not None]
    ids, axes, bshape = _linear_ids(ctx, x, present)
    rest = [a for a in range(x.type.rank) if a not in axes]
    rest_shape = [x.type.shape[a] for a in rest]
    r = _numel(rest_shape)
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


@lowering(*overloads("index_put", "default"), *overloads("_unsafe_index_put", "default"))
def lower_index_put(ctx, x, indices, values, accumulate=False):
    return index_put(ctx, x, indices, values, accumulate)


# ----------------------------------------------------------------------------- scatter along a dim


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
    value = _const(index)
    if value is not None:
        return ctx.const(base + value * strides[dim], "i64")
    return _mul_add(ctx, [(index, strides[dim]), (base, 1)])


def _src_region(ctx, src, ishape):
    """The part of src that scatter reads: src[:i0, :i1, ...] for an index of shape ishape."""
    from .shape import slice_

    for axis, size in enumerate(ishape):
        if src.type.shape[axis] != size:
            src = slice_(ctx, src, axis, 0, size)
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


@lowering(aten.scatter.src, aten.scatter.value)
def lower_scatter(ctx, x, dim, index, src):
    return scatter(ctx, x, dim, index, src)


@lowering(aten.scatter.reduce, aten.scatter.value_reduce)
def lower_scatter_reduce_old(ctx, x, dim, index, src, *, reduce):
    return scatter(ctx, x, dim, index, src, _TORCH_REDUCE[reduce])


@lowering(aten.scatter_add.default)
def lower_scatter_add(ctx, x, dim, index, src):
    return scatter(ctx, x, dim, index, src, "sum")


@lowering(aten.scatter_reduce.two)
def lower_scatter_reduce(ctx, x, dim, index, src, reduce, *, include_self=True):
    return scatter(ctx, x, dim, index, src, _TORCH_REDUCE[reduce], include_self)


@lowering(aten.index_reduce.default)
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


@lowering(aten.masked_scatter.default)
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
    n = _numel(shape)
    flat_mask = ctx.reshape(mask, [n])
    k = binary(ctx, "sub", ctx.emit("cumsum", [ctx.cast(flat_mask, "i64")], axis=0), 1, "i64")
    k = binary(ctx, "maximum", k, 0, "i64")  # (before the first True element)
    picked = ctx.emit("index_select", [ctx.reshape(ctx.cast(source, x.type.dtype), [source.type.numel]), k], axis=0)
    return ctx.emit("where", [mask, ctx.reshape(picked, shape), x])


@lowering(aten.put.default)
def lower_put(ctx, x, index, source, accumulate=False):
    ids = normalize_index(ctx, ctx.reshape(index, [index.type.numel]), x.type.numel)
    return scatter_flat(ctx, x, ids, ctx.reshape(source, [source.type.numel]), "sum" if accumulate else "none")


# ----------------------------------------------------------------------------- strided views


def _element_ids(shape) -> np.ndarray:
    return np.arange(_numel(shape), dtype=np.int64).reshape(shape)


@lowering(*overloads("diagonal", "default"))
def lower_diagonal(ctx, x, offset=0, dim1=0, dim2=1):
    ids = np.diagonal(_element_ids(x.type.shape), offset, norm_axis(dim1, x.type.rank), norm_axis(dim2, x.type.rank))
    return gather_flat(ctx, x, np.ascontiguousarray(ids))


@lowering(aten.diagonal_scatter.default)
def lower_diagonal_scatter(ctx, x, src, offset=0, dim1=0, dim2=1):
    ids = np.diagonal(_element_ids(x.type.shape), offset, norm_axis(dim1, x.type.rank), norm_axis(dim2, x.type.rank))
    return scatter_flat(ctx, x, np.ascontiguousarray(ids), src)


def _strided_ids(ctx, x, size, stride, storage_offset) -> np.ndarray:
    grid = np.indices(list(size), dtype=np.int64)
    ids = sum((grid[d] * stride[d] for d in range(len(size))), np.zeros(list(size), np.int64)) + (storage_offset or 0)
    if ids.size and (ids.max() >= max(x.type.numel, 1) or ids.min() < 0):
        raise ctx.fail("as_strided reads outside the input's elements")
    return ids


@lowering(*overloads("as_strided", "default"))
def lower_as_strided(ctx, x, size, stride, storage_offset=None):
    """Strides over the input's own row-major elements (functional graphs have no other storage)."""
    return gather_flat(ctx, x, _strided_ids(ctx, x, size, stride, storage_offset))


@lowering(aten.as_strided_scatter.default)
def lower_as_strided_scatter(ctx, x, src, size, stride, storage_offset=None):
    return scatter_flat(ctx, x, _strided_ids(ctx, x, size, stride, storage_offset), src)


@lowering(*overloads("unfold", "default"))
def lower_unfold(ctx, x, dimension, size, step):
    """Windows of ``size`` every ``step`` along ``dimension``, as a new last axis."""
    if x.type.rank == 0:
        return ctx.reshape(x, [1])
    axis = norm_axis(dimension, x.type.rank)
    windows = np.lib.stride_tricks.sliding_window_view(_element_ids(x.type.shape), size, axis=axis)
    index = [slice(None)] * windows.ndim
    index[axis] = slice(None, None, step)
    return gather_flat(ctx, x, np.ascontiguousarray(windows[tuple(index)]))


# ----------------------------------------------------------------------------- index factories


@lowering(aten.tril_indices.default, aten.triu_indices.default)
def lower_tri_indices(ctx, row, col, offset=0, **kwargs):
    """Static arguments, static result: a constant."""
    import torch

    fn = torch.tril_indices if "tril" in ctx.loc.op else torch.triu_indices
    return ctx.const(fn(row, col, offset).numpy(), ctx.out_dtype)


@lowering(aten.nonzero_static.default)
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
    from .shape import slice_

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
