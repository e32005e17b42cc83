"""Models written by the direct TFLite backend and run in LiteRT (2 threads, default delegates):
every output within 1e-4 (scaled by max(1, max |ref|)) of PyTorch on a second invocation of one
interpreter, and no more ops -- nor TRANSPOSEs -- than the converter path's file of the same
model, every op taken by XNNPACK (LSTMs, the UNPACK writing their states and strided slices
with a step aside, as for the converter). Small models run by default, the torchvision zoo is ``slow``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from direct_check import (assert_not_more_ops, check_direct, converter_counts, reference, run_file,
                          xnnpack_leftovers)
from models import (LastStepLSTM, NobucoEssentials, PixelUnshuffleConvShuffle, ReshapeBetweenConvs,
                    ReshapeBetweenConvsPermuted, TwoOutputs, transformer_encoder)
from zoo_models import zoo_model


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
    assert set(xnnpack_leftovers(written.path)) <= {"UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "STRIDED_SLICE"}


def test_channels_last_io_has_no_transpose(tmp_path):
    model, inputs = _small("essentials")
    layouts = {"input_layouts": "channels_last", "output_layouts": "channels_last"}
    _, written = check_direct(model.eval(), inputs, tmp_path, "essentials_nhwc", **layouts)
    assert written.op_counts.get("TRANSPOSE", 0) == 0


class LSTMHead(nn.Module):
    """A 2-layer LSTM from given or zero states (optionally after a linear front end) and a
    linear head on its last step."""

    def __init__(self, time_major=False, front=False):
        super().__init__()
        self.front = nn.Linear(16, 16) if front else None
        self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=not time_major)
        self.fc = nn.Linear(32, 5)
        self.time_major = time_major

    def forward(self, x, h=None, c=None):
        out, _ = self.lstm(x if self.front is None else torch.tanh(self.front(x)), None if h is None else (h, c))
        return self.fc(out[-1] if self.time_major else out[:, -1])


def _max_abs_error(model, inputs, graph, written):
    outs = run_file(graph, written.path, [t.numpy() for t in inputs], invocations=3)
    return max(float(abs(o - r).max()) for o, r in zip(outs, reference(model, inputs)))


def test_two_layer_lstm_and_linear_is_four_ops(tmp_path):
    """2-layer LSTM + linear on its last step: one UNPACK writing the states afresh each call, a
    fused op per layer and the FULLY_CONNECTED reading the last layer's final hidden state
    variable (no STRIDED_SLICE of the sequence); a third invocation matches PyTorch."""
    model, inputs = _small("lstm_last_step")
    graph, written = check_direct(model.eval(), inputs, tmp_path, "lstm", invocations=3)
    assert written.op_counts == {"FULLY_CONNECTED": 1, "UNPACK": 1, "UNIDIRECTIONAL_SEQUENCE_LSTM": 2}
    assert sum(written.op_counts.values()) == 4 and written.op_counts.get("TRANSPOSE", 0) == 0
    assert _max_abs_error(model, inputs, graph, written) <= 1e-4


@pytest.mark.parametrize("variant", ["given_states", "time_major_batch3", "front_end"])
def test_lstm_last_step_reads_the_state_after_the_fused_ops(variant, tmp_path):
    """The FULLY_CONNECTED reading the h variable runs after the LSTMs with the default delegates
    (third invocation), from given states too (two UNPACKs). Behind a front end XNNPACK may run
    (the state write's partition could come before the LSTMs' input), so there the last step is
    a STRIDED_SLICE of the sequence."""
    torch.manual_seed(1)
    model = LSTMHead(time_major=variant == "time_major_batch3", front=variant == "front_end").eval()
    x = torch.randn(7, 3, 16) if variant == "time_major_batch3" else torch.randn(2, 7, 16)
    inputs = (x, torch.randn(2, 2, 32), torch.randn(2, 2, 32)) if variant == "given_states" else (x,)
    graph, written = check_direct(model, inputs, tmp_path, variant, invocations=3)
    assert written.op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2
    if variant == "front_end":
        assert written.op_counts["STRIDED_SLICE"] == 1 and written.op_counts["SPLIT"] == 1
    else:
        assert "STRIDED_SLICE" not in written.op_counts
        assert written.op_counts["UNPACK"] == (2 if variant == "given_states" else 1)
    assert _max_abs_error(model, inputs, graph, written) <= 1e-4


@pytest.mark.parametrize("name", [
    "squeezenet1_1",
    *[pytest.param(n, marks=pytest.mark.slow) for n in ("mobilenet_v3_small", "resnet18", "mobilenet_v3_large", "vit_b_16",
                                                        "convnext_tiny", "efficientnet_b0", "mobilenet_v2", "resnet50",
                                                        "googlenet", "deeplabv3_mobilenet_v3_large",
                                                        "lraspp_mobilenet_v3_large")]])
def test_zoo_model(name, tmp_path):
    model, x = zoo_model(name)
    inputs = (x,)
    _, written = check_direct(model, inputs, tmp_path, name)
    assert_not_more_ops(written.op_counts, converter_counts(model, inputs, tmp_path, name), name)
    assert xnnpack_leftovers(written.path) == []
