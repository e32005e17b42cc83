"""Cancel and compose chains of physical transposes."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir import Graph, Node, Value
from .layout.rewrite import relayout_perm
from .manager import register_pass
from .rewrite import Any, Chain, Match, OneOf, Op, RewritePass, describe


def _same_storage(a: Value, b: Value) -> bool:
    """``a`` and ``b`` hold the same logical array in the same physical layout."""
    return a.type.layout == b.type.layout and tuple(a.type.shape) == tuple(b.type.shape)


def _is_identity(node: Node) -> bool:
    return _same_storage(node.inputs[0], node.output)


@register_pass
@dataclasses.dataclass(frozen=True)
class CancelTransposes(RewritePass):
    """``relayout(relayout(x))`` becomes one relayout from x's layout, or x itself when the
    two are inverse; a relayout to the layout its input already has disappears.

    Afterwards (the postcondition) no relayout reads another relayout, and none is the identity.
    Nothing is ever refused: every match is rewritten.
    """

    name = "cancel_transposes"
    pattern = OneOf(compose=Op("relayout", Chain("relayout", Any("src"), single_use=False, min_length=1),
                               name="relayout"),
                    identity=Op("relayout", Any("src"), name="relayout", where=_is_identity))

    def rewrite(self, graph: Graph, m: Match) -> None:
        node, src = m["relayout"], m["src"]
        if _same_storage(src, node.output):
            graph.replace_all_uses(node.output, src)
        else:  # in place: one relayout straight from src (the intermediate ones may have other readers)
            graph.set_input(node, 0, src)
            node.attrs["perm"] = list(relayout_perm(src.type, node.output.type.layout))

    def postcondition(self, graph: Graph) -> Optional[str]:
        for node in graph.nodes_by_op("relayout"):
            x = node.inputs[0]
            if x.producer.op == "relayout":
                inverse = " (the two are inverse)" if _same_storage(x.producer.inputs[0], node.output) else ""
                return f"{describe(node)} reads another relayout, {describe(x.producer)}{inverse}"
            if _is_identity(node):
                return f"{describe(node)} is the identity"
        return None
