"""The OpInfo test suite, built once per shard file (``test_opinfo_<k>.py``), so that
``pytest-xdist --dist loadfile`` spreads the entries over the workers.

Per in-scope OpInfo entry (see ``harness.py`` for the scope):

* ``test_first_sample`` (default run): the first sample that can be a model, in float32 (or in
  the first of int64/int32/bool the op takes), through Keras; for an entry that vouches for Core
  ATen ops (``core_coverage.py``), its captured graph must still contain them;
* ``test_tflite`` (default run, a fixed subset: every ``TFLITE_EVERY``-th entry by name): the
  same sample through Keras *and* TFLite (reusing ``test_first_sample``'s compile of it when that
  ran first in this process);
* ``test_sweep`` (``slow``): every dtype the op takes (float32, int64, int32, bool), up to
  ``MAX_SAMPLES`` samples that can be a model each (``T2K_OPINFO_MAX_SAMPLES``; 0 for all).

Expected failures come from ``expectations.py`` with their reasons, as ``xfail(strict=True)``:
a listed case that starts to pass fails the run until the list is updated.
"""

from __future__ import annotations

import os

import pytest
import torch

import harness
from core_coverage import CORE_VIA_OPINFO
from expectations import FIRST_SAMPLE, SWEEP, TFLITE

__all__ = ["make_tests", "SHARDS", "TFLITE_EVERY", "default_case", "in_scope_names", "tflite_subset"]

SHARDS = 4
TFLITE_EVERY = 9
MAX_SAMPLES = int(os.environ.get("T2K_OPINFO_MAX_SAMPLES", harness.MAX_SAMPLES))


def in_scope_names() -> list[str]:
    return sorted(n for n, o in harness.all_entries().items() if harness.in_scope(o))


def tflite_subset() -> list[str]:
    return in_scope_names()[::TFLITE_EVERY]


def default_case(opinfo):
    """(dtype, index, sample, case) of the first sample that can be a model, or the reason there
    is none."""
    reasons = []
    for dtype in harness.sample_dtypes(opinfo):
        samples = harness.samples(opinfo, dtype)
        try:
            for index, sample in enumerate(samples):
                case = harness.build_case(opinfo, sample, dtype)
                if not case.skip:
                    return dtype, index, case
                reasons.append(case.skip)
        finally:
            samples.close()  # now, not when garbage collection happens to run inside a trace
        break  # the default dtype only
    return None, None, "; ".join(sorted(set(reasons))) or "the op has no sample input"


def _xfail(reason):
    return pytest.mark.xfail(reason=reason, strict=True)


def _params(names, table):
    return [pytest.param(n, marks=_xfail(table[n])) if n in table else n for n in names]


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _check(outcome, what: str) -> None:
    assert outcome.status == "passed", f"{what}: {outcome.status}: {outcome.detail}"


def make_tests(shard: int):
    names = [n for i, n in enumerate(in_scope_names()) if i % SHARDS == shard]
    subset = set(tflite_subset())
    compiled: dict = {}  # entry of the TFLite subset -> (case, compile result) of its test_first_sample

    @pytest.mark.parametrize("entry", _params(names, FIRST_SAMPLE))
    def test_first_sample(entry):
        opinfo = harness.all_entries()[entry]
        dtype, index, case = default_case(opinfo)
        if dtype is None:
            pytest.fail(f"no sample of {entry} can be a model: {case}")
        with harness.recording_ops() as ops:
            outcome = harness.run_case(case, undefined_values=opinfo.name in harness.UNDEFINED_VALUES)
        if entry in subset and outcome.result is not None:  # test_tflite (same file, same process) reuses it
            compiled[entry] = (dtype, index, case, outcome.result)
        _check(outcome, f"{entry} {_dtype_name(dtype)} sample {index}")
        missing = set(CORE_VIA_OPINFO.get(entry, ())) - ops
        assert not missing, f"{entry}'s default case no longer contains {sorted(missing)} (core_coverage.py)"

    @pytest.mark.parametrize("entry", _params([n for n in names if n in subset], TFLITE))
    def test_tflite(entry, tmp_path):
        opinfo = harness.all_entries()[entry]
        dtype, index, case, result = compiled.pop(entry, None) or (*default_case(opinfo), None)
        if dtype is None:
            pytest.fail(f"no sample of {entry} can be a model: {case}")
        outcome = harness.run_case(case, undefined_values=opinfo.name in harness.UNDEFINED_VALUES, tflite=True,
                                   result=result)
        _check(outcome, f"{entry} {_dtype_name(dtype)} sample {index} (Keras and TFLite)")

    sweep = []
    for n in names:
        for dtype in harness.sample_dtypes(harness.all_entries()[n]):
            key = (n, _dtype_name(dtype))
            marks = [pytest.mark.slow] + ([_xfail(SWEEP[key])] if key in SWEEP else [])
            sweep.append(pytest.param(n, _dtype_name(dtype), marks=marks, id=f"{n}-{key[1]}"))

    @pytest.mark.parametrize("entry,dtype", sweep)
    def test_sweep(entry, dtype):
        opinfo = harness.all_entries()[entry]
        failures, ran = [], 0
        samples = harness.samples(opinfo, getattr(torch, dtype))
        for index, sample in enumerate(samples):
            if MAX_SAMPLES and ran >= MAX_SAMPLES:
                break
            outcome = harness.run_sample(opinfo, sample, getattr(torch, dtype))
            if outcome.status == "skipped":
                continue
            ran += 1
            if outcome.status != "passed":
                failures.append(f"sample {index}: {outcome.status}: {outcome.detail}")
        samples.close()
        assert not failures, f"{len(failures)} of {ran} samples fail:\n" + "\n".join(failures)

    return test_first_sample, test_tflite, test_sweep
