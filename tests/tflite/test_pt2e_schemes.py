"""PT2E models quantized otherwise than by XNNPACK's int8 quantizer: uint8 activations (x86's
``X86InductorQuantizer``) written as int8 with zero points 128 lower (``signed_activations``),
activations clamped to less than int8's range (left float: TFLite's int8 kernels would not clamp
there), and the warning naming every op written in float between integers with its reason and
source line."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.backend_tflite.quantized import FloatBetweenIntegersWarning
from torch2keras.ir import parse, print_graph
from torch2keras.ir.ops.quantization import dequantize_reference, quantize_reference
from torch2keras.passes import PassManager
from torch2keras.passes.quantized import one_step_effect
from torch2keras.passes.signed_activations import SignedActivations
from torch2keras.tflite.file import read_tflite
from torch2keras.tflite.runtime import run_tflite

pt2e = pytest.importorskip("torchao.quantization.pt2e.quantize_pt2e")
xnnpack = pytest.importorskip("torchao.testing.pt2e._xnnpack_quantizer")


class ConvNet(nn.Module):
    """conv-bn-relu, conv-relu, global average pool, flatten, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.body(x))


def _quantized(quantizer, example: torch.Tensor) -> torch.fx.GraphModule:
    torch.manual_seed(0)
    prepared = pt2e.prepare_pt2e(torch.export.export(ConvNet().eval(), (example,)).module(), quantizer)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(8):
            prepared(torch.randn(example.shape, generator=generator))
    return pt2e.convert_pt2e(prepared)


def _convert(quantized, example, path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = torch2keras.to_tflite(quantized, example, path, input_layouts="channels_last")
    return result, [w for w in caught if issubclass(w.category, FloatBetweenIntegersWarning)]


def _max_error(quantized, result) -> float:
    """max |file - torch| over seeded inputs."""
    generator = torch.Generator().manual_seed(2)
    worst = 0.0
    for _ in range(8):
        x = torch.randn(1, 3, 8, 8, generator=generator)
        with torch.no_grad():
            ref = quantized(x).numpy()
        got = run_tflite(result.path, {result.ir.input_names[0]: x.numpy().transpose(0, 2, 3, 1)})
        worst = max(worst, float(np.max(np.abs(np.asarray(next(iter(got.values()))) - ref))))
    return worst


def _quantize_nodes(quantized) -> list:
    return [n for n in quantized.graph.nodes if "quantize_per_tensor" in str(n.target) and "dequantize" not in str(n.target)]


def test_signed_activations_shifts_uint8_pairs_exactly():
    text = """\
graph t
  %x : f32[2,3] = input() {name='x'}
  %q : u8[2,3] = quantize(%x) {scale=[0.05], zero_point=[131], axis=none, qmin=0, qmax=255, dtype='u8'}
  %d : f32[2,3] = dequantize(%q) {scale=[0.05], zero_point=[131], axis=none, qmin=0, qmax=255}
  %y : f32[2,3] = relu(%d)
  return y=%y
"""
    graph = parse(text)
    manager = PassManager([SignedActivations()])
    manager.run(graph)
    assert manager.records[0].changed
    (q,) = graph.nodes_by_op("quantize")
    (d,) = graph.nodes_by_op("dequantize")
    assert q.output.type.dtype == "i8" and q.attrs["zero_point"] == [3] and (q.attrs["qmin"], q.attrs["qmax"]) == (-128, 127)
    assert d.attrs["zero_point"] == [3] and (d.attrs["qmin"], d.attrs["qmax"]) == (-128, 127)
    x = np.linspace(-9, 9, 6000, dtype=np.float32).reshape(-1, 3)  # (past both ends: clamped)
    unsigned = quantize_reference(x, [0.05], [131], None, 0, 255, "u8")
    signed = quantize_reference(x, [0.05], [3], None, -128, 127, "i8")
    assert np.array_equal(unsigned.astype(np.int32) - 128, signed.astype(np.int32))
    assert np.array_equal(dequantize_reference(unsigned, [0.05], [131], None, 0, 255),
                          dequantize_reference(signed, [0.05], [3], None, -128, 127))
    again = PassManager([SignedActivations()])
    again.run(graph)
    assert not again.records[0].changed  # (nothing uint8 left)


def test_signed_activations_keeps_uint8_returned_as_integers():
    text = """\
graph t
  %x : f32[4] = input() {name='x'}
  %q : u8[4] = quantize(%x) {scale=[0.1], zero_point=[128], axis=none, qmin=0, qmax=255, dtype='u8'}
  return q=%q
"""
    graph = parse(text)
    before = print_graph(graph)
    PassManager([SignedActivations()]).run(graph)
    assert print_graph(graph) == before


def test_x86_uint8_model_is_int8_and_matches_torch(tmp_path):
    """uint8 activations (zero points 0..255) as int8 tensors: the convs, their fused relus and
    the pool in int8, no float op between integers, no warning; within one step of torch (the
    linear layer's result, unquantized in torch, is float in the file too)."""
    x86 = pytest.importorskip("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer")
    example = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    quantized = _quantized(x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config()),
                           example)
    dtypes = {str(n.args[-1]) for n in _quantize_nodes(quantized)}
    assert dtypes == {"torch.uint8"}  # (the scheme this test is about)
    result, caught = _convert(quantized, example, str(tmp_path / "x86.tflite"))
    assert caught == []
    f = read_tflite(result.path)
    counts = f.op_dtypes()
    assert counts["CONV_2D"] == {"int8": 2} and counts["AVERAGE_POOL_2D"] == {"int8": 1}
    assert f.float_ops_between_quantized() == [] and "TRANSPOSE" not in counts
    inputs = [f.tensor(op.outputs[0]) for op in f.main_ops() if op.name == "QUANTIZE"]
    assert [t.zero_point for t in inputs] == [_quantize_nodes(quantized)[0].args[2] - 128]
    # the linear layer reads the pooled integers: one step of each moves an output by at most
    # sum |w| * step (the weights as torch dequantizes them)
    pooled_step = _quantize_nodes(quantized)[-1].args[1]
    dequantized = [n.target(*[getattr(quantized, a.target) if isinstance(a, torch.fx.Node) else a for a in n.args])
                   for n in quantized.graph.nodes if "dequantize_per_channel" in str(n.target)]
    (weights,) = [w for w in dequantized if w.shape == (5, 8)]
    bound = float(torch.abs(weights).sum(1).max()) * pooled_step
    assert _max_error(quantized, result) <= bound
    # the check to_tflite ran allows that much: a float output of int8 layers may be a step off
    (output,) = result.ir.outputs
    assert one_step_effect(result.ir, output) == pytest.approx(bound, rel=1e-5)


