"""Deployment outputs: quantized TFLite files (fp16, dynamic-range int8, full int8 with int8 or
float I/O) checked against PyTorch, the per-layer int8 check, the SavedModel signature, .h5,
Flex ops, delegate readiness, and the .keras file under the JAX backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.tflite.convert import keras_to_tflite
from torch2keras.tflite.file import read_tflite
from torch2keras.tflite.delegates import GPU_OPS, analyze
from torch2keras.tflite.quantize import load_npz


class SmallCNN(nn.Module):
    """conv-bn-relu -> maxpool -> conv-hardswish -> global mean -> linear (~90k weights)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.c1 = nn.Conv2d(3, 32, 3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.c3 = nn.Conv2d(64, 96, 3, stride=2, padding=1)
        self.fc = nn.Linear(96, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.c1(x))))
        x = nn.functional.hardswish(self.c2(x))
        x = torch.relu(self.c3(x))
        return self.fc(x.mean((2, 3)))


def _small_cnn():
    torch.manual_seed(0)
    model = SmallCNN()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 1.5)
        model.fc.weight.mul_(4.0)  # logits spread enough for a meaningful top-1
    return model.eval()


def _inputs(n, seed, shape=(1, 3, 32, 32)):
    """Random images with a random colour cast each (the CNN's classes then vary with the input)."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen) + 2 * torch.randn(1, shape[1], 1, 1, generator=gen) for _ in range(n)]


@pytest.fixture(scope="module")
def cnn():
    model = _small_cnn()
    x = torch.randn(1, 3, 32, 32)
    return model, torch2keras.compile(model, x, input_layouts="channels_last")


@pytest.fixture(scope="module")
def float_file(cnn, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("float") / "float.tflite")
    cnn[1].export_tflite(path)
    return path


def _agreement(model, result, path, inputs):
    with torch.no_grad():
        ref = np.concatenate([model(x).numpy() for x in inputs])
    got = np.concatenate([result.run_tflite(path, [x.numpy()])[0] for x in inputs])
    assert len(set(ref.argmax(1).tolist())) >= 3, "degenerate reference: the same class for every input"
    rel = np.sqrt(np.mean((got - ref) ** 2)) / np.sqrt(np.mean(ref ** 2))
    return float(np.mean(got.argmax(1) == ref.argmax(1))), float(rel)


@pytest.mark.parametrize("mode,size_ratio,max_rel", [("fp16", (0.45, 0.6), 2e-3), ("dynamic_int8", (0.2, 0.35), 5e-2)])
def test_weight_quantization(cnn, float_file, tmp_path, mode, size_ratio, max_rel):
    model, result = cnn
    path = result.export_tflite(str(tmp_path / f"{mode}.tflite"), quantize=mode)
    ratio = os.path.getsize(path) / os.path.getsize(float_file)
    assert size_ratio[0] < ratio < size_ratio[1], f"{mode}: {ratio:.3f} of the float file"
    info = read_tflite(path)
    # conv kernels (the converter leaves kernels under 1024 weights, c1's, in float for dynamic int8)
    weights = {t.dtype for t in info.tensors[0] if t.constant and len(t.shape) == 4 and np.prod(t.shape) >= 1024}
    assert weights == ({"float16"} if mode == "fp16" else {"int8"})
    activations = {t.dtype for t in info.tensors[0] if not t.constant and len(t.shape) == 4}
    assert activations == {"float32"}
    agreement, rel = _agreement(model, result, path, _inputs(20, seed=1))
    assert agreement >= 0.95 and rel < max_rel, (agreement, rel)
    assert result.report.tflite["quantize"] == mode and result.report.tflite["bytes"] == os.path.getsize(path)


@pytest.mark.parametrize("io_dtype", ["int8", "float32"])
def test_full_int8(cnn, float_file, tmp_path, io_dtype):
    model, result = cnn
    path = result.export_tflite(str(tmp_path / "int8.tflite"), quantize="int8", calibration=_inputs(40, seed=2),
                                holdout=_inputs(4, seed=3), io_dtype=io_dtype)
    info = read_tflite(path)
    signature = info.signatures["serving_default"]
    io = {info.tensor(i).dtype for i in [*signature["inputs"].values(), *signature["outputs"].values()]}
    assert io == {io_dtype}
    assert {op.name for op in info.main_ops()} & {"QUANTIZE", "DEQUANTIZE"} == (
        set() if io_dtype == "int8" else {"QUANTIZE", "DEQUANTIZE"})
    assert os.path.getsize(path) < 0.35 * os.path.getsize(float_file)
    agreement, rel = _agreement(model, result, path, _inputs(20, seed=1))
    assert agreement >= 0.8 and rel < 0.15, (agreement, rel)

    report = result.report.quantization
    assert report.samples == 4 and report.io_dtype == io_dtype and not report.unmatched
    quantized = [t for op in info.main_ops() for t in op.outputs if info.tensor(t).quantized]
    assert len(report.layers) == len(quantized)  # every quantized activation is listed, with its error
    assert all(0 < e.rel_error < 0.5 and e.scale > 0 for e in report.layers)
    by_layer = {e.layers[0]: e for e in report.layers if e.layers}
    convs = [e for e in report.layers if e.op == "CONV_2D"]
    assert [e.source.split()[0] for e in convs] == ["c1", "c2", "c3"]
    assert all("test_deploy.py:" in e.source for e in convs)
    assert by_layer["output"].op == "FULLY_CONNECTED" and by_layer["output"].source.startswith("fc ")
    assert 0 < report.output_rel_error < 0.1
    assert "int8 per-layer check" in result.report.summary()

    readiness = result.report.delegates  # a clean int8 CNN: static, no int64, GPU-ready
    assert readiness.static_shapes and not readiness.int64_tensors
    assert readiness.targets["GPU"]["ready"], readiness.summary()
    edgetpu = {"HARD_SWISH"} | ({"DEQUANTIZE"} if io_dtype == "float32" else set())
    assert readiness.unsupported_ops("EdgeTPU") == edgetpu  # the rest of the CNN maps to the Edge TPU


class OneLoudChannel(nn.Module):
    """c2's output has one channel 300x louder than the rest: per-tensor int8 crushes the others."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.c3 = nn.Conv2d(16, 8, 3, padding=1)
        with torch.no_grad():
            self.c2.weight[0].mul_(300.0)
            self.c2.bias[0].mul_(300.0)
            self.c3.weight[:, 0].zero_()  # the loud channel does not reach the output

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = self.c2(x)
        return self.c3(torch.relu(x))


