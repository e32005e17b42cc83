"""Fold channel permutations into the convolutions and linear layers next to them.

A channel permutation is ``index_select(x, axis, idx)`` with a constant 1-D ``idx`` that
permutes ``range(C)``, along the channel axis of a conv (1) or the feature axis of a linear
layer (the last). Pixel shuffle lowers to one before ``depth_to_space``, pixel unshuffle to one
after ``space_to_depth``.

layer -> permutation:  y[:, idx] = conv(x; W[idx], b[idx])       (linear: the same on rows of W)
permutation -> layer:  conv(x[:, idx]; W) = conv(x; W') with W'[:, idx] = W

A permutation also moves through unary elementwise ops between it and the conv, since those
commute with any channel permutation.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.ops import SCHEMAS
from .manager import register_pass
from .rewrite import Any, Chain, Match, OneOf, Op, RewritePass, read_once

_UNARY = tuple(sorted(name for name, s in SCHEMAS.items() if s.layout == "agnostic" and len(s.inputs) == 1))
_LAYERS = ("conv", "linear")


def _refuse_permutation(graph: Graph, perm: Node, layer: Node) -> Optional[str]:
    """Why ``perm`` is not a permutation of ``layer``'s channels (None if it is)."""
    x = perm.inputs[0].type
    axis = perm.attrs["axis"] % x.rank if x.rank else 0
    if x.rank < 2 or axis != (1 if layer.op == "conv" else x.rank - 1):
        return f"the index_select is not along the {layer.op}'s channel axis"
    idx = graph.constant_value(perm.inputs[1])
    if idx is None:
        return "the index is not a constant"
    if idx.ndim != 1 or not np.array_equal(np.sort(idx), np.arange(x.shape[axis])):
        return f"the index is not a permutation of the {x.shape[axis]} channels"
    return None


def _refuse_layer(graph: Graph, layer: Node) -> Optional[str]:
    """Why ``layer`` cannot take a permutation into its weights (None if it can)."""
    if layer.op == "conv" and (layer.attrs["transposed"] or layer.attrs["groups"] != 1):
        return "the conv is grouped or transposed"
    if graph.constant_value(layer.inputs[1]) is None or (
            len(layer.inputs) > 2 and graph.constant_value(layer.inputs[2]) is None):
        return f"the {layer.op}'s weights are not constants"
    return None


def _rebuild(graph: Graph, layer: Node, x: Value, w: np.ndarray, b: Optional[np.ndarray], out: Value) -> Value:
    dtype = layer.inputs[1].type.dtype
    inputs = [x, graph.add_constant(np.ascontiguousarray(w), name=layer.inputs[1].name_hint, dtype=dtype)]
    if b is not None:
        inputs.append(graph.add_constant(np.ascontiguousarray(b), name=f"{out.name_hint}_bias", dtype=dtype))
    new = graph.add_node(layer.op, inputs, dict(layer.attrs), types=[out.type], loc=layer.loc, name=out.name_hint)
    return new.output


def _reapply(graph: Graph, ops: list[Node], v: Value) -> Value:
    """The unary ops ``ops`` (in the order given) applied again to ``v``."""
    for op in ops:
        v = graph.add_node(op.op, [v], dict(op.attrs), types=[op.output.type], loc=op.loc,
                           name=op.output.name_hint).output
    return v


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldChannelPermutation(RewritePass):
    """Removes channel permutations adjacent to a plain (groups=1, not transposed) conv or a
    linear layer with constant weights, permuting its output or input channels instead.

    Fires when the conv's result is read only by the permutation (``producer``), or the
    permutation's result only by the conv (``consumer``); a permutation moves across single-use
    unary elementwise ops toward such a conv. Afterwards no such permutation is left next to a
    layer it could fold into (the postcondition: no match passes its check).
    """

    name = "fold_channel_permutation"
    pattern = OneOf(
        producer=Op("index_select",
                    Chain(_UNARY, Op(_LAYERS, Any("x"), Any("w"), Any("b", optional=True), name="layer"), name="chain"),
                    Any("idx"), name="perm"),
        consumer=Op(_LAYERS,
                    Chain(_UNARY, Op("index_select", Any("x"), Any("idx"), name="perm", single_use=True), name="chain"),
                    Any("w"), Any("b", optional=True), name="layer"),
    )

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        perm, layer = m["perm"], m["layer"]
        refused = _refuse_permutation(graph, perm, layer) or _refuse_layer(graph, layer)
        if refused:
            return refused
        if m.rule == "producer" and not read_once(graph, layer.output):
            return f"the {layer.op}'s result has other readers"
        return None

    def rewrite(self, graph: Graph, m: Match) -> None:
        perm, layer, chain = m["perm"], m["layer"], m["chain"]
        idx = graph.constant_value(perm.inputs[1])
        w = graph.constant_value(layer.inputs[1])
        b = graph.constant_value(layer.inputs[2]) if len(layer.inputs) > 2 else None
        if m.rule == "producer":  # the layer computes permuted channels; the unary ops follow
            y = _rebuild(graph, layer, layer.inputs[0], w[idx], None if b is None else b[idx], layer.output)
            graph.replace_all_uses(perm.output, _reapply(graph, chain[::-1], y))
            return
        w2 = np.empty_like(w)  # the unary ops run before the permutation is undone in the weights
        w2[:, idx] = w
        v = _reapply(graph, chain[::-1], perm.inputs[0])
        graph.replace_all_uses(layer.output, _rebuild(graph, layer, v, w2, b, layer.output))
