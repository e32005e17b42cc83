"""Channel permutations (and channel shuffles, which are ones) folded into the layers next to them.

A channel permutation is ``index_select(x, axis, idx)`` with a constant 1-D ``idx`` that
permutes ``range(C)``, along the channel axis of a conv (1) or the feature axis of a linear
layer (the last). Pixel shuffle lowers to one before ``depth_to_space``, pixel unshuffle to one
after ``space_to_depth``. Four rules, one pass:

* ``shuffle`` (recognition): ShuffleNet's ``view(N, g, C / g, ...)``, ``transpose(1, 2)``,
  ``view(N, C, ...)`` is the permutation with idx[k] = (k % g) * (C / g) + k // g
  (``ir.shuffle``); the three ops become that one ``index_select``, which the two absorption
  rules then take, or which the backends write as one small transpose of the channel axis.
* ``producer`` (absorption into the layer before): layer -> per-channel ops -> permutation,
  y[:, idx] = conv(x; W[idx], b[idx]) (linear: the same on rows of W); the per-channel ops
  between them are rebuilt with their per-channel constants permuted alike.
* ``consumer`` (absorption into the layers after): permutation -> per-channel ops -> layer,
  conv(x[:, idx]; W) = conv(x; W') with W'[:, idx] = W. The permutation moves past every
  per-channel op to every reader, so it is removed only when every path from it ends in a layer
  that absorbs it (never duplicated into a branch that would keep it).
* ``strided`` (a channel split by strides): a layer's channels (across per-channel ops) read only
  by slices of one step s > 1 along the channel axis, starting at 0, 1, ..., s - 1 and running to
  the end (``x[:, 0::2]``, ``x[:, 1::2]``): the channels are permuted into stride groups
  (channels r, r + s, r + 2s, ... next to each other, r = 0..s-1) and each slice becomes a
  step-1 slice of its group, which the backends write as one SPLIT (XNNPACK takes no strided
  slice); the permutation is then absorbed by the layer (``producer``).

Absorbing layers: a plain conv (groups 1, not transposed, channel axis) or a linear layer
(feature axis), with constant weights. Per-channel ops a permutation moves past: unary
elementwise ops, an elementwise op with a constant that is a scalar or one value per channel,
a depthwise conv (dw(x[:, p]) = dw'(x)[:, p'], filters and biases permuted alike) and a
batch norm with constant statistics.

Invariant afterwards: no reshape-permute-reshape channel shuffle is left, no layer's channels
are read only by a set of strided slices that split them, and no channel
permutation is left that a layer next to it (across per-channel ops) could absorb: every
remaining one is an ``index_select`` with a constant permutation that has a reader (or is an
output) that cannot take it (the postcondition: no match passes its check).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.ops import SCHEMAS
from ..ir.shuffle import shuffle_permutation
from .manager import register_pass
from .rewrite import Any, Chain, Match, OneOf, Op, RewritePass, describe, erase_dead, read_once, replace_value

__all__ = ["FoldChannelPermutation"]

_UNARY = tuple(sorted(name for name, s in SCHEMAS.items() if s.layout == "agnostic" and len(s.inputs) == 1))
_BINARY_CONST = ("add", "sub", "mul", "div", "maximum", "minimum")
_LAYERS = ("conv", "linear")
_PER_CHANNEL = (*_UNARY, *_BINARY_CONST, "batch_norm")  # what a permutation moves past (and depthwise convs)
_MAX_DEPTH = 16  # per-channel ops a permutation may move past on its way to a layer


def _is_shuffle_permute(node: Node) -> bool:
    perm = list(node.attrs["perm"])
    return len(perm) >= 3 and perm == [0, 2, 1, *range(3, len(perm))]


# ------------------------------------------------------------------ the permutation and the layers


def _refuse_permutation(graph: Graph, perm: Node, layer: Node) -> Optional[str]:
    """Why ``perm`` is not a permutation of ``layer``'s channels (None if it is)."""
    x = perm.inputs[0].type
    axis = perm.attrs["axis"] % x.rank if x.rank else 0
    if x.rank < 2 or axis != (1 if layer.op == "conv" else x.rank - 1):
        return f"the index_select is not along the {layer.op}'s channel axis"
    idx = graph.constant_value(perm.inputs[1])
    if idx is None:
        return "the index is not a constant"
    if idx.ndim != 1 or isinstance(x.shape[axis], str) or not np.array_equal(np.sort(idx), np.arange(x.shape[axis])):
        return f"the index is not a permutation of the {x.shape[axis]} channels"
    return None


def _constants(graph: Graph, node: Node) -> bool:
    return all(graph.constant_value(v) is not None for v in node.inputs[1:])


