"""Channel shuffles as channel permutations, folded into the convolutions that read them.

A channel shuffle (ShuffleNet's ``view(N, g, C / g, ...)``, ``transpose(1, 2)``, ``view(N, C,
...)``) is the channel permutation ``index_select(x, 1, p)`` with p[k] = (k % g) * (C / g) + k // g:
first the three ops become that one (which the layout pass then keeps channels-last, where the
backends write it as one small transpose of the channel axis, see ``shuffle_groups``).

Then a channel permutation read only by ops that can take it disappears:

* a plain convolution (groups 1, not transposed) or linear layer with constant weights reading
  the permuted channels absorbs it: conv(x[:, p]; W) = conv(x; W') with W'[:, p] = W;
* a per-channel op moves it past itself, to its own readers: a depthwise convolution
  (dw(x[:, p]) = dw'(x)[:, p'] with its filters and biases permuted alike), a unary elementwise
  op, an elementwise op with a constant that is a scalar or one value per channel (permuted
  alike).

The permutation is removed only when every path from it ends in a layer that absorbs it (a
permutation is never duplicated into branches that keep it). Invariant afterwards: every
remaining channel shuffle is an ``index_select`` along axis 1 with a constant permutation, and
none of them is read only by ops that could absorb it.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.ops import SCHEMAS
from ..ir.shuffle import shuffle_groups, shuffle_permutation
from .manager import Pass, register_pass
from .rewrite import erase_dead

__all__ = ["FoldChannelShuffle"]

_UNARY = {name for name, s in SCHEMAS.items() if s.layout == "agnostic" and len(s.inputs) == 1}
_BINARY_CONST = {"add", "sub", "mul", "div", "maximum", "minimum"}
_MAX_DEPTH = 16  # per-channel ops a permutation may move past on its way to a conv


def _constant(graph: Graph, v: Value) -> Optional[np.ndarray]:
    return graph.constant_value(v)


def _shuffle_of(graph: Graph, node: Node) -> Optional[tuple[Value, np.ndarray]]:
    """(x, permutation) if ``node`` is the last reshape of a reshape-permute-reshape shuffle of x."""
    if node.op != "reshape":
        return None
    p = node.inputs[0].producer
    if p.op != "permute" or graph.num_uses(p.output) != 1:
        return None
    r = p.inputs[0].producer
    if r.op != "reshape" or graph.num_uses(r.output) != 1:
        return None
    x = r.inputs[0]
    xs, vs = x.type.shape, r.output.type.shape
    if not x.type.is_static or x.type.rank < 2 or tuple(node.output.type.shape) != tuple(xs):
        return None
    perm = list(p.attrs["perm"])
    if len(vs) != x.type.rank + 1 or perm != [0, 2, 1, *range(3, len(vs))]:
        return None
    if vs[0] != xs[0] or vs[1] * vs[2] != xs[1] or tuple(vs[3:]) != tuple(xs[2:]):
        return None
    return x, shuffle_permutation(xs[1], vs[1])


def _as_index_select(graph: Graph, node: Node, x: Value, perm: np.ndarray) -> Value:
    index = graph.add_constant(perm.astype(np.int64), name=f"{node.output.name_hint}_shuffle")
    return graph.add_node("index_select", [x, index], {"axis": 1}, loc=node.loc, name=node.output.name_hint).output


def _permutation(graph: Graph, node: Node) -> Optional[np.ndarray]:
    """The constant permutation of a channel index_select (axis 1, rank >= 2), else None."""
    if node.op != "index_select" or node.inputs[0].type.rank < 2 or node.attrs["axis"] % node.inputs[0].type.rank != 1:
        return None
    idx = _constant(graph, node.inputs[1])
    channels = node.inputs[0].type.shape[1]
    if idx is None or idx.ndim != 1 or isinstance(channels, str) or not np.array_equal(np.sort(idx), np.arange(channels)):
        return None
    return idx


# ------------------------------------------------------------------ who can take a permutation


def _absorbs(graph: Graph, node: Node, k: int, rank: int) -> bool:
    """Whether ``node`` (reading the permuted value as input ``k``) folds it into its weights."""
    consts = all(_constant(graph, v) is not None for v in node.inputs[1:])
    if node.op == "conv":
        return k == 0 and node.attrs["groups"] == 1 and not node.attrs["transposed"] and consts
    return node.op == "linear" and k == 0 and rank == 2 and consts


def _per_channel_constant(graph: Graph, node: Node, k: int, channels: int, rank: int) -> Optional[np.ndarray]:
    """The other operand of a binary op, if it is a constant that is a scalar or per channel."""
    other = _constant(graph, node.inputs[1 - k])
    if other is None or other.ndim > rank:
        return None
    shape = (1,) * (rank - other.ndim) + other.shape
    if all(d == 1 for d in shape) or (shape[1] == channels and all(d == 1 for i, d in enumerate(shape) if i != 1)):
        return other
    return None


def _moves_past(graph: Graph, node: Node, k: int, channels: int, rank: int) -> bool:
    """Whether a permutation of input ``k``'s channels can move past ``node`` to its result."""
    if len(node.outputs) != 1 or graph.is_output(node.output) or node.output.type.rank != rank:
        return False
    if node.op in _UNARY:
        return True
    if node.op in _BINARY_CONST:
        return _per_channel_constant(graph, node, k, channels, rank) is not None
    if node.op == "conv":  # depthwise: one group per input channel
        a = node.attrs
        return (k == 0 and a["groups"] == channels and not a["transposed"]
                and all(_constant(graph, v) is not None for v in node.inputs[1:]))
    return False


