"""Dead code elimination."""

from __future__ import annotations

import dataclasses

from ..ir import Graph
from .manager import Pass, register_pass


@register_pass
@dataclasses.dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Removes every node none of whose results reaches a graph output.

    Afterwards every node but the graph inputs, states and effects (``state_update``) has a
    used result. Inputs are never removed: they are the model's signature; nor are states
    (they declare the state, read or not) and effects, whose inputs they keep alive.
    """

    name = "dce"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in reversed(graph.topo_order()):
            if node.op in ("input", "state") or node.schema.effect:
                continue
            if all(graph.num_uses(v) == 0 for v in node.outputs):
                graph.erase(node)
                changed = True
        return changed
