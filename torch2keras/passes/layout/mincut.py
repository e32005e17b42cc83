"""Minimum-energy binary labelling by an s-t minimum cut (networkx).

Energies are sums of unary terms and pairwise terms over binary variables; pairwise terms must
be submodular (E01 + E10 >= E00 + E11) to be exact (Kolmogorov & Zabih, 2004). A term that is
not gets its pairwise part dropped (``approximated`` counts them). Label 0 is the source side.
"""

from __future__ import annotations

from typing import Hashable, Union

import networkx as nx

__all__ = ["Energy"]

Var = Union[Hashable, int]  # a variable key, or a fixed label 0/1 given as the ints 0 and 1
_S, _T = ("__source__",), ("__sink__",)


class Energy:
    def __init__(self, infinity: float = 1e15) -> None:
        self.graph = nx.DiGraph()
        self.constant = 0.0
        self.infinity = infinity
        self.approximated = 0
        self.graph.add_node(_S)
        self.graph.add_node(_T)

    @staticmethod
    def _fixed(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v in (0, 1)

    def _edge(self, a, b, cap: float) -> None:
        if cap <= 0:
            return
        if self.graph.has_edge(a, b):
            self.graph[a][b]["capacity"] += cap
        else:
            self.graph.add_edge(a, b, capacity=cap)

    def unary(self, v: Var, cost0: float, cost1: float) -> None:
        if self._fixed(v):
            self.constant += cost0 if v == 0 else cost1
            return
        self.graph.add_node(v)
        low = min(cost0, cost1)
        self.constant += low
        self._edge(_S, v, cost1 - low)  # cut when v is on the sink side (label 1)
        self._edge(v, _T, cost0 - low)  # cut when v is on the source side (label 0)

    def penalty(self, a: Var, b: Var, cost: float) -> None:
        """``cost`` when a = 0 and b = 1."""
        if self._fixed(a):
            if a == 0:
                self.unary(b, 0.0, cost)
            return
        if self._fixed(b):
            if b == 1:
                self.unary(a, cost, 0.0)
            return
        self._edge(a, b, cost)

    def pairwise(self, a: Var, b: Var, e00: float, e01: float, e10: float, e11: float) -> None:
        k = e01 + e10 - e00 - e11
        if k < 0:
            self.approximated += 1
            k = 0.0
        self.constant += e00
        self.unary(a, 0.0, e10 - e00)
        self.unary(b, 0.0, e11 - e10)
        self.penalty(a, b, k)

    def solve(self) -> tuple[float, dict]:
        """Minimum energy and the label of every variable."""
        if self.graph.number_of_edges() == 0:
            return self.constant, {}
        value, (source_side, _) = nx.minimum_cut(self.graph, _S, _T, capacity="capacity")
        labels = {v: (0 if v in source_side else 1) for v in self.graph.nodes if v not in (_S, _T)}
        return self.constant + value, labels