def _foldable(graph: Graph, v: Value, depth: int = 0) -> bool:
    """Whether every path from ``v`` (permuted channels) ends in a layer that absorbs them."""
    if graph.is_output(v) or depth > _MAX_DEPTH or not graph.uses(v):
        return False
    channels, rank = v.type.shape[1], v.type.rank
    for node, k in graph.uses(v):
        if _absorbs(graph, node, k, rank):
            continue
        if not _moves_past(graph, node, k, channels, rank) or not _foldable(graph, node.output, depth + 1):
            return False
    return True


# ------------------------------------------------------------------ the rewrite


def _const_like(graph: Graph, v: Value, array: np.ndarray) -> Value:
    return graph.add_constant(np.ascontiguousarray(array), name=v.name_hint, dtype=v.type.dtype)


def _placed(array: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """``array`` with its entry c along ``axis`` moved to position idx[c]."""
    return np.take(array, np.argsort(idx), axis=axis)


def _absorb(graph: Graph, node: Node, x: Value, idx: np.ndarray) -> None:
    """Rebuild conv/linear ``node`` on the unpermuted ``x``: weight columns put where ``idx`` says."""
    moved = _placed(_constant(graph, node.inputs[1]), idx, 1)
    inputs = [x, _const_like(graph, node.inputs[1], moved), *node.inputs[2:]]
    new = graph.add_node(node.op, inputs, dict(node.attrs), types=[node.output.type], loc=node.loc,
                         name=node.output.name_hint)
    graph.replace_all_uses(node.output, new.output)


def _move_past(graph: Graph, node: Node, k: int, x: Value, idx: np.ndarray) -> tuple[Value, np.ndarray]:
    """``node`` computed on the unpermuted ``x``; returns its result and the permutation after it."""
    rank = x.type.rank
    inputs, out_idx = list(node.inputs), idx
    inputs[k] = x
    if node.op in _BINARY_CONST:
        other = _per_channel_constant(graph, node, k, x.type.shape[1], rank)
        axis = 1 - (rank - other.ndim)  # the channel axis among the constant's own axes
        if axis >= 0 and other.shape[axis] > 1:
            inputs[1 - k] = _const_like(graph, node.inputs[1 - k], _placed(other, idx, axis))
    elif node.op == "conv":  # depthwise with multiplier m: output c * m + t reads input c
        w = _constant(graph, node.inputs[1])
        m = w.shape[0] // x.type.shape[1]
        out_idx = (idx[:, None] * m + np.arange(m)[None, :]).reshape(-1)
        inputs[1:] = [_const_like(graph, v, _placed(_constant(graph, v), out_idx, 0)) for v in node.inputs[1:]]
    new = graph.add_node(node.op, inputs, dict(node.attrs), types=[node.output.type], loc=node.loc,
                         name=node.output.name_hint)
    return new.output, out_idx


def _fold(graph: Graph, y: Value, x: Value, idx: np.ndarray) -> None:
    """Replace every reader of y = x[:, idx] by one reading x (see the module docstring)."""
    for node, k in list(graph.uses(y)):
        if _absorbs(graph, node, k, x.type.rank):
            _absorb(graph, node, x, idx)
            continue
        moved, out_idx = _move_past(graph, node, k, x, idx)
        _fold(graph, node.output, moved, out_idx)


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldChannelShuffle(Pass):
    """Turns reshape-permute-reshape channel shuffles into channel permutations, and folds every
    channel permutation whose readers all lead to plain convs/linears into their weights (see the
    module docstring for the rules and the invariant). Runs before the layout pass."""

    name = "fold_channel_shuffle"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.topo_order():
            if node not in graph:
                continue
            found = _shuffle_of(graph, node)
            if found is not None:
                graph.replace_all_uses(node.output, _as_index_select(graph, node, *found))
                changed = True
        for node in graph.topo_order():
            if node not in graph:
                continue
            idx = _permutation(graph, node)
            if idx is not None and _foldable(graph, node.output):
                _fold(graph, node.output, node.inputs[0], idx)
                changed = True
        if changed:  # the replaced nodes, readers before what they read
            for node in reversed(graph.topo_order()):
                erase_dead(graph, [node])
        return changed
