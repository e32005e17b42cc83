"""Emitters of the gathering and scattering IR ops: ``index_select`` (GATHER along the stored
axis, or -- for a constant channel shuffle, ``ir.shuffle.shuffle_groups`` -- a RESHAPE,
TRANSPOSE, RESHAPE), ``embedding`` (GATHER of the table's rows; EMBEDDING_LOOKUP of an int8 /
int4 table, ``weight_quantization.py``), ``gather`` (torch.gather: GATHER_ND of every result
element's coordinates, the index on the gathered axis) and ``scatter_flat`` (segment reductions
over the flattened tensor: UNSORTED_SEGMENT_SUM / _MAX, GATHER, SELECT_V2).
"""

from __future__ import annotations

import numpy as np

from ...ir import Node, Value
from ...ir.types import DTYPES
from ...ir.shuffle import shuffle_groups
from ..context import Context, DirectExportError, emitter
from ..schema import fb

__all__: list[str] = []


def _gather(ctx: Context, node: Node, params: int, index: Value, axis: int) -> int:
    options = fb.GatherOptionsT()
    options.axis = axis
    out = ctx.result(node)
    indices = ctx.tensor(index)
    if ctx.dtype(indices) not in (np.int32, np.int64):
        indices = ctx.cast(indices, np.int32, "index")
    ctx.op("GATHER", [params, indices], [out], options)
    return out


