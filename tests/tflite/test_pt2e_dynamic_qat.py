"""PT2E models quantized dynamically (``is_dynamic=True``: activations quantized with parameters
chosen at run time, int8 weights) and by quantization-aware training (``prepare_qat_pt2e``, a
few training steps, ``convert_pt2e``): written by ``to_tflite`` and checked against the
quantized model in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from test_pt2e import _steps, pt2e, xnnpack

import torch2keras
from torch2keras.tflite.file import read_tflite
from torch2keras.tflite.runtime import run_tflite

INT8_OPS = {"CONV_2D", "FULLY_CONNECTED", "RESHAPE"}


def _net() -> nn.Module:
    """conv-bn-relu, flatten, linear-relu, linear (seeded)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_pt2e_dynamic_model_matches_torch(tmp_path):
    """The dynamic quantization is written as torch's float arithmetic (min / max, scale, zero
    point, round, clamp), the weights as int8 constants read by a DEQUANTIZE: torch's numbers."""
    example = torch.randn(1, 3, 8, 8)
    quantizer = xnnpack.XNNPACKQuantizer().set_global(
        xnnpack.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    prepared = pt2e.prepare_pt2e(torch.export.export(_net().eval(), (example,)).module(), quantizer)
    prepared(example)
    quantized = pt2e.convert_pt2e(prepared)
    path = str(tmp_path / "dynamic.tflite")
    result = torch2keras.to_tflite(quantized, example, path, input_layouts="channels_last", atol=1e-5, rtol=1e-5)
    generator = torch.Generator().manual_seed(3)
    for _ in range(4):
        x = torch.randn(1, 3, 8, 8, generator=generator) * 2
        with torch.no_grad():
            ref = quantized(x).numpy()
        got = next(iter(run_tflite(path, {result.ir.input_names[0]: x.numpy().transpose(0, 2, 3, 1)}).values()))
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    f = read_tflite(path)
    assert result.op_counts["ROUND"] == 4 and result.op_counts["REDUCE_MAX"] == 2  # (two quantized activations)
    weights = [f.tensor(op.inputs[0]) for op in f.main_ops() if op.name == "DEQUANTIZE"]
    assert sorted(w.dtype for w in weights if w.constant and w.per_channel) == ["int8", "int8"]
    assert not any(t.dtype == "float64" for sub in f.tensors for t in sub)


def test_pt2e_qat_model_is_int8_like_static_ptq(tmp_path):
    """After ``convert_pt2e`` a QAT model has the graph of static PTQ (batch norm folded into the
    conv): int8 throughout, torch's outputs within one step."""
    net = _net()
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(net.train(), (torch.randn(4, 3, 8, 8),), dynamic_shapes=({0: batch},)).module()
    quantizer = xnnpack.XNNPACKQuantizer().set_global(
        xnnpack.get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
    prepared = pt2e.prepare_qat_pt2e(exported, quantizer)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(8, 3, 8, 8, generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(prepared(x), torch.arange(8) % 4).backward()
        optimizer.step()
    pytest.importorskip("torchao.quantization.pt2e").move_exported_model_to_eval(prepared)
    quantized = pt2e.convert_pt2e(prepared)
    path = str(tmp_path / "qat.tflite")
    result = torch2keras.to_tflite(quantized, torch.randn(1, 3, 8, 8), path, input_layouts="channels_last")
    steps = _steps(quantized, result)
    assert np.mean(steps <= 1.0 + 1e-3) >= 0.99 and steps.max() <= 2.0 + 1e-3
    counts = result.op_counts
    assert counts["QUANTIZE"] == 1 and counts["DEQUANTIZE"] == 1 and counts.get("TRANSPOSE", 0) == 0
    assert set(counts) <= INT8_OPS | {"QUANTIZE", "DEQUANTIZE"}
    assert not any(n.op == "batch_norm" for n in result.ir)
