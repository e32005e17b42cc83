"""LSTMs unrolled over their steps (passes/unroll_lstm.py): every configuration against PyTorch in
Keras (``compile(extra_passes=["unroll_lstm"])``) and in LiteRT (``to_tflite``, which unrolls by
default for small LSTMs), the file's ops all taken by XNNPACK; the wavefront form's op counts;
what stays fused."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from models import LastStepLSTM
from torch2keras.frontend_torch import capture, lower
from torch2keras.passes import DeadCodeElimination, FoldConstants, PassManager, UnrollLSTM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backend_tflite"))
from direct_check import xnnpack_leftovers  # noqa: E402

TOL = 1e-5


class Stack(nn.Module):
    """An LSTM whose every result is an output (or only the sequence), from zero or given states."""

    def __init__(self, every_result=True, **kwargs):
        super().__init__()
        self.lstm = nn.LSTM(6, 5, **kwargs)
        self.every_result = every_result

    def forward(self, x, h=None, c=None):
        out, (h_n, c_n) = self.lstm(x, None if h is None else (h, c))
        return (out, h_n, c_n) if self.every_result else out


def _reference(model, inputs):
    with torch.no_grad():
        out = model(*inputs)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


CASES = {  # name: (LSTM arguments, input shape, given states)
    "one_layer_batch_first": (dict(batch_first=True), (3, 7, 6), False),
    "three_layers_wavefront": (dict(num_layers=3, batch_first=True), (2, 6, 6), False),
    "time_major_batch3": (dict(num_layers=2), (5, 3, 6), False),
    "bidirectional_two_layers": (dict(num_layers=2, bidirectional=True), (4, 2, 6), False),
    "given_states": (dict(num_layers=2, batch_first=True), (2, 4, 6), True),
    "no_bias": (dict(num_layers=2, bias=False, batch_first=True), (1, 5, 6), False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_unrolled_lstm_matches_pytorch_in_keras_and_litert(name, tmp_path):
    kwargs, shape, given = CASES[name]
    torch.manual_seed(0)
    model = Stack(**kwargs).eval()
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    batch = shape[0] if kwargs.get("batch_first") else shape[1]
    inputs = (torch.randn(*shape),) + ((torch.randn(layers, batch, 5), torch.randn(layers, batch, 5)) if given else ())
    ref = _reference(model, inputs)

    result = torch2keras.compile(model, inputs, extra_passes=["unroll_lstm"], on_mismatch="raise", atol=TOL, rtol=TOL)
    assert not result.ir.nodes_by_op("lstm")
    keras_out = result.keras_model([np.asarray(t) for t in inputs])
    for got, want in zip(keras_out, ref):
        assert np.max(np.abs(np.asarray(got) - want)) < TOL

    written = torch2keras.to_tflite(model, inputs, str(tmp_path / f"{name}.tflite"), atol=TOL, rtol=TOL)
    assert written.max_abs_error < TOL
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in written.op_counts and "WHILE" not in written.op_counts
    assert xnnpack_leftovers(written.path) == []


def test_two_layer_lstm_runs_as_waves_of_both_layers(tmp_path):
    """LSTM(16 -> 32, 2 layers, 10 steps) + linear on the last step: one input projection, one
    FULLY_CONNECTED per wave (11 waves, the first without one: zero states) and the head -- 12,
    every op on XNNPACK; about 13 ops per wave in all, no CONCATENATION (the layers' states sit
    side by side)."""
    torch.manual_seed(0)
    model, x = LastStepLSTM().eval(), torch.randn(1, 10, 16)
    written = torch2keras.to_tflite(model, (x,), str(tmp_path / "lstm.tflite"), atol=TOL, rtol=TOL)
    counts = written.op_counts
    assert counts["FULLY_CONNECTED"] == 12 and "CONCATENATION" not in counts
    assert counts["LOGISTIC"] == 3 * 11 - 1  # (the first wave's forget gate multiplies a zero state: not computed)
    assert sum(counts.values()) <= 13 * 11 + 4 and counts.get("TRANSPOSE", 0) == 0
    assert xnnpack_leftovers(written.path) == []
    assert written.max_abs_error < TOL


def test_fused_form_on_request_and_long_sequences_stay_fused(tmp_path):
    torch.manual_seed(0)
    model = LastStepLSTM().eval()
    fused = torch2keras.to_tflite(model, (torch.randn(1, 10, 16),), str(tmp_path / "fused.tflite"), lstm="fused")
    assert sum(fused.op_counts.values()) == 4 and fused.op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2
    long = torch2keras.to_tflite(model, (torch.randn(1, 65, 16),), str(tmp_path / "long.tflite"))
    assert long.op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2
    with pytest.raises(ValueError, match="lstm must be one of"):
        torch2keras.to_tflite(model, (torch.randn(1, 10, 16),), str(tmp_path / "x.tflite"), lstm="unrolled")


def test_the_pass_says_why_an_lstm_stays():
    torch.manual_seed(0)
    graph = lower(capture(LastStepLSTM().eval(), (torch.randn(1, 70, 16),), {}), "m")
    PassManager([DeadCodeElimination(), FoldConstants(), UnrollLSTM()]).run(graph)
    assert len(graph.nodes_by_op("lstm")) == 1
    reasons = list(graph.meta["rewrites"]["unroll_lstm"].values())
    assert any("runs 70 steps (unrolled: 1 to max_steps=64)" in r for r in reasons), reasons
    graph = lower(capture(LastStepLSTM().eval(), (torch.randn(1, 70, 16),), {}), "m")
    PassManager([DeadCodeElimination(), FoldConstants(), UnrollLSTM(max_steps=80)]).run(graph)
    assert not graph.nodes_by_op("lstm")


def test_auto_unrolls_only_lstms_whose_weights_over_all_steps_stay_small(tmp_path):
    """to_tflite's default (lstm="auto") unrolls up to 1.5 MB of weights read over the steps (the
    2-layer LSTM of 32 units over 10 steps: 0.57 MB); 64 units over 10 steps read 2.1 MB, where
    the unrolled file measured slower, so it stays fused unless lstm="unroll" asks."""
    from torch2keras.direct import AUTO_UNROLL_BYTES

    torch.manual_seed(0)
    model = Stack(every_result=False, num_layers=2, batch_first=True)
    model.lstm = nn.LSTM(16, 64, num_layers=2, batch_first=True)
    model.eval()
    x = torch.randn(1, 10, 16)
    read = 10 * 4 * sum(w.numel() for name, w in model.lstm.named_parameters() if name.startswith("weight"))
    assert read > AUTO_UNROLL_BYTES
    auto = torch2keras.to_tflite(model, (x,), str(tmp_path / "auto.tflite"))
    assert auto.op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2
    unrolled = torch2keras.to_tflite(model, (x,), str(tmp_path / "unrolled.tflite"), lstm="unroll", atol=TOL, rtol=TOL)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in unrolled.op_counts and unrolled.max_abs_error < TOL
    graph = lower(capture(model, (x,), {}), "m")
    PassManager([DeadCodeElimination(), FoldConstants(), UnrollLSTM(max_weight_bytes=AUTO_UNROLL_BYTES)]).run(graph)
    reasons = list(graph.meta["rewrites"]["unroll_lstm"].values())
    assert any(f"reads {read / 1e6:.2f} MB of weights over its steps" in r for r in reasons), reasons


@pytest.mark.parametrize("lstm", ["auto", "fused"])
def test_compiled_export_writes_the_lstm_as_to_tflite_does(lstm, tmp_path):
    """``compile(...).export_tflite(backend="direct")`` chooses the LSTM's form as ``to_tflite``
    does (``lstm="auto"`` by default: this small LSTM unrolled): the two files hold the same ops
    and both match PyTorch; the compiled IR keeps its fused ``lstm`` (the Keras model's)."""
    from torch2keras.tflite.file import read_tflite

    torch.manual_seed(0)
    model, x = LastStepLSTM().eval(), torch.randn(1, 10, 16)
    want = _reference(model, (x,))[0]
    written = torch2keras.to_tflite(model, (x,), str(tmp_path / "to_tflite.tflite"), lstm=lstm, atol=TOL, rtol=TOL)
    result = torch2keras.compile(model, (x,))
    path = result.export_tflite(str(tmp_path / "export.tflite"), backend="direct",
                                **({} if lstm == "auto" else {"lstm": lstm}))
    counts = read_tflite(path).op_counts()
    assert counts == read_tflite(written.path).op_counts()
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in counts) == (lstm == "fused")
    assert len(result.ir.nodes_by_op("lstm")) == 1
    assert written.max_abs_error <= 1e-5 and result.report.tflite["max_abs_error"] <= 1e-5
    assert np.max(np.abs(result.run_tflite(path, [x.numpy()])[0] - want)) <= 1e-5
    if lstm == "auto":
        assert xnnpack_leftovers(path) == []
    with pytest.raises(ValueError, match="lstm must be one of"):
        result.export_tflite(str(tmp_path / "x.tflite"), backend="direct", lstm="unrolled")
    with pytest.raises(ValueError, match="converter writes the Keras model as compiled"):
        result.export_tflite(str(tmp_path / "x.tflite"), lstm="unroll")
