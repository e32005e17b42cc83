"""Layout assignment over the whole graph, optimal for a stated cost model.

Every op keeps its PyTorch-logical meaning; this pass chooses the *physical* layout of every
value (``TensorType.layout``) and inserts ``relayout`` nodes (physical transposes) where a
consumer needs a value stored differently.

Options. Each op offers one or two options, each a (required input layouts, output layouts)
pair, by its layout class:

  channel    one option: the activation input and the results channels-last (conv, pooling, ...)
  fixed      one option: everything in PyTorch's order (matmul, gather, attention, RNNs, ...)
  agnostic   elementwise: the results and all full-rank inputs share a layout, one of the two
             candidates of the reference input (the first non-constant full-rank input); when
             that input has only one candidate, channels-last or PyTorch order is the other
  axis       like agnostic, with the reference input first; reductions drop the reduced axes
             from the layout; the backend maps axis attributes through the layout
  last_axis  like axis, valid only where the normalised trailing axes stay physically last
             (linear, layer_norm); an invalid candidate becomes PyTorch order
  reshape    the candidate layouts' images through the reshape, where the reshape is then a
             plain physical reshape; otherwise PyTorch order in and out
  permute    always free: the output layout is the image of the input's (the transpose, if
             one is needed, moves to whichever consumer needs another layout)
  shape      reads only its input's sizes (``dim``): no requirement on the input's layout
  region     control flow (cond, while_loop, scan, map): like agnostic, per rank -- all data
             operands and results of rank >= 3 channels-last, or all in PyTorch order (scanned
             inputs and stacked results: rows channels-last, axis 0 kept first); the cost of each
             option includes the best cost of the regions given that boundary (see below)
  state      a ``state`` and its ``state_update`` are one variable of the cut (one stored
             variable: read and written in one layout), PyTorch order or channels-last

Regions. The enclosing graph is decided first: each region's inputs and outputs are then pinned
to exactly the layouts chosen for the node's operands and results (``regions.boundary_layouts``)
and the region is assigned like a graph of its own, recursively. The choice at the boundary is
exact for the cost model: the regions' own optimal cost under each of the node's two options
(computed by solving them with that boundary), times how often they run (``region_runs``: a
loop body once per iteration, so a conversion hoisted out of a loop wins), is a unary term of
the node's variable.

Cost model. A value converted to another layout costs the bytes it holds plus
``CONVERSION_OVERHEAD`` (running one more op), once per distinct target layout (conversions are
shared by all the consumers that need them); constants cost
nothing (they are stored pre-transposed); a symbolic dim counts as ``NOMINAL_SIZE`` elements.
Graph inputs and outputs are pinned to the requested layouts. The choice of option per op is
a binary labelling minimising the total cost, solved exactly by one minimum s-t cut where the
consumers agree with the labelling of their inputs (the submodular case, which covers every
layout class above); the rare "crossed" demands are approximated (counted in ``self.stats``).

Afterwards every value has a layout each consumer can run on, each (value, layout) pair is
converted at most once, reshapes/permutes that the layouts make free cost no data movement,
every region's boundary is stored as its node's operands and results, and each state is read
and updated in one layout.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

from ..ir import Graph, Node, TensorType, Value
from ..ir.layout_check import layout_class
from ..ir.layouts import permute_image, reshape_image
from ..ir.regions import boundary_layouts, stacked_layout
from ..ir.symbolic import NOMINAL_SIZE, nominal_numel
from ..ir.types import DTYPES, Layout, channels_last, full
from .manager import Pass, register_pass
from .mincut import Energy

__all__ = ["AssignLayout", "CONVERSION_OVERHEAD", "NOMINAL_TRIPS", "convert_layout", "layout_class", "reduced_layout",
           "region_runs", "relayout_perm"]

import numpy as np


def relayout_perm(src: TensorType, dst_layout: Optional[Layout]) -> Layout:
    """The physical transpose (numpy semantics) taking ``src``'s storage to ``dst_layout``."""
    p = src.perm
    q = full(dst_layout, src.rank)
    return tuple(p.index(a) for a in q)


def reduced_layout(layout: Layout, removed: set[int]) -> Layout:
    """The layout left after dropping logical axes ``removed`` (renumbered)."""
    kept = [a for a in layout if a not in removed]
    order = sorted(kept)
    return tuple(order.index(a) for a in kept)


