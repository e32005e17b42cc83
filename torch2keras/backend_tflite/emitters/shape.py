"""Emitters of the data-movement IR ops: reshape, permute, relayout, slice (a SPLIT where the plan
groups slices), slice_scatter, concat, pad, expand, tile and flip.

Axis attributes are logical; each emitter maps them through the input's layout
(``TensorType.physical_axis``). Reshapes and permutes the layout pass made free are plain
RESHAPEs of the stored bytes (or nothing at all when the stored shape does not change).
"""

from __future__ import annotations

import numpy as np

from ...ir import Node, Value
from ...ir.layouts import physical_permute
from ..context import Context, DirectExportError, emitter
from ..schema import fb

__all__ = ["physical_pads", "strided_slice"]


def _alias_or_reshape(ctx: Context, node: Node, tensor: int) -> int:
    """``tensor`` as the node's result: itself when its stored shape is already the result's."""
    want = list(node.output.type.physical_shape)
    if list(ctx.shape(tensor)) == want:
        return tensor
    return ctx.reshape(tensor, want, out=ctx.result(node))


@emitter("reshape")
def emit_reshape(ctx: Context, node: Node) -> int:
    # the layout pass leaves only reshapes that keep the stored bytes in order
    return _alias_or_reshape(ctx, node, ctx.tensor(node.inputs[0]))


