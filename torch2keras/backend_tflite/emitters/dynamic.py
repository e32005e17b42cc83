"""Emitters of the dynamic family's ops that have a TFLite form:
``dynamic_update_slice`` is DYNAMIC_UPDATE_SLICE (the rows written at a start read at run time;
TFLite clamps the start into range as the IR op does). With a run-time batch
(``dynamic_batch.py``): ``dim`` is a SHAPE and a STRIDED_SLICE of it (the size as the file runs),
``dynamic_expand`` a BROADCAST_TO to a size vector computed as the file runs (of values in
PyTorch's layout: its layout rule keeps them there). ``arange`` is RANGE of bounds read at run
time (int32, int64 or float32, the bounds cast to the result's type). ``dynamic_slice`` is a
STRIDED_SLICE with begin and end vectors built as the start indices below.

The start indices are one int32 vector in the stored axis order: zeros, the start at the stored
position of the op's axis. Every update at one start builds the same vector from the same
tensors, so the writer's clean-up (``peephole.simplify``) keeps one.
"""

from __future__ import annotations

import numpy as np

from ...ir import Node, Value
from ..context import Context, DirectExportError, emitter
from ..schema import fb

__all__: list[str] = []

_INT32 = np.iinfo(np.int32)


@emitter("dynamic_update_slice")
def emit_dynamic_update_slice(ctx: Context, node: Node) -> int:
    x, update, start = node.inputs
    if update.type.layout != x.type.layout:
        raise DirectExportError(node, f"writes {update.type} into {x.type}, stored unlike it")
    starts = _at_axis(ctx, start, x.type.physical_axis(node.attrs["axis"]), x.type.rank, "starts")
    out = ctx.result(node)
    ctx.op("DYNAMIC_UPDATE_SLICE", [ctx.tensor(x), ctx.tensor(update), starts], [out])
    return out


def _at_axis(ctx: Context, scalar: Value, axis: int, rank: int, name: str) -> int:
    """An int32 vector of ``rank`` zeros but the integer scalar ``scalar`` at ``axis``: a
    constant where ``scalar`` is one, else its value (cast, as a 1-vector) CONCATENATED between
    constant zeros."""
    if ctx.is_const(scalar):
        vector = [0] * rank
        vector[axis] = int(np.clip(int(ctx.const(scalar)), _INT32.min, _INT32.max))
        return ctx.ints(vector, name)
    at = ctx.reshape(ctx.cast(ctx.tensor(scalar), np.int32, f"{name}_cast"), [1], f"{name}_at")
    pieces = [p for p in (ctx.ints([0] * axis, f"{name}_before") if axis else None, at,
                          ctx.ints([0] * (rank - axis - 1), f"{name}_after") if axis < rank - 1 else None)
              if p is not None]
    if len(pieces) == 1:
        return at
    vector = ctx.temp([rank], np.int32, name)
    options = fb.ConcatenationOptionsT()
    options.axis = 0
    ctx.op("CONCATENATION", pieces, [vector], options)
    return vector


@emitter("dynamic_slice")
def emit_dynamic_slice(ctx: Context, node: Node) -> int:
    """x[start:end:step] along one axis: a STRIDED_SLICE whose begin and end vectors hold the
    bounds at the axis (read as the file runs, or constants), every other axis whole (its begin
    and end mask bits set). STRIDED_SLICE reads bounds as Python does: negative ones count from
    the end, out-of-range ones clamp."""
    x, start, end = node.inputs
    rank, step = x.type.rank, node.attrs["step"]
    if step <= 0:
        raise DirectExportError(node, f"slices with step {step}; positive steps are written")
    axis = x.type.physical_axis(node.attrs["axis"])
    strides = [1] * rank
    strides[axis] = step
    options = fb.StridedSliceOptionsT()
    options.beginMask = options.endMask = sum(1 << k for k in range(rank) if k != axis)
    out = ctx.result(node)
    ctx.op("STRIDED_SLICE", [ctx.tensor(x), _at_axis(ctx, start, axis, rank, "begin"),
                             _at_axis(ctx, end, axis, rank, "end"), ctx.ints(strides, "strides")], [out], options)
    return out


@emitter("dim")
def emit_dim(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    axis = x.type.physical_axis(node.attrs["axis"])
    shape = ctx.temp([x.type.rank], np.int32, "shape")
    options = fb.ShapeOptionsT()
    options.outType = fb.TensorType.INT32
    ctx.op("SHAPE", [ctx.tensor(x)], [shape], options)
    out = ctx.result(node)
    sliced = fb.StridedSliceOptionsT()
    sliced.shrinkAxisMask = 1
    ctx.op("STRIDED_SLICE", [shape, ctx.ints([axis], "begin"), ctx.ints([axis + 1], "end"), ctx.ints([1], "strides")],
           [out], sliced)
    return out


def _sizes(ctx: Context, node: Node) -> int:
    x, sizes = node.inputs
    if x.type.layout is not None or node.output.type.layout is not None:
        raise DirectExportError(node, f"reads {x.type} to write {node.output.type}: sizes in PyTorch's order of "
                                      f"values stored in another")
    return ctx.cast(ctx.tensor(sizes), np.int32, "sizes")


@emitter("dynamic_expand")
def emit_dynamic_expand(ctx: Context, node: Node) -> int:
    sizes = _sizes(ctx, node)
    out = ctx.result(node)
    ctx.op("BROADCAST_TO", [ctx.tensor(node.inputs[0]), sizes], [out])
    return out


_RANGE_TYPES = (np.int32, np.int64, np.float32)  # the types LiteRT's RANGE kernel computes in


@emitter("arange")
def emit_arange(ctx: Context, node: Node) -> int:
    """RANGE(start, end, step): the result's size is computed as the file runs, as torch's
    ceil((end - start) / step)."""
    out = ctx.result(node)
    dtype = ctx.dtype(out)
    if dtype not in _RANGE_TYPES:
        raise DirectExportError(node, f"of {dtype} values has no TFLite kernel (RANGE computes in int32, int64 "
                                      f"and float32)")
    bounds = [ctx.scalar(ctx.const(v).item(), dtype, name) if ctx.is_const(v)
              else ctx.reshape(ctx.cast(ctx.tensor(v), dtype, f"{name}_cast"), [], name)
              for v, name in zip(node.inputs, ("start", "end", "step"))]
    ctx.op("RANGE", bounds, [out])
    return out
