"""The layout cost model and its minimum cut.

A value converted to another layout costs the bytes it holds plus ``CONVERSION_OVERHEAD``
(running one more op), once per distinct target layout (conversions are shared by all the
consumers that need them); constants cost nothing (they are stored pre-transposed); a symbolic
dim counts as ``NOMINAL_SIZE`` elements. A region's own least cost under each option of its node,
times how often it runs (``region_runs``), is a unary term of the node's variable.

``solve`` builds the energy of a labelling (one binary variable per op with a choice) and
minimises it with one s-t minimum cut: exact where every consumer agrees with the labelling of
its input (the submodular case, which covers every layout rule); the rare "crossed" demands
are approximated and counted (``LayoutStats.approximated``).
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Optional

import attrs
import numpy as np

from ...ir import Node, Value
from ...ir.layout_rules import Options
from ...ir.symbolic import NOMINAL_SIZE, nominal_numel
from ...ir.types import DTYPES, Layout
from .mincut import Energy

__all__ = ["CONVERSION_OVERHEAD", "LayoutStats", "NOMINAL_TRIPS", "Problem", "region_runs", "solve"]

NOMINAL_TRIPS = 8  # the cost model's trip count of a while_loop (unknown until run time)
CONVERSION_OVERHEAD = 64.0  # bytes: what one conversion costs beyond its data (an op to run)


def region_runs(node: Node) -> float:
    """How many times the cost model counts each region of ``node`` as running per call: a
    branch of ``cond`` half the time (either is as likely), a ``while_loop``'s regions
    ``NOMINAL_TRIPS`` times, a ``scan``/``map`` body once per row (a symbolic length counts as
    ``NOMINAL_SIZE``)."""
    if node.op == "cond":
        return 0.5
    if node.op == "while_loop":
        return float(NOMINAL_TRIPS)
    xs = node.inputs[node.attrs["num_init"]] if node.op == "scan" else node.inputs[0]
    length = xs.type.shape[0]
    return float(NOMINAL_SIZE if isinstance(length, str) else max(length, 1))


def conversion_cost(v: Value) -> float:
    """What converting ``v`` to another layout costs."""
    return float(nominal_numel(v.type) * np.dtype(DTYPES[v.type.dtype]).itemsize) + CONVERSION_OVERHEAD


@attrs.define
class LayoutStats:
    """What one solve did: for ``report.layout``."""

    variables: int = 0  # ops with a choice
    demands: int = 0  # (value, consumer) requirements
    approximated: int = 0  # crossed demands charged approximately
    seconds: float = 0.0
    method: str = "min_cut"  # "min_cut" or "greedy" (the fallback for very large graphs)
    cost: float = 0.0


@attrs.define
class Problem:
    """One graph's layout problem: its nodes, their options, and how the pass sees them."""

    nodes: list[Node]
    options: dict[int, Options]
    alias: dict[int, int]  # node id -> the node id whose variable it shares (a state update)
    candidates: Callable[[Value], tuple[Layout, Layout]]
    output_layouts: list[tuple[Value, Layout]]  # graph outputs and the layouts they must have
    region_cost: Callable[[Node, Options, int], float]  # a control-flow node's regions' cost under label d

    def var(self, node: Node) -> Hashable:
        nid = self.alias.get(node.id, node.id)
        return ("node", nid) if self.options[nid].is_choice else 0


def _demands(p: Problem) -> tuple[dict[int, list], dict[int, Value]]:
    """Per value: [(consumer variable, layout wanted under label 0, under label 1)]."""
    demands: dict[int, list] = {}
    values: dict[int, Value] = {}
    for node in p.nodes:
        opts = p.options[node.id]
        for i, v in enumerate(node.inputs):
            if v.producer.op == "constant" or (opts.ins[0][i] is None and opts.ins[1][i] is None):
                continue
            want = tuple(opts.ins[d][i] if opts.ins[d][i] is not None else p.candidates(v)[d] for d in (0, 1))
            demands.setdefault(v.id, []).append((p.var(node), want[0], want[1]))
            values[v.id] = v
    for v, want in p.output_layouts:
        if v.producer.op != "constant":
            demands.setdefault(v.id, []).append((0, want, want))
            values[v.id] = v
    return demands, values


