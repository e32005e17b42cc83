"""Emitters of the reduction family: reductions over physical axes; a mean over the spatial axes
of a channels-last tensor is Keras's global average pooling."""

from __future__ import annotations

import keras

from ...ir import Node, Value
from .context import EmitContext, emitter

__all__: list[str] = []


def _phys_axes(x: Value, axes) -> list[int]:
    return sorted(x.type.physical_axis(a) for a in (range(x.type.rank) if axes is None else axes))


@emitter("reduce")
def emit_reduce(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    axes = _phys_axes(x, a["axes"])
    if a["kind"] == "mean" and a["keepdim"] and x.type.rank in (3, 4, 5) and x.type.layout is not None \
            and axes == list(range(1, x.type.rank - 1)):
        pool = {3: keras.layers.GlobalAveragePooling1D, 4: keras.layers.GlobalAveragePooling2D,
                5: keras.layers.GlobalAveragePooling3D}[x.type.rank]
        return ctx.layer(node, pool(keepdims=True, name=ctx.name(node)), ctx.tensor(x))
    return ctx.op(node, "reduce", [x], kind=a["kind"], axes=axes, keepdims=a["keepdim"])


@emitter("argreduce")
def emit_argreduce(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    return ctx.op(node, "argreduce", [x], kind=a["kind"], axis=x.type.physical_axis(a["axes"][0]),
                  keepdims=a["keepdim"])


@emitter("var")
def emit_var(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    return ctx.op(node, "var", [x], axes=_phys_axes(x, a["axes"]), correction=a["correction"], keepdims=a["keepdim"])


@emitter("softmax", "log_softmax")
def emit_softmax(ctx: EmitContext, node: Node, x: Value):
    return ctx.op(node, node.op, [x], axis=x.type.physical_axis(node.attrs["axis"]))
