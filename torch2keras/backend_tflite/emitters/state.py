"""Emitters of state (``ir/ops/state.py``): each state is a TFLite resource variable named after
it (``builder.SubgraphBuilder.variable``: ``VAR_HANDLE`` with the state's name as its
``shared_name``, initialised once per interpreter to the state's initial value, stored in the
state's layout). ``state`` reads it (``READ_VARIABLE``: a copy, the value the call started
with); ``state_update`` assigns it (``ASSIGN_VARIABLE``), written after every other op of the
subgraph so that each read of the call comes first. Signatures of one file naming the same
state share its variable.
"""

from __future__ import annotations

import numpy as np

from ...ir import Node
from ...ir.state import state_nodes
from ...ir.types import DTYPES
from ..context import Context, DirectExportError, emitter

__all__: list[str] = []


def _variable(ctx: Context, state: Node) -> int:
    """The handle of ``state``'s variable in the subgraph being written."""
    v = state.output
    initial = np.asarray(state.attrs["value"], DTYPES[v.type.dtype])
    if v.type.layout is not None:
        initial = np.transpose(initial, v.type.layout)
    try:
        return ctx.sub.variable(state.attrs["name"], initial)
    except ValueError as e:  # another signature declared it otherwise
        raise DirectExportError(state, f"cannot share its variable with the file's other signatures: {e}") from e


@emitter("state")
def emit_state(ctx: Context, node: Node) -> int:
    out = ctx.result(node)
    ctx.op("READ_VARIABLE", [_variable(ctx, node)], [out])
    return out


@emitter("state_update")
def emit_state_update(ctx: Context, node: Node) -> tuple:
    name = node.attrs["name"]
    handle = ctx.sub.handle(name)
    if handle is None:  # (its state node is written later, or not read)
        handle = _variable(ctx, state_nodes(ctx.graph)[name])
    ctx.op_last("ASSIGN_VARIABLE", [handle, ctx.tensor(node.inputs[0])], [])
    return ()
