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
from .manager import Pass, register_pass

_UNARY = {name for name, s in SCHEMAS.items() if s.layout == "agnostic" and len(s.inputs) == 1}


def _permutation(graph: Graph, node: Node) -> Optional[np.ndarray]:
    if node.op != "index_select" or node.inputs[0].type.rank < 2:
        return None
    x = node.inputs[0].type
    axis = node.attrs["axis"] % x.rank
    if axis not in (1, x.rank - 1):
        return None
    idx = graph.constant_value(node.inputs[1])
    if idx is None or idx.ndim != 1 or not np.array_equal(np.sort(idx), np.arange(x.shape[axis])):
        return None
    return idx


def _plain_layer(node: Node, axis: int, rank: int) -> bool:
    """A conv (groups=1, not transposed) over channel axis 1, or a linear over the last axis."""
    if node.op == "conv":
        return axis == 1 and not node.attrs["transposed"] and node.attrs["groups"] == 1
    return node.op == "linear" and axis == rank - 1


def _rebuild(graph: Graph, layer: Node, x: Value, w: np.ndarray, b: Optional[np.ndarray], out: Value) -> Value:
    dtype = layer.inputs[1].type.dtype
    inputs = [x, graph.add_constant(np.ascontiguousarray(w), name=layer.inputs[1].name_hint, dtype=dtype)]
    if b is not None:
        inputs.append(graph.add_constant(np.ascontiguousarray(b), name=f"{out.name_hint}_bias", dtype=dtype))
    new = graph.add_node(layer.op, inputs, dict(layer.attrs), types=[out.type], loc=layer.loc, name=out.name_hint)
    return new.output


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldChannelPermutation(Pass):
    """Removes channel permutations adjacent to a plain (groups=1, not transposed) conv or a
    linear layer with constant weights, permuting its output or input channels instead.

    Fires when the conv's result is read only by the permutation (output side), or the
    permutation's result only by the conv (input side); a permutation first moves across
    single-use unary elementwise ops toward such a conv.
    """

    name = "fold_channel_permutation"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.topo_order():
            if node not in graph:
                continue
            idx = _permutation(graph, node)
            if idx is None:
                continue
            if self._into_producer(graph, node, idx) or self._into_consumer(graph, node, idx):
                changed = True
        return changed

    def _into_producer(self, graph: Graph, perm: Node, idx: np.ndarray) -> bool:
        x = perm.inputs[0]
        chain = []  # unary ops between the conv and the permutation
        while x.producer.op in _UNARY and graph.num_uses(x) == 1:
            chain.append(x.producer)
            x = x.producer.inputs[0]
        conv = x.producer
        axis = perm.attrs["axis"] % x.type.rank
        if not _plain_layer(conv, axis, x.type.rank) or graph.num_uses(x) != 1:
            return False
        w = graph.constant_value(conv.inputs[1])
        b = graph.constant_value(conv.inputs[2]) if len(conv.inputs) > 2 else None
        if w is None or (len(conv.inputs) > 2 and b is None):
            return False
        y = _rebuild(graph, conv, conv.inputs[0], w[idx], None if b is None else b[idx], x)
        for op in reversed(chain):  # re-apply the unary ops, now on permuted channels
            y = graph.add_node(op.op, [y], dict(op.attrs), types=[op.output.type], loc=op.loc,
                               name=op.output.name_hint).output
        graph.replace_all_uses(perm.output, y)
        return True

    def _into_consumer(self, graph: Graph, perm: Node, idx: np.ndarray) -> bool:
        y = perm.output
        chain = []
        while graph.num_uses(y) == 1 and not graph.is_output(y) and graph.users(y)[0].op in _UNARY:
            chain.append(graph.users(y)[0])
            y = chain[-1].output
        users = graph.uses(y)
        axis = perm.attrs["axis"] % y.type.rank
        if len(users) != 1 or graph.is_output(y) or users[0][1] != 0 or not _plain_layer(users[0][0], axis, y.type.rank):
            return False
        conv = users[0][0]
        w = graph.constant_value(conv.inputs[1])
        if w is None or (len(conv.inputs) > 2 and graph.constant_value(conv.inputs[2]) is None):
            return False
        w2 = np.empty_like(w)
        w2[:, idx] = w
        b = graph.constant_value(conv.inputs[2]) if len(conv.inputs) > 2 else None
        v = perm.inputs[0]
        for op in chain:  # the unary ops now run before the permutation is undone
            v = graph.add_node(op.op, [v], dict(op.attrs), types=[op.output.type], loc=op.loc,
                               name=op.output.name_hint).output
        out = _rebuild(graph, conv, v, w2, b, conv.output)
        graph.replace_all_uses(conv.output, out)
        return True
