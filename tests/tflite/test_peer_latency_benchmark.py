"""The helpers of ``benchmarks/peer_latency.py`` on the conv-hardsigmoid-slice model at a small
size, without the peer (``make bench-peer-latency`` runs litert-torch): the files it writes
match torch, the rounds give one median per file and round, and the XNNPACK listing names the
ops left to LiteRT's own kernels."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

from torch2keras.tflite.runtime import latency_rounds

_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, _DIR)
    spec = importlib.util.spec_from_file_location("peer_latency_benchmark", os.path.join(_DIR, "peer_latency.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def files(bench, tmp_path_factory):
    from zoo import essentials

    inputs = (torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)),)
    return bench.write_files("essentials", str(tmp_path_factory.mktemp("peer")), None, (essentials(), inputs))


def test_files_match_torch(files):
    paths, errors = files
    assert set(paths) == {"direct", "converter"}
    assert all(e < 1e-5 for e in errors.values()), errors


def test_rounds_and_listing(bench, files, tmp_path):
    paths, _ = files
    rows = latency_rounds(paths, rounds=3, runs=2)
    assert len(rows) == 3 and all(set(r) == {*paths, "runs"} and r["runs"] == 2 for r in rows)
    assert all(min(r[k] for k in paths) > 0 for r in rows)
    direct = bench.file_facts(paths["direct"])
    # the channel split is one SPLIT: 8 ops, all on XNNPACK
    assert direct["ops"] == 8 and direct["op_counts"]["SPLIT"] == 1 and direct["xnnpack_left"] == []
    assert direct["xnnpack_ops"] == "8/8"

    class HalfChannels(torch.nn.Module):  # x[:, ::2] alone: a stride-2 STRIDED_SLICE, which XNNPACK refuses
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 1)

        def forward(self, x):
            return self.conv(x)[:, ::2]

    half, _ = bench.write_files("half", str(tmp_path), None, (HalfChannels().eval(), (torch.randn(1, 3, 8, 8),)))
    facts = bench.file_facts(half["direct"])
    assert facts["xnnpack_left"] == ["STRIDED_SLICE x1"]
    assert facts["xnnpack_ops"] == f"{facts['ops'] - 1}/{facts['ops']}"