def test_per_layer_check_finds_where_int8_hurts(tmp_path):
    torch.manual_seed(0)
    model = OneLoudChannel().eval()
    result = torch2keras.compile(model, torch.randn(1, 3, 16, 16), input_layouts="channels_last",
                                 output_layouts="channels_last")
    result.export_tflite(str(tmp_path / "loud.tflite"), quantize="int8", calibration=_inputs(20, 4, (1, 3, 16, 16)),
                         holdout=_inputs(3, 5, (1, 3, 16, 16)))
    report = result.report.quantization
    c1, c2, c3 = [e for e in report.layers if e.op == "CONV_2D"]
    assert c1.rel_error < 0.05 and not c1.jump
    # the loud channel dominates c2's RMS, so c2 itself still looks fine; the damage shows in c3,
    # which reads only the crushed channels
    assert c3.jump and c3.rel_error > 5 * c2.input_rel_error
    assert c3.source.startswith("c3 ") and "test_deploy.py" in c3.source
    assert report.jumps[0] is c3 or c3 in report.jumps
    assert "<- jump" in report.table() and "c3" in report.summary()


def test_calibration_forms_and_errors(cnn, tmp_path):
    model, result = cnn
    with pytest.raises(ValueError, match="needs calibration"):
        result.export_tflite(str(tmp_path / "x.tflite"), quantize="int8")
    with pytest.raises(ValueError, match="calibration data is used by"):
        result.export_tflite(str(tmp_path / "x.tflite"), quantize="fp16", calibration=_inputs(2, 0))
    nhwc = [x.permute(0, 2, 3, 1) for x in _inputs(2, 0)]
    with pytest.raises(ValueError, match=r"exported model's layout: give a dict"):
        result.export_tflite(str(tmp_path / "x.tflite"), quantize="int8", calibration=nhwc)
    # a callable returning dicts in the exported (NHWC) layout works, and so do plain arrays
    path = result.export_tflite(str(tmp_path / "d.tflite"), quantize="int8", validate=False, delegates=False,
                                calibration=lambda: ({"x": x.numpy()} for x in nhwc * 4))
    assert read_tflite(path).tensor(0).dtype == "int8"
    check = result.check_quantization(path, holdout=_inputs(2, 9))  # the per-layer check on a written file
    assert check.samples == 2 and check.io_dtype == "int8" and len(check.layers) >= 7 and not check.unmatched
    assert result.report.quantization is check
    np.savez(tmp_path / "cal.npz", x=np.stack([x.numpy() for x in _inputs(3, 0)]))
    assert [s[0].shape for s in load_npz(str(tmp_path / "cal.npz"), ["x"], [(1, 3, 32, 32)])] == [(1, 3, 32, 32)] * 3
    np.savez(tmp_path / "stacked.npz", np.concatenate([x.numpy() for x in _inputs(3, 0)]))  # arr_0, batch-stacked
    assert len(load_npz(str(tmp_path / "stacked.npz"), ["x"], [(1, 3, 32, 32)])) == 3
    with pytest.raises(ValueError, match="expected \\[samples, 1, 3, 32, 32\\]"):
        np.savez(tmp_path / "bad.npz", x=np.zeros((3, 3, 16, 16), np.float32))
        load_npz(str(tmp_path / "bad.npz"), ["x"], [(1, 3, 32, 32)])


