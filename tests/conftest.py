"""Test-session checks: every graph ``compile`` builds survives the IR text round trip.

While the tests run, ``PassManager.run`` is wrapped: when it is ``compile``'s pipeline (its hook
is the compiler's), the graph is checked right after lowering and again after the last pass. The
check prints the graph, parses the text without weights, and wants the parsed graph to verify,
to print the very same text, and to hold the very same small (inline) arrays, bit for bit. A
failure fails the test that built the graph (in the phase -- fixture setup or test call -- where
the compile ran). The terminal summary reports the check's cost (CPU seconds, summed over
pytest-xdist workers) next to the session's; ``--no-ir-round-trip`` turns the check off.

The direct TFLite backend's cross-check (tests/direct_backend_check.py: every float file the
converter path writes is also written directly and the two compared in LiteRT) is registered
here; ``--no-direct-cross-check`` turns it off.
"""

from __future__ import annotations

import difflib
import time

import numpy as np
import pytest
from session_checks import report_failures

from torch2keras.ir import Graph, parse, print_graph
from torch2keras.ir.printer import printed_names
from torch2keras.passes.manager import PassManager

_FAILURES: list[str] = []
_COST = {"graphs": 0, "seconds": 0.0, "session_seconds": 0.0}
_SESSION_START = time.process_time()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-ir-round-trip", action="store_true",
                     help="do not check that every graph compile builds survives print -> parse -> print")
    parser.addoption("--no-direct-cross-check", action="store_true",
                     help="do not write every float file the TFLite converter writes with the direct backend too "
                          "and compare the two in LiteRT")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--no-direct-cross-check"):
        import os
        import sys

        here = os.path.dirname(os.path.abspath(__file__))
        if here not in sys.path:
            sys.path.insert(0, here)
        import direct_backend_check

        config.pluginmanager.register(direct_backend_check, "direct_backend_check")


def _arrays(graph: Graph) -> dict[str, np.ndarray]:
    """Every real array attribute of the graph (regions included), by its printed value name."""
    names = printed_names(graph)
    return {f"{names[node.outputs[0]]}.{key}": value for _, node in graph.walk() for key, value in node.attrs.items()
            if isinstance(value, np.ndarray) and node.outputs}


def _round_trip_problem(graph: Graph) -> str:
    """What goes wrong printing ``graph``, parsing the text and printing again ('' if nothing)."""
    text = print_graph(graph)
    try:
        parsed = parse(text)
        parsed.verify()
        again = print_graph(parsed)
    except Exception as e:  # noqa: BLE001 - reported with the text
        return f"{type(e).__name__}: {e}\n--- the text:\n{text}"
    if again != text:
        diff = "\n".join(difflib.unified_diff(text.splitlines(), again.splitlines(), "printed", "reprinted",
                                             lineterm=""))
        return f"the parsed graph prints differently:\n{diff}"
    original, inline = _arrays(graph), _arrays(parsed)
    for key, array in inline.items():
        want = original.get(key)
        if want is None or want.dtype != array.dtype or want.shape != array.shape \
                or want.tobytes() != array.tobytes():
            return f"inline array {key} reads back as {array!r}, was {want!r}"
    return ""


def _check(graph: Graph, stage: str) -> None:
    start = time.process_time()
    problem = _round_trip_problem(graph)
    _COST["graphs"] += 1
    _COST["seconds"] += time.process_time() - start
    if problem:
        _FAILURES.append(f"IR text round trip of graph {graph.name!r} {stage} failed: {problem}")


def _is_compile(manager: PassManager) -> bool:
    """A pipeline the compiler runs (its dump hook is the compiler's), not one a test runs itself."""
    return (getattr(manager.hook, "__module__", None) or "").startswith("torch2keras.")


@pytest.fixture(scope="session", autouse=True)
def _ir_round_trip(request: pytest.FixtureRequest):
    """Wraps PassManager.run for the session (compile's runs only)."""
    if request.config.getoption("--no-ir-round-trip"):
        yield
        return
    original = PassManager.run

    def run(self: PassManager, graph: Graph) -> Graph:
        if not _is_compile(self):
            return original(self, graph)
        _check(graph, "after lowering")
        out = original(self, graph)
        _check(out, "after the passes")
        return out

    PassManager.run = run
    try:
        yield
    finally:
        PassManager.run = original


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report_failures(outcome.get_result(), _FAILURES, "IR text round trip")


def pytest_sessionfinish(session: pytest.Session) -> None:
    _COST["session_seconds"] += time.process_time() - _SESSION_START
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: hand the numbers to the controller
        session.config.workeroutput["ir_round_trip"] = dict(_COST)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    for key, value in getattr(node, "workeroutput", {}).get("ir_round_trip", {}).items():
        _COST[key] += value


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _COST["graphs"]:
        share = 100 * _COST["seconds"] / max(_COST["session_seconds"], 1e-9)
        terminalreporter.write_line(f"IR text round trip: {_COST['graphs']} graphs checked in {_COST['seconds']:.1f} "
                                    f"CPU s of the test processes' {_COST['session_seconds']:.0f} CPU s ({share:.2f}%)")
