"""The elementwise and pooling layers of PT2E-quantized models written in int8 (relu, relu6,
clamp(-1, 1), hardswish, hardsigmoid, sigmoid with TFLite's fixed output parameters, sub, average pooling with
shared parameters, mean over the spatial axes, relu6 fused into a conv) and those that stay float
between a DEQUANTIZE and a QUANTIZE: against the quantized model in torch (in output steps) and
op counts (no DEQUANTIZE / QUANTIZE pair around an int8 layer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from test_pt2e import _output_scale, _steps, pt2e, xnnpack

import torch2keras
from torch2keras.tflite.file import read_tflite
from torch2keras.tflite.runtime import interpreter

quantizer_api = pytest.importorskip("torchao.quantization.pt2e.quantizer")


class TestQuantizer(xnnpack.XNNPACKQuantizer):
    """XNNPACK's quantizer, and optionally: a conv read by a hardtanh quantized after the hardtanh
    (conv -> relu6 -> quantize: the relu6 fused), a sigmoid's result quantized with scale 1/256
    and zero point -128, an average pool's result sharing its input's parameters."""

    __test__ = False

    def __init__(self, fuse_hardtanh: bool = False, fixed_sigmoid: bool = False, shared_avg_pool: bool = False):
        super().__init__()
        self.set_global(xnnpack.get_symmetric_quantization_config(is_per_channel=True))
        self.fuse_hardtanh, self.fixed_sigmoid, self.shared_avg_pool = fuse_hardtanh, fixed_sigmoid, shared_avg_pool

    def annotate(self, model):
        model = super().annotate(model)
        act = xnnpack.get_symmetric_quantization_config(is_per_channel=True).input_activation
        aten = torch.ops.aten
        for node in model.graph.nodes:
            if self.fuse_hardtanh and node.target == aten.hardtanh.default and node.args[0].target == aten.conv2d.default:
                node.args[0].meta["quantization_annotation"].output_qspec = None
                node.meta["quantization_annotation"] = quantizer_api.QuantizationAnnotation(output_qspec=act,
                                                                                            _annotated=True)
            elif self.fixed_sigmoid and node.target == aten.sigmoid.default:
                fixed = quantizer_api.FixedQParamsQuantizationSpec(dtype=torch.int8, scale=1.0 / 256, zero_point=-128,
                                                                   quant_min=-128, quant_max=127)
                node.meta["quantization_annotation"] = quantizer_api.QuantizationAnnotation(
                    input_qspec_map={node.args[0]: act}, output_qspec=fixed, _annotated=True)
            elif self.shared_avg_pool and node.target == aten.avg_pool2d.default:
                source = node.args[0]
                node.meta["quantization_annotation"] = quantizer_api.QuantizationAnnotation(
                    input_qspec_map={source: quantizer_api.SharedQuantizationSpec(source)},
                    output_qspec=quantizer_api.SharedQuantizationSpec((source, node)), _annotated=True)
        return model


class ActivationsNet(nn.Module):
    """conv (large weights: the relu6 clamps), relu6, conv, hardswish, conv, hardtanh (clamp(-1,
    1)), the difference of two convs, conv, maxpool, relu, a mean over H and W, linear: each
    activation between two quantizes."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.d1, self.d2, self.e = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 5)
        with torch.no_grad():
            self.c1.weight.mul_(8.0)

    def forward(self, x):
        y = nn.functional.relu6(self.c1(x))
        y = nn.functional.hardswish(self.c2(y))
        y = nn.functional.hardtanh(self.c3(y))
        z = self.e(self.d1(y) - self.d2(y))
        z = torch.relu(nn.functional.max_pool2d(z, 2))
        return self.fc(z.mean((2, 3)))


class FusedRelu6Net(nn.Module):
    """conv-relu6 (the quantize after the relu6), conv-relu6, global average pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = nn.functional.hardtanh(self.c1(x), 0.0, 6.0)
        y = nn.functional.hardtanh(self.c2(y), 0.0, 6.0)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class PoolSigmoidNet(nn.Module):
    """conv-relu, 2x2 average pool, conv, sigmoid, 1x1 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = nn.functional.avg_pool2d(torch.relu(self.c1(x)), 2)
        return self.c3(torch.sigmoid(self.c2(y)))


class SqueezeExciteNet(nn.Module):
    """conv-bn-relu, squeeze-excite as torchvision's mobilenet_v3 writes it (global average
    pool, 1x1 conv-relu, 1x1 conv, hardsigmoid, the gate times the feature map), 1x1 conv,
    global average pool, linear. (With a standalone activation before the pool -- a hardswish
    --, which of its readers PT2E gives a quantized input varies from run to run.)"""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.pool, self.act = nn.AdaptiveAvgPool2d(1), nn.Sequential(nn.BatchNorm2d(8), nn.ReLU())
        self.fc1, self.fc2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.fc = nn.Linear(8, 5)
        with torch.no_grad():  # (gate inputs across hardsigmoid's whole range, both clamps reached)
            self.fc2.weight.mul_(6.0)
            self.fc2.bias.copy_(torch.linspace(-4.0, 4.0, 8))

    def forward(self, x):
        y = self.act(self.c1(x))
        gate = nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(self.pool(y)))))
        y = self.c2(gate * y)
        return self.fc(torch.flatten(self.pool(y), 1))


