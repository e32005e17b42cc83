"""Emitters of the norm family: Keras's ``BatchNormalization``, ``GroupNormalization`` and
``LayerNormalization`` layers, channels-last, holding torch's statistics and affine weights."""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np

from ...ir import EmissionError, Node, Value
from .context import EmitContext, emitter

__all__: list[str] = []


@emitter("batch_norm")
def emit_batch_norm(ctx: EmitContext, node: Node, x: Value, mean: Value, var: Value, w: Optional[Value] = None,
                    b: Optional[Value] = None):
    if not all(ctx.is_const(v) for v in node.inputs[1:]):
        raise EmissionError(f"batch_norm with non-constant statistics is not supported ({node.loc})")
    c = x.type.shape[1]
    gamma = ctx.const(w) if w is not None else np.ones(c, np.float32)
    beta = ctx.const(b) if b is not None else np.zeros(c, np.float32)
    layer = keras.layers.BatchNormalization(axis=-1, epsilon=node.attrs["eps"], name=ctx.name(node))
    return ctx.layer(node, layer, ctx.tensor(x), [gamma, beta, ctx.const(mean), ctx.const(var)])


@emitter("group_norm")
def emit_group_norm(ctx: EmitContext, node: Node, x: Value, w: Optional[Value] = None, b: Optional[Value] = None):
    c = x.type.shape[1]
    layer = keras.layers.GroupNormalization(groups=node.attrs["groups"], axis=-1, epsilon=node.attrs["eps"],
                                            name=ctx.name(node))
    gamma = ctx.const(w) if w is not None else np.ones(c, np.float32)
    beta = ctx.const(b) if b is not None else np.zeros(c, np.float32)
    return ctx.layer(node, layer, ctx.tensor(x), [gamma, beta])


@emitter("layer_norm")
def emit_layer_norm(ctx: EmitContext, node: Node, x: Value, w: Optional[Value] = None, b: Optional[Value] = None):
    n = node.attrs["num_axes"]
    axes = list(range(x.type.rank - n, x.type.rank))
    affine = w is not None
    if affine and not ctx.is_const(w) or (b is not None and not ctx.is_const(b)):
        raise EmissionError(f"layer_norm with non-constant weights is not supported yet ({node.loc})")
    layer = keras.layers.LayerNormalization(axis=axes, epsilon=node.attrs["eps"], center=b is not None,
                                            scale=affine, name=ctx.name(node))
    weights = ([ctx.const(w)] if affine else []) + ([ctx.const(b)] if b is not None else [])
    return ctx.layer(node, layer, ctx.tensor(x), weights)