def _shuffled(ctx: Context, node: Node, groups: int) -> int:
    """A channel shuffle (``shuffle_groups``) of stored axis ``a``: viewed as [..., g, C / g, ...],
    the two axes swapped by one TRANSPOSE, viewed back."""
    x = node.inputs[0]
    tensor = ctx.tensor(x)
    shape = list(ctx.shape(tensor))
    axis = x.type.physical_axis(node.attrs["axis"])
    view = shape[:axis] + [groups, shape[axis] // groups] + shape[axis + 1:]
    perm = list(range(len(view)))
    perm[axis], perm[axis + 1] = axis + 1, axis
    moved = ctx.transpose(ctx.reshape(tensor, view, "groups"), perm, "shuffle")
    return ctx.reshape(moved, shape, out=ctx.result(node))


@emitter("index_select")
def emit_index_select(ctx: Context, node: Node) -> int:
    x, index = node.inputs
    groups = shuffle_groups(ctx.const(index)) if ctx.is_const(index) and index.type.rank == 1 else None
    if groups is not None:
        return _shuffled(ctx, node, groups)
    if index.type.rank != 1 and x.type.layout is not None:
        raise DirectExportError(node, "with a multi-dimensional index on a re-laid-out input is not supported")
    return _gather(ctx, node, ctx.tensor(x), index, x.type.physical_axis(node.attrs["axis"]))


@emitter("gather")
def emit_gather(ctx: Context, node: Node) -> int:
    """out[p] = x[p with the gathered axis replaced by index[p]] (stored order: x and the index are
    stored alike): GATHER_ND with coordinates over the index's shape -- constants for a constant
    index, else the index concatenated with constant grids of the other axes."""
    x, index = node.inputs
    axis = x.type.physical_axis(node.attrs["axis"])
    shape = [int(d) for d in index.type.physical_shape]
    grids = np.indices(shape, dtype=np.int32)
    if ctx.is_const(index):
        grids[axis] = ctx.const(index)
        coords = ctx.constant(np.stack(list(grids), -1).astype(np.int32), ctx.local_name("coordinates"))
    else:
        ids = ctx.reshape(ctx.cast(ctx.tensor(index), np.int32, "index"), shape + [1], "index_column")
        columns = [ids if k == axis else ctx.constant(grids[k][..., None], ctx.local_name(f"grid{k}"))
                   for k in range(len(shape))]
        coords = ctx.temp(shape + [len(shape)], np.int32, "coordinates")
        options = fb.ConcatenationOptionsT()
        options.axis = len(shape)
        ctx.op("CONCATENATION", columns, [coords], options)
    out = ctx.result(node)
    ctx.op("GATHER_ND", [ctx.tensor(x), coords], [out])
    return out


@emitter("embedding")
def emit_embedding(ctx: Context, node: Node) -> int:
    w, index = node.inputs
    table = ctx.quantized_weight(w, node)
    if table is None:
        return _gather(ctx, node, ctx.tensor(w), index, 0)
    return _lookup(ctx, node, table, index)


def _lookup(ctx: Context, node: Node, table: int, index: Value) -> int:
    """An integer table's rows as float: EMBEDDING_LOOKUP (1-d int32 ids, one scale per row or
    block), the ids flattened and the rows shaped back."""
    shape = [int(d) for d in node.output.type.physical_shape]
    width = ctx.shape(table)[1]
    if shape != [*(int(d) for d in index.type.shape), width]:
        raise DirectExportError(node, f"with its result stored as {node.output.type} is not supported with "
                                      f"quantized weights (keep this layer float: keep_float)")
    ids = ctx.tensor(index)
    if ctx.dtype(ids) != np.int32:
        ids = ctx.cast(ids, np.int32, "index")
    count = int(np.prod(shape[:-1]))
    ids = ctx.reshape(ids, [count], "ids")
    rows = ctx.temp([count, width], np.float32, "rows") if len(shape) != 2 else ctx.result(node)
    ctx.op("EMBEDDING_LOOKUP", [ids, table], [rows])
    return rows if len(shape) == 2 else ctx.reshape(rows, shape, out=ctx.result(node))


_SCATTER_DTYPES = (np.float32, np.int32)  # what TFLite's unsorted segment kernels compute in


def _segments(ctx: Context, op: str, data: int, ids: int, n: int, suffix: str) -> int:
    """``op`` (UNSORTED_SEGMENT_SUM / _MAX) of ``data`` into ``n`` segments by ``ids``."""
    out = ctx.temp([n], ctx.dtype(data), suffix)
    options = {"UNSORTED_SEGMENT_SUM": fb.UnsortedSegmentSumOptionsT, "UNSORTED_SEGMENT_MAX": fb.UnsortedSegmentMaxOptionsT,
               "UNSORTED_SEGMENT_MIN": fb.UnsortedSegmentMinOptionsT,
               "UNSORTED_SEGMENT_PROD": fb.UnsortedSegmentProdOptionsT}[op]()
    ctx.op(op, [data, ids, ctx.ints([n], "num_segments")], [out], options)
    return out


_COMBINE = {"amax": ("UNSORTED_SEGMENT_MAX", "MAXIMUM"), "amin": ("UNSORTED_SEGMENT_MIN", "MINIMUM"),
            "prod": ("UNSORTED_SEGMENT_PROD", "MUL"), "mean": ("UNSORTED_SEGMENT_SUM", "ADD")}


def _combined(ctx: Context, reduce: str, include_self: bool, flat: int, values: int, ids: int, n: int,
              count: int) -> int:
    """The [n] values scatter_flat writes where an index names the element (see emit_scatter_flat)."""
    segment, combine = _COMBINE[reduce]
    dtype = ctx.dtype(flat)
    result = _segments(ctx, segment, values, ids, n, reduce)
    if include_self:
        both = ctx.temp([n], dtype, "with_self")
        ctx.op(combine, [flat, result], [both], {"MUL": fb.MulOptionsT, "ADD": fb.AddOptionsT}.get(combine, lambda: None)())
        result = both
    if reduce != "mean":
        return result
    divisor = count
    if include_self:
        divisor = ctx.temp([n], np.int32, "count_with_self")
        ctx.op("ADD", [count, ctx.scalar(1, np.int32, "one")], [divisor], fb.AddOptionsT())
    safe = ctx.temp([n], np.int32, "divisor_safe")
    ctx.op("MAXIMUM", [divisor, ctx.scalar(1, np.int32, "one_at_least")], [safe])
    mean = ctx.temp([n], dtype, "mean")
    if np.dtype(dtype) == np.float32:
        ctx.op("DIV", [result, ctx.cast(safe, np.float32, "divisor_f")], [mean], fb.DivOptionsT())
    else:  # (torch's integer mean rounds down)
        ctx.op("FLOOR_DIV", [result, safe], [mean])
    return mean


@emitter("scatter_flat")
def emit_scatter_flat(ctx: Context, node: Node) -> int:
    """``reduce="none"``: element ``ids[i]`` takes the last ``src[i]`` written there (the largest
    ``i`` per element, an UNSORTED_SEGMENT_MAX of ``0..m-1``), as the reference; ``"sum"``: the
    segment sums added (or, without ``include_self``, put in place); ``"amax"``, ``"amin"``,
    ``"prod"``: the segment's UNSORTED_SEGMENT_MAX / _MIN / _PROD, combined with x's own value
    (``include_self``) or put in place; ``"mean"``: the segment sum (plus x's value) divided by
    the count (plus one). Elements no index names keep x's value."""
    x, index, src = node.inputs
    reduce, include_self = node.attrs["reduce"], node.attrs["include_self"]
    if reduce not in ("none", "sum", "amax", "amin", "prod", "mean"):
        raise DirectExportError(node, f"with reduce={reduce!r} is not written by the direct backend")
    if x.type.layout is not None or src.type.layout is not None or index.type.layout is not None:
        raise DirectExportError(node, "on a re-laid-out tensor is not supported")
    dtype = DTYPES[x.type.dtype]
    if np.dtype(dtype) not in [np.dtype(d) for d in _SCATTER_DTYPES]:
        raise DirectExportError(node, f"on {x.type.dtype} is not supported (float32 and int32 are)")
    n, m = int(np.prod(x.type.shape)), int(np.prod(index.type.shape))
    flat = ctx.reshape(ctx.tensor(x), [n], "flat")
    ids = ctx.reshape(ctx.cast(ctx.tensor(index), np.int32, "ids"), [m], "ids_flat")
    values = ctx.reshape(ctx.cast(ctx.tensor(src), dtype, "src"), [m], "src_flat")
    out = ctx.result(node)
    if reduce == "sum" and include_self:
        added = _segments(ctx, "UNSORTED_SEGMENT_SUM", values, ids, n, "sums")
        total = ctx.temp([n], dtype, "total")
        ctx.op("ADD", [flat, added], [total], fb.AddOptionsT())
        return ctx.reshape(total, ctx.shape(out), out=out)
    count = _segments(ctx, "UNSORTED_SEGMENT_SUM", ctx.constant(np.ones(m, np.int32), ctx.local_name("ones")), ids, n,
                      "count")
    touched = ctx.temp([n], np.bool_, "touched")
    ctx.op("GREATER", [count, ctx.scalar(0, np.int32, "zero")], [touched])
    if reduce in _COMBINE:
        written = _combined(ctx, reduce, include_self, flat, values, ids, n, count)
    elif reduce == "sum":
        written = _segments(ctx, "UNSORTED_SEGMENT_SUM", values, ids, n, "sums")
    else:
        last = _segments(ctx, "UNSORTED_SEGMENT_MAX", ctx.constant(np.arange(m, dtype=np.int32),
                                                                     ctx.local_name("order")), ids, n, "last")
        safe = ctx.temp([n], np.int32, "last_safe")
        ctx.op("MAXIMUM", [last, ctx.scalar(0, np.int32, "zero")], [safe])
        written = ctx.temp([n], dtype, "written")
        options = fb.GatherOptionsT()
        options.axis = 0
        ctx.op("GATHER", [values, safe], [written], options)
    merged = ctx.temp([n], dtype, "merged")
    ctx.op("SELECT_V2", [touched, written, flat], [merged])
    return ctx.reshape(merged, ctx.shape(out), out=out)
