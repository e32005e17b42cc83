"""Strided channel slices that split a layer's channels (``x[:, 0::2]``, ``x[:, 1::2]``): rule
``strided`` of passes/fold_channel_permutation.py groups the channels by stride in the layer's
weights, so the slices become one SPLIT (XNNPACK takes no strided slice). Checked on the IR
(counts) and end to end against PyTorch (direct TFLite in LiteRT with XNNPACK, Keras)."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch import nn

import torch2keras
from models import NobucoEssentials
from torch2keras.frontend_torch import capture, lower
from torch2keras.passes import DeadCodeElimination, FoldConstants, FoldChannelPermutation, PassManager

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backend_tflite"))
from direct_check import check_direct, xnnpack_leftovers  # noqa: E402


class LinearThirds(nn.Module):
    """A linear layer's 12 features read as x[..., 0::3], x[..., 1::3], x[..., 2::3] after a relu and a scale."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 12)
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 12))

    def forward(self, x):
        y = torch.relu(self.fc(x)) * self.scale
        return y[..., 0::3] * y[..., 1::3] + y[..., 2::3]


class OddChannels(nn.Module):
    """15 channels split by 2 (pieces of 8 and 7)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 15, 3, padding=1)

    def forward(self, x):
        y = torch.sigmoid(self.conv(x))
        return y[:, 0::2].sum(1) - y[:, 1::2].mean(1)


class HalfOnly(nn.Module):
    """x[:, ::2] alone: no split of every channel, the strided slice stays."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return self.conv(x)[:, ::2]


class AlsoRead(nn.Module):
    """The conv's result read whole too: its channel order cannot change."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        y = self.conv(x)
        return y[:, 0::2] - y[:, 1::2], y.mean(1)


def _counts(model, x):
    graph = lower(capture(model.eval(), (x,), {}), "m")
    PassManager([DeadCodeElimination(), FoldConstants(), FoldChannelPermutation()]).run(graph)
    slices = [n.attrs["step"] for n in graph.topo_order() if n.op == "slice"]
    return graph.op_counts(), slices, graph.meta["rewrites"]["fold_channel_permutation"]


@pytest.mark.parametrize("model, x, pieces", [(NobucoEssentials, torch.rand(1, 3, 16, 16), 2),
                                              (LinearThirds, torch.randn(2, 5, 6), 3),
                                              (OddChannels, torch.randn(1, 3, 8, 8), 2)])
def test_the_split_goes_into_the_layer(model, x, pieces):
    counts, steps, _ = _counts(model(), x)
    assert steps == [1] * pieces and "index_select" not in counts


@pytest.mark.parametrize("model, reason", [(HalfOnly, "do not start at 0..1"), (AlsoRead, "other ops than slices")])
def test_not_a_split_of_every_channel_stays(model, reason):
    counts, steps, outcomes = _counts(model(), torch.randn(1, 3, 4, 4))
    assert 2 in steps and "index_select" not in counts
    assert any(reason in o for o in outcomes.values()), outcomes


@pytest.mark.parametrize("model, x", [(NobucoEssentials, torch.rand(1, 3, 64, 64)), (LinearThirds, torch.randn(2, 5, 6)),
                                      (OddChannels, torch.randn(1, 3, 8, 8))])
def test_direct_file_matches_pytorch_all_on_xnnpack(model, x, tmp_path):
    torch.manual_seed(0)
    m = model().eval()
    _, written = check_direct(m, (x,), tmp_path, model.__name__)
    assert "GATHER" not in written.op_counts
    # equal pieces: one SPLIT; unequal ones: a step-1 slice each, which XNNPACK takes too
    assert written.op_counts.get("SPLIT", 0) == (0 if model is OddChannels else 1)
    assert xnnpack_leftovers(written.path) == []
    if model is NobucoEssentials:  # PAD, CONV_2D, MUL (1/6), SPLIT, MUL, SUB and the two NCHW transposes
        assert written.op_counts == {"CONV_2D": 1, "MUL": 2, "PAD": 1, "SPLIT": 1, "SUB": 1, "TRANSPOSE": 2}
    result = torch2keras.compile(m, x)
    assert result.report.ok and result.report.max_abs_error < 1e-4
