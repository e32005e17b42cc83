"""Test-session cross-check of the two TFLite backends.

Whenever a test writes a float32 ``.tflite`` file through TensorFlow's converter
(``CompileResult.export_tflite`` with ``backend="converter"``, the default), the same compiled
model is also written by the direct backend (``torch2keras.backend_tflite``) and both files run in
LiteRT (default delegates, one fresh interpreter each) on the model's example inputs. Outputs
differing by more than ``TOL`` (scaled by max(1, max |converter output|)) fail the test, naming the
model and the largest difference; a model the direct backend refuses (``DirectExportError``) is
recorded, not failed, with the IR op and the reason (another exception of the writer too, as a
"writer error"). Files the check cannot compare (Flex ops in
the converter's file, a converter file LiteRT cannot run) are counted apart. The terminal summary
is one line: matched, refused (by reason, most frequent first) and mismatched, with the check's
cost (CPU seconds, summed over pytest-xdist workers) next to the session's.

Enabled from tests/conftest.py; ``--no-direct-cross-check`` turns it off.
"""

from __future__ import annotations

import collections
import os
import re
import tempfile
import time

import numpy as np
import pytest
from session_checks import report_failures

TOL = 1e-4  # scaled by max(1, max |converter output|)

_STATS: dict = {"matched": 0, "mismatched": 0, "uncompared": 0, "seconds": 0.0, "session_seconds": 0.0}
_REFUSED: collections.Counter = collections.Counter()  # reason -> models
_FAILURES: list[str] = []
_SESSION_START = time.process_time()
_WHY = re.compile(r"IR op '(\w+)' \(from ([^)]*)\) (.*)")


def _reason(error: Exception) -> str:
    """``op: why`` from a DirectExportError's first line, numbers and shapes generalised."""
    first = str(error).splitlines()[0]
    m = _WHY.search(first)
    if m is None:
        return first[:120]
    why = re.sub(r"\[[^\]]*\]|\d+", "N", m.group(3))
    why = re.sub(r"f\d+|f32|bf16|i64|i32|bool", "T", why)
    return f"{m.group(1)}: {why[:110]}"


def _outputs(result, path: str, inputs=None):
    inputs = result.example_inputs if inputs is None else inputs
    try:
        return result.run_tflite(path, inputs)
    except RuntimeError:  # a delegate that fails to prepare: the plain kernels
        return result.run_tflite(path, inputs, delegates=False)


def _cross_check(result, converter_path: str) -> None:
    """Write ``result``'s IR directly next to ``converter_path`` and compare the two files."""
    from torch2keras.backend_tflite import DirectExportError, write_tflite
    from torch2keras.backend_tflite.dynamic_batch import batch_symbol, other_batch
    from torch2keras.tflite.export import _direct_ready
    from torch2keras.tflite.file import read_tflite

    name = getattr(result.ir, "name", "?")
    if read_tflite(converter_path).flex_ops:
        _STATS["uncompared"] += 1
        return
    with tempfile.TemporaryDirectory() as tmp:
        direct_path = os.path.join(tmp, "direct.tflite")
        try:
            write_tflite(_direct_ready(result.ir), direct_path)
        except DirectExportError as e:
            _REFUSED[_reason(e)] += 1
            return
        except Exception as e:  # noqa: BLE001 - the writer's own failure: counted apart, named in the summary
            _REFUSED[f"writer error: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"] += 1
            return
        try:
            want = _outputs(result, converter_path)
        except Exception:  # noqa: BLE001 - the converter's file does not run here: nothing to compare with
            _STATS["uncompared"] += 1
            return
        try:
            got = _outputs(result, direct_path)
        except Exception as e:  # noqa: BLE001 - the direct file must run where the converter's does
            _STATS["mismatched"] += 1
            _FAILURES.append(f"direct TFLite cross-check: model {name!r}: the direct file fails in LiteRT "
                             f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}) "
                             f"where the converter's file runs")
            return
        worst = _differences(result, got, want)
        if not worst and batch_symbol(result.ir) is not None:  # a run-time batch: also at another size
            size, inputs = other_batch(result.ir, result.example_inputs)
            try:
                want = _outputs(result, converter_path, inputs)
            except Exception:  # noqa: BLE001 - the converter's file takes no other batch size here
                want = None
            if want is not None:
                try:
                    got = _outputs(result, direct_path, inputs)
                except Exception as e:  # noqa: BLE001 - it must run where the converter's does
                    got, worst = None, [f"fails in LiteRT at batch {size} ({type(e).__name__})"]
                if got is not None:
                    worst = [f"at batch {size}: {w}" for w in _differences(result, got, want)]
    if worst:
        _STATS["mismatched"] += 1
        ops = ", ".join(sorted({n.op for _, n in result.ir.walk() if n.op not in ("input", "constant")}))
        _FAILURES.append(f"direct TFLite cross-check: model {name!r}: the direct file differs from the "
                         f"converter's: " + "; ".join(worst) + (f"\n  IR ops: {ops}" if ops else "")
                         + "\n  (--no-direct-cross-check turns this check off)")
    else:
        _STATS["matched"] += 1


