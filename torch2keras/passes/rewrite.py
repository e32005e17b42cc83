"""Local rewrites as patterns: match a small tree of ops, check it (with a reason), rewrite it.

A pattern is a tree of ``Op`` nodes (an IR op and patterns for its inputs) with leaves ``Any``
(any value) and ``Const`` (a value computed by a ``constant`` node). Names bind what matched:

    bn = Op("batch_norm", Any("x"), Const("mean"), Const("var"), name="bn", rest=True, single_use=True)
    pattern = Op("conv", bn, Const("w"), Const("b", optional=True), name="conv")

``pattern.match(graph, node)`` returns a ``Match`` rooted at ``node`` (``m["conv"]`` the node,
``m["x"]`` the value, ``m.array("w")`` a constant's array) or None. Matching is structural
only; whatever needs a reason goes in the pass's ``check``.

A ``RewritePass`` sets ``pattern`` and implements ``check(graph, m)`` (None to go ahead, else
the reason not to) and ``rewrite(graph, m)``, which builds the replacement and points the uses
at it with ``replace_value``. The driver visits nodes in topological order, rewrites every
match whose check passes, erases the matched nodes (and their constants) left unused, and
repeats until a round changes nothing (at most ``max_rounds``). Every outcome ("rewritten" or
the reason) is kept in ``graph.meta["rewrites"][pass name]``, keyed by the root node's text.

Invariant of a correct rewrite: ``replace_value(old, new)`` only where ``new`` is logically
equal to ``old`` (same shape and dtype; within float rounding), so validation still compares it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, ClassVar, Optional, Sequence, Union

import attrs
import numpy as np

from ..ir import Graph, Node, Value
from .manager import Pass

__all__ = ["Any", "Const", "Match", "Op", "Pattern", "RewritePass", "erase_dead", "replace_value"]

log = logging.getLogger(__name__)


@attrs.define
class Match:
    """What a pattern bound: nodes (``Op`` names) and values (``Any``/``Const`` names)."""

    root: Node
    nodes: dict[str, Node] = attrs.field(factory=dict)
    values: dict[str, Optional[Value]] = attrs.field(factory=dict)
    matched: list[Node] = attrs.field(factory=list)  # every node an Op matched, root first

    def __getitem__(self, name: str) -> Union[Node, Value, None]:
        if name in self.nodes:
            return self.nodes[name]
        return self.values[name]

    def array(self, name: str) -> Optional[np.ndarray]:
        """The array of the constant bound to ``name`` (None for a missing optional input)."""
        v = self.values[name]
        return None if v is None else v.producer.value


class Pattern:
    """Base of the pattern kinds; ``match_value`` tries one value."""

    name: Optional[str] = None
    optional: bool = False

    def match_value(self, graph: Graph, value: Value, m: Match) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def match(self, graph: Graph, node: Node) -> Optional[Match]:
        """A Match rooted at ``node`` (only ``Op`` patterns match nodes)."""
        raise TypeError(f"{type(self).__name__} patterns match values, not nodes")


class Any(Pattern):
    """Any value (``where(value)`` may restrict it)."""

    def __init__(self, name: Optional[str] = None, *, where: Optional[Callable[[Value], bool]] = None,
                 optional: bool = False) -> None:
        self.name, self.where, self.optional = name, where, optional

    def match_value(self, graph: Graph, value: Value, m: Match) -> bool:
        if self.where is not None and not self.where(value):
            return False
        if self.name:
            m.values[self.name] = value
        return True


class Const(Any):
    """A value computed by a ``constant`` node."""

    def match_value(self, graph: Graph, value: Value, m: Match) -> bool:
        return value.producer.op == "constant" and super().match_value(graph, value, m)


class Op(Pattern):
    """A node of op ``op`` (a name or a tuple of names) whose inputs match ``inputs``.

    rest: the node may have more inputs than patterns given (unmatched). single_use: the node's
    results are read once and are not graph outputs (what an inner node of a fusion needs).
    where(node): a structural condition. Trailing ``optional`` patterns may have no input.
    """

    def __init__(self, op: Union[str, Sequence[str]], *inputs: Pattern, name: Optional[str] = None,
                 where: Optional[Callable[[Node], bool]] = None, rest: bool = False, single_use: bool = False) -> None:
        self.ops = (op,) if isinstance(op, str) else tuple(op)
        self.inputs, self.name, self.where, self.rest, self.single_use = inputs, name, where, rest, single_use

    def match(self, graph: Graph, node: Node) -> Optional[Match]:
        m = Match(root=node)
        return m if self._match_node(graph, node, m) else None

    def match_value(self, graph: Graph, value: Value, m: Match) -> bool:
        node = value.producer
        if self.single_use and (graph.num_uses(value) != 1 or graph.is_output(value)):
            return False
        return self._match_node(graph, node, m)

    def _match_node(self, graph: Graph, node: Node, m: Match) -> bool:
        if node.op not in self.ops or (self.where is not None and not self.where(node)):
            return False
        n = len(node.inputs)
        required = len([p for p in self.inputs if not p.optional])
        if n < required or (n > len(self.inputs) and not self.rest):
            return False
        for i, p in enumerate(self.inputs):
            if i >= n:
                if p.name:
                    m.values[p.name] = None
                continue
            if not p.match_value(graph, node.inputs[i], m):
                return False
        if self.name:
            m.nodes[self.name] = node
        m.matched.append(node)
        return True


def replace_value(graph: Graph, old: Value, new: Value) -> int:
    """Point every use of ``old`` (graph outputs too) at ``new``, which must be logically equal;
    ``new`` inherits ``old``'s torch tag so validation still compares it. Returns the uses moved."""
    if tuple(old.type.shape) != tuple(new.type.shape) or old.type.dtype != new.type.dtype:
        raise ValueError(f"replace_value: {new.type} cannot stand for {old.type}")
    for key in ("torch_node", "torch_index"):
        if key in old.meta:
            new.meta.setdefault(key, old.meta[key])
    return graph.replace_all_uses(old, new)


