"""Compose chains of data-movement ops into at most one physical transpose.

A chain is a run of ``relayout`` / ``permute`` / ``reshape`` nodes whose intermediate results
have no other reader. Whatever its length, it moves the elements of its input ``a`` to its
output ``b`` by one fixed permutation. Split both tensors' axes into *atoms*, the factors that
every reshape of the chain keeps whole; then ``b`` stores the atoms of ``a`` in some order, and

    reshape(a -> atoms, free) -> permute/relayout (one transpose) -> reshape(-> b, free)

does the same work with one transpose of the merged atoms, or none when the physical order of
the atoms does not change. E.g. conv1d -> reshape(-1, 6, 2) -> conv1d needs two transposes
done naively (to PyTorch order and back) and one this way.

Fires only when the rewrite has fewer physical transposes than the chain; reshapes whose sizes
do not factor into each other stop a chain. A symbolic dim is an atom of its own that only the
same symbolic dim matches.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Optional

from ..ir import Graph, Node, TensorType, Value
from ..ir.layouts import physical_transposes
from ..ir.symbolic import dim_mul
from .manager import Pass, register_pass

_MOVES = ("relayout", "permute", "reshape")


class _Atoms:
    """Axes as lists of atom ids; an atom split into (outer, inner) is expanded everywhere."""

    def __init__(self) -> None:
        self.size: dict[int, int] = {}
        self.parts: dict[int, tuple[int, int]] = {}
        self._ids = itertools.count()

    def new(self, size: int) -> int:
        a = next(self._ids)
        self.size[a] = size
        return a

    def expand(self, atoms: list[int]) -> list[int]:
        out = []
        for a in atoms:
            out.extend(self.expand(list(self.parts[a])) if a in self.parts else [a])
        return out

    def split(self, a: int, outer: int) -> tuple[int, int]:
        o, i = self.new(outer), self.new(self.size[a] // outer)
        self.parts[a] = (o, i)
        return o, i

    def regroup(self, axes: list[list[int]], shape) -> Optional[list[list[int]]]:
        seq = self.expand([a for axis in axes for a in axis])
        out, k = [], 0
        for dim in shape:
            group, product = [], 1
            if isinstance(dim, str):  # a symbolic dim is one atom of the same name
                if k >= len(seq) or self.size[seq[k]] != dim:
                    return None
                out.append([seq[k]])
                k += 1
                continue
            while product < dim:
                if k >= len(seq) or isinstance(self.size[seq[k]], str):
                    return None
                a = seq[k]
                need = dim // product
                if self.size[a] <= need:
                    if need % self.size[a]:
                        return None
                    group.append(a)
                    product *= self.size[a]
                    k += 1
                elif self.size[a] % need == 0:
                    outer, inner = self.split(a, need)
                    group.append(outer)
                    product *= need
                    seq[k] = inner
                else:
                    return None
            out.append(group)
        return out if k == len(seq) else None


def _atoms_of_chain(a: Value, chain: list[Node]):
    """Atoms of ``a``, its axes as atoms, the chain's output axes as atoms, and for a chain
    that starts with a slice: (the sliced atom, its stand-in in the output or None)."""
    atoms = _Atoms()
    start = [[atoms.new(d)] if d != 1 else [] for d in a.type.shape]
    axes = start
    sliced = None
    for k, node in enumerate(chain):
        if node.op == "slice":
            if k != 0 or len(axes[node.attrs["axis"]]) != 1:
                return None
            whole = axes[node.attrs["axis"]][0]
            size = node.output.type.shape[node.attrs["axis"]]
            part = atoms.new(size) if size != 1 else None
            axes = list(axes)
            axes[node.attrs["axis"]] = [part] if part is not None else []
            sliced = (whole, part)
        elif node.op == "permute":
            axes = [axes[p] for p in node.attrs["perm"]]
        elif node.op == "reshape":
            axes = atoms.regroup(axes, node.output.type.shape)
            if axes is None:
                return None
    if sliced is not None and sliced[1] is not None and sliced[1] in atoms.parts:
        return None  # the selected part was split further: keep the chain as it is
    return atoms, start, axes, sliced


def _merge_runs(sequences: list[list[int]], alone: frozenset = frozenset()) -> list[list[int]]:
    """Group atoms into runs that are consecutive, in order, in every sequence (atoms in
    ``alone`` stay on their own)."""
    first = sequences[0]
    nexts = [{s[i]: s[i + 1] for i in range(len(s) - 1)} for s in sequences]
    runs, current = [], [first[0]] if first else []
    for x, y in zip(first, first[1:]):
        if x not in alone and y not in alone and all(n.get(x) == y for n in nexts):
            current.append(y)
        else:
            runs.append(current)
            current = [y]
    if current:
        runs.append(current)
    return runs


@dataclasses.dataclass
class _Plan:
    """The canonical form of one chain: reshape(a -> atoms) -> move -> [slice] -> reshape(-> b)."""

    a: Value
    chain: list
    sizes: list
    a_log: list
    a_phys: list
    b_log: list
    b_phys: list
    sliced_run: Optional[int]

    @property
    def moves_data(self) -> bool:
        phys = [self.a_phys.index(r) for r in self.b_phys]
        return phys != sorted(phys)

    @property
    def signature(self) -> tuple:
        return (self.a.id, tuple(self.sizes[r] for r in self.a_log), tuple(self.a_log.index(r) for r in self.a_phys),
                tuple(self.a_log.index(r) for r in self.b_log), tuple(self.b_log.index(r) for r in self.b_phys))


def _plan(a: Value, chain: list[Node]) -> Optional[_Plan]:
    b = chain[-1].output
    found = _atoms_of_chain(a, chain)
    if found is None:
        return None
    atoms, start, end, sliced = found
    a_log = atoms.expand([x for axis in start for x in axis])
    a_phys = atoms.expand([x for ax in a.type.perm for x in start[ax]])
    b_log = atoms.expand([x for axis in end for x in axis])
    b_phys = atoms.expand([x for ax in b.type.perm for x in end[ax]])
    alone: frozenset = frozenset()
    if sliced is not None:
        whole, part = sliced
        if part is None:  # a single index: the selected atom leads the moved tensor
            b_log, b_phys = [whole] + b_log, [whole] + b_phys
        else:
            b_log = [whole if x == part else x for x in b_log]
            b_phys = [whole if x == part else x for x in b_phys]
        alone = frozenset([whole])
    if not a_log or sorted(a_log) != sorted(b_log):
        return None
    alone = alone | {x for x in a_log if isinstance(atoms.size[x], str)}  # symbolic atoms are not merged
    runs = _merge_runs([a_log, a_phys, b_log, b_phys], alone)
    run_of = {x: i for i, run in enumerate(runs) for x in run}
    sizes: list = [1] * len(runs)
    for x, i in run_of.items():
        sizes[i] = dim_mul(sizes[i], atoms.size[x])

    def order(seq):
        out = []
        for x in seq:
            if not out or out[-1] != run_of[x]:
                out.append(run_of[x])
        return out

    return _Plan(a, chain, sizes, order(a_log), order(a_phys), order(b_log), order(b_phys),
                 run_of[sliced[0]] if sliced is not None else None)


def _apply(graph: Graph, plan: _Plan, shared: dict) -> None:
    """Rewrite the chain of ``plan``; the reshape and the move of ``a`` are shared between
    plans with the same signature (``shared`` caches them)."""
    a, chain = plan.a, plan.chain
    b = chain[-1].output
    loc, dtype = chain[0].loc, a.type.dtype
    if plan.signature not in shared:
        t1 = TensorType([plan.sizes[r] for r in plan.a_log], dtype, [plan.a_log.index(r) for r in plan.a_phys])
        x1 = graph.add_node("reshape", [a], {"shape": list(t1.shape)}, types=[t1], loc=loc,
                            name=f"{a.name_hint}_atoms").output
        t2 = TensorType([plan.sizes[r] for r in plan.b_log], dtype, [plan.b_log.index(r) for r in plan.b_phys])
        logical = [plan.a_log.index(r) for r in plan.b_log]
        if logical == list(range(len(logical))):
            perm = [plan.a_phys.index(r) for r in plan.b_phys]
            x2 = graph.add_node("relayout", [x1], {"perm": perm}, types=[t2], loc=loc,
                                name=f"{b.name_hint}_moved").output
        else:
            x2 = graph.add_node("permute", [x1], {"perm": logical}, types=[t2], loc=loc,
                                name=f"{b.name_hint}_moved").output
        shared[plan.signature] = x2
    x = shared[plan.signature]
    if plan.sliced_run is not None:
        head = chain[0]
        axis = plan.b_log.index(plan.sliced_run)
        shape = list(x.type.shape)
        shape[axis] = len(range(head.attrs["start"], head.attrs["end"], head.attrs["step"]))
        x = graph.add_node("slice", [x], {"axis": axis, "start": head.attrs["start"], "end": head.attrs["end"],
                                          "step": head.attrs["step"]},
                           types=[TensorType(shape, dtype, x.type.layout)], loc=head.loc, name=head.output.name_hint).output
    out = graph.add_node("reshape", [x], {"shape": list(b.type.shape)}, types=[b.type], loc=chain[-1].loc,
                         name=b.name_hint).output
    graph.replace_all_uses(b, out)


@register_pass
@dataclasses.dataclass(frozen=True)
class ComposeTransposes(Pass):
    """Rewrites each maximal chain of relayout/permute/reshape (single-reader intermediates)
    as free reshape -> one transpose -> free reshape when that moves data fewer times.

    Chains that start by slicing one tensor (as attention splits its packed q, k, v) share the
    transpose: it moves the whole tensor once, before the slices, when their chains agree on it.
    Afterwards no chain does more than one physical transpose where its reshapes factor.
    """

    name = "compose_transposes"

    def run(self, graph: Graph) -> bool:
        changed = False
        shared: dict = {}
        for node in graph.topo_order():
            if node not in graph or node.op not in _MOVES:
                continue
            head = node.inputs[0]
            if head.producer.op in _MOVES and graph.num_uses(head) == 1 and not graph.is_output(head):
                continue  # not the start of a chain
            chain = self._chain(graph, [node])
            if physical_transposes(chain) == 0:
                continue
            plan = _plan(head, chain)
            if plan is not None and int(plan.moves_data) < physical_transposes(chain):
                _apply(graph, plan, shared)
                changed = True
        return self._shared_slices(graph, shared) or changed

    @staticmethod
    def _chain(graph: Graph, chain: list[Node]) -> list[Node]:
        while True:
            v = chain[-1].output
            users = graph.uses(v)
            if len(users) != 1 or graph.is_output(v) or users[0][0].op not in _MOVES:
                return chain
            chain.append(users[0][0])

    def _shared_slices(self, graph: Graph, shared: dict) -> bool:
        changed = False
        for node in graph.topo_order():
            if node not in graph:
                continue
            slices = [u for u, i in graph.uses(node.outputs[0]) if u.op == "slice" and i == 0] if node.outputs else []
            if len(slices) < 2:
                continue
            groups: dict = {}
            for sl in slices:
                chain = self._chain(graph, [sl])
                if len(chain) < 2 or physical_transposes(chain[1:]) == 0:
                    continue
                plan = _plan(node.outputs[0], chain)
                if plan is not None and plan.moves_data:
                    groups.setdefault(plan.signature, []).append((plan, physical_transposes(chain)))
            for plans in groups.values():
                if len(plans) < 2 or sum(n for _, n in plans) <= 1:
                    continue
                for plan, _ in plans:
                    _apply(graph, plan, shared)
                changed = True
        return changed
