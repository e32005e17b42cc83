"""Models quantized in PyTorch with PT2E (static per-channel PTQ, XNNPACK's quantizer) written by
``to_tflite`` as int8 files with PyTorch's own scales and zero points: outputs against the
quantized model run in torch (in quantization steps), op counts, tensor dtypes and parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.tflite.file import read_tflite
from torch2keras.tflite.runtime import run_tflite

pt2e = pytest.importorskip("torchao.quantization.pt2e.quantize_pt2e")
xnnpack = pytest.importorskip("torchao.testing.pt2e._xnnpack_quantizer")

INT8_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "RESHAPE", "PAD"}


class ConvNet(nn.Module):
    """conv-bn-relu, strided conv-bn-relu, maxpool to 2x2, flatten, linear (the flatten of a
    channels-last map: folded into the linear layer's weights, no TRANSPOSE)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.b2(self.c2(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class ResidualNet(nn.Module):
    """conv-relu, then a depthwise conv-relu added back to it, maxpool to 1x1, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.MaxPool2d(8)
        self.fc = nn.Linear(8, 6)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = x + torch.relu(self.dw(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class GatedNet(nn.Module):
    """Two conv-relu branches concatenated (quantized with different scales), gated by their own
    sigmoid (x * sigmoid(x): the sigmoid stays float, PT2E leaves it unquantized), global
    average pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1)
        y = y * torch.sigmoid(y)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class GroupedNet(nn.Module):
    """conv-relu, a grouped (not depthwise) conv-relu -- no int8 TFLite kernel --, global average
    pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.g = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.g(torch.relu(self.a(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class TinyResNet(nn.Module):
    """resnet's stem and two basic blocks: conv-bn-relu, a padded 3x3 max pool (stride 2: torch's
    windows are not TFLite's SAME ones), a block adding its input back, a strided block adding a
    1x1 strided conv-bn of its input (residual adds of differently quantized values, relu fused),
    global average pool, linear. BatchNorm statistics from a random batch."""

    def __init__(self) -> None:
        super().__init__()
        conv_bn = lambda a, b, k, s: nn.Sequential(nn.Conv2d(a, b, k, s, k // 2, bias=False), nn.BatchNorm2d(b))
        self.stem, self.pool = conv_bn(3, 8, 3, 1), nn.MaxPool2d(3, 2, 1)
        self.a1, self.a2 = conv_bn(8, 8, 3, 1), conv_bn(8, 8, 3, 1)
        self.b1, self.b2, self.down = conv_bn(8, 16, 3, 2), conv_bn(16, 16, 3, 1), conv_bn(8, 16, 1, 2)
        self.fc = nn.Linear(16, 6)
        self.train()
        with torch.no_grad():
            self(torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(7)) * 2)

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        x = torch.relu(self.a2(torch.relu(self.a1(x))) + x)
        x = torch.relu(self.b2(torch.relu(self.b1(x))) + self.down(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def quantize_pt2e(model: nn.Module, example: torch.Tensor, batches: int = 8) -> torch.fx.GraphModule:
    """``model`` quantized by PT2E static PTQ (symmetric, per-channel weights), calibrated on
    seeded random inputs."""
    exported = torch.export.export(model.eval(), (example,)).module()
    quantizer = xnnpack.XNNPACKQuantizer().set_global(xnnpack.get_symmetric_quantization_config(is_per_channel=True))
    prepared = pt2e.prepare_pt2e(exported, quantizer)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(batches):
            prepared(torch.randn(example.shape, generator=generator))
    return pt2e.convert_pt2e(prepared)


def _output_scale(path: str) -> float:
    """The scale of the int8 tensor the output's DEQUANTIZE reads."""
    f = read_tflite(path)
    (output,) = f.signatures["serving_default"]["outputs"].values()
    (dequantize,) = [op for op in f.main_ops() if op.name == "DEQUANTIZE" and output in op.outputs]
    return f.tensor(dequantize.inputs[0]).scale


def _convert(model_class: type, tmp_path, name: str):
    """A seeded ``model_class()`` quantized by PT2E and written by ``to_tflite`` (checked on its
    example: one output step at most)."""
    torch.manual_seed(0)
    model = model_class()
    example = torch.randn(1, 3, 8, 8)
    quantized = quantize_pt2e(model, example)
    path = str(tmp_path / f"{name}.tflite")
    result = torch2keras.to_tflite(quantized, example, path, input_layouts="channels_last")
    assert result.max_abs_error <= _output_scale(path) * 1.001  # (checked on the example: one step at most)
    return quantized, result


