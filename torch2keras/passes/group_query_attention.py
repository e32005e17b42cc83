"""Grouped-query attention over the key/value heads themselves, not repeated copies.

A model with fewer key/value heads than query heads (``g`` groups of ``rep`` query heads)
repeats its keys and values before attention (Hugging Face's ``repeat_kv``):
``reshape(expand(reshape(x, [b, g, 1, L, d]), [b, g, rep, L, d]), [b, g * rep, L, d])``, a
copy of ``rep`` times a whole key/value cache per layer and call. An ``sdpa`` whose keys and
values are both repeated that way (same ``rep``, not causal, a mask of one head) attends
instead with ``x`` itself and each group's queries as rows: q [b, g * rep, T, d] reshaped to
[b, g, rep * T, d] (row r * T + t: head r of the group, token t), the mask's T rows repeated
``rep`` times (as it is for T = 1), the result reshaped back to [b, g * rep, T, d].

Invariant afterwards: no non-causal ``sdpa`` with a one-head mask (or none) reads keys and
values that are both such a repetition.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir import Graph, Node, Value
from .manager import Pass, register_pass
from .rewrite import erase_dead

__all__ = ["GroupQueryAttention"]


def _repetition(v: Value) -> Optional[tuple[Value, int]]:
    """(x, rep) if ``v`` is x [b, g, L, d] with each head repeated ``rep`` times, else None."""
    outer = v.producer
    if outer.op != "reshape" or outer.inputs[0].producer.op != "expand":
        return None
    expand = outer.inputs[0].producer
    inner = expand.inputs[0].producer
    if inner.op != "reshape" or not all(t.type.is_static for t in (inner.inputs[0], expand.output, v)):
        return None
    x = inner.inputs[0]
    if x.type.rank != 4:
        return None
    b, g, length, d = x.type.shape
    rep = expand.output.type.shape[2] if expand.output.type.rank == 5 else 0
    shapes = (tuple(inner.output.type.shape), tuple(expand.output.type.shape), tuple(v.type.shape))
    if rep < 2 or shapes != ((b, g, 1, length, d), (b, g, rep, length, d), (b, g * rep, length, d)):
        return None
    return x, rep


def _repeated_rows(graph: Graph, mask: Value, rep: int, rows: int, node: Node) -> Optional[Value]:
    """The mask [m, 1, T, L] for the grouped scores [b, g, rep * T, L]; None if it has heads."""
    if not mask.type.is_static or mask.type.rank != 4 or mask.type.shape[1] != 1:
        return None
    m, _, t, length = mask.type.shape
    if t == 1:
        return mask
    if t != rows:
        return None
    five = graph.add_node("reshape", [mask], {"shape": [m, 1, 1, t, length]}, loc=node.loc).output
    tiled = graph.add_node("expand", [five], {"shape": [m, 1, rep, t, length]}, loc=node.loc).output
    return graph.add_node("reshape", [tiled], {"shape": [m, 1, rep * t, length]}, loc=node.loc).output


def _grouped(graph: Graph, node: Node) -> Optional[Value]:
    """The grouped attention computing ``node``'s result, or None where it does not apply."""
    if node.attrs["is_causal"]:
        return None
    q, k, v = node.inputs[:3]
    keys, values = _repetition(k), _repetition(v)
    if keys is None or values is None or keys[1] != values[1] or not q.type.is_static or q.type.rank != 4:
        return None
    (xk, rep), (xv, _) = keys, values
    b, heads, t, d = q.type.shape
    g = xk.type.shape[1]
    if xv.type.shape[1] != g or heads != g * rep:
        return None
    inputs = [graph.add_node("reshape", [q], {"shape": [b, g, rep * t, d]}, loc=node.loc).output, xk, xv]
    if len(node.inputs) > 3:
        mask = _repeated_rows(graph, node.inputs[3], rep, t, node)
        if mask is None:
            return None
        inputs.append(mask)
    out = graph.add_node("sdpa", inputs, dict(node.attrs), loc=node.loc, name=node.output.name_hint).output
    return graph.add_node("reshape", [out], {"shape": list(node.output.type.shape)}, loc=node.loc).output


@register_pass
@dataclasses.dataclass(frozen=True)
class GroupQueryAttention(Pass):
    """Attention over repeated keys and values rewritten over the unrepeated ones (see the
    module docstring for the invariant)."""

    name = "group_query_attention"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.topo_order():
            if node in graph and node.op == "sdpa":
                grouped = _grouped(graph, node)
                if grouped is not None:
                    graph.replace_all_uses(node.output, grouped)
                    changed = True
        if changed:
            for node in reversed(graph.topo_order()):
                erase_dead(graph, [node])
        return changed