def erase_dead(graph: Graph, nodes: Sequence[Node]) -> int:
    """Erase those of ``nodes`` whose results nothing reads (users first); returns how many."""
    erased = 0
    for node in sorted(nodes, key=lambda n: -n.id):
        if node in graph and node.op not in ("input", "state") and not node.schema.effect and all(graph.num_uses(v) == 0 for v in node.outputs):
            graph.erase(node)
            erased += 1
    return erased


def _describe(node: Node) -> str:
    where = f" ({node.loc.short()})" if node.loc is not None and (node.loc.module_path or node.loc.file) else ""
    return f"{node.op}#{node.id}{where}"


@dataclasses.dataclass(frozen=True)
class RewritePass(Pass):
    """Base of pattern rewrites: set ``name`` and ``pattern``, implement ``check`` and ``rewrite``
    (see the module docstring). Returns whether anything was rewritten."""

    name: ClassVar[str] = "rewrite"
    pattern: ClassVar[Pattern]
    max_rounds: int = 10

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        """None when ``m`` may be rewritten, else the reason it must not be."""
        return None

    def rewrite(self, graph: Graph, m: Match) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, graph: Graph) -> bool:
        outcomes: dict[str, str] = graph.meta.setdefault("rewrites", {}).setdefault(self.name, {})
        changed = False
        for _ in range(self.max_rounds):
            progress = False
            for node in graph.topo_order():
                if node not in graph:
                    continue
                m = self.pattern.match(graph, node)
                if m is None:
                    continue
                what = _describe(node)
                reason = self.check(graph, m)
                if reason:
                    outcomes[what] = reason
                    log.debug("%s: not rewriting %s: %s", self.name, what, reason)
                    continue
                consts = [v.producer for n in m.matched for v in n.inputs if v.producer.op == "constant"]
                self.rewrite(graph, m)
                erase_dead(graph, m.matched + consts)
                outcomes[what] = "rewritten"
                progress = True
            if not progress:
                break
            changed = True
        return changed
