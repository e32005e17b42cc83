"""Canonicalize reshapes so that the layout pass sees through them.

Rules (logical, run before layout assignment):
  reshape(reshape(a))  ->  reshape(a)              (one reshape per chain; with symbolic dims, where
                                                   the backend can still read them off a)
  reshape(a) to a's own shape  ->  a
  linear(reshape(y))   ->  reshape(linear(y'))     where the reshape only merges or splits the
                                                   leading (row) axes, y' = y with its trailing
                                                   axes merged into the features

A linear layer treats its leading axes as independent rows, so merging them (as
``nn.MultiheadAttention`` does with ``view(L * B, E)``) only fixes an order of rows that the
layer does not care about; applied to the unmerged tensor the layer leaves the layout pass free
to keep that tensor in whatever order it is stored.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from ..ir import Graph, Node, Value
from ..ir.symbolic import unresolved_dims
from .manager import Pass, register_pass


def _trailing_split(y: Value, features: int) -> Optional[int]:
    """How many trailing axes of ``y`` multiply to ``features`` (None if none do)."""
    product, k = 1, 0
    for d in reversed(y.type.shape):
        if product == features:
            break
        product *= d
        k += 1
    return k if product == features and k > 0 else None


@register_pass
@dataclasses.dataclass(frozen=True)
class CanonicalizeReshapes(Pass):
    """Composes reshape chains, drops no-op reshapes, and moves row-merging reshapes from a
    linear layer's input to its output. Afterwards no reshape reads a single-use reshape and
    no linear reads a reshape that only regroups its rows."""

    name = "canonicalize_reshapes"

    max_rounds: int = 8

    def run(self, graph: Graph) -> bool:
        changed = False
        for _ in range(self.max_rounds):  # a rewrite can expose another (e.g. reshape of a new reshape)
            round_changed = False
            for node in graph.topo_order():
                if node not in graph:
                    continue
                if node.op == "reshape":
                    round_changed |= self._reshape(graph, node)
                elif node.op == "linear":
                    round_changed |= self._linear(graph, node)
            changed |= round_changed
            if not round_changed:
                break
        return changed

    def _reshape(self, graph: Graph, node: Node) -> bool:
        x = node.inputs[0]
        if tuple(x.type.shape) == tuple(node.output.type.shape):
            graph.replace_all_uses(node.output, x)
            graph.erase(node)
            return True
        if x.producer.op == "reshape" and len(unresolved_dims(x.producer.inputs[0].type.shape,
                                                              node.output.type.shape)) <= 1:
            graph.set_input(node, 0, x.producer.inputs[0])
            if graph.num_uses(x) == 0 and not graph.is_output(x):
                graph.erase(x.producer)
            return True
        return False

    def _linear(self, graph: Graph, node: Node) -> bool:
        x = node.inputs[0]
        if x.producer.op != "reshape" or not x.type.is_static or not x.producer.inputs[0].type.is_static:
            return False
        y = x.producer.inputs[0]
        features = x.type.shape[-1]
        k = _trailing_split(y, features)
        if k is None or y.type.rank - k < 1 or list(y.type.shape[:-k]) == list(x.type.shape[:-1]):
            return False  # no such split, or the reshape leaves the rows as they are
        if math.prod(y.type.shape[:-k]) != math.prod(x.type.shape[:-1]):
            return False
        rows = list(y.type.shape[:-k])
        src = y
        if k > 1:  # merge the trailing axes into the features first
            src = graph.add_node("reshape", [y], {"shape": rows + [features]}, loc=x.producer.loc,
                                 name=x.name_hint).output
        out = graph.add_node("linear", [src, *node.inputs[1:]], dict(node.attrs), loc=node.loc,
                             name=node.output.name_hint).output
        back = graph.add_node("reshape", [out], {"shape": list(node.output.type.shape)}, loc=node.loc,
                              name=f"{node.output.name_hint}_rows").output
        graph.replace_all_uses(node.output, back)
        graph.erase(node)
        if graph.num_uses(x) == 0 and not graph.is_output(x):
            graph.erase(x.producer)
        return True