def _steps(quantized, result, samples: int = 16) -> np.ndarray:
    """|tflite - torch| in output quantization steps, over seeded inputs."""
    scale = _output_scale(result.path)
    generator = torch.Generator().manual_seed(2)
    steps = []
    for _ in range(samples):
        x = torch.randn(1, 3, 8, 8, generator=generator)
        with torch.no_grad():
            ref = quantized(x).numpy()
        got = run_tflite(result.path, {result.ir.input_names[0]: x.numpy().transpose(0, 2, 3, 1)})
        steps.append(np.abs(np.asarray(next(iter(got.values()))) - ref) / scale)
    return np.concatenate([s.reshape(-1) for s in steps])


@pytest.mark.parametrize("model_class, name", [(ConvNet, "convnet"), (ResidualNet, "residual"), (GatedNet, "gated"),
                                              (GroupedNet, "grouped"), (TinyResNet, "resnet")])
def test_pt2e_model_matches_torch_within_one_step(model_class, name, tmp_path):
    quantized, result = _convert(model_class, tmp_path, name)
    steps = _steps(quantized, result)
    assert np.mean(steps <= 1.0 + 1e-3) >= 0.99, f"max {steps.max():.2f} steps"
    assert steps.max() <= 2.0 + 1e-3


@pytest.mark.parametrize("model_class, name", [(ConvNet, "convnet"), (ResidualNet, "residual")])
def test_pt2e_model_is_int8_between_its_boundaries(model_class, name, tmp_path):
    quantized, result = _convert(model_class, tmp_path, name)
    f = read_tflite(result.path)
    counts = f.op_counts()
    assert counts.get("TRANSPOSE", 0) == 0
    assert counts["QUANTIZE"] == 1 and counts["DEQUANTIZE"] == 1  # only at the input and the output
    assert set(counts) <= INT8_OPS | {"QUANTIZE", "DEQUANTIZE"}
    assert counts["FULLY_CONNECTED"] == 1 and counts.get("CONV_2D", 0) + counts.get("DEPTHWISE_CONV_2D", 0) == 2
    if model_class is ResidualNet:
        assert counts["ADD"] == 1 and counts["DEPTHWISE_CONV_2D"] == 1
    for op in f.main_ops():
        if op.name in INT8_OPS:
            data = [f.tensor(op.inputs[0]), *(f.tensor(i) for i in op.outputs)]
            assert all(t.dtype == "int8" and t.quantized for t in data), (op.name, data)


def test_pt2e_resnet_blocks_are_int8(tmp_path):
    """The padded max pool runs on the integers (padded with the smallest one, parameters kept),
    the residual adds are int8 ADDs of inputs with different parameters (relu fused): no float
    op, no TRANSPOSE."""
    quantized, result = _convert(TinyResNet, tmp_path, "resnet")
    f = read_tflite(result.path)
    counts = f.op_dtypes()
    assert counts["MAX_POOL_2D"] == {"int8": 1} and counts["PADV2"] == {"int8": 1} and counts["ADD"] == {"int8": 2}
    assert counts["QUANTIZE"] == {"int8": 1} and counts["DEQUANTIZE"] == {"float32": 1} and "TRANSPOSE" not in counts
    assert f.float_ops_between_quantized() == []
    (pad,) = [op for op in f.main_ops() if op.name == "PADV2"]
    source, value = f.tensor(pad.inputs[0]), f.tensor(pad.inputs[2])
    assert (value.scale, value.zero_point) == (source.scale, source.zero_point)
    for add in [op for op in f.main_ops() if op.name == "ADD"]:
        assert f.tensor(add.inputs[0]).scale != f.tensor(add.inputs[1]).scale


def test_pt2e_model_with_integer_io(tmp_path):
    """``integer_io=True``: the file takes and returns int8 with torch's input and output
    parameters, without QUANTIZE or DEQUANTIZE; checked against torch (run_tflite quantizes the
    float example and dequantizes the result with the file's parameters)."""
    torch.manual_seed(0)
    example = torch.randn(1, 3, 8, 8)
    quantized = quantize_pt2e(ResidualNet(), example)
    path = str(tmp_path / "integer_io.tflite")
    result = torch2keras.to_tflite(quantized, example, path, input_layouts="channels_last", integer_io=True)
    f = read_tflite(path)
    assert "QUANTIZE" not in f.op_counts() and "DEQUANTIZE" not in f.op_counts()
    (x,) = f.signatures["serving_default"]["inputs"].values()
    (y,) = f.signatures["serving_default"]["outputs"].values()
    nodes = list(quantized.graph.nodes)
    first_q = next(n for n in nodes if n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default)
    last_q = [n for n in nodes if n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default][-1]
    assert (f.tensor(x).dtype, f.tensor(x).scale, f.tensor(x).zero_point) == ("int8", pytest.approx(first_q.args[1]),
                                                                               first_q.args[2])
    assert (f.tensor(y).dtype, f.tensor(y).scale, f.tensor(y).zero_point) == ("int8", pytest.approx(last_q.args[1]),
                                                                               last_q.args[2])
    assert result.max_abs_error <= last_q.args[1] * 1.001


