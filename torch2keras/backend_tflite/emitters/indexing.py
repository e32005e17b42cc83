"""Emitters of the gathering IR ops: ``index_select`` (GATHER along the stored axis, or -- for a
constant channel shuffle, ``ir.shuffle.shuffle_groups`` -- a RESHAPE, TRANSPOSE, RESHAPE) and
``embedding`` (GATHER of the table's rows).
"""

from __future__ import annotations

import numpy as np

from ...ir import Node, Value
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


@emitter("embedding")
def emit_embedding(ctx: Context, node: Node) -> int:
    w, index = node.inputs
    return _gather(ctx, node, ctx.tensor(w), index, 0)
