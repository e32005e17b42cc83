"""``benchmarks/lstm_forms.py`` on one tiny LSTM: both files match torch, the unrolled one has no
fused op, the ratios per thread count and what ``lstm="auto"`` picks are recorded, the table
renders."""

from __future__ import annotations

import importlib.util
import os

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "lstm_forms.py")


def test_one_size(tmp_path):
    spec = importlib.util.spec_from_file_location("lstm_forms_benchmark", _PATH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.measure(8, 2, 3, str(tmp_path), rounds=1)
    assert r["auto_picks"] == "unroll" and r["weight_bytes_over_steps"] == 3 * 4 * (32 * 16 + 32 * 8 * 3)
    assert set(r["unroll/fused"]) == {1, 2} and all(v > 0 for v in r["unroll/fused"].values())
    assert r["files"]["fused"]["ops"] == 4 and r["files"]["unroll"]["ops"] > 4
    assert all(f["max_abs_error"] < 1e-5 for f in r["files"].values())
    assert "| 8 x 2 x 3 |" in bench.markdown([r], 1)