def _differences(result, got, want) -> list[str]:
    """The outputs of the direct file (``got``) differing from the converter's beyond ``TOL``."""
    worst = []
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            worst.append(f"output {k} ({result.output_names[k]}): shape {g.shape} vs the converter's {w.shape}")
            continue
        if not w.size:
            continue
        finite = np.isfinite(w)
        if not np.array_equal(finite, np.isfinite(g)):
            worst.append(f"output {k} ({result.output_names[k]}): non-finite values differ")
            continue
        scale = max(1.0, float(np.max(np.abs(w[finite]))) if finite.any() else 1.0)
        err = float(np.max(np.abs(g[finite] - w[finite]))) / scale if finite.any() else 0.0
        if err > TOL:
            worst.append(f"output {k} ({result.output_names[k]}): differs by {err:.3g} (scaled)")
    return worst


@pytest.fixture(scope="session", autouse=True)
def _direct_cross_check():
    """Wraps ``torch2keras.tflite.export._convert`` (the converter path's write) for the session."""
    from torch2keras.tflite import export

    original = export._convert

    def convert(result, path, options):
        original(result, path, options)
        if options.get("quantize") is None and getattr(result, "example_inputs", None) is not None:
            start = time.process_time()
            try:
                _cross_check(result, path)
            finally:
                _STATS["seconds"] += time.process_time() - start

    export._convert = convert
    try:
        yield
    finally:
        export._convert = original


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report_failures(outcome.get_result(), _FAILURES, "direct TFLite cross-check")


def pytest_sessionfinish(session: pytest.Session) -> None:
    _STATS["session_seconds"] += time.process_time() - _SESSION_START
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: hand the numbers to the controller
        session.config.workeroutput["direct_cross_check"] = {"stats": dict(_STATS), "refused": dict(_REFUSED)}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    got = getattr(node, "workeroutput", {}).get("direct_cross_check")
    if got:
        for key, value in got["stats"].items():
            _STATS[key] += value
        _REFUSED.update(got["refused"])


def summary() -> str:
    """The one-line summary (empty when no float converter file was written)."""
    refused = sum(_REFUSED.values())
    if not (_STATS["matched"] or _STATS["mismatched"] or refused or _STATS["uncompared"]):
        return ""
    reasons = "; ".join(f"{n}x {why}" for why, n in _REFUSED.most_common())
    share = 100 * _STATS["seconds"] / max(_STATS["session_seconds"], 1e-9)
    return (f"direct TFLite cross-check: {_STATS['matched']} matched, {refused} refused"
            + (f" ({reasons})" if reasons else "") + f", {_STATS['mismatched']} mismatched"
            + (f", {_STATS['uncompared']} not comparable" if _STATS["uncompared"] else "")
            + f"; {_STATS['seconds']:.1f} CPU s of the test processes' {_STATS['session_seconds']:.0f} ({share:.1f}%)")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    line = summary()
    if line:
        terminalreporter.write_line(line)
