"""Slices moved above the row-wise ops that compute what they slice, so those ops compute only the
rows that are kept.

A slice along axis a of the result of an op that treats the positions along a independently
equals the op on slices of its inputs:

* elementwise ops (broadcasting): each input sliced along its own axis a, unless it broadcasts
  there (size 1 or absent), then it is read whole;
* ``layer_norm`` normalizing axes after a, ``linear`` when a is not the feature (last) axis,
  ``softmax`` / ``log_softmax`` along another axis: the first input sliced, weights as they are;
* ``permute``: its input sliced along the axis that becomes a; ``reshape`` (static) when a is
  one axis of its input too (the same size, with as many elements before it): the input sliced
  there, the reshape to the sliced size;
* ``sdpa`` (not causal, no mask) sliced along the query axis: the queries sliced, every key and
  value kept (each query row attends on its own).

A model that classifies from one token (ViT's class token ``x[:, 0]`` after the last block's
norm and MLP) then runs that block's layer norms, MLP, attention output projection and
attention queries on one row instead of 197 (the keys and values still see every token). The slice
moves only when every reader of the op's result is the same slice (then one sliced op serves
them all) and the result is not a graph output, so nothing is computed twice.

Invariant afterwards: no ``slice`` reads the result of such a row-wise op whose every reader is
an identical slice (the postcondition: no match passes its check).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.ops import SCHEMAS
from ..ir.ops.common import take_slice
from .manager import register_pass
from .rewrite import Any, Match, Op, RewritePass, describe, replace_value

__all__ = ["HoistSlices"]

_ELEMENTWISE = tuple(sorted(n for n, s in SCHEMAS.items() if s.family == "elementwise"))
_ROW_WISE = (*_ELEMENTWISE, "layer_norm", "linear", "softmax", "log_softmax", "permute", "reshape", "sdpa")


def _key(node: Node) -> tuple:
    a = node.attrs
    return a["axis"] % node.inputs[0].type.rank, a["start"], a["end"], a["step"]


def _refuse_op(node: Node, axis: int) -> Optional[str]:
    """Why ``node`` does not treat the positions along ``axis`` independently (None if it does)."""
    rank = node.output.type.rank
    if len(node.outputs) != 1:
        return f"{describe(node)} has several results"
    if node.op == "layer_norm" and axis >= rank - node.attrs["num_axes"]:
        return f"{describe(node)} normalizes over the sliced axis"
    if node.op == "linear" and axis == rank - 1:
        return f"{describe(node)} reads the sliced axis as its features"
    if node.op in ("softmax", "log_softmax") and node.attrs["axis"] % rank == axis:
        return f"{describe(node)} runs along the sliced axis"
    if node.op == "sdpa" and (node.attrs["is_causal"] or len(node.inputs) > 3 or axis != rank - 2):
        return f"{describe(node)} is causal, has a mask or is not sliced along its queries"
    if node.op == "reshape" and _reshape_axis(node, axis) is None:
        return f"{describe(node)} merges or splits the sliced axis"
    if node.op not in (*_ELEMENTWISE, "reshape") and node.inputs[0].type.rank != rank:
        return f"{describe(node)} changes the rank"
    return None


def _reshape_axis(node: Node, axis: int) -> Optional[int]:
    """The input axis of reshape ``node`` whose rows are its result's rows along ``axis`` (None if none)."""
    x, y = node.inputs[0].type, node.output.type
    if not (x.is_static and y.is_static):
        return None
    before = int(np.prod(y.shape[:axis], dtype=np.int64))
    for b in range(x.rank):
        if x.shape[b] == y.shape[axis] and int(np.prod(x.shape[:b], dtype=np.int64)) == before:
            return b
    return None


def _sliced_input(graph: Graph, v: Value, rank: int, axis: int, slice_node: Node) -> Value:
    """Input ``v`` of the op (of result rank ``rank``), sliced as its result is along ``axis`` (read
    whole where it broadcasts: its axes align with the result's from the last)."""
    own = axis - (rank - v.type.rank)
    if own < 0 or v.type.shape[own] == 1:
        return v
    _, start, end, step = _key(slice_node)
    value = graph.constant_value(v)
    if value is not None:
        return graph.add_constant(np.ascontiguousarray(take_slice(value, own, start, end, step)),
                                  name=v.name_hint, dtype=v.type.dtype)
    return graph.add_node("slice", [v], {"axis": own, "start": start, "end": end, "step": step},
                          loc=slice_node.loc, name=f"{v.name_hint}_rows").output


@register_pass
@dataclasses.dataclass(frozen=True)
class HoistSlices(RewritePass):
    """Moves a ``slice`` above the row-wise op (elementwise, layer norm, linear, softmax on other
    axes, permute, a reshape keeping the sliced axis, attention along its queries) that computes
    what it slices, when every reader of that op's result is the same slice; the op then computes
    only the kept rows. Rules and invariant in the module docstring."""

    name = "hoist_slices"
    pattern = Op("slice", Op(_ROW_WISE, Any("x"), rest=True, name="op"), name="slice")
    max_rounds: int = 1000  # (one level of ops per round: a long row-wise chain takes one round per op)

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        op, sl = m["op"], m["slice"]
        axis = _key(sl)[0]
        refused = _refuse_op(op, axis)
        if refused:
            return refused
        out = op.output
        if op.meta.get("quantized") is not None:
            return f"{describe(op)} is quantized"
        if graph.is_output(out):
            return f"{describe(op)}'s result is a graph output"
        if any(n.op != "slice" or _key(n) != _key(sl) for n, _ in graph.uses(out)):
            return f"{describe(op)}'s result has readers other than this slice"
        if not out.type.is_static:
            return "the sliced axis has a run-time size"
        return None

    def rewrite(self, graph: Graph, m: Match) -> None:
        op, sl = m["op"], m["slice"]
        axis, rank = _key(sl)[0], op.output.type.rank
        attrs = dict(op.attrs)
        if op.op in _ELEMENTWISE:
            inputs = [_sliced_input(graph, v, rank, axis, sl) for v in op.inputs]
        elif op.op in ("permute", "reshape"):
            x = op.inputs[0]
            own = op.attrs["perm"][axis] if op.op == "permute" else _reshape_axis(op, axis)
            inputs = [_sliced_input(graph, x, x.type.rank, own, sl)]
            if op.op == "reshape":
                attrs["shape"] = list(sl.output.type.shape)
        else:
            inputs = [_sliced_input(graph, op.inputs[0], rank, axis, sl), *op.inputs[1:]]
        moved = graph.add_node(op.op, inputs, attrs, loc=op.loc, name=op.output.name_hint).output
        readers = [n for n, _ in graph.uses(op.output)]
        for node in readers:
            replace_value(graph, node.output, moved)
        for node in readers:
            if node in graph and node is not sl:
                graph.erase(node)
