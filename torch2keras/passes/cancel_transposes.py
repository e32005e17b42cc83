"""Cancel and compose chains of physical transposes."""

from __future__ import annotations

import dataclasses

from ..ir import Graph
from .layout.rewrite import relayout_perm
from .manager import Pass, register_pass


@register_pass
@dataclasses.dataclass(frozen=True)
class CancelTransposes(Pass):
    """``relayout(relayout(x))`` becomes one relayout from x's layout, or x itself when the
    two are inverse; a relayout to the layout its input already has disappears.

    Afterwards no relayout reads another relayout, and none is the identity.
    """

    name = "cancel_transposes"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.topo_order():
            if node.op != "relayout" or node not in graph:
                continue
            src = node.inputs[0]
            while src.producer.op == "relayout":
                src = src.producer.inputs[0]
            out = node.output
            if src.type.layout == out.type.layout and tuple(src.type.shape) == tuple(out.type.shape):
                graph.replace_all_uses(out, src)
                graph.erase(node)
                changed = True
            elif src is not node.inputs[0]:
                graph.set_input(node, 0, src)
                node.attrs["perm"] = list(relayout_perm(src.type, out.type.layout))
                changed = True
        return changed