def _convert(model: nn.Module, quantizer, tmp_path, name: str):
    """``model`` (seeded) quantized by PT2E with ``quantizer`` on seeded random inputs, written by
    ``to_tflite`` (checked on its example: one output step at most)."""
    example = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    prepared = pt2e.prepare_pt2e(torch.export.export(model.eval(), (example,)).module(), quantizer)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(8):
            prepared(torch.randn(example.shape, generator=generator))
    quantized = pt2e.convert_pt2e(prepared)
    path = str(tmp_path / f"{name}.tflite")
    result = torch2keras.to_tflite(quantized, example, path, input_layouts="channels_last")
    assert result.max_abs_error <= _output_scale(path) * 1.001
    return quantized, result


def _int8_ops(path: str) -> dict[str, int]:
    """How many ops of each kind read and write int8 tensors with parameters."""
    f = read_tflite(path)
    counts: dict[str, int] = {}
    for op in f.main_ops():
        data = [f.tensor(op.inputs[0]), *(f.tensor(i) for i in op.outputs)]
        if all(t.dtype == "int8" and t.quantized for t in data):
            counts[op.name] = counts.get(op.name, 0) + 1
    return counts


def _intermediates(path: str, tensors: list[int], seeds: int) -> list[np.ndarray]:
    """The values of ``tensors`` of the file on seeded random inputs, stacked."""
    runner = interpreter(path, delegates=False, preserve_all_tensors=True)
    runner.allocate_tensors()
    (detail,) = runner.get_input_details()
    generator = torch.Generator().manual_seed(6)
    found: list[list[np.ndarray]] = [[] for _ in tensors]
    for _ in range(seeds):
        runner.set_tensor(detail["index"], torch.randn(1, 8, 8, 3, generator=generator).numpy())
        runner.invoke()
        for k, t in enumerate(tensors):
            found[k].append(runner.get_tensor(t).copy())
    return [np.concatenate(v) for v in found]


def _within_one_step(quantized, result) -> None:
    steps = _steps(quantized, result)
    assert np.mean(steps <= 1.0 + 1e-3) >= 0.99, f"max {steps.max():.2f} steps"
    assert steps.max() <= 2.0 + 1e-3


def test_pt2e_activations_sub_and_mean_are_int8(tmp_path):
    torch.manual_seed(0)
    quantized, result = _convert(ActivationsNet(), TestQuantizer(), tmp_path, "activations")
    _within_one_step(quantized, result)
    counts = result.op_counts
    assert counts["QUANTIZE"] == 1 and counts["DEQUANTIZE"] == 1  # (the input and the output only)
    assert counts.get("TRANSPOSE", 0) == 0
    int8 = _int8_ops(result.path)
    assert {k: int8.get(k, 0) for k in ("RELU6", "HARD_SWISH", "RELU_N1_TO_1", "SUB", "RELU", "AVERAGE_POOL_2D",
                                     "CONV_2D")} == \
        {"RELU6": 1, "HARD_SWISH": 1, "RELU_N1_TO_1": 1, "SUB": 1, "RELU": 1, "AVERAGE_POOL_2D": 1, "CONV_2D": 6}


def test_pt2e_squeeze_excite_with_hardsigmoid_is_int8(tmp_path):
    """The hardsigmoid (left float by XNNPACK's quantizer, between a dequantize and a quantize) is
    an int8 ADD of 3 with a fused RELU6 and an int8 MUL by 1/6, computing torch's integers; the
    gate's MUL and the global pools are int8: no float op between the input's QUANTIZE and the
    output's DEQUANTIZE."""
    torch.manual_seed(0)
    quantized, result = _convert(SqueezeExciteNet(), TestQuantizer(), tmp_path, "squeeze_excite")
    _within_one_step(quantized, result)
    f = read_tflite(result.path)
    assert result.op_counts["QUANTIZE"] == 1 and result.op_counts["DEQUANTIZE"] == 1
    assert f.float_ops_between_quantized() == [] and result.op_counts.get("TRANSPOSE", 0) == 0
    int8 = _int8_ops(result.path)
    assert {k: int8.get(k, 0) for k in ("ADD", "MUL", "AVERAGE_POOL_2D", "CONV_2D")} == \
        {"ADD": 1, "MUL": 2, "AVERAGE_POOL_2D": 2, "CONV_2D": 4}
    (add,) = [op for op in f.main_ops() if op.name == "ADD"]
    (sixth,) = [op for op in f.main_ops() if op.name == "MUL" and op.inputs[0] == add.outputs[0]]
    gate = [n for n in quantized.graph.nodes if n.target == torch.ops.aten.hardsigmoid.default][0]
    (q,) = gate.users  # (the quantize of the gate: the result's parameters)
    shifted = f.tensor(add.outputs[0])
    assert (shifted.scale, shifted.zero_point) == (pytest.approx(6 * q.args[1], rel=1e-6), q.args[2])
    # the gate's integers are torch's quantize(hardsigmoid(dequantize(x))) of the file's own x
    x_in, gate_out = _intermediates(result.path, [add.inputs[0], sixth.outputs[0]], seeds=4)
    source = f.tensor(add.inputs[0])
    decomposed = torch.ops.quantized_decomposed
    real = (torch.tensor(x_in, dtype=torch.float32) - source.zero_point) * source.scale
    want = decomposed.quantize_per_tensor.default(nn.functional.hardsigmoid(real), *q.args[1:])
    assert np.abs(want.numpy().astype(int) - gate_out.astype(int)).max() <= 1
    assert np.mean(want.numpy() == gate_out) >= 0.95 and len(np.unique(gate_out)) > 8


