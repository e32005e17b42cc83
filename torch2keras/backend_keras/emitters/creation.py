"""Emitters of the creation family: model inputs (``keras.Input``) and constants read as tensors.

``emit_model`` emits the inputs first, in the graph's input order; a constant is emitted when an
emitter first asks for its tensor (``EmitContext.tensor``): most never are, being stored as
weights of the layers that read them.
"""

from __future__ import annotations

import keras

from ...ir import Node
from ..layers import ConstantOutput
from .context import EmitContext, emitter, keras_dtype

__all__ = ["emit_constant", "emit_input"]


@emitter("input")
def emit_input(ctx: EmitContext, node: Node):
    v = node.output
    # the full static shape, 0-d (a scalar input) included: keras.Input(shape=...) would add a
    # batch axis; None marks a run-time size
    shape = [None if isinstance(d, str) else d for d in v.type.physical_shape]
    ctx.reserve_name(node.attrs["name"])
    return keras.Input(batch_shape=tuple(shape), dtype=keras_dtype(v.type.dtype), name=node.attrs["name"])


@emitter("constant")
def emit_constant(ctx: EmitContext, node: Node):
    """A ``ConstantOutput`` layer holding the constant as stored (its input only ties it into the
    functional graph)."""
    value = ctx.const(node.output)
    layer = ConstantOutput(value.shape, keras_dtype(node.output.type.dtype), name=ctx.name(node))
    out = layer(ctx.any_input)
    layer.set_weights([value])
    return out
