"""PyTorch's OpInfo samples (tests/ops/harness.py) through the direct TFLite backend.

For each in-scope OpInfo entry, the first sample that can be a model is compiled to the annotated
IR, written by the direct backend and run in LiteRT. The direct backend may refuse an op (a
``DirectExportError`` naming it: the converter path writes such models); it must never write a
file that runs wrong or fails to run. Default run: a fixed subset (every ``EVERY``-th entry by
name); ``slow``: every entry. ``sweep`` also serves benchmarks-style coverage counts.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import pytest

import harness
from direct_check import annotated_ir, run_file
from suite import default_case, in_scope_names
from torch2keras.backend_tflite import DirectExportError, write_tflite

EVERY = 14


def run_direct(case, undefined_values: bool = False) -> harness.Outcome:
    """passed | mismatch | crashed | unsupported (refused by the direct backend, or before it)."""
    if case.skip:
        return harness.Outcome("skipped", case.skip)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = annotated_ir(case.module, case.inputs)
    except Exception as e:  # noqa: BLE001 - the frontend refused: not this backend's case
        return harness.Outcome("unsupported", f"before the backend: {type(e).__name__}: {harness._first(e)}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            written = write_tflite(graph, os.path.join(tmp, "op.tflite"))
        except DirectExportError as e:
            return harness.Outcome("unsupported", harness._first(e))
        except Exception as e:  # noqa: BLE001 - a writer bug
            return harness.Outcome("crashed", f"writing: {type(e).__name__}: {harness._first(e)}")
        try:
            outs = run_file(graph, written.path, [t.numpy() for t in case.inputs])
        except Exception as e:  # noqa: BLE001 - a file LiteRT refuses
            return harness.Outcome("crashed", f"LiteRT: {type(e).__name__}: {harness._first(e)}")
    return harness._check_outputs(case, outs, not undefined_values)


def outcome_of(entry: str) -> harness.Outcome:
    opinfo = harness.all_entries()[entry]
    dtype, index, case = default_case(opinfo)
    if dtype is None:
        return harness.Outcome("skipped", case)
    return run_direct(case, undefined_values=opinfo.name in harness.UNDEFINED_VALUES)


def _entries():
    names = in_scope_names()
    return [n if i % EVERY == 0 else pytest.param(n, marks=pytest.mark.slow) for i, n in enumerate(names)]


@pytest.mark.parametrize("entry", _entries())
def test_direct_never_writes_a_wrong_file(entry):
    outcome = outcome_of(entry)
    assert outcome.status in ("passed", "unsupported", "skipped"), f"{entry}: {outcome.status}: {outcome.detail}"