def convert_layout(graph: Graph, value: Value, layout: Optional[Layout], cache: dict, loc=None) -> Value:
    """``value`` stored in ``layout``: itself, or a (shared) ``relayout`` of it."""
    target = TensorType(value.type.shape, value.type.dtype, layout)
    if target.layout == value.type.layout:
        return value
    key = (value.id, target.layout)
    if key not in cache:
        perm = relayout_perm(value.type, target.layout)
        node = graph.add_node("relayout", [value], {"perm": list(perm)}, types=[target],
                              loc=loc or value.producer.loc, name=f"{value.name_hint}_relayout")
        cache[key] = node.output
    return cache[key]


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


def _resolve(spec, name: str, index: int):
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return spec.get(name)
    return spec[index] if index < len(spec) else None


def _requested(spec, rank: int) -> Layout:
    if isinstance(spec, (tuple, list)):  # an explicit layout (a region's boundary)
        if sorted(spec) != list(range(rank)):
            raise ValueError(f"layout {tuple(spec)} is not a permutation of {rank} axes")
        return tuple(int(a) for a in spec)
    if spec in (None, "torch", "channels_first"):
        return tuple(range(rank))
    if spec == "channels_last":
        return full(channels_last(rank), rank)
    raise ValueError(f"unknown layout {spec!r}: use 'channels_last' or None")


def _cl(rank: int) -> Layout:
    return full(channels_last(rank), rank)


def _ident(rank: int) -> Layout:
    return tuple(range(rank))


@dataclasses.dataclass
class _Options:
    """Per decision d in (0, 1): required layout of each input (None: no requirement),
    layouts of the results, and the inputs to bring to full rank first."""

    ins: tuple[list, list]
    outs: tuple[list, list]
    pad: frozenset = frozenset()

    @property
    def is_choice(self) -> bool:
        return self.ins[0] != self.ins[1] or self.outs[0] != self.outs[1]


def _single(ins: list, outs: list, pad=frozenset()) -> _Options:
    return _Options((ins, ins), (outs, outs), pad)