def test_pt2e_concat_mul_and_global_pool_are_int8(tmp_path):
    """Only the sigmoid (left float by PT2E) is between a DEQUANTIZE and a QUANTIZE; the concat's
    input with other parameters is requantized int8 -> int8."""
    _, result = _convert(GatedNet, tmp_path, "gated")
    f = read_tflite(result.path)
    counts = f.op_counts()
    assert counts.get("TRANSPOSE", 0) == 0 and counts["LOGISTIC"] == 1
    int8 = {"CONV_2D", "MUL", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "RESHAPE"}
    for op in f.main_ops():
        data = [f.tensor(op.inputs[0]), *(f.tensor(i) for i in op.outputs)]
        if op.name in int8:
            assert all(t.dtype == "int8" and t.quantized for t in data), (op.name, data)
        if op.name == "QUANTIZE" and data[0].dtype == "int8":
            assert data[0].scale != data[1].scale  # (the requantized concat input)
    concats = [op for op in f.main_ops() if op.name == "CONCATENATION"]
    assert sorted(f.tensor(op.outputs[0]).dtype for op in concats) == ["float32", "int8"]  # (int8 for the mul)
    assert counts["QUANTIZE"] == 3 and counts["DEQUANTIZE"] == 3  # input, requantize, sigmoid; sigmoid's 2, output


def test_pt2e_layer_without_int8_kernel_is_written_in_float(tmp_path):
    """The grouped convolution runs in float between a DEQUANTIZE and a QUANTIZE (its weights
    dequantized from torch's integers); the rest stays int8; torch's outputs within one step."""
    _, result = _convert(GroupedNet, tmp_path, "grouped")
    f = read_tflite(result.path)
    convs = [op for op in f.main_ops() if op.name == "CONV_2D"]
    assert sorted(f.tensor(op.outputs[0]).dtype for op in convs) == ["float32", "int8"]
    assert f.op_counts()["QUANTIZE"] == 2 and f.op_counts()["DEQUANTIZE"] == 2


def test_pt2e_weights_and_scales_are_torchs(tmp_path):
    quantized, result = _convert(ConvNet, tmp_path, "scales")
    f = read_tflite(result.path)
    (fc,) = [op for op in f.main_ops() if op.name == "FULLY_CONNECTED"]
    weight, bias = f.tensor(fc.inputs[1]), f.tensor(fc.inputs[2])
    assert weight.dtype == "int8" and weight.per_channel and bias.dtype == "int32"
    torch_scales = [n for n in quantized.graph.nodes
                    if n.target == torch.ops.quantized_decomposed.dequantize_per_channel.default]
    fc_scale = getattr(quantized, torch_scales[-1].args[1].target)
    assert weight.scale == pytest.approx(float(fc_scale[0]), rel=1e-6)
    torch_out = [n for n in quantized.graph.nodes
                 if n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default][-1]
    assert _output_scale(result.path) == pytest.approx(torch_out.args[1], rel=1e-6)


def test_pt2e_model_compiles_to_keras(tmp_path):
    """The Keras model computes the quantize / dequantize arithmetic in float: torch's outputs
    within one output quantization step."""
    quantized, result = _convert(ResidualNet, tmp_path, "keras")
    step = _output_scale(result.path)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))[:1]
    compiled = torch2keras.compile(quantized, x, atol=step * 1.001, rtol=0.0)
    (check,) = compiled.report.outputs
    assert check.max_abs_error <= step * 1.001


