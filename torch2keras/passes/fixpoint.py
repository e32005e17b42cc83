"""Run a group of passes, round after round, to their common fixpoint."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir import Graph, PassError
from .manager import Pass, Step, get_pass

__all__ = ["Fixpoint"]


@dataclasses.dataclass(frozen=True)
class Fixpoint(Pass):
    """Runs ``passes`` in order, round after round, until every member has run once since the
    last change without changing the graph (the member that made it is not run again just to
    confirm its own change when it is ``idempotent``); at most ``max_rounds`` rounds, else a
    ``PassError`` naming the members that still change it (passes that undo each other).

    Afterwards the graph is a fixpoint of every member (running any of them again changes
    nothing) and every member's postcondition holds. A group is one pipeline position: the
    manager verifies it once, when it has settled, and ``dump_ir`` writes one file for it.
    """

    passes: tuple = ()
    max_rounds: int = 8
    name: str = dataclasses.field(default="fixpoint", kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "passes", tuple(get_pass(p) for p in self.passes))
        if not self.passes:
            raise ValueError(f"fixpoint group {self.name!r} has no passes")
        if self.max_rounds < 1:
            raise ValueError(f"fixpoint group {self.name!r}: max_rounds must be at least 1, got {self.max_rounds}")

    def run(self, graph: Graph) -> bool:
        return self._settle(lambda i, p: p.run(graph))

    def run_nested(self, graph: Graph) -> bool:
        return self._settle(lambda i, p: p.run_nested(graph))

    def run_steps(self, graph: Graph, step: Step) -> bool:
        return self._settle(step)

    def for_region(self) -> "Fixpoint":
        return dataclasses.replace(self, passes=tuple(p.for_region() for p in self.passes))

    def postcondition(self, graph: Graph) -> Optional[str]:
        for p in self.passes:
            text = p.postcondition(graph)
            if text:
                return f"{p.name}: {text}"
        return None

    def _settle(self, step: Step) -> bool:
        """Run members as ``step(i, member)`` until all of them (all others, after an idempotent
        member's change) have run in a row without changing anything."""
        changed, quiet, needed = False, 0, len(self.passes)
        for _ in range(self.max_rounds):
            still_changing = []
            for i, p in enumerate(self.passes, start=1):
                if step(i, p):
                    changed, quiet = True, 0
                    needed = len(self.passes) - 1 if p.idempotent else len(self.passes)
                    still_changing.append(p.name)
                else:
                    quiet += 1
                if quiet >= needed:
                    return changed
        raise PassError(f"no fixpoint after {self.max_rounds} rounds: {still_changing} still changed the graph "
                        f"in the last round (passes that undo each other, or raise max_rounds)")