def test_saved_model_signature_and_h5(tmp_path):
    import tensorflow as tf

    from models import TwoOutputs

    torch.manual_seed(0)
    model = TwoOutputs().eval()
    image, bias = torch.randn(1, 3, 8, 8), torch.randn(1, 4, 1, 1)
    result = torch2keras.compile(model, (image, bias), input_layouts={"image": "channels_last"})
    directory = result.export_saved_model(str(tmp_path / "saved"))
    loaded = tf.saved_model.load(directory)
    serve = loaded.signatures["serving_default"]
    feed = result.keras_inputs([image.numpy(), bias.numpy()])
    assert sorted(serve.structured_input_signature[1]) == ["bias", "image"]
    outs = serve(**{k: tf.constant(v) for k, v in feed.items()})
    assert sorted(outs) == ["output_0_features", "output_0_logits", "output_1"]
    with torch.no_grad():
        ref = torch.utils._pytree.tree_flatten(model(image, bias))[0]
    got = result.torch_outputs([outs[n].numpy() for n in result.output_names])
    for g, r in zip(got, ref):
        assert np.abs(g - r.numpy()).max() < 1e-5 and np.abs(r.numpy()).max() > 1e-2

    h5 = result.save(str(tmp_path / "model.h5"))
    again = torch2keras.load_model(h5)
    out = again(feed)
    assert np.abs(np.asarray(out[1]) - ref[1].numpy()).max() < 1e-5


class Erf(nn.Module):
    def forward(self, x):
        return torch.erf(x) * 2