def test_activations_clamped_short_of_int8_stay_float_with_a_warning(tmp_path):
    """Activations quantized to [-127, 127]: TFLite's int8 kernels would write -128 where torch
    clamps to -127, so those layers are written in float between a DEQUANTIZE and a QUANTIZE,
    each named in one warning with the reason and the user's source line; the file matches torch
    within one step."""
    config = xnnpack.get_symmetric_quantization_config(is_per_channel=True)
    narrow = dataclasses.replace(config.input_activation, quant_min=-127)
    config = dataclasses.replace(config, input_activation=narrow, output_activation=narrow)
    example = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    quantized = _quantized(xnnpack.XNNPACKQuantizer().set_global(config), example)
    result, caught = _convert(quantized, example, str(tmp_path / "narrow.tflite"))
    (warning,) = caught
    text = str(warning.message)
    assert "compute in float32 between a DEQUANTIZE and a QUANTIZE" in text
    assert "conv (" in text and "clamped to [-127, 127]" in text and "test_pt2e_schemes.py:" in text
    assert warning.filename == __file__  # (points at the call, not into the package)
    f = read_tflite(result.path)
    assert {f.tensor(op.outputs[0]).dtype for op in f.main_ops() if op.name == "CONV_2D"} == {"float32"}
    assert _max_error(quantized, result) <= _quantize_nodes(quantized)[-1].args[1] * (1 + 1e-3)  # (one output step)


def test_int8_model_gives_no_warning(tmp_path):
    example = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    config = xnnpack.get_symmetric_quantization_config(is_per_channel=True)
    quantized = _quantized(xnnpack.XNNPACKQuantizer().set_global(config), example)
    _, caught = _convert(copy.deepcopy(quantized), example, str(tmp_path / "int8.tflite"))
    assert caught == []
