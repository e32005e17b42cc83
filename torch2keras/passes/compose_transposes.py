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
do not factor into each other stop a chain.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Optional

from ..ir import Graph, Node, TensorType, Value
from ..ir.layouts import physical_permute, transpose_is_reshape
from .manager import Pass, register_pass

_MOVES = ("relayout", "permute", "reshape")


def physical_transposes(nodes: list[Node]) -> int:
    """How many of ``nodes`` move data (a transpose that is not a plain reshape)."""
    count = 0
    for node in nodes:
        src, dst = node.inputs[0].type, node.output.type
        if node.op == "relayout":
            perm = node.attrs["perm"]
        elif node.op == "permute":
            perm = physical_permute(src.perm, node.attrs["perm"], dst.perm)
        else:
            continue
        if not transpose_is_reshape(src.physical_shape, perm):
            count += 1
    return count


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
            while product < dim:
                if k >= len(seq):
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
    atoms = _Atoms()
    start = [[atoms.new(d)] if d != 1 else [] for d in a.type.shape]
    axes = start
    for node in chain:
        if node.op == "permute":
            axes = [axes[p] for p in node.attrs["perm"]]
        elif node.op == "reshape":
            axes = atoms.regroup(axes, node.output.type.shape)
            if axes is None:
                return None
    return atoms, start, axes


def _merge_runs(sequences: list[list[int]]) -> list[list[int]]:
    """Group atoms into runs that are consecutive, in order, in every sequence."""
    first = sequences[0]
    nexts = [{s[i]: s[i + 1] for i in range(len(s) - 1)} for s in sequences]
    runs, current = [], [first[0]] if first else []
    for x, y in zip(first, first[1:]):
        if all(n.get(x) == y for n in nexts):
            current.append(y)
        else:
            runs.append(current)
            current = [y]
    if current:
        runs.append(current)
    return runs


@register_pass
@dataclasses.dataclass(frozen=True)
class ComposeTransposes(Pass):
    """Rewrites each maximal chain of relayout/permute/reshape (single-reader intermediates)
    as free reshape -> one transpose -> free reshape when that moves less data.

    Afterwards no chain does more than one physical transpose where its reshapes factor.
    """

    name = "compose_transposes"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.topo_order():
            if node not in graph or node.op not in _MOVES:
                continue
            head = node.inputs[0]
            if head.producer.op in _MOVES and graph.num_uses(head) == 1 and not graph.is_output(head):
                continue  # not the start of a chain
            chain = [node]
            while True:
                v = chain[-1].output
                users = graph.uses(v)
                if len(users) != 1 or graph.is_output(v) or users[0][0].op not in _MOVES:
                    break
                chain.append(users[0][0])
            if physical_transposes(chain) == 0:
                continue
            if self._rewrite(graph, head, chain):
                changed = True
        return changed

    def _rewrite(self, graph: Graph, a: Value, chain: list[Node]) -> bool:
        b = chain[-1].output
        found = _atoms_of_chain(a, chain)
        if found is None:
            return False
        atoms, start, end = found
        a_log = atoms.expand([x for axis in start for x in axis])
        a_phys = atoms.expand([x for ax in a.type.perm for x in start[ax]])
        b_log = atoms.expand([x for axis in end for x in axis])
        b_phys = atoms.expand([x for ax in b.type.perm for x in end[ax]])
        if not a_log:
            return False
        runs = _merge_runs([a_log, a_phys, b_log, b_phys])
        run_of = {x: i for i, run in enumerate(runs) for x in run}
        sizes = [1] * len(runs)
        for x, i in run_of.items():
            sizes[i] *= atoms.size[x]

        def order(seq):
            out = []
            for x in seq:
                if not out or out[-1] != run_of[x]:
                    out.append(run_of[x])
            return out

        a_log, a_phys, b_log, b_phys = order(a_log), order(a_phys), order(b_log), order(b_phys)
        phys = [a_phys.index(r) for r in b_phys]
        new_transposes = 0 if phys == sorted(phys) else 1
        if new_transposes >= physical_transposes(chain):
            return False
        loc = chain[0].loc
        dtype = a.type.dtype
        t1 = TensorType([sizes[r] for r in a_log], dtype, [a_log.index(r) for r in a_phys])
        x1 = graph.add_node("reshape", [a], {"shape": list(t1.shape)}, types=[t1], loc=loc,
                            name=f"{a.name_hint}_atoms").output
        t2 = TensorType([sizes[r] for r in b_log], dtype, [b_log.index(r) for r in b_phys])
        logical = [a_log.index(r) for r in b_log]
        if logical == list(range(len(logical))):
            perm = [a_phys.index(r) for r in b_phys]
            x2 = graph.add_node("relayout", [x1], {"perm": perm}, types=[t2], loc=loc,
                                name=f"{b.name_hint}_moved").output
        else:
            x2 = graph.add_node("permute", [x1], {"perm": logical}, types=[t2], loc=loc,
                                name=f"{b.name_hint}_moved").output
        out = graph.add_node("reshape", [x2], {"shape": list(b.type.shape)}, types=[b.type], loc=chain[-1].loc,
                             name=b.name_hint).output
        graph.replace_all_uses(b, out)
        return True
