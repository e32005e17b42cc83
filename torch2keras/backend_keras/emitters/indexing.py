"""Emitters of the indexing family: gathers along a physical axis, embedding lookups (Keras's
``Embedding`` layer when the table is a constant) and scatters."""

from __future__ import annotations

import keras

from ...ir import Node, Value
from ...ir.shuffle import shuffle_groups
from .context import EmitContext, emitter
from .shape import reshape, transpose

__all__: list[str] = []


@emitter("gather")
def emit_gather(ctx: EmitContext, node: Node, x: Value, index: Value):
    return ctx.op(node, "gather", [x, index], axis=x.type.physical_axis(node.attrs["axis"]))


@emitter("index_select")
def emit_index_select(ctx: EmitContext, node: Node, x: Value, index: Value):
    groups = shuffle_groups(ctx.const(index)) if ctx.is_const(index) and index.type.rank == 1 else None
    if groups is not None and x.type.is_static:  # a channel shuffle: one transpose, not a gather
        axis = x.type.physical_axis(node.attrs["axis"])
        shape = list(x.type.physical_shape)
        view = reshape(ctx, node, x, shape[:axis] + [groups, shape[axis] // groups] + shape[axis + 1:], "_groups")
        perm = list(range(len(shape) + 1))
        perm[axis], perm[axis + 1] = axis + 1, axis
        return reshape(ctx, node, transpose(ctx, node, view, perm, "_shuffle"), shape, "_shuffled")
    return ctx.op(node, "take", [x, index], axis=x.type.physical_axis(node.attrs["axis"]))


@emitter("embedding")
def emit_embedding(ctx: EmitContext, node: Node, w: Value, index: Value):
    if not ctx.is_const(w):
        return ctx.op(node, "take", [w, index], axis=0)
    table = ctx.const(w)
    layer = keras.layers.Embedding(table.shape[0], table.shape[1], name=ctx.name(node))
    return ctx.layer(node, layer, ctx.tensor(index), [table])


@emitter("scatter_flat")
def emit_scatter_flat(ctx: EmitContext, node: Node, *inputs: Value):
    """Attributes in PyTorch's terms (the op works on flat positions): passed as they are."""
    return ctx.op(node, "scatter_flat", list(inputs), **node.attrs)
