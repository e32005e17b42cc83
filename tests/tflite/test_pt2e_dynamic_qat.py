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


def _dynamic(model: nn.Module, example: torch.Tensor):
    quantizer = xnnpack.XNNPACKQuantizer().set_global(
        xnnpack.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    prepared = pt2e.prepare_pt2e(torch.export.export(model.eval(), (example,)).module(), quantizer)
    prepared(example)
    return pt2e.convert_pt2e(prepared)


def _asymmetric_inputs(path: str) -> list[bool]:
    """Each FULLY_CONNECTED's asymmetric_quantize_inputs option, read from the flatbuffer."""
    from torch2keras.backend_tflite.schema import fb

    m = fb.Model.GetRootAs(open(path, "rb").read(), 0)
    g = m.Subgraphs(0)
    found = []
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        if m.OperatorCodes(op.OpcodeIndex()).BuiltinCode() == fb.BuiltinOperator.FULLY_CONNECTED:
            options = fb.FullyConnectedOptions()
            options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            found.append(bool(options.AsymmetricQuantizeInputs()))
    return found


def _check_numbers(quantized, result, path: str, shape: tuple, channels_last: bool) -> None:
    """The file against the quantized model in torch on seeded inputs (with and without LiteRT's
    default delegate): float rounding only."""
    generator = torch.Generator().manual_seed(3)
    for k in range(6):
        x = torch.randn(shape, generator=generator) * 2
        with torch.no_grad():
            ref = quantized(x).numpy()
        feed = x.numpy().transpose(0, 2, 3, 1) if channels_last else x.numpy()
        got = next(iter(run_tflite(path, {result.ir.input_names[0]: feed}, delegates=k % 2 == 0).values()))
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_pt2e_dynamic_single_row_linears_are_dynamic_range_fully_connected(tmp_path):
    """A one-row linear layer quantized dynamically is TFLite's dynamic-range FULLY_CONNECTED:
    float input and output, torch's int8 weights per output channel, the input quantized by
    the kernel (asymmetric_quantize_inputs) -- no min / max / round arithmetic left for it."""
    example = torch.randn(1, 3, 8, 8)
    quantized = _dynamic(_net(), example)
    path = str(tmp_path / "dynamic.tflite")
    result = torch2keras.to_tflite(quantized, example, path, input_layouts="channels_last", atol=1e-5, rtol=1e-5)
    _check_numbers(quantized, result, path, (1, 3, 8, 8), True)
    f = read_tflite(path)
    assert "ROUND" not in result.op_counts and "REDUCE_MAX" not in result.op_counts
    fcs = [op for op in f.main_ops() if op.name == "FULLY_CONNECTED"]
    assert len(fcs) == 2
    for op in fcs:
        x, w, out = f.tensor(op.inputs[0]), f.tensor(op.inputs[1]), f.tensor(op.outputs[0])
        assert (x.dtype, w.dtype, out.dtype) == ("float32", "int8", "float32") and w.constant and w.per_channel
    assert _asymmetric_inputs(path) == [True, True]
    assert sorted(f.tensor(op.inputs[1]).shape[0] for op in fcs) == [4, 16]
    assert not any(t.dtype == "float64" for sub in f.tensors for t in sub)


def test_pt2e_dynamic_multi_row_linear_keeps_torchs_float_arithmetic(tmp_path):
    """Three rows share one scale and zero point in torch (per tensor); the dynamic-range kernel
    would pick one per row: the layer stays the float arithmetic torch computes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    example = torch.randn(1, 3, 12)
    quantized = _dynamic(model, example)
    path = str(tmp_path / "dynamic_rows.tflite")
    result = torch2keras.to_tflite(quantized, example, path, atol=1e-5, rtol=1e-5)
    _check_numbers(quantized, result, path, (1, 3, 12), False)
    counts = result.op_counts
    assert counts["ROUND"] == 4 and counts["REDUCE_MAX"] == 2 and counts["FULLY_CONNECTED"] == 2
    f = read_tflite(path)
    assert all(f.tensor(op.inputs[1]).dtype == "float32" for op in f.main_ops() if op.name == "FULLY_CONNECTED")


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