def _refuse_layer(graph: Graph, layer: Node) -> Optional[str]:
    """Why ``layer`` cannot take a permutation into its weights (None if it can)."""
    if layer.op == "conv" and (layer.attrs["transposed"] or layer.attrs["groups"] != 1):
        return "the conv is grouped or transposed"
    if not _constants(graph, layer):
        return f"the {layer.op}'s weights are not constants"
    return None


def _absorbs(graph: Graph, node: Node, k: int, axis: int) -> bool:
    """Whether ``node``, reading channels permuted along ``axis`` as input ``k``, takes them into its weights."""
    if node.op not in _LAYERS or k != 0 or axis != (1 if node.op == "conv" else node.inputs[0].type.rank - 1):
        return False
    return _refuse_layer(graph, node) is None


# ------------------------------------------------------------------ per-channel ops a permutation moves past


def _per_channel_constant(graph: Graph, node: Node, k: int, axis: int) -> Optional[np.ndarray]:
    """The other operand of a binary op, if it is a constant that is a scalar or one value per channel."""
    other = graph.constant_value(node.inputs[1 - k])
    rank, channels = node.inputs[k].type.rank, node.inputs[k].type.shape[axis]
    if other is None or other.ndim > rank:
        return None
    shape = (1,) * (rank - other.ndim) + other.shape
    if all(d == 1 for d in shape) or (shape[axis] == channels and all(d == 1 for i, d in enumerate(shape) if i != axis)):
        return other
    return None


def _moves_past(graph: Graph, node: Node, k: int, axis: int) -> bool:
    """Whether a permutation (along ``axis``) of input ``k`` moves past ``node`` to its result."""
    x = node.inputs[k].type
    if len(node.outputs) != 1 or graph.is_output(node.output) or node.output.type.rank != x.rank:
        return False
    if node.op in _UNARY:
        return True
    if node.op in _BINARY_CONST:
        return _per_channel_constant(graph, node, k, axis) is not None
    if node.op == "batch_norm":
        return k == 0 and axis == 1 and _constants(graph, node)
    if node.op == "conv":  # depthwise: one group per input channel
        a = node.attrs
        return k == 0 and axis == 1 and a["groups"] == x.shape[1] and not a["transposed"] and _constants(graph, node)
    return False


def _refuse_readers(graph: Graph, v: Value, axis: int, depth: int = 0) -> Optional[str]:
    """Why not every path from ``v`` (channels permuted along ``axis``) ends in a layer that absorbs them."""
    if graph.is_output(v):
        return "the permuted channels are a graph output"
    if depth > _MAX_DEPTH:
        return f"the permuted channels pass more than {_MAX_DEPTH} per-channel ops"
    for node, k in graph.uses(v):
        if _absorbs(graph, node, k, axis):
            continue
        if not _moves_past(graph, node, k, axis):
            return f"the permuted channels reach {describe(node)}, which can neither absorb nor pass them"
        refused = _refuse_readers(graph, node.output, axis, depth + 1)
        if refused:
            return refused
    return None


# ------------------------------------------------------------------ the rewrites


def _const_like(graph: Graph, v: Value, array: np.ndarray) -> Value:
    return graph.add_constant(np.ascontiguousarray(array), name=v.name_hint, dtype=v.type.dtype)


def _rebuilt(graph: Graph, node: Node, inputs: list[Value]) -> Value:
    return graph.add_node(node.op, inputs, dict(node.attrs), types=[node.output.type], loc=node.loc,
                          name=node.output.name_hint).output


def _taken(graph: Graph, v: Value, order: np.ndarray, axis: int) -> Value:
    """Constant ``v`` with its entries along ``axis`` taken in ``order``."""
    return _const_like(graph, v, np.take(graph.constant_value(v), order, axis=axis))


def _pass_through(graph: Graph, node: Node, k: int, x: Value, order: np.ndarray, axis: int) -> tuple[Value, np.ndarray]:
    """Per-channel ``node`` rebuilt on ``x`` in place of input ``k``, its per-channel constants taken in
    ``order`` (channel c of the new node is channel order[c] of the old one); returns its result and
    the order of its result's channels (a depthwise conv with m filters per channel has m * C)."""
    inputs = list(node.inputs)
    inputs[k] = x
    rank = x.type.rank
    if node.op in _BINARY_CONST:
        other = _per_channel_constant(graph, node, k, axis)
        own_axis = axis - (rank - other.ndim)  # the channel axis among the constant's own axes
        if own_axis >= 0 and other.shape[own_axis] > 1:
            inputs[1 - k] = _taken(graph, node.inputs[1 - k], order, own_axis)
    elif node.op == "batch_norm":
        inputs[1:] = [_taken(graph, v, order, 0) for v in node.inputs[1:]]
    elif node.op == "conv":  # depthwise with multiplier m: output c * m + t reads input c
        m = graph.constant_value(node.inputs[1]).shape[0] // x.type.shape[1]
        order = (order[:, None] * m + np.arange(m)[None, :]).reshape(-1)
        inputs[1:] = [_taken(graph, v, order, 0) for v in node.inputs[1:]]
    return _rebuilt(graph, node, inputs), order


