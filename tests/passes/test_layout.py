"""Global layout optimisation: TRANSPOSE counts read from the exported .tflite, outputs vs PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from models import (GRUTwoConvs, NobucoEssentials, PixelUnshuffleConvShuffle, RecurrentStack, ReshapeBetweenConvs,
                    ReshapeBetweenConvsPermuted, transformer_encoder)

ATOL = 1e-4
CL = "channels_last"


def _convert(model, inputs, tmp_path, name, **layouts):
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    result = torch2keras.compile(model, inputs, name=name, **layouts)
    assert result.report.ok, result.report.summary()
    result.export_tflite(str(tmp_path / f"{name}.tflite"))
    assert result.report.tflite["max_abs_error"] < ATOL
    return result


def _torch_permutes(model, inputs) -> int:
    ep = torch.export.export(model, inputs if isinstance(inputs, tuple) else (inputs,), strict=False)
    return sum(1 for n in ep.graph.nodes if n.op == "call_function" and
               any(k in str(n.target) for k in ("permute", "transpose", ".t.")))


def test_nobuco_first_example_has_no_transposes(tmp_path):
    torch.manual_seed(0)
    result = _convert(NobucoEssentials().eval(), torch.rand(1, 3, 64, 64), tmp_path, "essentials",
                      input_layouts=CL, output_layouts=CL)
    assert result.report.tflite["transposes"] == 0


def test_gru_then_two_convs_needs_exactly_one_transpose(tmp_path):
    torch.manual_seed(0)
    result = _convert(GRUTwoConvs().eval(), torch.randn(1, 12, 32), tmp_path, "gru_convs", output_layouts=CL)
    assert result.report.tflite["transposes"] == 1
    assert result.report.tflite["op_counts"].get("WHILE") == 1  # the GRU stays a loop, not unrolled


def test_reshape_between_convs_uses_the_minimum(tmp_path):
    """The data must move once: conv1 writes [length, channels]; conv2 reads [2, 6] groups of it."""
    torch.manual_seed(0)
    plain = _convert(ReshapeBetweenConvs().eval(), torch.randn(1, 3, 4), tmp_path, "reshape",
                     input_layouts=CL, output_layouts=CL)
    assert plain.report.tflite["transposes"] == 1
    trick = _convert(ReshapeBetweenConvsPermuted().eval(), torch.randn(1, 3, 4), tmp_path, "reshape_trick",
                     input_layouts=CL, output_layouts=CL)
    assert trick.report.tflite["transposes"] == 0


def test_pixel_unshuffle_conv_pixel_shuffle_is_three_ops(tmp_path):
    torch.manual_seed(0)
    result = _convert(PixelUnshuffleConvShuffle().eval(), torch.randn(1, 3, 32, 32), tmp_path, "pixel",
                      input_layouts=CL, output_layouts=CL)
    assert result.report.tflite["op_counts"] == {"CONV_2D": 1, "DEPTH_TO_SPACE": 1, "SPACE_TO_DEPTH": 1}


def test_pixel_shuffle_alone_is_exact(tmp_path):
    """Without a conv to absorb it, each channel permutation stays -- a channel shuffle: one small
    transpose of the channel axis, which XNNPACK runs (a gather it does not) -- and is right."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.PixelShuffle(2), nn.ReLU(), nn.PixelUnshuffle(2)).eval()
    result = _convert(model, torch.randn(1, 8, 6, 6), tmp_path, "pixel_alone", input_layouts=CL, output_layouts=CL)
    assert result.report.tflite["transposes"] == 2 and "GATHER" not in result.report.tflite["op_counts"]


@pytest.mark.parametrize("cls,kwargs,shape", [
    (nn.GRU, dict(num_layers=2, bidirectional=True, batch_first=True), (2, 7, 16)),
    (nn.LSTM, dict(num_layers=2, batch_first=True), (2, 7, 16)),
    (nn.LSTM, dict(bidirectional=True), (7, 2, 16)),
])
def test_recurrent_layers_match(tmp_path, cls, kwargs, shape):
    torch.manual_seed(0)
    result = _convert(RecurrentStack(cls, **kwargs).eval(), torch.randn(*shape), tmp_path, cls.__name__)
    assert result.report.tflite["transposes"] == 0  # batch-first or time-major, the layers read torch's layout


