"""A select that replaces a run of rows starting at a run-time position, as a dynamic update slice.

A static key/value cache written out of place (``generative.cache.written``) is
``where(rows outside [s, s + T), x, u)`` over the whole cache x: every call reads and writes all
of it. The same result is ``dynamic_update_slice(x, rows, s)``, which copies x and writes the T
new rows only (TFLite's DYNAMIC_UPDATE_SLICE: no pass over the cache to select). Matched:

* ``where(cond, x, u)`` (or ``where(cond', u, x)`` with the complementary condition) whose
  result has x's shape and dtype;
* cond, along one axis a of x and 1 elsewhere (reshapes moving 1-sized axes only), is
  ``(i < s) | (i >= s + T)`` (cond': ``(i >= s) & (i < s + T)``), i the constant
  ``0 ... x.shape[a] - 1``, comparisons written either way round (``s > i`` for ``i < s``), T a
  constant;
* s an integer scalar provably in [0, x.shape[a] - T]: a clamp (``minimum(maximum(s0, lo),
  hi)``, or the other way round) with 0 <= lo and hi <= x.shape[a] - T;
* the new rows: u of x's shape but 1 along a, broadcast (T = 1), or
  ``index_select(y, i - s, axis=a)`` (the index possibly clamped), y of x's shape but T along a.

Then the select equals ``dynamic_update_slice(x, u or y, s)`` for every input, and so replaces it
(where the clamp is exactly the update's own, [0, x.shape[a] - T], the update reads s0).
Invariant afterwards: no such select is left.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from .manager import Pass, register_pass
from .rewrite import erase_dead, replace_value

__all__ = ["UpdateSliceFromSelect"]

# comparison op -> (the kind of bound when the iota is the first operand, when it is the second):
# "below" b means i < b, "from" b means i >= b
_BOUNDS = {"lt": ("below", None), "ge": ("from", None), "gt": (None, "below"), "le": (None, "from")}


def _unit_reshapes(v: Value) -> Value:
    """``v`` through the reshapes above it that only add or drop 1-sized axes."""
    while v.producer.op == "reshape" and _core(v.producer.inputs[0].type.shape) == _core(v.type.shape):
        v = v.producer.inputs[0]
    return v


def _core(shape) -> list:
    return [d for d in shape if d != 1]


def _constant(v: Value) -> Optional[np.ndarray]:
    v = _unit_reshapes(v)
    return np.asarray(v.producer.value) if v.producer.op == "constant" else None


def _scalar_constant(v: Value) -> Optional[int]:
    value = _constant(v)
    if value is None or value.size != 1 or value.dtype.kind not in "iu":
        return None
    return int(value.reshape(()))


def _is_iota(v: Value, length: int) -> bool:
    value = _constant(v)
    return value is not None and value.dtype.kind in "iu" and value.size == length \
        and np.array_equal(value.reshape(-1), np.arange(length))


def _bound(v: Value, length: int) -> Optional[tuple[str, Value]]:
    """("below", b) if ``v`` is i < b, ("from", b) if i >= b (i the iota of ``length``), else None."""
    node = v.producer
    if node.op not in _BOUNDS or len(node.inputs) != 2:
        return None
    for position, kind in enumerate(_BOUNDS[node.op]):
        iota, bound = node.inputs[position], node.inputs[1 - position]
        if kind is not None and _is_iota(iota, length) and bound.type.is_static and bound.type.numel == 1:
            return kind, bound
    return None


def _run(cond: Value, length: int) -> Optional[tuple[bool, Value, Value]]:
    """(inside, s, e) if ``cond`` is i outside [s, e) (inside False) or inside it (True)."""
    node = _unit_reshapes(cond).producer
    if node.op not in ("logical_or", "logical_and"):
        return None
    bounds = [_bound(v, length) for v in node.inputs]
    if None in bounds:
        return None
    kinds = dict(bounds)
    if len(kinds) != 2:
        return None
    inside = node.op == "logical_and"
    return (inside, kinds["from"], kinds["below"]) if inside else (inside, kinds["below"], kinds["from"])


def _offset(end: Value, start: Value) -> Optional[int]:
    """T if ``end`` is ``start + T`` (T a constant), else None."""
    node = end.producer
    if node.op != "add":
        return None
    for k in (0, 1):
        if node.inputs[k] is start:
            return _scalar_constant(node.inputs[1 - k])
    return None


def _clamped(s: Value) -> Optional[tuple[Value, int, int]]:
    """(s0, lo, hi) if ``s`` is s0 (of s's shape) clamped to [lo, hi] by a maximum and a
    minimum, else None."""
    outer = s.producer
    if outer.op not in ("minimum", "maximum"):
        return None
    inner_op = "maximum" if outer.op == "minimum" else "minimum"
    for k in (0, 1):
        inner, outer_bound = outer.inputs[k].producer, _scalar_constant(outer.inputs[1 - k])
        if inner.op != inner_op or outer_bound is None:
            continue
        for j in (0, 1):
            inner_bound = _scalar_constant(inner.inputs[1 - j])
            if inner_bound is not None and list(inner.inputs[j].type.shape) == list(s.type.shape):
                lo, hi = (inner_bound, outer_bound) if outer.op == "minimum" else (outer_bound, inner_bound)
                return inner.inputs[j], lo, hi
    return None


def _start(s: Value, rows: int, length: int) -> Optional[Value]:
    """The start to update at: ``s`` if it is proven in [0, length - rows] (its clamp's input where
    the clamp is the update's own), else None."""
    if s.type.dtype[0] not in "iu":
        return None
    clamp = _clamped(s)
    if clamp is None or clamp[1] < 0 or clamp[2] > length - rows or clamp[1] > clamp[2]:
        return None
    s0, lo, hi = clamp
    return s0 if (lo, hi) == (0, length - rows) and s0.type.dtype[0] in "iu" else s


def _rows(u: Value, x: Value, axis: int, start: Value, rows: int) -> Optional[Value]:
    """The ``rows`` new rows that ``u`` spreads over the written run, or None."""
    def fits(v: Value, n: int) -> bool:
        shape = list(x.type.shape)
        shape[axis] = n
        return v.type.rank == x.type.rank and list(v.type.shape) == shape and v.type.dtype == x.type.dtype

    if rows == 1 and fits(u, 1):
        return u
    node = u.producer
    if node.op != "index_select" or node.attrs["axis"] % x.type.rank != axis or not fits(node.inputs[0], rows):
        return None
    index = node.inputs[1].producer
    clamp = _clamped(node.inputs[1])
    if clamp is not None:
        index = clamp[0].producer  # (clamped or not: the rows outside the run are not selected)
    if index.op != "sub" or index.inputs[1] is not start or not _is_iota(index.inputs[0], x.type.shape[axis]):
        return None
    return node.inputs[0]


def _axis(cond: Value, x: Value) -> Optional[int]:
    """The axis of x along which ``cond`` varies (1 along every other), or None."""
    if cond.type.rank > x.type.rank or not cond.type.is_static or not x.type.is_static:
        return None
    shape = [1] * (x.type.rank - cond.type.rank) + list(cond.type.shape)
    varying = [k for k, d in enumerate(shape) if d != 1]
    if len(varying) != 1 or shape[varying[0]] != x.type.shape[varying[0]]:
        return None
    return varying[0]


def _match(node: Node) -> Optional[tuple[Value, Value, Value, int]]:
    """(x, new rows, start, axis) of the update slice computing ``node``'s (a where's) result,
    or None."""
    cond, a, b = node.inputs
    for x, u, inside in ((a, b, False), (b, a, True)):
        axis = _axis(cond, x) if list(x.type.shape) == list(node.output.type.shape) else None
        if axis is None or x.type.dtype != node.output.type.dtype:
            continue
        length = x.type.shape[axis]
        run = _run(cond, length)
        if run is None or run[0] != inside:
            continue
        rows = _offset(run[2], run[1])
        start = _start(run[1], rows, length) if rows is not None and 0 < rows <= length else None
        new = _rows(u, x, axis, run[1], rows) if start is not None else None
        if new is not None:
            return x, new, start, axis
    return None


def _update(graph: Graph, node: Node) -> Optional[Value]:
    """The dynamic update slice computing ``node``'s (a where's) result, or None."""
    match = _match(node)
    if match is None:
        return None
    x, new, start, axis = match
    if start.type.rank:
        start = graph.add_node("reshape", [start], {"shape": []}, loc=node.loc).output
    return graph.add_node("dynamic_update_slice", [x, new, start], {"axis": axis}, loc=node.loc,
                          name=node.output.name_hint).output


@register_pass
@dataclasses.dataclass(frozen=True)
class UpdateSliceFromSelect(Pass):
    """Selects that write a run of rows at a run-time start become dynamic update slices (see
    the module docstring for the pattern and the invariant)."""

    name = "update_slice_from_select"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.topo_order():
            if node in graph and node.op == "where":
                update = _update(graph, node)
                if update is not None:
                    replace_value(graph, node.output, update)
                    changed = True
        if changed:
            for node in reversed(graph.topo_order()):
                erase_dead(graph, [node])
        return changed

    def postcondition(self, graph: Graph) -> Optional[str]:
        left = next((n for n in graph.topo_order() if n.op == "where" and _match(n) is not None), None)
        if left is None:
            return None
        return f"where#{left.id} writes a run of rows at a run-time start and was not rewritten"