def _absorb_input(graph: Graph, layer: Node, x: Value, idx: np.ndarray) -> Value:
    """``layer`` on the unpermuted ``x`` (its input is x[:, idx]): weight columns placed where idx says."""
    return _rebuilt(graph, layer, [x, _taken(graph, layer.inputs[1], np.argsort(idx), 1), *layer.inputs[2:]])


def _fold_into_readers(graph: Graph, y: Value, x: Value, idx: np.ndarray, axis: int, old: list[Node]) -> None:
    """Every reader of y = x permuted by ``idx`` along ``axis`` rebuilt to read x (collects the old ones)."""
    for node, k in list(graph.uses(y)):
        old.append(node)
        if _absorbs(graph, node, k, axis):
            replace_value(graph, node.output, _absorb_input(graph, node, x, idx))
            continue
        moved, order = _pass_through(graph, node, k, x, np.argsort(idx), axis)
        _fold_into_readers(graph, node.output, moved, np.argsort(order), axis, old)


def _shuffle_index(m: Match) -> Optional[np.ndarray]:
    """The permutation the matched reshape-permute-reshape computes (None if it is no channel shuffle)."""
    x, grouped, out = m["x"].type, m["grouped"].output.type, m["shuffle"].output.type
    if not x.is_static or x.rank < 2 or tuple(out.shape) != tuple(x.shape) or grouped.rank != x.rank + 1:
        return None
    gs, xs = grouped.shape, x.shape
    if gs[0] != xs[0] or gs[1] * gs[2] != xs[1] or tuple(gs[3:]) != tuple(xs[2:]):
        return None
    return shuffle_permutation(xs[1], gs[1])


def _chain_refusal(graph: Graph, chain: list[Node], axis: int) -> Optional[str]:
    """Why a permutation cannot move along ``chain`` (ops in order from the permutation's side; None if it can)."""
    for node in chain:
        if not _moves_past(graph, node, 0, axis):
            return f"{describe(node)} between the permutation and the layer cannot pass it"
    return None


def _channel_axis(perm: Node) -> int:
    rank = perm.inputs[0].type.rank
    return perm.attrs["axis"] % rank if rank else 0


_PERM = Op("index_select", Any("x"), Any("idx"), name="perm")


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldChannelPermutation(RewritePass):
    """Turns channel shuffles into channel permutations (rule ``shuffle``) and folds channel
    permutations into the plain convs and linear layers next to them, across per-channel ops:
    into the output channels of the layer before (``producer``, when the layer's result is read
    only on the way to the permutation) or the input channels of every layer after (``consumer``,
    when every path from the permutation ends in one). The rules and the invariant are in the
    module docstring; afterwards no match passes its check. Runs before the layout pass."""

    name = "fold_channel_permutation"
    pattern = OneOf(
        shuffle=Op("reshape", Op("permute", Op("reshape", Any("x"), name="grouped", single_use=True),
                                 where=_is_shuffle_permute, single_use=True), name="shuffle"),
        producer=Op("index_select",
                    Chain(_PER_CHANNEL, Op(_LAYERS, Any("lx"), Any("w"), Any("b", optional=True), name="layer"),
                          name="chain"),
                    Any("idx"), name="perm"),
        consumer=Op(_LAYERS, Chain((*_PER_CHANNEL, "conv"), _PERM, name="chain", single_use=False),
                    Any("w"), Any("b", optional=True), name="layer"),
        strided=Op("slice", Chain(_PER_CHANNEL, Op(_LAYERS, Any("lx"), Any("w"), Any("b", optional=True), name="layer"),
                                  name="chain", single_use=False),
                   name="slice", where=lambda n: n.attrs["step"] > 1),
    )

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        if m.rule == "shuffle":
            return None if _shuffle_index(m) is not None else "the reshapes do not split and merge the channel axis"
        if m.rule == "strided":
            return _strided_refusal(graph, m)
        perm, layer = m["perm"], m["layer"]
        refused = _refuse_permutation(graph, perm, layer) or _refuse_layer(graph, layer)
        if refused:
            return refused
        axis = _channel_axis(perm)
        if m.rule == "producer":
            if not read_once(graph, layer.output):
                return f"the {layer.op}'s result has other readers"
            return _chain_refusal(graph, m["chain"][::-1], axis)
        return _chain_refusal(graph, m["chain"][::-1], axis) or _refuse_readers(graph, perm.output, axis)

    def rewrite(self, graph: Graph, m: Match) -> None:
        if m.rule == "shuffle":
            node = m["shuffle"]
            index = graph.add_constant(_shuffle_index(m).astype(np.int64), name=f"{node.output.name_hint}_shuffle")
            select = graph.add_node("index_select", [m["x"], index], {"axis": 1}, loc=node.loc,
                                    name=node.output.name_hint)
            replace_value(graph, node.output, select.output)
            return
        if m.rule == "strided":
            _group_strides(graph, m)
            return
        perm = m["perm"]
        idx, axis = graph.constant_value(perm.inputs[1]), _channel_axis(perm)
        if m.rule == "producer":
            _absorb_output(graph, m["layer"], m["chain"], perm, idx, axis)
            return
        old: list[Node] = [perm]
        _fold_into_readers(graph, perm.output, perm.inputs[0], idx, axis, old)
        erase_dead(graph, old + [v.producer for n in old for v in n.inputs if v.producer.op == "constant"])


