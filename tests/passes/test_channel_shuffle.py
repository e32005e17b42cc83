"""Channel shuffles (passes/fold_channel_permutation.py): reshape-permute-reshape shuffles become channel
permutations, folded into the convolutions that read them (through depthwise convs and
elementwise ops); the ones left are one TRANSPOSE each on both TFLite paths. Checked on the IR
and end to end against PyTorch (Keras, converter TFLite, direct TFLite)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.tflite.file import read_tflite
from torch2keras.frontend_torch import capture, lower
from torch2keras.passes import DeadCodeElimination, FoldBatchNorm, FoldChannelPermutation, FoldConstants, PassManager
from torch2keras.ir.shuffle import shuffle_groups, shuffle_permutation
from zoo_models import zoo_model

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backend_tflite"))
from direct_check import assert_not_more_ops, check_direct, xnnpack_leftovers  # noqa: E402

TOL = 1e-4


def shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleIntoConvs(nn.Module):
    """A shuffle read by a plain conv and, through a depthwise conv and a scale, by another."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, padding=1)
        self.a = nn.Conv2d(12, 8, 1)
        self.dw = nn.Conv2d(12, 24, 3, padding=1, groups=12)
        self.b = nn.Conv2d(24, 8, 1)
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 24).reshape(24, 1, 1))

    def forward(self, x):
        s = shuffle(torch.relu(self.stem(x)), 3)
        return self.a(s) + self.b(torch.relu(self.dw(s)) * self.scale)


class ShuffleThenChunk(nn.Module):
    """A ShuffleNet unit: chunk, a branch, concat, shuffle (the permutation cannot reach a conv)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, groups=4))

    def forward(self, x):
        y = self.stem(x)
        for _ in range(2):
            a, b = y.chunk(2, dim=1)
            y = shuffle(torch.cat([a, self.branch(b)], 1), 2)
        return y


def _passes(model, x):
    graph = lower(capture(model.eval(), (x,), {}), "m")
    PassManager([DeadCodeElimination(), FoldConstants(), FoldBatchNorm(), FoldChannelPermutation()]).run(graph)
    return graph


def test_shuffle_index_is_the_permutation_of_the_three_ops():
    x = torch.arange(2 * 12 * 1 * 1, dtype=torch.float32).reshape(2, 12, 1, 1)
    idx = shuffle_permutation(12, 3)
    assert torch.equal(shuffle(x, 3), x[:, idx])
    assert shuffle_groups(idx) == 3 and shuffle_groups(np.arange(12)) is None
    assert shuffle_groups(np.roll(np.arange(12), 1)) is None


def test_shuffle_read_by_convs_is_folded_away():
    graph = _passes(ShuffleIntoConvs(), torch.randn(1, 3, 6, 6))
    counts = graph.op_counts()
    assert "index_select" not in counts and "permute" not in counts and "reshape" not in counts
    assert counts["conv"] == 4


def test_shuffle_before_a_chunk_stays_one_permutation():
    graph = _passes(ShuffleThenChunk(), torch.randn(1, 3, 6, 6))
    counts = graph.op_counts()
    assert counts.get("index_select") == 2 and "permute" not in counts and "reshape" not in counts


def test_a_shuffle_that_is_an_output_stays():
    class Out(nn.Module):
        def forward(self, x):
            return shuffle(x, 2)

    counts = _passes(Out(), torch.randn(1, 4, 3, 3)).op_counts()
    assert counts.get("index_select") == 1


@pytest.mark.parametrize("model", [ShuffleIntoConvs, ShuffleThenChunk])
def test_both_tflite_paths_match_pytorch_with_one_transpose_per_kept_shuffle(model, tmp_path):
    torch.manual_seed(0)
    m, x = model().eval(), torch.randn(1, 3, 6, 6)
    kept = _passes(m, x).op_counts().get("index_select", 0)
    layouts = {"input_layouts": "channels_last", "output_layouts": "channels_last"}
    _, written = check_direct(m, (x,), tmp_path, model.__name__, **layouts)
    result = torch2keras.compile(m, x, **layouts)
    assert result.report.ok
    result.export_tflite(str(tmp_path / "converter.tflite"))
    assert result.report.tflite["max_abs_error"] < TOL
    assert written.op_counts.get("TRANSPOSE", 0) == kept
    assert result.report.tflite["transposes"] == kept
    assert "GATHER" not in written.op_counts and "GATHER" not in result.report.tflite["op_counts"]


@pytest.mark.slow
def test_shufflenet_v2(tmp_path):
    model, x = zoo_model("shufflenet_v2_x1_0")
    _, written = check_direct(model, (x,), tmp_path, "shufflenet")
    result = torch2keras.compile(model, x, validate="outputs")
    path = result.export_tflite(str(tmp_path / "converter.tflite"))
    ref = model(x).detach().numpy()
    scale = max(1.0, float(np.abs(ref).max()))
    assert result.report.tflite["max_abs_error"] / scale < TOL
    converter = read_tflite(path).op_counts()
    assert written.op_counts["TRANSPOSE"] <= 16 and converter["TRANSPOSE"] <= 16
    assert_not_more_ops(written.op_counts, converter, "shufflenet_v2_x1_0")
    assert xnnpack_leftovers(written.path) == []
