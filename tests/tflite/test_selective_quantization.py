"""Selective int8 quantization (``export_tflite(quantize="int8", keep_float=..., target_agreement=...)``):
which ops the file computes in float32 (counted), the top-1 agreement it reports against PyTorch's,
and the errors for names that are no layer and for options that do not apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.tflite.file import read_tflite
from torch2keras.tflite.runtime import run_tflite


def _outlier_mlp() -> nn.Module:
    """linear-relu, linear-relu whose first output channel is ~300x the others (per-tensor int8
    leaves the other channels a few steps), linear reading that channel scaled back down: int8
    throughout mixes the classes up; the middle and last layers in float32 do not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    with torch.no_grad():
        model[2].weight[0].mul_(300.0)
        model[2].bias[0] = 50.0
        model[4].weight[:, 0].mul_(1 / 300.0)
    return model


@pytest.fixture(scope="module")
def compiled():
    model = _outlier_mlp()
    generator = torch.Generator().manual_seed(1)
    calibration = [(torch.randn(1, 16, generator=generator).numpy(),) for _ in range(32)]
    holdout = [(torch.randn(1, 16, generator=generator).numpy(),) for _ in range(64)]
    return model, torch2keras.compile(model, torch.randn(1, 16), validate="outputs"), calibration, holdout


def _fully_connected(path: str) -> dict[str, int]:
    """FULLY_CONNECTED ops of the file by the dtype they write."""
    f = read_tflite(path)
    counts: dict[str, int] = {}
    for op in f.main_ops():
        if op.name == "FULLY_CONNECTED":
            dtype = f.tensor(op.outputs[0]).dtype
            counts[dtype] = counts.get(dtype, 0) + 1
    return counts


def _torch_agreement(model, path: str, holdout, name: str) -> float:
    same = 0
    for (x,) in holdout:
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy().argmax(-1)
        got = next(iter(run_tflite(path, {name: x}).values())).argmax(-1)
        same += int(np.all(got == want))
    return same / len(holdout)


def test_target_agreement_keeps_the_layers_where_int8_error_jumps_float(compiled, tmp_path):
    model, result, calibration, holdout = compiled
    path = result.export_tflite(str(tmp_path / "selective.tflite"), quantize="int8", calibration=calibration,
                                holdout=holdout, io_dtype="float32", target_agreement=0.99, delegates=False)
    choice = result.report.quantization_selection
    assert choice.agreement_int8 < 0.9 and choice.agreement >= 0.99 and choice.reached
    assert choice.samples == 64 and sorted(choice.kept_float) == ["linear_1", "output"]
    assert _fully_connected(path) == {"float32": 2, "int8": 1} and choice.float_ops == 2
    assert [s["agreement"] for s in choice.steps][0] == choice.agreement_int8 and len(choice.steps) == 3
    # the agreement is measured: the written file against PyTorch agrees as reported (near-ties aside)
    assert abs(_torch_agreement(model, path, holdout, result.input_names[0]) - choice.agreement) <= 1 / 64
    assert choice.bytes_int8 < choice.bytes < choice.bytes_float
    assert set(choice.latency_ms) == {"float32", "int8", "selective"}
    assert "selective int8: top-1 agreement" in result.report.summary()


def test_keep_float_by_layer_name_or_module_path(compiled, tmp_path):
    _, result, calibration, holdout = compiled
    for names in (["linear_1"], ["2"], ["[24]"]):
        path = result.export_tflite(str(tmp_path / "kept.tflite"), quantize="int8", calibration=calibration,
                                    holdout=holdout[:4], io_dtype="float32", keep_float=names, delegates=False)
        expected = {"float32": 2, "int8": 1} if names == ["[24]"] else {"float32": 1, "int8": 2}
        assert _fully_connected(path) == expected, names
        assert result.report.quantization_selection.target is None
    assert result.report.quantization_selection.kept_float == ["linear_1", "output"]


def test_selective_quantization_errors(compiled, tmp_path):
    _, result, calibration, holdout = compiled
    path = str(tmp_path / "bad.tflite")
    with pytest.raises(ValueError, match=r"keep_float: 'conv9' name\(s\) no op .* layers here: linear, relu, linear_1"):
        result.export_tflite(path, quantize="int8", calibration=calibration, keep_float=["conv9"], delegates=False)
    with pytest.raises(ValueError, match=r'keep_float keeps layers float in a calibrated int8 file: quantize="int8"'):
        result.export_tflite(path, quantize="dynamic_int8", keep_float=["linear"])
    with pytest.raises(ValueError, match=r"target_agreement is a share of held-out inputs, in \(0, 1\], got 99"):
        result.export_tflite(path, quantize="int8", calibration=calibration, target_agreement=99)
    with pytest.raises(ValueError, match=r"keep_float takes a list of layer names \(strings\), got 'linear'"):
        result.export_tflite(path, quantize="int8", calibration=calibration, keep_float="linear")