@emitter("permute")
def emit_permute(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    perm = physical_permute(x.type.perm, node.attrs["perm"], node.output.type.perm)
    return _transposed(ctx, node, ctx.tensor(x), perm)


@emitter("relayout")
def emit_relayout(ctx: Context, node: Node) -> int:
    return _transposed(ctx, node, ctx.tensor(node.inputs[0]), node.attrs["perm"])


def _transposed(ctx: Context, node: Node, x: int, perm) -> int:
    perm = [int(p) for p in perm]
    shape = ctx.shape(x)
    kept = [p for p in perm if shape[p] != 1]
    if kept == sorted(kept):  # only 1-sized axes move: the same bytes
        return _alias_or_reshape(ctx, node, x)
    moved = [shape[p] for p in perm]
    if moved == list(node.output.type.physical_shape):
        return ctx.transpose(x, perm, out=ctx.result(node))
    return _alias_or_reshape(ctx, node, ctx.transpose(x, perm))


def strided_slice(ctx: Context, x: int, axis: int, start: int, end: int, step: int, out: int) -> int:
    """``out = x[..., start:end:step, ...]`` along stored axis ``axis`` (bounds normalised)."""
    shape = ctx.shape(x)
    begin, stop, stride = slice(start, end, step).indices(shape[axis])
    if stride < 0:
        raise ValueError("negative slice steps are written as flips")
    begins, ends, strides = [0] * len(shape), list(shape), [1] * len(shape)
    begins[axis], ends[axis], strides[axis] = begin, max(stop, begin), stride
    ctx.op("STRIDED_SLICE", [x, ctx.ints(begins, "begin"), ctx.ints(ends, "end"), ctx.ints(strides, "strides")],
           [out], fb.StridedSliceOptionsT())
    return out


def _split(ctx: Context, node: Node) -> int:
    """SPLIT writing every piece of the plan's split that ``node`` belongs to."""
    pieces = [ctx.graph.node(i) for i in ctx.plan.splits[node.id]]
    x = node.inputs[0]
    outs = [ctx.result(p) for p in pieces]
    options = fb.SplitOptionsT()
    options.numSplits = len(pieces)
    ctx.op("SPLIT", [ctx.ints(x.type.physical_axis(node.attrs["axis"]), "split_axis"), ctx.tensor(x)], outs, options)
    for piece, out in zip(pieces, outs):
        ctx.tensors[piece.output.id] = out
    return ctx.tensors[node.output.id]


@emitter("slice")
def emit_slice(ctx: Context, node: Node) -> int:
    x, a = node.inputs[0], node.attrs
    if node.id in ctx.plan.splits:
        return _split(ctx, node)
    if a["step"] <= 0:
        raise DirectExportError(node, f"with step {a['step']} is not supported")
    axis = x.type.physical_axis(a["axis"])
    tensor = ctx.tensor(x)
    if list(ctx.shape(tensor)) == list(node.output.type.physical_shape):
        return tensor  # the whole axis
    return strided_slice(ctx, tensor, axis, a["start"], a["end"], a["step"], ctx.result(node))


@emitter("concat")
def emit_concat(ctx: Context, node: Node) -> int:
    xs = [v for v in node.inputs if 0 not in tuple(v.type.shape)]  # (empty pieces add nothing)
    if len(xs) == 1:
        return _alias_or_reshape(ctx, node, ctx.tensor(xs[0]))
    options = fb.ConcatenationOptionsT()
    options.axis = node.inputs[0].type.physical_axis(node.attrs["axis"])
    out = ctx.result(node)
    ctx.op("CONCATENATION", [ctx.cast(ctx.tensor(v), ctx.dtype(out), f"cast{i}") for i, v in enumerate(xs)], [out],
           options)
    return out


@emitter("slice_scatter")
def emit_slice_scatter(ctx: Context, node: Node) -> int:
    """x with x[start:end:step] replaced by src: step 1, the pieces of x around it concatenated;
    a larger step, x and src concatenated and each position GATHERed from one of them."""
    x, src = node.inputs
    a = node.attrs
    if a["step"] < 1:
        raise DirectExportError(node, f"with step {a['step']} is not supported")
    axis = x.type.physical_axis(a["axis"])
    tensor = ctx.tensor(x)
    shape = list(ctx.shape(tensor))
    if a["step"] > 1:
        return _strided_scatter(ctx, node, tensor, axis, shape)
    start, end, _ = slice(a["start"], a["end"]).indices(shape[axis])
    end = max(end, start)
    pieces = []
    for lo, hi, suffix in ((0, start, "before"), (end, shape[axis], "after")):
        if hi > lo:
            piece_shape = list(shape)
            piece_shape[axis] = hi - lo
            pieces.append(strided_slice(ctx, tensor, axis, lo, hi, 1, ctx.temp(piece_shape, ctx.dtype(tensor), suffix)))
    pieces.insert(1 if start > 0 else 0, ctx.cast(ctx.tensor(src), ctx.dtype(tensor)))
    out = ctx.result(node)
    if len(pieces) == 1:
        return ctx.reshape(pieces[0], shape, out=out)
    options = fb.ConcatenationOptionsT()
    options.axis = axis
    ctx.op("CONCATENATION", pieces, [out], options)
    return out


def _strided_scatter(ctx: Context, node: Node, tensor: int, axis: int, shape: list[int]) -> int:
    """slice_scatter with step > 1: [x, src] concatenated along the axis, then a GATHER taking
    position i from src where the slice covers i, else from x."""
    a = node.attrs
    written = list(range(*slice(a["start"], a["end"], a["step"]).indices(shape[axis])))
    source = ctx.cast(ctx.tensor(node.inputs[1]), ctx.dtype(tensor))
    both = list(shape)
    both[axis] += ctx.shape(source)[axis]
    stacked = ctx.temp(both, ctx.dtype(tensor), "with_src")
    options = fb.ConcatenationOptionsT()
    options.axis = axis
    ctx.op("CONCATENATION", [tensor, source], [stacked], options)
    index = np.arange(shape[axis], dtype=np.int32)
    index[written] = shape[axis] + np.arange(len(written), dtype=np.int32)
    gather = fb.GatherOptionsT()
    gather.axis = axis
    out = ctx.result(node)
    ctx.op("GATHER", [stacked, ctx.ints(index.tolist(), "positions")], [out], gather)
    return out


def physical_pads(x: Value, pads) -> list[list[int]]:
    """Logical (before, after) pairs per axis -> [[before, after], ...] per stored axis."""
    return [[int(pads[2 * a]), int(pads[2 * a + 1])] for a in x.type.perm]


@emitter("pad")
def emit_pad(ctx: Context, node: Node) -> int:
    x, a = node.inputs[0], node.attrs
    pads = physical_pads(x, a["pads"])
    if any(p < 0 for pair in pads for p in pair):
        raise DirectExportError(node, "with negative padding (cropping) is not supported")
    tensor, out = ctx.tensor(x), ctx.result(node)
    paddings = ctx.ints(pads, "paddings")
    if a["mode"] == "reflect":
        options = fb.MirrorPadOptionsT()
        options.mode = fb.MirrorPadMode.REFLECT
        ctx.op("MIRROR_PAD", [tensor, paddings], [out], options)
    elif a["mode"] != "constant":
        raise DirectExportError(node, f"mode {a['mode']!r} has no TFLite builtin")
    elif a["value"] == 0:
        ctx.op("PAD", [tensor, paddings], [out])
    else:
        ctx.op("PADV2", [tensor, paddings, ctx.scalar(a["value"], ctx.dtype(tensor), "value")], [out])
    return out


@emitter("expand")
def emit_expand(ctx: Context, node: Node) -> int:
    out = ctx.result(node)
    ctx.op("BROADCAST_TO", [ctx.tensor(node.inputs[0]), ctx.ints(ctx.shape(out), "shape")], [out])
    return out


@emitter("tile")
def emit_tile(ctx: Context, node: Node) -> int:
    x, out_t = node.inputs[0], node.output.type
    tensor = ctx.tensor(x)
    padded = [1] * (out_t.rank - x.type.rank) + list(ctx.shape(tensor))
    tensor = ctx.reshape(tensor, padded, "rank")
    out = ctx.result(node)
    reps = [o // i for o, i in zip(ctx.shape(out), padded)]
    ctx.op("TILE", [tensor, ctx.ints(reps, "multiples")], [out])
    return out


@emitter("flip")
def emit_flip(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    axes = sorted(x.type.physical_axis(a) for a in node.attrs["axes"])
    out = ctx.result(node)
    ctx.op("REVERSE_V2", [ctx.tensor(x), ctx.ints(axes, "axes")], [out])
    return out