def test_flex_ops_are_named_and_opt_in(tmp_path):
    @torch2keras.converter(Erf, layout="any")
    def convert(module, x):
        return keras.ops.erf(x) * 2  # TensorFlow's Erf has no TFLite builtin kernel (a Flex one)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.erf = Erf()

        def forward(self, x):
            return self.erf(torch.tanh(x))

    try:
        result = torch2keras.compile(Net().eval(), torch.randn(1, 16))
        with pytest.raises(torch2keras.ExportError, match=r"(?s)Erf: erf test_deploy.py:\d+.*allow_flex=True"):
            result.export_tflite(str(tmp_path / "builtin.tflite"))
        with pytest.warns(UserWarning, match=r"Flex \(TensorFlow\) ops Erf .*test_deploy.py"):
            path = result.export_tflite(str(tmp_path / "flex.tflite"), allow_flex=True)
    finally:
        torch2keras.converters.unregister(Erf)
    info = read_tflite(path)
    assert info.flex_ops == ["Erf"] and result.report.tflite["flex_ops"] == ["Erf"]
    xnnpack = result.report.delegates.targets["XNNPACK"]
    assert not xnnpack["measured"] and not xnnpack["ready"]
    assert "FlexErf" in result.report.delegates.unsupported_ops("GPU")


class Shift(nn.Module):
    def forward(self, x):
        return x + torch.arange(4.0).reshape(4, 1)


