"""Models written by the direct TFLite backend and run in LiteRT (2 threads, default delegates):
every output within 1e-4 (scaled by max(1, max |ref|)) of PyTorch on a second invocation of one
interpreter, and no more ops -- nor TRANSPOSEs -- than the converter path's file of the same
model, every op taken by XNNPACK (LSTMs and strided slices with a step aside, as for the
converter). Small models run by default, the torchvision zoo is ``slow``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compat import import_torchvision, seeded_model
from direct_check import assert_not_more_ops, check_direct, converter_counts, xnnpack_leftovers
from models import (NobucoEssentials, PixelUnshuffleConvShuffle, ReshapeBetweenConvs, ReshapeBetweenConvsPermuted,
                    TwoOutputs, transformer_encoder)


class LastStepLSTM(nn.Module):
    """A 2-layer LSTM, then a linear layer on its last output."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True)
        self.fc = nn.Linear(32, 5)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def _small(name):
    torch.manual_seed(0)
    return {
        "essentials": lambda: (NobucoEssentials(), (torch.rand(1, 3, 64, 64),)),
        "two_outputs": lambda: (TwoOutputs(), (torch.randn(1, 3, 8, 8), torch.randn(1, 4, 1, 1))),
        "encoder": lambda: (transformer_encoder(), (torch.randn(2, 10, 32),)),
        "pixel_shuffle": lambda: (PixelUnshuffleConvShuffle(), (torch.randn(1, 3, 32, 32),)),
        "reshape_convs": lambda: (ReshapeBetweenConvs(), (torch.randn(2, 3, 4),)),
        "reshape_convs_permuted": lambda: (ReshapeBetweenConvsPermuted(), (torch.randn(2, 3, 4),)),
        "lstm_last_step": lambda: (LastStepLSTM(), (torch.randn(1, 10, 16),)),
    }[name]()


@pytest.mark.parametrize("name", ["essentials", "two_outputs", "encoder", "pixel_shuffle", "reshape_convs",
                                  "reshape_convs_permuted", "lstm_last_step"])
def test_small_model(name, tmp_path):
    model, inputs = _small(name)
    _, written = check_direct(model.eval(), inputs, tmp_path, name)
    assert_not_more_ops(written.op_counts, converter_counts(model, inputs, tmp_path, name), name)
    assert set(xnnpack_leftovers(written.path)) <= {"UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE"}


def test_channels_last_io_has_no_transpose(tmp_path):
    model, inputs = _small("essentials")
    layouts = {"input_layouts": "channels_last", "output_layouts": "channels_last"}
    _, written = check_direct(model.eval(), inputs, tmp_path, "essentials_nhwc", **layouts)
    assert written.op_counts.get("TRANSPOSE", 0) == 0


def test_two_layer_lstm_is_one_state_split_and_one_fused_op_per_layer(tmp_path):
    """The LSTM's states are written afresh by one SPLIT each call (a second invocation matches
    PyTorch); no clipping or state arithmetic around the fused ops."""
    model, inputs = _small("lstm_last_step")
    _, written = check_direct(model.eval(), inputs, tmp_path, "lstm", invocations=3)
    assert written.op_counts == {"FULLY_CONNECTED": 1, "SPLIT": 1, "STRIDED_SLICE": 1,
                                 "UNIDIRECTIONAL_SEQUENCE_LSTM": 2}


def _zoo(name):
    tv = import_torchvision()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    return seeded_model(getattr(tv.models, name), x), (x,)


@pytest.mark.parametrize("name", [
    "squeezenet1_1",
    *[pytest.param(n, marks=pytest.mark.slow) for n in ("mobilenet_v3_small", "resnet18", "mobilenet_v3_large", "vit_b_16",
                                                        "convnext_tiny", "efficientnet_b0", "mobilenet_v2", "resnet50")]])
def test_zoo_model(name, tmp_path):
    model, inputs = _zoo(name)
    _, written = check_direct(model, inputs, tmp_path, name)
    assert_not_more_ops(written.op_counts, converter_counts(model, inputs, tmp_path, name), name)
    assert xnnpack_leftovers(written.path) == []