def solve(p: Problem, max_variables: Optional[int] = None) -> tuple[float, dict[int, int], LayoutStats]:
    """The least cost, the label of each node (by id) that has a choice, and the statistics.
    Above ``max_variables`` ops with a choice, every op takes label 0 (it runs in the layout its
    reference input already has) instead of solving the cut."""
    start = time.perf_counter()
    choices = sum(1 for n in p.nodes if p.options[n.id].is_choice)
    if max_variables is not None and choices > max_variables:
        return 0.0, {}, LayoutStats(variables=choices, method="greedy", seconds=time.perf_counter() - start)
    demands, values = _demands(p)
    region_costs = {node.id: [p.region_cost(node, p.options[node.id], d) for d in (0, 1)]
                    for node in p.nodes if node.regions and p.options[node.id].is_choice}
    total = sum(conversion_cost(v) for v in values.values()) + sum(max(c) for c in region_costs.values())
    energy = Energy(infinity=4 * total + 1)
    for vid, wants in demands.items():
        v = values[vid]
        _value_terms(energy, v, p.var(v.producer), p.candidates(v), wants, conversion_cost(v), energy.infinity)
    for nid, (cost0, cost1) in region_costs.items():  # what each option costs inside the regions
        energy.unary(("node", nid), cost0, cost1)
    cost, labels = energy.solve()
    stats = LayoutStats(variables=choices, demands=sum(len(w) for w in demands.values()),
                        approximated=energy.approximated, seconds=time.perf_counter() - start, cost=cost)
    return cost, {key[1]: label for key, label in labels.items() if isinstance(key, tuple) and key[0] == "node"}, stats


def _value_terms(energy: Energy, v: Value, x, cands, wants, cost: float, inf: float) -> None:
    """Terms for value ``v`` (producer label ``x``, layouts ``cands`` per label) and its
    consumers' demands ``wants`` = [(consumer label, layout wanted if 0, if 1)]."""
    c0, c1 = cands
    aux: dict = {}

    def need(layout, consumer, d):
        """Charge ``cost`` once if some consumer labelled ``d`` wants ``layout``."""
        if c0 != c1 and layout in (c0, c1):
            key = ("p" if layout == c1 else "q", v.id)
            if key not in aux:
                aux[key] = key
                if layout == c1:  # p = 1: someone wants c1; charged when x = 0
                    energy.penalty(x, key, cost)
                else:  # q = 0: someone wants c0 (q is "nobody wants c0"); charged when x = 1
                    energy.penalty(key, x, cost)
            wants_p = layout == c1
        else:
            key = ("a", v.id, layout)
            if key not in aux:
                aux[key] = key
                energy.unary(key, 0.0, cost)
            wants_p = True
        _consumer_terms(energy, key, wants_p, x, consumer, d, layout, cands, cost, inf)

    for consumer, want0, want1 in wants:
        for d, layout in ((0, want0), (1, want1)):
            if Energy._fixed(consumer) and consumer != d:
                continue
            if c0 == c1 and layout == c0:
                continue  # already stored that way
            need(layout, consumer, d)


def _consumer_terms(energy: Energy, key, wants_p: bool, x, consumer, d: int, layout, cands, cost: float,
                    inf: float) -> None:
    """A consumer labelled ``d`` wanting ``layout`` forces the aux variable ``key`` on (p=1, a=1
    or q=0); a crossed demand is charged per edge, approximately."""
    c0, c1 = cands
    if Energy._fixed(consumer):
        if consumer == d:
            energy.unary(key, inf, 0.0) if wants_p else energy.unary(key, 0.0, inf)
        return
    if wants_p and d == 1:
        energy.penalty(key, consumer, inf)
    elif not wants_p and d == 0:
        energy.penalty(consumer, key, inf)
    elif layout in (c0, c1) and c0 != c1:  # a crossed demand: charged per edge, approximately
        e = [[0.0, 0.0], [0.0, 0.0]]
        for xl in (0, 1):
            e[xl][d] = cost if cands[xl] != layout else 0.0
        energy.pairwise(x, consumer, e[0][0], e[0][1], e[1][0], e[1][1])
    else:
        energy.unary(consumer, cost if d == 0 else 0.0, cost if d == 1 else 0.0)
