"""``benchmarks/op_counts.py`` on its two small models (``make bench-op-counts`` runs the zoo): the
rows it writes hold each file's counts and errors vs PyTorch, the table has a row per model, and
a direct file with more ops or TRANSPOSEs, an op off XNNPACK (but the converter's and the
intended ones) or a large error is named."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("op_counts_benchmark", os.path.join(_DIR, "op_counts.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_models(bench, tmp_path):
    out = tmp_path / "op_counts.json"
    assert bench.main(["--models", "essentials,lstm2_linear", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["models"]
    assert [r["model"] for r in rows] == ["essentials", "lstm2_linear"]
    for row in rows:
        for backend in ("direct", "converter"):
            stats = row[backend]
            assert stats["ops"] == sum(stats["op_counts"].values()) > 0
            assert stats["transposes"] == stats["op_counts"].get("TRANSPOSE", 0)
            assert stats["scaled_error"] < 1e-4 and stats["max_abs_error"] < 1e-4
        assert row["direct"]["ops"] <= row["converter"]["ops"]
    # conv -> hardsigmoid -> channel halves: every op of both files on XNNPACK; the LSTMs are not
    assert rows[0]["direct"]["not_on_xnnpack"] == [] and rows[0]["findings"] == []
    assert rows[1]["direct"]["not_on_xnnpack"].count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2
    assert rows[1]["findings"] == []  # the LSTMs are off XNNPACK in the converter's file too, UNPACK by design
    table = (tmp_path / "op_counts.md").read_text()
    assert all(f"| {r['model']} | {r['direct']['ops']} | {r['converter']['ops']} |" in table for r in rows)


def test_findings_name_what_misses_the_criterion(bench):
    def stats(ops, transposes, left=(), err=0.0):
        return {"ops": ops, "transposes": transposes, "not_on_xnnpack": list(left), "scaled_error": err}

    assert bench.findings(stats(10, 1), stats(10, 1)) == []
    found = bench.findings(stats(11, 2, ["GATHER", "UNPACK", "WHERE"], 3e-4), stats(10, 1, ["WHERE"]))
    assert found == ["11 ops > converter's 10", "2 TRANSPOSE > converter's 1", "not on XNNPACK: GATHER",
                     "error 0.0003 (scaled) >= 0.0001"]
