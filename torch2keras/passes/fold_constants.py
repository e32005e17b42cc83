"""Constant folding."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node
from ..ir.evaluate import evaluate
from ..ir.types import dtype_to_numpy
from .manager import Pass, register_pass


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldConstants(Pass):
    """Replaces a node whose inputs are all constants by constants holding its results.

    Results keep their types (layouts included): a folded ``relayout`` is the same logical
    array with a new physical layout, which the backend applies when it stores the constant.
    Skips ops the numpy evaluator does not cover, effects (a ``state_update`` of a constant
    stays), and results larger than ``max_elements`` (folding an ``expand`` must not blow up
    the model size). A ``state`` is never a constant: its value changes between calls. A
    ``dequantize`` of a constant stays: it is how a quantized weight reaches its layer (an
    integer file stores the weight's integers and scales, not the float product).
    """

    name = "fold_constants"
    idempotent = True  # one sweep in (reverse) topological order leaves nothing to do
    max_elements: int = 1 << 22

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.topo_order():
            results = self._fold(node)
            if results is None:
                continue
            for v, array in zip(node.outputs, results):
                array = np.ascontiguousarray(array, dtype=dtype_to_numpy(v.type.dtype)).reshape(v.type.shape)
                const = graph.add_node("constant", attrs={"value": array, "dtype": v.type.dtype},
                                       types=[v.type], loc=node.loc, name=v.name_hint).output
                graph.replace_all_uses(v, const)
            graph.erase(node)
            changed = True
        return changed

    def postcondition(self, graph: Graph) -> Optional[str]:
        left = next((n for n in graph.topo_order() if self._fold(n) is not None), None)
        return None if left is None else f"{left.op}#{left.id} computes a constant and was not folded"

    def _fold(self, node: Node) -> Optional[list]:
        """The results of ``node`` if it is foldable (see the class docstring), else None."""
        if node.op in ("input", "constant", "dequantize") or not node.inputs or node.schema.effect:
            return None
        if not all(v.producer.op == "constant" for v in node.inputs):
            return None
        if any(not v.type.is_static or v.type.numel > self.max_elements for v in node.outputs):
            return None
        try:
            with np.errstate(all="ignore"):
                return evaluate(node.op, [v.producer.value for v in node.inputs], node.attrs)
        except NotImplementedError:
            return None