def test_a_converter_crash_is_an_export_error_naming_the_op(tmp_path):
    """TensorFlow's converter fails on a channels-first BiasAdd of rank 3 (it transposes it with a
    rank-4 permutation): an ExportError naming the op and the torch line, not the converter's own
    exception."""
    import tensorflow as tf

    class BiasNCW(keras.layers.Layer):
        def call(self, t):
            return tf.nn.bias_add(t, tf.range(4.0), data_format="NCHW")

    @torch2keras.converter(Shift, layout="any")
    def convert(module, x):
        return BiasNCW()(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.shift = Shift()

        def forward(self, x):
            return self.shift(torch.tanh(x))

    try:
        result = torch2keras.compile(Net().eval(), torch.randn(2, 4, 5))
        with pytest.raises(torch2keras.ExportError, match=r"(?s)converter failed on Transpose: 'Transpose' op x should "
                                                          r"be of the same rank.*- Transpose: shift test_deploy.py:\d+"
                                                          r".*backend=\"direct\"") as caught:
            result.export_tflite(str(tmp_path / "m.tflite"))
    finally:
        torch2keras.converters.unregister(Shift)
    assert [op for op, _ in caught.value.ops] == ["Transpose"]


class ArgmaxHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        scores = torch.relu(self.conv(x)).mean((2, 3))
        return scores.argmax(dim=1)


def test_readiness_flags_op_outside_gpu_list(tmp_path):
    torch.manual_seed(0)
    result = torch2keras.compile(ArgmaxHead().eval(), torch.randn(1, 3, 16, 16), input_layouts="channels_last")
    result.export_tflite(str(tmp_path / "argmax.tflite"))
    report = result.report.delegates
    assert "ARG_MAX" not in GPU_OPS and report.static_shapes
    gpu = [f for f in report.findings if f.target == "GPU" and f.op == "ARG_MAX"]
    assert len(gpu) == 1 and gpu[0].problem.startswith("outside the GPU")
    assert gpu[0].where and "test_deploy.py:" in gpu[0].where[0] and "host" in gpu[0].fix
    assert not report.targets["GPU"]["ready"] and report.targets["GPU"]["supported"] < report.ops
    assert report.int64_tensors and "int64" in report.summary()  # torch's argmax is int64
    edgetpu = {f.op for f in report.findings if f.target == "EdgeTPU"}
    assert "ARG_MAX" in edgetpu and not report.targets["EdgeTPU"]["ready"]
    assert any("fully int8" in f.problem for f in report.findings if f.target == "EdgeTPU")  # a float file
    assert report.targets["XNNPACK"]["measured"]


def test_readiness_flags_dynamic_shapes(tmp_path):
    x = keras.Input(shape=(None, 8), batch_size=1, name="tokens")  # a run-time sequence length
    y = keras.layers.Dense(4, name="proj")(x)
    model = keras.Model(x, keras.ops.softmax(y, axis=-1))
    path = keras_to_tflite(model, str(tmp_path / "dynamic.tflite"), ["tokens"], ["output"])
    info = read_tflite(path)
    assert info.tensor(info.signatures["serving_default"]["inputs"]["tokens"]).shape_signature == (1, -1, 8)
    report = analyze(path)
    assert not report.static_shapes
    assert any(d.startswith("serving_default_tokens:0 [1, -1, 8]") for d in report.dynamic_tensors)
    assert not report.targets["GPU"]["ready"] and not report.targets["EdgeTPU"]["ready"]
    assert "static shapes: NO" in report.summary() and "resize_tensor_input" in report.summary()


JAX_SCRIPT = """
import json, sys
import numpy as np
import keras
import torch2keras

assert keras.backend.backend() == "jax", keras.backend.backend()
errors = {}
for name in sys.argv[1:]:
    model = torch2keras.load_model(f"{name}.keras")
    feed = dict(np.load(f"{name}_in.npz"))
    out = model(feed, training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    ref = np.load(f"{name}_ref.npz")
    errors[name] = max(float(np.max(np.abs(np.asarray(o) - ref[f"arr_{i}"]))) for i, o in enumerate(out))
assert "torch" not in sys.modules and "tensorflow" not in sys.modules, "the model needed torch or TensorFlow"
print(json.dumps(errors))
"""


def test_keras_file_runs_on_jax(tmp_path):
    pytest.importorskip("jax")
    from compat import seeded_model
    from models import PixelUnshuffleConvShuffle, transformer_encoder

    cases = {  # a CNN (conv, batch norm, max pool, hardswish, mean, linear), depth <-> space, a transformer
        "cnn": (SmallCNN, (1, 3, 32, 32), "channels_last"),
        "pixel_shuffle": (PixelUnshuffleConvShuffle, (1, 3, 16, 16), "channels_last"),
        "encoder": (transformer_encoder, (2, 10, 32), None),
    }
    for name, (factory, shape, layout) in cases.items():
        torch.manual_seed(0)
        x = torch.randn(*shape)
        model = seeded_model(factory, x)
        result = torch2keras.compile(model, x, input_layouts=layout, output_layouts=layout, validate="outputs")
        result.save(str(tmp_path / f"{name}.keras"))
        np.savez(tmp_path / f"{name}_in.npz", **result.keras_inputs([x.numpy()]))
        with torch.no_grad():
            ref = [o.numpy() for o in torch.utils._pytree.tree_flatten(model(x))[0]]
        # the reference in the exported layout, as the JAX run returns it
        stored = [np.transpose(r, v.type.layout) if v.type.layout else r for r, v in zip(ref, result.ir.outputs)]
        assert all(np.abs(r).max() > 1e-2 for r in ref)
        np.savez(tmp_path / f"{name}_ref.npz", *stored)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, *cases], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(errors) == set(cases)
    assert all(e < 1e-4 for e in errors.values()), errors


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large"])
def test_torchvision_quantized_agreement(tmp_path, name):
    """fp16 and dynamic-int8 files agree with PyTorch's top-1 on >= 99% of 200 random inputs and
    are about half / a quarter of the float file; the int8 file (100 calibration samples) lists
    every quantized layer."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks"))
    from quantization import build_model, random_inputs, tflite_logits, torch_logits

    x = torch.randn(1, 3, 224, 224)
    model = build_model(name)
    result = torch2keras.compile(model, x, input_layouts="channels_last", validate="outputs")
    inputs = random_inputs(200, seed=1)
    reference = torch_logits(model, inputs)
    top1 = reference.argmax(1)
    assert len(set(top1.tolist())) >= 5
    ordered = np.sort(reference, axis=1)
    margin = (ordered[:, -1] - ordered[:, -2]) / reference.std(axis=1)  # PyTorch's top-1 lead
    float_path = result.export_tflite(str(tmp_path / "float.tflite"), validate=False)
    for mode, (low, high) in {"fp16": (0.45, 0.55), "dynamic_int8": (0.22, 0.32)}.items():
        path = result.export_tflite(str(tmp_path / f"{mode}.tflite"), quantize=mode, validate=False)
        ratio = os.path.getsize(path) / os.path.getsize(float_path)
        logits = tflite_logits(result, path, inputs)
        agree = logits.argmax(1) == top1
        in_top5 = np.mean([t in row for t, row in zip(top1, np.argsort(-logits, axis=1)[:, :5])])
        print(f"{name} {mode}: top-1 agreement {agree.mean():.1%}, in top-5 {in_top5:.1%}, size ratio {ratio:.3f}")
        assert low < ratio < high, (mode, ratio)
        if mode == "fp16":
            assert agree.mean() >= 0.99, agree.mean()
        else:  # int8 flips near-ties of random-weight logits only (README "Deployment": limits)
            assert agree.mean() >= 0.8 and in_top5 >= 0.98, (agree.mean(), in_top5)
            assert margin[~agree].max() < np.median(margin), "a decisive PyTorch top-1 flipped"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = result.export_tflite(str(tmp_path / "int8.tflite"), quantize="int8",
                                    calibration=[(a,) for a in random_inputs(100, seed=2)],
                                    holdout=[(a,) for a in random_inputs(4, seed=3)], io_dtype="int8")
    info = read_tflite(path)
    assert info.tensor(list(info.signatures["serving_default"]["inputs"].values())[0]).dtype == "int8"
    quantized = [t for op in info.main_ops() for t in op.outputs if info.tensor(t).quantized]
    assert len(result.report.quantization.layers) == len(quantized) and not result.report.quantization.unmatched


JAX_SWEEP_SCRIPT = """
import glob, json, os, sys, warnings
import numpy as np
import torch2keras

