"""Common subexpression elimination."""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import numpy as np

from ..ir import Graph, Node
from .manager import Pass, register_pass


def _freeze(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _key(node: Node):
    return (node.op, tuple(v.id for v in node.inputs), _freeze(node.attrs),
            tuple((tuple(v.type.shape), v.type.dtype, v.type.layout) for v in node.outputs))


@register_pass
@dataclasses.dataclass(frozen=True)
class CommonSubexpressionElimination(Pass):
    """Merges nodes computing the same op on the same inputs with the same attributes and result
    types; the earliest one stays. Constants are merged only when small (``max_constant``
    elements), to keep this cheap; inputs, states and effects never.
    """

    name = "cse"
    idempotent = True  # one sweep in (reverse) topological order leaves nothing to do
    max_constant: int = 64

    def run(self, graph: Graph) -> bool:
        changed = False
        for node, first in self._duplicates(graph):
            for old, new in zip(node.outputs, first.outputs):
                graph.replace_all_uses(old, new)
            graph.erase(node)
            changed = True
        return changed

    def postcondition(self, graph: Graph) -> Optional[str]:
        for node, first in self._duplicates(graph):
            return f"{node.op}#{node.id} computes what {first.op}#{first.id} does"
        return None

    def _duplicates(self, graph: Graph) -> Iterator[tuple[Node, Node]]:
        """(node, the earlier node it equals), in topological order; lazy, so ``run`` may merge
        each pair before the next is looked for."""
        seen: dict = {}
        for node in graph.topo_order():
            if node.op in ("input", "custom", "state") or node.schema.effect:
                continue
            if node.op == "constant" and node.attrs["value"].size > self.max_constant:
                continue
            key = _key(node)
            first = seen.get(key)
            if first is None:
                seen[key] = node
            else:
                yield node, first