@pytest.mark.parametrize("model_class, name", [(ConvNet, "convnet"), (GatedNet, "gated")])
def test_compiled_pt2e_model_exported_directly_is_the_integer_file(model_class, name, tmp_path):
    """``compile(...).export_tflite(backend="direct")`` writes what ``to_tflite`` writes (the
    integer passes run on a copy of the compiled IR; the Keras model keeps float arithmetic)."""
    quantized, direct = _convert(model_class, tmp_path, name)
    step = _output_scale(direct.path)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    example = torch.randn(1, 3, 8, 8)
    compiled = torch2keras.compile(quantized, example, atol=step * 1.001, rtol=0.0, input_layouts="channels_last")
    path = compiled.export_tflite(str(tmp_path / "compiled.tflite"), backend="direct")
    counts = read_tflite(path).op_counts()
    assert counts == direct.op_counts and counts.get("TRANSPOSE", 0) == 0
    assert counts["QUANTIZE"] == 1 if model_class is ConvNet else counts["QUANTIZE"] == 3
    with torch.no_grad():
        ref = quantized(x).numpy()
    got = np.asarray(next(iter(run_tflite(path, {compiled.ir.input_names[0]: x.numpy().transpose(0, 2, 3, 1)}).values())))
    assert np.abs(got - ref).max() <= step * 2.001
    assert any(True for _ in compiled.ir.nodes_by_op("quantize"))  # the compiled IR itself is untouched


def test_quantize_and_dequantize_references_match_torch():
    from torch2keras.ir.ops.quantization import dequantize_reference, quantize_reference
    decomposed = torch.ops.quantized_decomposed
    x = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(3)) * 3
    got = quantize_reference(x.numpy(), [0.021], [-7], None, -128, 127, "i8")
    want = decomposed.quantize_per_tensor.default(x, 0.021, -7, -128, 127, torch.int8).numpy()
    assert np.array_equal(got, want)
    scales, zeros = torch.tensor([0.01, 0.02, 0.05, 0.1, 0.2]), torch.tensor([0, 1, -2, 3, 0])
    q = decomposed.quantize_per_channel.default(x, scales, zeros, 1, -128, 127, torch.int8)
    assert np.array_equal(quantize_reference(x.numpy(), scales.tolist(), zeros.tolist(), 1, -128, 127, "i8"), q.numpy())
    back = decomposed.dequantize_per_channel.default(q, scales, zeros, 1, -128, 127, torch.int8).numpy()
    assert np.max(np.abs(dequantize_reference(q.numpy(), scales.tolist(), zeros.tolist(), 1, -128, 127) - back)) < 1e-6


class DigitsNet(nn.Module):
    """Four conv-bn-relu blocks (three strided) on 32x32 digits, maxpool to 1x1, linear."""

    def __init__(self) -> None:
        super().__init__()
        widths = [1, 8, 16, 16, 32]
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Conv2d(a, b, 3, stride=1 if k == 0 else 2, padding=1),
                                                    nn.BatchNorm2d(b), nn.ReLU())
                                      for k, (a, b) in enumerate(zip(widths, widths[1:]))])
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(x)), 1))


def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits upsampled to 32x32 in [0, 1]: (train x, train y, test x, test y)."""
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = torch.nn.functional.interpolate(torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0,
                                        size=(32, 32), mode="bilinear", align_corners=False)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


@pytest.mark.slow
def test_pt2e_trained_digits_classifier_agrees_with_torch(tmp_path):
    torch.manual_seed(0)
    train_x, train_y, test_x, test_y = _digits()
    model = DigitsNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):
        for k in range(0, len(train_y), 32):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(train_x[k:k + 32]), train_y[k:k + 32]).backward()
            optimizer.step()
    model.eval()
    exported = torch.export.export(model, (test_x[:1],)).module()
    quantizer = xnnpack.XNNPACKQuantizer().set_global(xnnpack.get_symmetric_quantization_config(is_per_channel=True))
    prepared = pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for k in range(64):
            prepared(train_x[k:k + 1])
    quantized = pt2e.convert_pt2e(prepared)
    path = str(tmp_path / "digits.tflite")
    result = torch2keras.to_tflite(quantized, test_x[:1], path, input_layouts="channels_last", validate=False)
    assert result.op_counts.get("TRANSPOSE", 0) == 0 and result.op_counts["CONV_2D"] == 4
    with torch.no_grad():
        torch_top1 = torch.cat([quantized(test_x[k:k + 1]) for k in range(len(test_y))]).argmax(1).numpy()
    name = result.ir.input_names[0]
    tflite_top1 = np.array([np.argmax(next(iter(run_tflite(path, {name: test_x[k:k + 1].numpy().transpose(0, 2, 3, 1)})
                                                 .values()))) for k in range(len(test_y))])
    assert float(np.mean(torch_top1 == test_y.numpy())) >= 0.9  # (the model learned the task)
    assert float(np.mean(tflite_top1 == torch_top1)) >= 0.99
