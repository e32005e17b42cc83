"""The layout pass: ``AssignLayout`` asks each op's layout rule for its options, solves the cost
model by minimum cut, applies the labelling, then assigns each region with its boundary pinned.

Regions. The enclosing graph is decided first: each region's inputs and outputs are then pinned
to exactly the layouts chosen for the node's operands and results (``regions.boundary_layouts``)
and the region is assigned like a graph of its own, recursively. The choice at the boundary is
exact for the cost model: the regions' own optimal cost under each of the node's two options
(computed by solving them with that boundary) is a unary term of the node's variable.

Large graphs. Above ``max_variables`` ops with a choice the cut is skipped and every op runs in
the layout its reference input already has (label 0: layouts propagate forward from the
channel-aware ops); ``report.layout`` says which method ran.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

from ...ir import Graph, Node, Value
from ...ir.layout_rules import Options, cl, ident, rule_for
from ...ir.regions import boundary_layouts
from ...ir.types import Layout
from ..manager import Pass, register_pass
from .cost import LayoutStats, Problem, region_runs, solve
from .rewrite import apply_labels

__all__ = ["AssignLayout", "requested_layout"]


def _resolve(spec, name: str, index: int):
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return spec.get(name)
    return spec[index] if index < len(spec) else None


def requested_layout(spec, rank: int) -> Layout:
    """A requested boundary layout: None/"torch"/"channels_first", "channels_last", or an explicit
    permutation (a region's boundary)."""
    if isinstance(spec, (tuple, list)):
        if sorted(spec) != list(range(rank)):
            raise ValueError(f"layout {tuple(spec)} is not a permutation of {rank} axes")
        return tuple(int(a) for a in spec)
    if spec in (None, "torch", "channels_first"):
        return ident(rank)
    if spec == "channels_last":
        return cl(rank)
    raise ValueError(f"unknown layout {spec!r}: use 'channels_last' or None")


@register_pass
@dataclasses.dataclass(frozen=True)
class AssignLayout(Pass):
    """Assigns every value a physical layout by a global minimum cut (see ``passes/layout``).

    Afterwards every value has a layout each consumer's rule accepts (the verifier checks it),
    each (value, layout) pair is converted at most once, reshapes/permutes that the layouts make
    free cost no data movement, every region's boundary is stored as its node's operands and
    results, and each state is read and updated in one layout. With ``optimize=False`` only
    channel-aware ops run channels-last, everything else in PyTorch's order (transposes around
    every channel-aware op): the baseline of benchmarks. Returns whether any value was stored
    other than in PyTorch's order or any relayout was inserted.
    """

    name = "assign_layout"
    input_layouts: object = None  # None | "channels_last" | {name: layout} | [layout, ...]
    output_layouts: object = None
    optimize: bool = True
    max_variables: int = 100_000

    def run_nested(self, graph: Graph) -> bool:
        """The enclosing graph first, then each region with its boundary pinned (``run``)."""
        return self.run(graph)

    def run(self, graph: Graph) -> bool:
        if any(n.op == "relayout" for _, n in graph.walk()):
            raise ValueError("assign_layout expects a graph without relayouts (run it once)")
        problem = self._problem(graph)
        labels: dict[int, int] = {}
        stats = LayoutStats(method="none")
        if self.optimize:
            _, labels, stats = solve(problem, self.max_variables)
        _record(graph, stats)
        labelled = {nid: labels.get(problem.alias.get(nid, nid), 0) for nid in problem.options}
        changed = apply_labels(graph, problem.nodes, problem.options, labelled, self._output_layout)
        graph.meta["layouts_assigned"] = True
        for node in problem.nodes:
            if node.regions:
                boundary = boundary_layouts(node.op, [v.type.perm for v in node.inputs],
                                            [v.type.perm for v in node.outputs], node.attrs)
                for name, region in node.regions.items():
                    changed |= self._inside(*boundary[name]).run(region)
        return changed

    def with_alternative(self, cands: tuple[Layout, Layout], rank: int) -> tuple[Layout, Layout]:
        """``cands``, or (its one layout, the other of channels-last / PyTorch order)."""
        if cands[0] != cands[1] or not self.optimize:
            return cands
        own = cands[0]
        other = cl(rank) if own != cl(rank) and rank >= 3 else ident(rank)
        return own, other

    # ------------------------------------------------------------------ the problem

    def _inside(self, ins: list, outs: list) -> "AssignLayout":
        """The pass for a region whose inputs and outputs are pinned to ``ins`` and ``outs``."""
        return dataclasses.replace(self, input_layouts=list(ins), output_layouts=list(outs))

    def _output_layout(self, index: int, name: str, v: Value) -> Layout:
        return requested_layout(_resolve(self.output_layouts, name, index), v.type.rank)

    def _problem(self, graph: Graph) -> Problem:
        nodes = graph.topo_order()
        ctx = _Context(self, graph)
        for node in nodes:
            if node.op != "state_update":
                ctx.options[node.id] = rule_for(node).options(node, ctx)
        alias = _tie_state_updates(nodes, ctx.options)
        outputs = [(v, self._output_layout(i, n, v)) for i, (n, v) in enumerate(zip(graph.output_names, graph.outputs))]
        return Problem(nodes, ctx.options, alias, ctx.candidates, outputs, self._regions_cost)

    def _regions_cost(self, node: Node, opts: Options, d: int) -> float:
        """The regions' least cost under option ``d``, each weighted by how often it runs."""
        boundary = boundary_layouts(node.op, opts.ins[d], opts.outs[d], node.attrs)
        runs = region_runs(node)
        return sum(runs * solve(self._inside(*boundary[name])._problem(region))[0]
                   for name, region in node.regions.items())


class _Context:
    """The ``OptionContext`` the rules see while one graph's options are built."""

    def __init__(self, owner: AssignLayout, graph: Graph) -> None:
        self.owner, self.graph = owner, graph
        self.optimize = owner.optimize
        self.options: dict[int, Options] = {}

    def candidates(self, v: Value) -> tuple[Layout, Layout]:
        o = self.options[v.producer.id]
        return o.outs[0][v.index], o.outs[1][v.index]

    def with_alternative(self, cands, rank):
        return self.owner.with_alternative(cands, rank)

    def requested_input_layout(self, node: Node) -> Layout:
        i = self.graph.inputs.index(node.output)
        return requested_layout(_resolve(self.owner.input_layouts, node.attrs["name"], i), node.output.type.rank)


def _tie_state_updates(nodes: list[Node], options: dict[int, Options]) -> dict[int, int]:
    """A ``state_update`` shares its ``state``'s variable: its value is stored like the state."""
    states = {n.attrs["name"]: n for n in nodes if n.op == "state"}
    alias: dict[int, int] = {}
    for node in nodes:
        if node.op == "state_update":
            state = states[node.attrs["name"]]
            o = options[state.id]
            options[node.id] = Options(([o.outs[0][0]], [o.outs[1][0]]), ([], []))
            alias[node.id] = state.id
    return alias


def _record(graph: Graph, stats: LayoutStats) -> None:
    """Keep the solve's statistics on the graph it solved (``report.layout`` sums them)."""
    graph.meta["layout_stats"] = stats