def test_pt2e_global_average_pool_is_an_exact_int8_average_pool(tmp_path):
    """A global average pool (input and result sharing parameters) is an int8 AVERAGE_POOL_2D over
    the whole map: its integers are exactly the input integers' mean rounded half away from zero
    (no MEAN, no float op), and the model stays within one step of torch's."""
    torch.manual_seed(0)
    quantized, result = _convert(SqueezeExciteNet(), TestQuantizer(), tmp_path, "global_pool")
    _within_one_step(quantized, result)
    f = read_tflite(result.path)
    pools = [op for op in f.main_ops() if op.name == "AVERAGE_POOL_2D"]
    assert len(pools) == 2 and "MEAN" not in result.op_counts and f.float_ops_between_quantized() == []
    for pool in pools:
        source, pooled = f.tensor(pool.inputs[0]), f.tensor(pool.outputs[0])
        assert (source.dtype, pooled.dtype) == ("int8", "int8")
        assert (source.scale, source.zero_point) == (pooled.scale, pooled.zero_point)
        x, got = _intermediates(result.path, [pool.inputs[0], pool.outputs[0]], seeds=8)
        mean = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
        want = np.sign(mean) * np.floor(np.abs(mean) + 0.5)
        assert np.array_equal(got.astype(np.float64), want)
        assert np.mean(mean != np.trunc(mean)) > 0.5 and len(np.unique(got)) > 4  # (means rounded, not constant)


def test_pt2e_relu6_after_conv_is_fused(tmp_path):
    torch.manual_seed(0)
    quantized, result = _convert(FusedRelu6Net(), TestQuantizer(fuse_hardtanh=True), tmp_path, "fused")
    _within_one_step(quantized, result)
    # (the relu6 runs fused: no RELU6, no float op; unfused, the conv's negative results would be wrong)
    assert _int8_ops(result.path).get("CONV_2D") == 2 and "RELU6" not in result.op_counts
    assert result.op_counts["QUANTIZE"] == 1 and result.op_counts["DEQUANTIZE"] == 1
    # without the annotation a quantize sits between the conv and the relu6: an int8 RELU6 rescales
    _, unfused = _convert(FusedRelu6Net(), TestQuantizer(), tmp_path, "unfused")
    assert _int8_ops(unfused.path).get("RELU6") == 2 and unfused.op_counts["QUANTIZE"] == 1


def test_pt2e_average_pool_and_sigmoid_are_int8_with_tflites_parameters(tmp_path):
    torch.manual_seed(0)
    quantizer = TestQuantizer(fixed_sigmoid=True, shared_avg_pool=True)
    quantized, result = _convert(PoolSigmoidNet(), quantizer, tmp_path, "pool_sigmoid")
    _within_one_step(quantized, result)
    int8 = _int8_ops(result.path)
    assert int8.get("AVERAGE_POOL_2D") == 1 and int8.get("LOGISTIC") == 1
    assert result.op_counts["DEQUANTIZE"] == 1  # (the output)
    f = read_tflite(result.path)
    (logistic,) = [op for op in f.main_ops() if op.name == "LOGISTIC"]
    out = f.tensor(logistic.outputs[0])
    assert (out.scale, out.zero_point) == (1.0 / 256, -128)


def test_pt2e_average_pool_and_sigmoid_with_other_parameters_stay_float(tmp_path):
    """XNNPACK's quantizer observes both results: other parameters than TFLite's int8 kernels
    write, so the pool and the sigmoid run in float between a DEQUANTIZE and a QUANTIZE."""
    torch.manual_seed(0)
    quantized, result = _convert(PoolSigmoidNet(), TestQuantizer(), tmp_path, "pool_sigmoid_float")
    _within_one_step(quantized, result)
    int8 = _int8_ops(result.path)
    assert "AVERAGE_POOL_2D" not in int8 and "LOGISTIC" not in int8
    assert result.op_counts["AVERAGE_POOL_2D"] == 1 and result.op_counts["LOGISTIC"] == 1
    assert int8.get("CONV_2D") == 3 and result.op_counts["DEQUANTIZE"] == 3  # (the output, the pool, the sigmoid)
