"""Emitters of the state family (``state``, ``state_update``): reads and writes of the model's
``ModelState`` layer.

Every ``state`` node reads its variable; every ``state_update`` only records its new value;
``attach_state_updates`` then routes the model outputs through one write call that assigns
them all (see ``backend_keras/state.py`` for why that orders reads before writes). A state stored in another
layout than PyTorch's (channels-last, chosen by the layout pass) is held that way in its
variable: reads and writes move no data; only the initial value is transposed, once.
"""

from __future__ import annotations

from typing import Any

from ...ir import EmissionError, Node, Value
from ...ir.state import state_nodes
from ..state import ModelState
from .context import EmitContext, emitter, keras_dtype

__all__ = ["attach_state_updates"]


def _state_layer(ctx: EmitContext) -> ModelState:
    if ctx.state_layer is None:
        states = list(state_nodes(ctx.graph).values())
        layer = ModelState([[n.attrs["name"], list(n.output.type.shape), keras_dtype(n.output.type.dtype),
                             list(n.output.type.perm)] for n in states], name=ctx.unique_name("model_state"))
        layer.initialize({n.attrs["name"]: n.attrs["value"] for n in states})
        ctx.state_layer = layer
    return ctx.state_layer


@emitter("state")
def emit_state(ctx: EmitContext, node: Node):
    if ctx.any_input is None:
        raise EmissionError(f"state {node.attrs['name']!r}: a model without inputs cannot carry state")
    return _state_layer(ctx)(ctx.any_input, read=node.attrs["name"])


@emitter("state_update")
def emit_state_update(ctx: EmitContext, node: Node, value: Value):
    state = state_nodes(ctx.graph)[node.attrs["name"]]
    if value.type.layout != state.output.type.layout:
        raise EmissionError(f"update of state {node.attrs['name']!r} is stored as {value.type}, the state as "
                            f"{state.output.type}")
    ctx.state_updates.append((node.attrs["name"], ctx.tensor(value)))
    return ()


def attach_state_updates(ctx: EmitContext, outputs: list) -> list:
    """``outputs`` passed through the state's write call (unchanged when there is no state)."""
    if not ctx.state_updates:
        return outputs
    names = [name for name, _ in ctx.state_updates]
    result: Any = _state_layer(ctx)([*(t for _, t in ctx.state_updates), *outputs], write=names)
    return list(result) if isinstance(result, (list, tuple)) else [result]