def test_transformer_encoder_transposes_bounded(tmp_path):
    torch.manual_seed(0)
    model, x = transformer_encoder().eval(), torch.randn(2, 10, 32)
    result = _convert(model, x, tmp_path, "encoder")
    permutes = _torch_permutes(model, x)
    assert result.report.tflite["transposes"] <= permutes
    # per layer: q, k and v together, the heads merged back, and (batch 2) one batch-first turn
    assert result.report.tflite["transposes"] <= 3 * 2


def test_layout_optimiser_off_transposes_around_channel_ops(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU()).eval()
    x = torch.randn(1, 3, 16, 16)
    on = _convert(model, x, tmp_path, "on", input_layouts=CL, output_layouts=CL)
    off = torch2keras.compile(model, x, input_layouts=CL, output_layouts=CL, optimize_layout=False)
    assert on.report.transposes == 0
    assert off.report.transposes == 4  # in and out of both convs
    assert off.report.ok


class _PermutedFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 4)
        self.register_buffer("order", torch.tensor([3, 1, 0, 5, 2, 4]))

    def forward(self, x):
        y = self.a(x)[..., self.order]  # after a layer: folds into its rows
        return self.b(torch.relu(y)[..., self.order])  # before one (across the relu): into its columns


def test_feature_permutations_fold_into_linear_layers():
    torch.manual_seed(0)
    result = torch2keras.compile(_PermutedFeatures().eval(), torch.randn(2, 6))
    assert "index_select" not in result.report.ir_op_counts
    assert result.report.ir_op_counts["linear"] == 2
    assert result.report.max_abs_error < 1e-5


class _ConvGather(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x, index):
        return torch.gather(self.conv(x), 2, index)


def test_gather_runs_channels_last():
    torch.manual_seed(0)
    x, index = torch.randn(1, 3, 5, 5), torch.randint(0, 5, (1, 4, 3, 5))
    result = torch2keras.compile(_ConvGather().eval(), (x, index), input_layouts={"x": CL}, output_layouts=CL)
    assert result.report.max_abs_error == 0.0
    gather = result.ir.nodes_by_op("gather")[0]
    assert gather.output.type.layout == (0, 2, 3, 1)
    assert result.report.transposes == 1  # only the PyTorch-order index is transposed


class _PermuteSandwich(nn.Module):
    def forward(self, x):
        y = torch.relu(x.permute(0, 2, 3, 1)) * 2  # elementwise ops between inverse permutes
        return y.permute(0, 3, 1, 2)


class _TwoPermutes(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 1, 3).permute(3, 0, 2, 1) + 1


def test_inverse_permutes_vanish_across_elementwise_ops():
    result = torch2keras.compile(_PermuteSandwich(), torch.randn(1, 3, 4, 5))
    assert result.report.transposes == 0
    assert result.report.max_abs_error == 0.0


def test_adjacent_permutes_fuse_into_one():
    result = torch2keras.compile(_TwoPermutes(), torch.randn(2, 3, 4, 5))
    assert result.report.transposes == 1
    assert result.report.max_abs_error == 0.0


class _RowWrite(nn.Module):
    """A key/value cache [1, heads, slots, d] with one token's row written by a select: the row
    comes from a projection as [1, 1, heads, d] and is permuted (a free permute: it moves an
    axis of one element), the cache is a graph input and output in PyTorch's order."""

    def forward(self, cache, x, keep):
        row = x.reshape(1, 1, 2, 16).permute(0, 2, 1, 3) * 2.0
        return torch.where(keep.reshape(1, 1, -1, 1), cache, row)


def test_a_select_follows_its_largest_input_not_a_broadcast_row():
    """The select runs in the cache's layout: converting the row costs 32 values, the cache
    (in and out) 2 x 4096."""
    keep = torch.arange(128) != 5
    result = torch2keras.compile(_RowWrite(), (torch.randn(1, 2, 128, 16), torch.randn(1, 1, 32), keep))
    assert result.report.transposes == 0
    assert result.report.max_abs_error == 0.0