failures = {}
for path in sorted(glob.glob("*.keras")):
    name = path[:-len(".keras")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = torch2keras.load_model(path)(dict(np.load(name + "_in.npz")), training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        ref = np.load(name + "_ref.npz")
        for i, o in enumerate(out):
            o, r = np.asarray(o), ref[f"arr_{i}"]
            if o.shape != r.shape or o.dtype != r.dtype:
                failures[name] = f"output {i}: {o.dtype}{list(o.shape)} vs {r.dtype}{list(r.shape)}"
            elif r.dtype.kind == "f":
                finite = np.isfinite(r)
                err = np.max(np.abs(np.where(finite, o - r, 0)), initial=0)
                tolerance = 1e-4 + 1e-4 * np.max(np.abs(r[finite]), initial=0)
                if not np.array_equal(np.isnan(o), np.isnan(r)) or err > tolerance:
                    failures[name] = f"output {i}: max error {err}"
            elif not np.array_equal(o, r):
                failures[name] = f"output {i}: values differ"
    except Exception as e:  # noqa: BLE001
        failures[name] = f"{type(e).__name__}: {e}"[:300]
print(json.dumps(failures))
"""


@pytest.mark.slow
def test_opinfo_models_run_on_jax(tmp_path):
    """Every OpInfo default sample that converts (tests/ops) gives the same outputs on the JAX
    backend as on TensorFlow: no emitted op depends on TensorFlow (x64 on for int64/float64)."""
    pytest.importorskip("jax")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ops"))
    import harness
    import suite

    entries = harness.all_entries()
    saved = 0
    for name in suite.in_scope_names():
        _, _, case = suite.default_case(entries[name])
        if isinstance(case, str) or case is None or case.skip:
            continue
        feed = [t.numpy() for t in case.inputs]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = torch2keras.compile(case.module, tuple(t.clone() for t in case.inputs), validate=False)
                out = result.keras_model(result.keras_inputs(feed), training=False)
        except Exception:  # noqa: BLE001 - unsupported on TensorFlow too: tests/ops covers it
            continue
        out = out if isinstance(out, (list, tuple)) else [out]
        stem = name.replace("/", "_")
        result.save(str(tmp_path / f"{stem}.keras"))
        np.savez(tmp_path / f"{stem}_in.npz", **result.keras_inputs(feed))
        np.savez(tmp_path / f"{stem}_ref.npz", *[np.asarray(o) for o in out])
        saved += 1
    assert saved > 300
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "JAX_ENABLE_X64": "1"}
    proc = subprocess.run([sys.executable, "-c", JAX_SWEEP_SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failures, failures
