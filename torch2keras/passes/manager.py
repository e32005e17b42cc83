"""Passes and the pass manager.

A pass is a named Graph -> Graph rewrite (in place) that returns whether it changed anything.
The manager runs passes in order, verifies the IR after each one, wraps failures with the pass
chain, and calls a hook between passes (``dump_ir`` writes the IR text there). Every pass also
runs inside regions (the sub-graphs of control-flow ops): on each nested graph, innermost
first, then on the enclosing graph; ``Pass.for_region`` gives the variant a region gets. A pass
that must decide the enclosing graph first overrides ``run_nested`` (the layout pass does: a
region's boundary layouts are its node's, chosen outside).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, ClassVar, Iterable, Optional, Sequence

from ..ir import Graph, PassError, Torch2KerasError

__all__ = ["Pass", "PassManager", "PASSES", "register_pass", "get_pass"]

log = logging.getLogger(__name__)

PASSES: dict[str, type["Pass"]] = {}


@dataclasses.dataclass(frozen=True)
class Pass:
    """Base class: subclasses set ``name``, state their invariant in the docstring, and
    implement ``run``. Options are dataclass fields."""

    name: ClassVar[str] = "pass"

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


Hook = Callable[[int, Pass, Graph], None]


class PassManager:
    """Run passes in order; verify after each; call ``hook(index, pass, graph)`` after each."""

    def __init__(self, passes: Sequence["str | Pass"], *, verify: bool = True, hook: Optional[Hook] = None) -> None:
        self.passes = [get_pass(p) for p in passes]
        self.verify = verify
        self.hook = hook
        self.timings: dict[str, float] = {}
        self.changed: dict[str, bool] = {}

    def run(self, graph: Graph) -> Graph:
        done: list[str] = []
        for index, p in enumerate(self.passes, start=1):
            start = time.perf_counter()
            try:
                changed = p.run_nested(graph)
                if self.verify:
                    graph.verify()
            except Torch2KerasError as e:
                raise PassError(f"pass {p.name!r} failed (after {done or 'no passes'}): {e}") from e
            except Exception as e:  # noqa: BLE001
                raise PassError(f"pass {p.name!r} failed (after {done or 'no passes'}): {type(e).__name__}: {e}") from e
            self.timings[p.name] = self.timings.get(p.name, 0.0) + time.perf_counter() - start
            self.changed[p.name] = changed
            log.debug("after %s (changed=%s):\n%s", p.name, changed, graph)
            done.append(p.name)
            if self.hook is not None:
                self.hook(index, p, graph)
        return graph
