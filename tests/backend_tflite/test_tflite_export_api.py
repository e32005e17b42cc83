"""``CompileResult.export_tflite(backend=...)``: the direct path's report record, fp16 and int8 weights,
quantized exports routed to the converter, and the errors (and the ``"auto"`` fallback) for a
model the direct backend cannot write."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from direct_check import TOL, annotated_ir, run_file
from torch2keras.backend_tflite import DirectExportError, write_tflite
from torch2keras.backend_tflite.export import resolve_backend
from torch2keras.ir import ExportError


class ConvHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.fc = nn.Linear(32, 512)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class CopySign(nn.Module):
    """An op the direct backend has no emitter for (the converter path writes copysign)."""

    def __init__(self):
        super().__init__()
        self.other = nn.Parameter(torch.rand(1, 2, 5, 6) - 0.5)

    def forward(self, x):
        return torch.copysign(x, self.other)  # REFUSED_LINE


@pytest.fixture(scope="module")
def compiled():
    torch.manual_seed(0)
    return torch2keras.compile(ConvHead().eval(), torch.randn(1, 3, 16, 16))


def test_direct_record_and_delegates(compiled, tmp_path):
    path = compiled.export_tflite(str(tmp_path / "direct.tflite"), backend="direct")
    record = compiled.report.tflite
    assert record["backend"] == "direct" and record["path"] == path
    assert record["max_abs_error"] < TOL
    assert record["op_counts"] == {"CONV_2D": 1, "FULLY_CONNECTED": 1, "MEAN": 1, "TRANSPOSE": 1}
    assert compiled.report.delegates.targets["XNNPACK"]["supported"] == 4
    outs = compiled.run_tflite(path, [np.ones((1, 3, 16, 16), np.float32)])
    with torch.no_grad():
        ref = compiled_model_output(compiled)
    assert np.abs(outs[0] - ref).max() < TOL


def compiled_model_output(compiled):
    return compiled.run_keras([np.ones((1, 3, 16, 16), np.float32)])[0]


def test_fp16_weights_are_half_size_and_dequantized(compiled, tmp_path):
    compiled.export_tflite(str(tmp_path / "f32.tflite"), backend="direct")
    full = compiled.report.tflite["bytes"]
    compiled.export_tflite(str(tmp_path / "f16.tflite"), backend="direct", quantize="fp16")
    half = compiled.report.tflite
    assert half["quantize"] == "fp16" and half["op_counts"]["DEQUANTIZE"] >= 2
    assert half["bytes"] < 0.75 * full
    assert half["max_abs_error"] < 1e-2


def test_int8_weights_are_written_directly_full_integer_by_the_converter(compiled, tmp_path):
    compiled.export_tflite(str(tmp_path / "f32.tflite"), backend="direct")
    full = compiled.report.tflite["bytes"]
    compiled.export_tflite(str(tmp_path / "int8w.tflite"), backend="direct", quantize="dynamic_int8")
    record = compiled.report.tflite
    assert record["backend"] == "direct" and record["quantize"] == "dynamic_int8"
    assert record["bytes"] < 0.5 * full and record["max_abs_error"] < 0.05 * np.abs(compiled.reference[0]).max()
    with pytest.raises(ValueError, match=r'quantize=\'dynamic_int4\' is written by the direct TFLite backend only'):
        compiled.export_tflite(str(tmp_path / "int4w.tflite"), quantize="dynamic_int4")
    with pytest.warns(UserWarning, match="written by the TFLite converter"):
        assert resolve_backend("direct", "int8") == "converter"


def test_unknown_backend_is_refused(compiled, tmp_path):
    with pytest.raises(ValueError, match="backend must be one of"):
        compiled.export_tflite(str(tmp_path / "x.tflite"), backend="flatbuffer")


def _refused_line() -> int:
    lines, start = inspect.getsourcelines(CopySign.forward)
    return start + next(k for k, line in enumerate(lines) if "REFUSED_LINE" in line)


def test_op_without_emitter_names_op_torch_op_and_line(tmp_path):
    x = torch.rand(1, 2, 5, 6)
    graph = annotated_ir(CopySign(), (x,))
    with pytest.raises(DirectExportError) as e:
        write_tflite(graph, str(tmp_path / "copysign.tflite"))
    text = str(e.value)
    assert "'copysign'" in text and "aten.copysign" in text \
        and f"test_tflite_export_api.py:{_refused_line()}" in text
    assert 'backend="converter"' in text and isinstance(e.value, ExportError)


def test_auto_falls_back_to_the_converter(tmp_path):
    x = torch.rand(1, 2, 5, 6)
    model = CopySign().eval()
    result = torch2keras.compile(model, x)
    with pytest.raises(ExportError, match="copysign"):
        result.export_tflite(str(tmp_path / "direct.tflite"), backend="direct")
    with pytest.warns(UserWarning, match="with the TFLite converter instead"):
        path = result.export_tflite(str(tmp_path / "auto.tflite"), backend="auto")
    assert result.report.tflite["backend"] == "converter" and result.report.tflite["max_abs_error"] < TOL
    with torch.no_grad():
        want = model(x).numpy()
    assert np.abs(result.run_tflite(path, [x.numpy()])[0] - want).max() < TOL


class CellStateReader(nn.Module):
    """A bidirectional LSTM whose final cell state is read (the direct backend reads it only
    from forward-only LSTMs on a model input)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 3, batch_first=True, bidirectional=True)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return out, c


def test_lstm_final_cell_state_is_refused_by_name(tmp_path):
    x = torch.randn(1, 5, 4)
    graph = annotated_ir(CellStateReader(), (x,))
    with pytest.raises(DirectExportError, match="final cell state"):
        write_tflite(graph, str(tmp_path / "c.tflite"))


def test_outputs_that_alias_inputs_get_their_own_tensor(tmp_path):
    class PassThrough(nn.Module):
        def forward(self, x, y):
            return x, y * 2, x

    inputs = (torch.randn(2, 3), torch.randn(2, 3))
    graph = annotated_ir(PassThrough(), inputs)
    written = write_tflite(graph, str(tmp_path / "alias.tflite"))
    outs = run_file(graph, written.path, [t.numpy() for t in inputs])
    for got, want in zip(outs, (inputs[0], inputs[1] * 2, inputs[0])):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
