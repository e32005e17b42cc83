"""Dropping the states no op reads (buffers a model overwrites before each use)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir import Graph, Node
from ..ir.state import state_nodes, state_updates
from .manager import Pass, register_pass


def _unread(graph: Graph) -> list[Node]:
    """The ``state`` nodes whose value (what the previous call left) nothing reads."""
    return [node for node in state_nodes(graph).values() if graph.num_uses(node.output) == 0]


@register_pass
@dataclasses.dataclass(frozen=True)
class DropUnreadState(Pass):
    """Erases every state whose value no op reads, with its ``state_update``.

    Afterwards every ``state`` node has a reader. A state nobody reads is storage whose content
    no call can observe (each call reads a state's value as the previous call left it, and none
    does): e.g. a rotary embedding's ``inv_freq`` that ``forward`` rewrites before using it
    (Hugging Face's longrope and dynamic rope). The graph's outputs are unchanged; it may become
    a pure function of its inputs, which a target without variables (the direct TFLite writer's
    signatures) needs. Not in the default pipeline: a Keras model keeps its variables.
    """

    name = "drop_unread_state"
    idempotent = True

    def run(self, graph: Graph) -> bool:
        unread = _unread(graph)
        updates = state_updates(graph)
        for node in unread:
            update = updates.get(node.attrs["name"])
            if update is not None:
                graph.erase(update)
            graph.erase(node)
        return bool(unread)

    def postcondition(self, graph: Graph) -> Optional[str]:
        unread = _unread(graph)
        return None if not unread else f"state {unread[0].attrs['name']!r} is never read"
