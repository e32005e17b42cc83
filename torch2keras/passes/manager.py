"""Passes and the pass manager.

A pass is a named Graph -> Graph rewrite (in place) that returns whether it changed anything.
The manager runs passes in order, verifies the IR after each one (and the pass's postcondition),
wraps failures with the pass chain, records what each pipeline position did (``records``), and
calls a hook between passes (``dump_ir`` writes the IR text there). Every pass also runs inside
regions (the sub-graphs of control-flow ops): on each nested graph, innermost first, then on the
enclosing graph; ``Pass.for_region`` gives the variant a region gets. A pass that must decide
the enclosing graph first overrides ``run_nested`` (the layout pass does: a region's boundary
layouts are its node's, chosen outside). A group of passes (``Fixpoint``) is one position; it
runs its members through ``run_steps`` so that each member gets a record of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, ClassVar, Optional, Sequence

import attrs

from ..ir import Graph, PassError, Torch2KerasError

__all__ = ["Pass", "PassManager", "PassRecord", "PASSES", "Step", "register_pass", "get_pass"]

log = logging.getLogger(__name__)

PASSES: dict[str, type["Pass"]] = {}

Step = Callable[[int, "Pass"], bool]  # step(member index from 1, member) runs a group's member


@dataclasses.dataclass(frozen=True)
class Pass:
    """Base class: subclasses set ``name``, state their invariant in the docstring, implement
    ``run``, and may check that invariant in ``postcondition``. Options are dataclass fields."""

    name: ClassVar[str] = "pass"
    idempotent: ClassVar[bool] = False  # run twice in a row, the second run never changes anything

    def run(self, graph: Graph) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, graph: Graph) -> bool:
        return self.run(graph)

    def for_region(self) -> "Pass":
        """The pass to run inside a region (a control-flow sub-graph); itself unless options
        that concern the model's own boundary must not apply there."""
        return self

    def run_nested(self, graph: Graph) -> bool:
        """Run on every region nested in ``graph`` (innermost first), then on ``graph``."""
        changed = False
        inner = self.for_region()
        for g in graph.nested_graphs():
            changed |= bool((self if g is graph else inner).run(g))
        return changed

    def run_steps(self, graph: Graph, step: Step) -> bool:
        """What the manager calls: ``run_nested``; a group runs each member as ``step(i, member)``."""
        return self.run_nested(graph)

    def postcondition(self, graph: Graph) -> Optional[str]:
        """None when the pass's invariant holds on ``graph`` (after the pass ran), else what is
        wrong. The manager checks it when it verifies; the default states nothing."""
        return None

    def postcondition_nested(self, graph: Graph) -> Optional[str]:
        """``postcondition`` on every region nested in ``graph`` and on ``graph`` itself."""
        inner = self.for_region()
        for g in graph.nested_graphs():
            text = (self if g is graph else inner).postcondition(g)
            if text:
                return text if g is graph else f"in region {g.name!r}: {text}"
        return None


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Make a pass available by name (``compile(..., passes=[..., "my_pass"])``)."""
    if cls.name in PASSES and PASSES[cls.name] is not cls:
        raise ValueError(f"a pass named {cls.name!r} is already registered")
    PASSES[cls.name] = cls
    return cls


def get_pass(spec: "str | Pass") -> Pass:
    if isinstance(spec, Pass):
        return spec
    try:
        return PASSES[spec]()
    except KeyError:
        raise KeyError(f"unknown pass {spec!r}; registered: {sorted(PASSES)}") from None


@attrs.define
class PassRecord:
    """What one pipeline position did. position: "3" for the third pass, "1.2" for the second
    member of the group at position 1. runs: how often it ran (a group's members run once per
    round). seconds: run time (a top-level position's includes verifying it). rewrites: outcomes
    of a pattern pass's matches, {"rewritten": n, "refused": m} without the kinds that did not
    occur (empty for other passes)."""

    position: str
    name: str
    changed: bool = False
    runs: int = 0
    seconds: float = 0.0
    rewrites: dict[str, int] = attrs.field(factory=dict)


def _rewrite_counts(graph: Graph) -> dict[str, dict[str, int]]:
    """The cumulative outcome counts of pattern passes run on ``graph`` (its regions included)."""
    return {name: dict(counts) for name, counts in graph.meta.get("rewrite_counts", {}).items()}


def _counts_since(before: dict, after: dict) -> dict[str, int]:
    """The outcomes counted between two ``_rewrite_counts`` (summed over the passes that ran)."""
    out: dict[str, int] = {}
    for name, counts in after.items():
        for kind, n in counts.items():
            if n != before.get(name, {}).get(kind, 0):
                out[kind] = out.get(kind, 0) + n - before.get(name, {}).get(kind, 0)
    return out


Hook = Callable[[int, Pass, Graph], None]


class PassManager:
    """Run passes in order; verify after each (IR and postcondition); call ``hook(index, pass,
    graph)`` after each. ``records`` tells what every position did; ``changed`` and ``timings``
    are the same keyed by position ("1", "2", ..., group members "1.1", ...)."""

    def __init__(self, passes: Sequence["str | Pass"], *, verify: bool = True, hook: Optional[Hook] = None) -> None:
        self.passes = [get_pass(p) for p in passes]
        self.verify = verify
        self.hook = hook
        self.records: list[PassRecord] = []

    @property
    def changed(self) -> dict[str, bool]:
        return {r.position: r.changed for r in self.records}

    @property
    def timings(self) -> dict[str, float]:
        return {r.position: r.seconds for r in self.records}

    def run(self, graph: Graph) -> Graph:
        self.records = []
        done: list[str] = []
        for index, p in enumerate(self.passes, start=1):
            record = PassRecord(str(index), p.name)
            self.records.append(record)
            try:
                self._run_position(graph, p, record)
            except Torch2KerasError as e:
                raise PassError(f"pass {p.name!r} failed (after {done or 'no passes'}): {e}") from e
            except Exception as e:  # noqa: BLE001
                raise PassError(f"pass {p.name!r} failed (after {done or 'no passes'}): {type(e).__name__}: {e}") from e
            log.debug("after %s (changed=%s):\n%s", p.name, record.changed, graph)
            done.append(p.name)
            if self.hook is not None:
                self.hook(index, p, graph)
        return graph

    def _run_position(self, graph: Graph, p: Pass, record: PassRecord) -> None:
        members: dict[int, PassRecord] = {}

        def step(i: int, member: Pass) -> bool:
            rec = members.setdefault(i, PassRecord(f"{record.position}.{i}", member.name))
            try:
                return self._timed(graph, rec, member.run_nested)
            except Torch2KerasError as e:
                raise PassError(f"member {member.name!r} (position {rec.position}) failed: {e}") from e
            except Exception as e:  # noqa: BLE001
                raise PassError(f"member {member.name!r} (position {rec.position}) failed: "
                                f"{type(e).__name__}: {e}") from e

        start = time.perf_counter()
        self._timed(graph, record, lambda g: p.run_steps(g, step))
        if self.verify:
            graph.verify()
            broken = p.postcondition_nested(graph)
            if broken:
                raise PassError(f"postcondition does not hold: {broken}")
        record.seconds = time.perf_counter() - start
        self.records.extend(members[i] for i in sorted(members))

    @staticmethod
    def _timed(graph: Graph, record: PassRecord, run: Callable[[Graph], bool]) -> bool:
        """Run ``run(graph)``, adding its outcome, time and rewrite counts to ``record``."""
        before = _rewrite_counts(graph)
        start = time.perf_counter()
        changed = bool(run(graph))
        record.seconds += time.perf_counter() - start
        record.runs += 1
        record.changed |= changed
        for kind, n in _counts_since(before, _rewrite_counts(graph)).items():
            record.rewrites[kind] = record.rewrites.get(kind, 0) + n
        return changed
