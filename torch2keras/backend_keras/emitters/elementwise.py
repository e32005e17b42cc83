"""Emitters of the elementwise family: one ``TorchOp`` of the op's own kernel each, but ``relu``
(Keras's ``ReLU`` layer)."""

from __future__ import annotations

import keras

from ...ir import Node, Value
from ...ir.ops import BINARY, COMPARE, UNARY
from ...ir.ops.elementwise import BINARY_WITHOUT_REFERENCE, UNARY_WITHOUT_REFERENCE
from .context import EmitContext, emitter, keras_dtype

__all__ = ["emit_elementwise", "emit_plain", "emit_relu"]


@emitter(*UNARY, *BINARY, *COMPARE, "where", "logical_not", "isnan", "isinf", "gelu", "clamp", "leaky_relu",
         "elu", "softplus", "cast")
def emit_elementwise(ctx: EmitContext, node: Node, *inputs: Value):
    params = dict(node.attrs)
    if node.op == "cast":
        params = {"dtype": keras_dtype(node.attrs["dtype"])}
    return ctx.op(node, node.op, list(inputs), **params)


@emitter(*UNARY_WITHOUT_REFERENCE, *BINARY_WITHOUT_REFERENCE, "signbit", "polygamma")
def emit_plain(ctx: EmitContext, node: Node, *inputs: Value):
    """Special functions, whose attributes need no translation."""
    return ctx.op(node, node.op, list(inputs), **node.attrs)


@emitter("relu")
def emit_relu(ctx: EmitContext, node: Node, x: Value):
    return ctx.layer(node, keras.layers.ReLU(name=ctx.name(node)), ctx.tensor(x))
