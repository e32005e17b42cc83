"""Dead code elimination."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir import Graph, Node
from .manager import Pass, register_pass


def _removable(graph: Graph, node: Node) -> bool:
    """None of ``node``'s results is read, and it is neither an input, a state nor an effect."""
    if node.op in ("input", "state") or node.schema.effect:
        return False
    return all(graph.num_uses(v) == 0 for v in node.outputs)


@register_pass
@dataclasses.dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Removes every node none of whose results reaches a graph output.

    Afterwards every node but the graph inputs, states and effects (``state_update``) has a
    used result. Inputs are never removed: they are the model's signature; nor are states
    (they declare the state, read or not) and effects, whose inputs they keep alive.
    """

    name = "dce"
    idempotent = True  # one sweep in (reverse) topological order leaves nothing to do

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in reversed(graph.topo_order()):
            if _removable(graph, node):
                graph.erase(node)
                changed = True
        return changed

    def postcondition(self, graph: Graph) -> Optional[str]:
        dead = next((n for n in graph.topo_order() if _removable(graph, n)), None)
        return None if dead is None else f"{dead.op}#{dead.id} is dead (nothing reads its results)"