def _absorb_output(graph: Graph, layer: Node, chain: list[Node], perm: Node, idx: np.ndarray, axis: int) -> None:
    """layer -> chain -> permutation: the layer computes its output channels in ``idx``'s order, the
    chain's per-channel constants follow, and the permutation's readers read the rebuilt chain."""
    inputs = [layer.inputs[0], *(_taken(graph, v, idx, 0) for v in layer.inputs[1:])]
    v = _rebuilt(graph, layer, inputs)
    for node in reversed(chain):
        v, _ = _pass_through(graph, node, 0, v, idx, axis)
    replace_value(graph, perm.output, v)


# ------------------------------------------------------------------ strided slices splitting the channels


def _split_value(m: Match) -> Value:
    """The value the strided slices read: the top of the chain, or the layer's result."""
    return m["chain"][0].output if m["chain"] else m["layer"].output


def _strided_refusal(graph: Graph, m: Match) -> Optional[str]:
    """Why the strided slices of the matched value do not split a layer's channels into stride groups."""
    layer, chain = m["layer"], m["chain"]
    refused = _refuse_layer(graph, layer)
    if refused:
        return refused
    v = _split_value(m)
    axis = 1 if layer.op == "conv" else v.type.rank - 1
    for node in [layer, *chain[::-1]][:-1]:  # every value below the top is read on the way only
        if not read_once(graph, node.output):
            return f"{describe(node)}'s result has other readers"
    refused = _chain_refusal(graph, chain[::-1], axis)
    if refused:
        return refused
    if graph.is_output(v):
        return "the sliced channels are a graph output"
    slices = [n for n, _ in graph.uses(v)]
    channels = v.type.shape[axis]
    if isinstance(channels, str) or any(n.op != "slice" or n.attrs["axis"] % v.type.rank != axis for n in slices):
        return f"the channels are read by other ops than slices along the {layer.op}'s channel axis"
    steps = {n.attrs["step"] for n in slices}
    s = steps.pop()
    if steps:
        return "the slices have different steps"
    starts = sorted(slice(n.attrs["start"], n.attrs["end"], s).indices(channels)[0] for n in slices)
    whole = all(len(range(*slice(n.attrs["start"], n.attrs["end"], s).indices(channels)))
                == len(range(slice(n.attrs["start"], None, s).indices(channels)[0], channels, s)) for n in slices)
    if s > channels or starts != list(range(s)) or not whole:
        return f"the slices of step {s} do not start at 0..{s - 1} and run to the end of the channels"
    return None


def _group_strides(graph: Graph, m: Match) -> None:
    """The channels permuted into stride groups, each strided slice a step-1 slice of its group."""
    v = _split_value(m)
    axis = 1 if m["layer"].op == "conv" else v.type.rank - 1
    channels = v.type.shape[axis]
    slices = [n for n, _ in graph.uses(v)]
    s = slices[0].attrs["step"]
    idx = np.concatenate([np.arange(r, channels, s) for r in range(s)]).astype(np.int64)
    index = graph.add_constant(idx, name=f"{v.name_hint}_stride_groups")
    grouped = graph.add_node("index_select", [v, index], {"axis": axis}, loc=slices[0].loc,
                             name=f"{v.name_hint}_grouped").output
    for node in slices:
        r = slice(node.attrs["start"], node.attrs["end"], s).indices(channels)[0]
        start = sum(len(range(q, channels, s)) for q in range(r))
        piece = graph.add_node("slice", [grouped], {"axis": axis, "start": start,
                                                    "end": start + len(range(r, channels, s)), "step": 1},
                               types=[node.output.type], loc=node.loc, name=node.output.name_hint).output
        replace_value(graph, node.output, piece)
    erase_dead(graph, slices)