@register_pass
@dataclasses.dataclass(frozen=True)
class AssignLayout(Pass):
    """Assigns every value a physical layout by a global minimum cut (see module docstring).

    With ``optimize=False`` only channel-aware ops run channels-last, everything else in
    PyTorch's order (transposes around every channel-aware op): the baseline of benchmarks.
    """

    name = "assign_layout"
    input_layouts: object = None  # None | "channels_last" | {name: layout} | [layout, ...]
    output_layouts: object = None
    optimize: bool = True

    def run_nested(self, graph: Graph) -> bool:
        """The enclosing graph first, then each region with its boundary pinned (``run``)."""
        return self.run(graph)

    def run(self, graph: Graph) -> bool:
        """Assign ``graph``, then the regions nested in it (each pinned to its node's choice)."""
        if any(n.op == "relayout" for _, n in graph.walk()):
            raise ValueError("assign_layout expects a graph without relayouts (run it once)")
        nodes = graph.topo_order()
        options, alias = self._all_options(graph, nodes)
        labels = self._solve(graph, nodes, options, alias)[1] if self.optimize else {}
        self._rewrite(graph, nodes, options, {nid: labels.get(alias.get(nid, nid), 0) for nid in options})
        graph.meta["layouts_assigned"] = True
        for node in nodes:
            if node.regions:
                boundary = boundary_layouts(node.op, [v.type.perm for v in node.inputs],
                                            [v.type.perm for v in node.outputs], node.attrs)
                for name, region in node.regions.items():
                    self._inside(*boundary[name]).run(region)
        return True

    def _inside(self, ins: list, outs: list) -> "AssignLayout":
        """The pass for a region whose inputs and outputs are pinned to ``ins`` and ``outs``."""
        return dataclasses.replace(self, input_layouts=list(ins), output_layouts=list(outs))

    def _all_options(self, graph: Graph, nodes: list[Node]) -> tuple[dict[int, "_Options"], dict[int, int]]:
        """Options per node id, and the node ids that share another node's variable (a state
        update shares its state's)."""
        options: dict[int, _Options] = {}
        for node in nodes:
            if node.op != "state_update":
                options[node.id] = self._options(graph, node, options)
        states = {n.attrs["name"]: n for n in nodes if n.op == "state"}
        alias: dict[int, int] = {}
        for node in nodes:
            if node.op == "state_update":
                state = states[node.attrs["name"]]
                o = options[state.id]
                options[node.id] = _Options(([o.outs[0][0]], [o.outs[1][0]]), ([], []))
                alias[node.id] = state.id
        return options, alias

    def _min_cost(self, graph: Graph) -> float:
        """The least transpose cost of ``graph`` under this pass's pinned boundary (no rewrite)."""
        nodes = graph.topo_order()
        options, alias = self._all_options(graph, nodes)
        return self._solve(graph, nodes, options, alias)[0]

    def _regions_cost(self, node: Node, opts: "_Options", d: int) -> float:
        """The regions' least cost under option ``d``, each weighted by how often it runs."""
        boundary = boundary_layouts(node.op, opts.ins[d], opts.outs[d], node.attrs)
        runs = region_runs(node)
        return sum(runs * self._inside(*boundary[name])._min_cost(region) for name, region in node.regions.items())

    # ------------------------------------------------------------------ options per op

    def _cands(self, v: Value, options) -> tuple[Layout, Layout]:
        o = options[v.producer.id]
        return o.outs[0][v.index], o.outs[1][v.index]

    def _with_alternative(self, cands: tuple[Layout, Layout], rank: int) -> tuple[Layout, Layout]:
        if cands[0] != cands[1] or not self.optimize:
            return cands
        own = cands[0]
        other = _cl(rank) if own != _cl(rank) and rank >= 3 else _ident(rank)
        return own, other

    def _options(self, graph: Graph, node: Node, options) -> _Options:
        kind = layout_class(node)
        outs_rank = [v.type.rank for v in node.outputs]
        if node.op == "input":
            i = graph.inputs.index(node.output)
            want = _requested(_resolve(self.input_layouts, node.attrs["name"], i), node.output.type.rank)
            return _single([], [want])
        if node.op == "constant":
            return _single([], [_ident(node.output.type.rank)])
        if node.op == "state":  # PyTorch order or channels-last; its update follows (_all_options)
            rank = node.output.type.rank
            if not self.optimize or rank < 3:
                return _single([], [_ident(rank)])
            return _Options(([], []), ([_ident(rank)], [_cl(rank)]))
        if kind == "region":
            return self._region(node, options) if self.optimize else \
                _single([_ident(v.type.rank) for v in node.inputs], [_ident(r) for r in outs_rank])
        if kind == "channel":
            ins = [_cl(node.inputs[0].type.rank)] + [None if v.producer.op == "constant" else
                                                     _cl(v.type.rank) if node.op == "custom" else _ident(v.type.rank)
                                                     for v in node.inputs[1:]]  # a converter's tensors: all channels-last
            return _single(ins, [_cl(r) for r in outs_rank])
        if kind == "shape":  # reads only the input's sizes: any layout will do
            return _single([None] * len(node.inputs), [_ident(r) for r in outs_rank])
        if kind == "fixed" or (not self.optimize and kind != "agnostic" and kind != "axis"):
            return _single([_ident(v.type.rank) for v in node.inputs], [_ident(r) for r in outs_rank])
        if kind == "agnostic":
            return self._agnostic(node, options)
        x = node.inputs[0]
        cands = self._with_alternative(self._cands(x, options), x.type.rank)
        if kind in ("axis", "last_axis"):
            ins, outs = [], []
            for c in cands:
                if kind == "last_axis" and not self._trailing_ok(node, c):
                    c = _ident(x.type.rank)
                ins.append([c] + [self._secondary(kind, v, c, x) for v in node.inputs[1:]])
                outs.append([self._axis_out(node, c, v) for v in node.outputs])
            return _Options((ins[0], ins[1]), (outs[0], outs[1]))
        if kind == "reshape":
            ins, outs = [], []
            for c in cands:
                image = reshape_image(x.type.shape, c, node.output.type.shape)
                if image is None:
                    ins.append([_ident(x.type.rank)])
                    outs.append([_ident(node.output.type.rank)])
                else:
                    ins.append([c])
                    outs.append([image])
            return _Options((ins[0], ins[1]), (outs[0], outs[1]))
        if kind == "permute":
            perm = node.attrs["perm"]
            return _Options(([cands[0]], [cands[1]]), ([permute_image(cands[0], perm)],
                                                       [permute_image(cands[1], perm)]))
        raise ValueError(f"no layout rule for {node.op} (class {kind!r})")

    def _agnostic(self, node: Node, options) -> _Options:
        rank = node.outputs[0].type.rank
        full_rank = [v for v in node.inputs if v.type.rank == rank and v.producer.op != "constant"]
        ref = next((v for v in full_rank if len(set(self._cands(v, options))) == 2), full_rank[0] if full_rank else None)
        cands = self._cands(ref, options) if ref is not None else (_ident(rank), _ident(rank))
        if not self.optimize:
            cands = (_ident(rank), _ident(rank))
        cands = self._with_alternative(cands, rank) if ref is not None else cands
        ins, outs, pad = [], [], set()
        for c in cands:
            row = []
            for i, v in enumerate(node.inputs):
                if v.type.rank == rank:
                    row.append(c)
                elif v.type.is_static and v.type.numel == 1:
                    row.append(None)  # a single element broadcasts the same in every layout
                else:
                    row.append(_ident(v.type.rank))
                    if c != _ident(rank):
                        pad.add(i)
            ins.append(row)
            outs.append([c for _ in node.outputs])
        return _Options((ins[0], ins[1]), (outs[0], outs[1]), frozenset(pad))

    def _region(self, node: Node, options) -> _Options:
        """A control-flow node: per rank, every operand and result channels-last or every one in
        PyTorch order; label 0 is the option its first data operand with a choice is stored in."""
        by_flag = {f: self._region_layouts(node, f) for f in (False, True)}
        flags = (False, True)
        for i, v in enumerate(node.inputs):
            if v.producer.op != "constant" and by_flag[False][0][i] != by_flag[True][0][i]:
                if self._cands(v, options)[0] == by_flag[True][0][i]:
                    flags = (True, False)
                break
        (ins0, outs0), (ins1, outs1) = by_flag[flags[0]], by_flag[flags[1]]
        return _Options((ins0, ins1), (outs0, outs1))

    @staticmethod
    def _region_layouts(node: Node, channels_last_: bool) -> tuple[list, list]:
        """Operand and result layouts of a control-flow node with its data channels-last or not."""
        def lay(rank: int) -> Layout:
            return _cl(rank) if channels_last_ else _ident(rank)

        def stacked(rank: int) -> Layout:  # scanned/stacked along axis 0: rows as lay, axis 0 first
            return stacked_layout(lay(rank - 1))

        ranks = [v.type.rank for v in node.inputs]
        out_ranks = [v.type.rank for v in node.outputs]
        a = node.attrs
        if node.op == "cond":
            return [_ident(ranks[0])] + [lay(r) for r in ranks[1:]], [lay(r) for r in out_ranks]
        if node.op == "while_loop":
            return [lay(r) for r in ranks], [lay(r) for r in out_ranks]
        if node.op == "scan":
            n_init, n_xs = a["num_init"], a["num_xs"]
            ins = [lay(r) if not n_init <= i < n_init + n_xs else stacked(r) for i, r in enumerate(ranks)]
            return ins, [lay(r) if k < n_init else stacked(r) for k, r in enumerate(out_ranks)]
        if node.op == "map":
            return ([stacked(r) if i < a["num_xs"] else lay(r) for i, r in enumerate(ranks)],
                    [stacked(r) for r in out_ranks])
        raise ValueError(f"no layout rule for control-flow op {node.op!r}")

    @staticmethod
    def _secondary(kind: str, v: Value, layout: Layout, x: Value) -> Optional[Layout]:
        """What an axis op needs of inputs after the first: the same layout (concat, ...);
        a last-axis op's weights are parameters in PyTorch's order."""
        if kind == "axis" and v.type.rank == x.type.rank:
            return layout
        return None if v.producer.op == "constant" else _ident(v.type.rank)

    @staticmethod
    def _trailing_ok(node: Node, layout: Layout) -> bool:
        k = node.attrs.get("num_axes", 1)
        r = len(layout)
        return tuple(layout[r - k:]) == tuple(range(r - k, r))

    @staticmethod
    def _axis_out(node: Node, layout: Layout, out: Value) -> Layout:
        x = node.inputs[0]
        if out.type.rank == x.type.rank:
            return layout
        axes = node.attrs.get("axes")
        removed = set(range(x.type.rank)) if axes is None else {a % x.type.rank for a in axes}
        return reduced_layout(layout, removed)

    # ------------------------------------------------------------------ the cut

    def _solve(self, graph: Graph, nodes: list[Node], options, alias: dict[int, int]) -> tuple[float, dict[int, int]]:
        """The least cost and the label of each node (by id) that has a choice."""
        def var(node: Node):
            nid = alias.get(node.id, node.id)
            return ("node", nid) if options[nid].is_choice else 0

        def size(v: Value) -> float:
            return float(nominal_numel(v.type) * np.dtype(DTYPES[v.type.dtype]).itemsize) + CONVERSION_OVERHEAD

        demands: dict[int, list] = {}  # value id -> [(consumer var, layout if 0, layout if 1)]
        values: dict[int, Value] = {}
        for node in nodes:
            opts = options[node.id]
            for i, v in enumerate(node.inputs):
                if v.producer.op == "constant" or (opts.ins[0][i] is None and opts.ins[1][i] is None):
                    continue
                want = tuple(opts.ins[d][i] if opts.ins[d][i] is not None else self._cands(v, options)[d]
                             for d in (0, 1))
                demands.setdefault(v.id, []).append((var(node), want[0], want[1]))
                values[v.id] = v
        for i, (name, v) in enumerate(zip(graph.output_names, graph.outputs)):
            want = _requested(_resolve(self.output_layouts, name, i), v.type.rank)
            if v.producer.op != "constant":
                demands.setdefault(v.id, []).append((0, want, want))
                values[v.id] = v
        region_costs = {node.id: [self._regions_cost(node, options[node.id], d) for d in (0, 1)]
                        for node in nodes if node.regions and options[node.id].is_choice}
        total = sum(size(v) for v in values.values()) + sum(max(c) for c in region_costs.values())
        energy = Energy(infinity=4 * total + 1)
        inf = energy.infinity
        for vid, wants in demands.items():
            v = values[vid]
            self._value_terms(energy, v, var(v.producer), self._cands(v, options), wants, size(v), inf)
        for nid, (cost0, cost1) in region_costs.items():  # what each option costs inside the regions
            energy.unary(("node", nid), cost0, cost1)
        cost, labels = energy.solve()
        object.__setattr__(self, "stats", {"approximated": energy.approximated, "variables": len(labels)})
        return cost, {key[1]: label for key, label in labels.items() if isinstance(key, tuple) and key[0] == "node"}

    @staticmethod
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
            # consumer labelled d  =>  the aux variable is set (p=1, a=1, or q=0)
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

        for consumer, want0, want1 in wants:
            for d, layout in ((0, want0), (1, want1)):
                if Energy._fixed(consumer) and consumer != d:
                    continue
                if c0 == c1 and layout == c0:
                    continue  # already stored that way
                need(layout, consumer, d)

    # ------------------------------------------------------------------ rewrite

    def _rewrite(self, graph: Graph, nodes: list[Node], options, labels: dict[int, int]) -> None:
        cache: dict = {}
        for node in nodes:
            opts = options[node.id]
            d = labels[node.id]
            if node.op == "input":
                graph.set_type(node.output, node.output.type.replace(layout=opts.outs[d][0]))
                continue
            for i, v in enumerate(list(node.inputs)):
                want = opts.ins[d][i]
                if want is None:
                    continue
                if i in opts.pad and opts.outs[d][0] != _ident(node.outputs[0].type.rank):
                    rank = node.outputs[0].type.rank
                    padded = (1,) * (rank - v.type.rank) + tuple(v.type.shape)
                    v = convert_layout(graph, v, None, cache, loc=node.loc)
                    v = graph.add_node("reshape", [v], {"shape": list(padded)}, loc=node.loc,
                                       name=f"{v.name_hint}_rank{rank}").output
                    want = opts.outs[d][0]
                converted = convert_layout(graph, v, want, cache, loc=node.loc)
                if converted is not node.inputs[i]:
                    graph.set_input(node, i, converted)
            for k, v in enumerate(node.outputs):
                graph.set_type(v, v.type.replace(layout=opts.outs[d][k]))
        for i, (name, v) in enumerate(zip(graph.output_names, list(graph.outputs))):
            want = _requested(_resolve(self.output_layouts, name, i), v.type.rank)
            graph.outputs[i] = convert_layout(graph, v, want, cache)
