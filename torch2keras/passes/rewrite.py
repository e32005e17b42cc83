"""Local rewrites as patterns: match a small tree of ops, check it (with a reason), rewrite it.

A pattern is a tree of ``Op`` nodes (an IR op and patterns for its inputs) with leaves ``Any``
(any value) and ``Const`` (a value computed by a ``constant`` node). Names bind what matched:

    bn = Op("batch_norm", Any("x"), Const("mean"), Const("var"), name="bn", rest=True, single_use=True)
    pattern = Op("conv", bn, Const("w"), Const("b", optional=True), name="conv")

``pattern.match(graph, node)`` returns a ``Match`` rooted at ``node`` (``m["conv"]`` the node,
``m["x"]`` the value, ``m.array("w")`` a constant's array) or None. Matching is structural
only; whatever needs a reason goes in the pass's ``check``. Beyond trees:

* ``Op(..., commutative=True)`` matches a two-input op with its operands in either order;
* ``Chain(ops, inner)`` walks up through zero or more single-input nodes of ``ops`` (greedily,
  each read once unless ``single_use=False``) and matches ``inner`` below them; ``m[name]`` is
  the list of chain nodes, nearest the root first;
* ``OneOf(rule=pattern, ...)`` gathers several rules in one pass; each may be rooted at a
  different op, and ``m.rule`` names the one that matched.

A ``RewritePass`` sets ``pattern`` and implements ``check(graph, m)`` (None to go ahead, else
the reason not to) and ``rewrite(graph, m)``, which builds the replacement and points the uses
at it with ``replace_value``. The driver visits nodes in topological order, rewrites the first
match (of a node's rules) whose check passes, erases the matched nodes (and their constants)
left unused, and repeats until a round changes nothing (at most ``max_rounds``). Every outcome
("rewritten", or the reason) is kept in ``graph.meta["rewrites"][pass name]``, keyed by the
root node's text; ``graph.meta["rewrite_counts"][pass name]`` counts them over all runs (those
in regions too, when the pass runs through ``run_nested``, as the pass manager runs it).
Its postcondition, checked by the pass manager: no match whose check passes is left.

Invariant of a correct rewrite: ``replace_value(old, new)`` only where ``new`` is logically
equal to ``old`` (same shape and dtype; within float rounding), so validation still compares it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, ClassVar, Iterator, Optional, Sequence, Union

import attrs
import numpy as np

from ..ir import Graph, Node, Value
from .manager import Pass

__all__ = ["Any", "Chain", "Const", "Match", "OneOf", "Op", "Pattern", "RewritePass", "describe", "erase_dead",
           "read_once", "replace_value"]

log = logging.getLogger(__name__)

Bound = Union[Node, Value, list, None]


@attrs.define
class Match:
    """What a pattern bound: nodes (``Op`` names), values (``Any``/``Const`` names) and chains
    (``Chain`` names); ``rule`` is the ``OneOf`` alternative that matched (None without one)."""

    root: Node
    nodes: dict[str, Node] = attrs.field(factory=dict)
    values: dict[str, Optional[Value]] = attrs.field(factory=dict)
    chains: dict[str, list[Node]] = attrs.field(factory=dict)
    matched: list[Node] = attrs.field(factory=list)  # every node an Op or Chain matched, innermost first
    rule: Optional[str] = None

    def __getitem__(self, name: str) -> Bound:
        for table in (self.nodes, self.chains):
            if name in table:
                return table[name]
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.nodes or name in self.chains or name in self.values

    def array(self, name: str) -> Optional[np.ndarray]:
        """The array of the constant bound to ``name`` (None for a missing optional input)."""
        v = self.values[name]
        return None if v is None else v.producer.value

    def snapshot(self) -> tuple:
        return dict(self.nodes), dict(self.values), dict(self.chains), len(self.matched), self.rule

    def restore(self, state: tuple) -> None:
        """Undo the bindings made since ``snapshot()`` (a failed alternative)."""
        nodes, values, chains, n, rule = state
        self.nodes, self.values, self.chains, self.rule = nodes, values, chains, rule
        del self.matched[n:]


class Pattern:
    """Base of the pattern kinds; ``match_value`` tries one value, binding into ``m``."""

    name: Optional[str] = None
    optional: bool = False

    def match_value(self, graph: Graph, value: Value, m: Match) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def match(self, graph: Graph, node: Node) -> Optional[Match]:
        """A Match rooted at ``node`` (only ``Op`` and ``OneOf`` patterns match nodes)."""
        raise TypeError(f"{type(self).__name__} patterns match values, not nodes")

    def matches(self, graph: Graph, node: Node) -> Iterator[Match]:
        """Every Match rooted at ``node``, in the order the rules are given (at most one here)."""
        m = self.match(graph, node)
        if m is not None:
            yield m


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


def read_once(graph: Graph, value: Value) -> bool:
    """``value`` has exactly one reader, a node (it is not a graph output)."""
    return graph.num_uses(value) == 1 and not graph.is_output(value)


class Op(Pattern):
    """A node of op ``op`` (a name or a tuple of names) whose inputs match ``inputs``.

    rest: the node may have more inputs than patterns given (unmatched). single_use: the node's
    results are read once and are not graph outputs (what an inner node of a fusion needs).
    where(node): a structural condition. Trailing ``optional`` patterns may have no input.
    commutative: a two-input node may match its patterns in either order (given order first).
    """

    def __init__(self, op: Union[str, Sequence[str]], *inputs: Pattern, name: Optional[str] = None,
                 where: Optional[Callable[[Node], bool]] = None, rest: bool = False, single_use: bool = False,
                 commutative: bool = False) -> None:
        if commutative and len(inputs) != 2:
            raise ValueError("a commutative Op pattern takes exactly two input patterns")
        self.ops = (op,) if isinstance(op, str) else tuple(op)
        self.inputs, self.name, self.where, self.rest, self.single_use = inputs, name, where, rest, single_use
        self.commutative = commutative

    def match(self, graph: Graph, node: Node) -> Optional[Match]:
        m = Match(root=node)
        return m if self._match_node(graph, node, m) else None

    def match_value(self, graph: Graph, value: Value, m: Match) -> bool:
        if self.single_use and not read_once(graph, value):
            return False
        return self._match_node(graph, value.producer, m)

    def _match_node(self, graph: Graph, node: Node, m: Match) -> bool:
        if node.op not in self.ops or (self.where is not None and not self.where(node)):
            return False
        n = len(node.inputs)
        required = len([p for p in self.inputs if not p.optional])
        if n < required or (n > len(self.inputs) and not self.rest):
            return False
        orders = [self.inputs]
        if self.commutative and n == 2:
            orders.append(self.inputs[::-1])
        for patterns in orders:
            state = m.snapshot()
            if self._match_inputs(graph, node, patterns, m):
                if self.name:
                    m.nodes[self.name] = node
                m.matched.append(node)
                return True
            m.restore(state)
        return False

    @staticmethod
    def _match_inputs(graph: Graph, node: Node, patterns: Sequence[Pattern], m: Match) -> bool:
        for i, p in enumerate(patterns):
            if i >= len(node.inputs):
                if p.name:
                    m.values[p.name] = None
                continue
            if not p.match_value(graph, node.inputs[i], m):
                return False
        return True


class Chain(Pattern):
    """Zero or more nodes of ``ops`` (walking up their first input, greedily), then ``inner``.

    single_use: every chain node's result is read once (by the node above it), as a chain that
    is moved or fused as a whole needs. min_length: how many chain nodes there must be at least.
    Binds ``name`` to the chain's nodes, nearest the root first.
    """

    def __init__(self, ops: Union[str, Sequence[str]], inner: Pattern, *, name: Optional[str] = None,
                 single_use: bool = True, min_length: int = 0) -> None:
        self.ops = (ops,) if isinstance(ops, str) else tuple(ops)
        self.inner, self.name, self.single_use, self.min_length = inner, name, single_use, min_length

    def match_value(self, graph: Graph, value: Value, m: Match) -> bool:
        chain: list[Node] = []
        while (value.producer.op in self.ops and value.producer.inputs
               and (not self.single_use or read_once(graph, value))):
            chain.append(value.producer)
            value = value.producer.inputs[0]
        if len(chain) < self.min_length:
            return False
        state = m.snapshot()
        if not self.inner.match_value(graph, value, m):
            m.restore(state)
            return False
        if self.name:
            m.chains[self.name] = chain
        m.matched.extend(reversed(chain))
        return True


class OneOf(Pattern):
    """Several rules, tried in the order given (``OneOf(after=p1, before=p2)``); each may be
    rooted at a different op. ``m.rule`` is the name of the rule that matched."""

    def __init__(self, **rules: Pattern) -> None:
        if not rules:
            raise ValueError("OneOf needs at least one rule")
        self.rules = rules

    def matches(self, graph: Graph, node: Node) -> Iterator[Match]:
        for rule, pattern in self.rules.items():
            for m in pattern.matches(graph, node):
                m.rule = rule
                yield m

    def match(self, graph: Graph, node: Node) -> Optional[Match]:
        return next(self.matches(graph, node), None)

    def match_value(self, graph: Graph, value: Value, m: Match) -> bool:
        for rule, pattern in self.rules.items():
            state = m.snapshot()
            if pattern.match_value(graph, value, m):
                return True
            m.restore(state)
        return False


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
    """Erase those of ``nodes`` whose results nothing reads, users before what they read (a node
    read only by another of ``nodes`` goes too); returns how many."""
    pending = list({n.id: n for n in nodes}.values())
    erased = 0
    while True:
        dead = [n for n in pending if n in graph and n.op not in ("input", "state") and not n.schema.effect
                and all(graph.num_uses(v) == 0 for v in n.outputs)]
        if not dead:
            return erased
        for node in dead:
            graph.erase(node)
        erased += len(dead)
        pending = [n for n in pending if n in graph]


def describe(node: Node) -> str:
    """``op#id (module file:line)``: how outcomes and postconditions name a node."""
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
        changed, outcomes = self._rewrite_all(graph)
        self._record(graph, outcomes, counts_into=graph)
        return changed

    def run_nested(self, graph: Graph) -> bool:
        """As ``Pass.run_nested``; the outcomes of every region are counted into ``graph``'s meta."""
        changed = False
        inner = self.for_region()
        for g in graph.nested_graphs():
            p = self if g is graph else inner
            g_changed, outcomes = p._rewrite_all(g)
            p._record(g, outcomes, counts_into=graph)
            changed |= g_changed
        return changed

    def _rewrite_all(self, graph: Graph) -> tuple[bool, dict[str, str]]:
        """Rounds over ``graph`` until one rewrites nothing; whether any did, and the outcomes."""
        outcomes: dict[str, str] = {}
        changed = False
        for _ in range(self.max_rounds):
            progress = False
            for node in graph.topo_order():
                if node in graph and self._visit(graph, node, outcomes):
                    progress = True
            if not progress:
                break
            changed = True
        return changed, outcomes

    def _record(self, graph: Graph, outcomes: dict[str, str], counts_into: Graph) -> None:
        graph.meta.setdefault("rewrites", {}).setdefault(self.name, {}).update(outcomes)
        counts = counts_into.meta.setdefault("rewrite_counts", {}).setdefault(self.name, {"rewritten": 0, "refused": 0})
        rewritten = sum(1 for o in outcomes.values() if o == "rewritten")
        counts["rewritten"] += rewritten
        counts["refused"] += len(outcomes) - rewritten

    def _visit(self, graph: Graph, node: Node, outcomes: dict[str, str]) -> bool:
        """Rewrite the first match rooted at ``node`` whose check passes; record the outcome."""
        refusals: list[tuple[Optional[str], str]] = []
        for m in self.pattern.matches(graph, node):
            reason = self.check(graph, m)
            if reason:
                refusals.append((m.rule, reason))
                continue
            consts = [v.producer for n in m.matched for v in n.inputs if v.producer.op == "constant"]
            what = describe(node)
            self.rewrite(graph, m)
            erase_dead(graph, m.matched + consts)
            outcomes[what] = "rewritten"
            return True
        if refusals:
            what = describe(node)
            outcomes[what] = (refusals[0][1] if len(refusals) == 1
                              else "; ".join(f"{rule}: {reason}" for rule, reason in refusals))
            log.debug("%s: not rewriting %s: %s", self.name, what, outcomes[what])
        return False

    def postcondition(self, graph: Graph) -> Optional[str]:
        """No match whose check passes is left (the rounds reached a fixpoint)."""
        for node in graph.topo_order():
            for m in self.pattern.matches(graph, node):
                if not self.check(graph, m):
                    rule = f" (rule {m.rule!r})" if m.rule else ""
                    return f"{describe(node)} can still be rewritten{rule}"
        return None
