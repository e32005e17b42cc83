"""Canonicalize reshapes so that the layout pass sees through them.

Rules (logical, run before layout assignment):
  reshape(a) to a's own shape  ->  a                (``identity``)
  reshape(reshape(a))  ->  reshape(a)              (``compose``: one reshape per chain; with symbolic
                                                   dims, where the backend can still read them off a)
  linear(reshape(y))   ->  reshape(linear(y'))     (``rows``: where the reshape only merges or splits
                                                   the leading (row) axes, y' = y with its trailing
                                                   axes merged into the features)

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
from .manager import register_pass
from .rewrite import Any, Match, OneOf, Op, RewritePass


def _trailing_split(y: Value, features: int) -> Optional[int]:
    """How many trailing axes of ``y`` multiply to ``features`` (None if none do)."""
    product, k = 1, 0
    for d in reversed(y.type.shape):
        if product == features:
            break
        product *= d
        k += 1
    return k if product == features and k > 0 else None


def _keeps_shape(node: Node) -> bool:
    return tuple(node.inputs[0].type.shape) == tuple(node.output.type.shape)


def _refuse_rows(x: Value, y: Value) -> Optional[str]:
    """Why the reshape ``y -> x`` feeding a linear layer cannot move past it (None if it can)."""
    if not x.type.is_static or not y.type.is_static:
        return "the reshape has symbolic dims"
    k = _trailing_split(y, x.type.shape[-1])
    if k is None or y.type.rank - k < 1:
        return "no trailing axes of the reshape's input make up the linear layer's features"
    if list(y.type.shape[:-k]) == list(x.type.shape[:-1]):
        return "the reshape leaves the rows as they are"
    if math.prod(y.type.shape[:-k]) != math.prod(x.type.shape[:-1]):
        return "the reshape does not only regroup the rows"
    return None


@register_pass
@dataclasses.dataclass(frozen=True)
class CanonicalizeReshapes(RewritePass):
    """Composes reshape chains, drops no-op reshapes, and moves row-merging reshapes from a
    linear layer's input to its output. Afterwards (the postcondition: no match passes its
    check) no reshape keeps its input's shape, none reads a reshape it could read past, and no
    linear reads a reshape that only regroups its rows."""

    name = "canonicalize_reshapes"
    pattern = OneOf(identity=Op("reshape", Any("a"), name="reshape", where=_keeps_shape),
                    compose=Op("reshape", Op("reshape", Any("a"), name="inner"), name="reshape"),
                    rows=Op("linear", Op("reshape", Any("y"), name="merge"), name="linear", rest=True))
    max_rounds: int = 8

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        if m.rule == "compose" and len(unresolved_dims(m["a"].type.shape, m["reshape"].output.type.shape)) > 1:
            return "more than one symbolic dim could not be read off the first reshape's input"
        if m.rule == "rows":
            return _refuse_rows(m["merge"].output, m["y"])
        return None

    def rewrite(self, graph: Graph, m: Match) -> None:
        if m.rule == "identity":
            graph.replace_all_uses(m["reshape"].output, m["a"])
        elif m.rule == "compose":
            graph.set_input(m["reshape"], 0, m["a"])
        else:
            self._move_rows(graph, m["linear"], m["merge"].output, m["y"])

    @staticmethod
    def _move_rows(graph: Graph, node: Node, x: Value, y: Value) -> None:
        """linear(reshape(y)) -> reshape(linear(y merged to [rows..., features]))."""
        features = x.type.shape[-1]
        k = _trailing_split(y, features)
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
