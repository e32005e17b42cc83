"""Dynamic-range int8 files (``quantize="dynamic_int8"``, the TF converter) keep depthwise
convolution filters in float32: XNNPACK takes no hybrid depthwise convolution, and each one
left to LiteRT's built-in kernel splits the delegated graph (mobilenet_v3_small: 35x slower than
float with 2 threads). Checked: filter dtypes, XNNPACK taking every op, numbers against PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import torch2keras
from torch2keras.tflite.delegates import analyze
from torch2keras.tflite.file import read_tflite
from torch2keras.tflite.runtime import run_tflite


def test_dynamic_int8_depthwise_filters_are_float_and_xnnpack_takes_every_op(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 128, 1), nn.ReLU(), nn.Conv2d(128, 128, 3, padding=1, groups=128),
                          nn.ReLU(), nn.Conv2d(128, 16, 1)).eval()  # (1152 depthwise weights: quantized by default)
    x = torch.randn(1, 3, 8, 8)
    result = torch2keras.compile(model, x, input_layouts="channels_last", validate="outputs")
    path = result.export_tflite(str(tmp_path / "dynamic.tflite"), quantize="dynamic_int8")
    f = read_tflite(path)
    depthwise = [op for op in f.main_ops() if op.name == "DEPTHWISE_CONV_2D"]
    convs = [op for op in f.main_ops() if op.name == "CONV_2D"]
    assert len(depthwise) == 1 and f.tensor(depthwise[0].inputs[1]).dtype == "float32"
    assert any(f.tensor(op.inputs[1]).dtype == "int8" for op in convs)  # (the 1x1 convs stay hybrid)
    report = analyze(path, result.layer_nodes, result.output_nodes)
    assert "XNNPACK: ready" in report.summary(), report.summary()
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(1, 3, 8, 8, generator=generator)
        with torch.no_grad():
            want = model(x).numpy()
        got = next(iter(run_tflite(path, {result.input_names[0]: x.numpy().transpose(0, 2, 3, 1)}).values()))
        assert np.abs(got - want).max() <= 0.03 * np.abs(want).max()
