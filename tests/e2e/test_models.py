"""End to end: real models convert, and Keras and TFLite outputs match PyTorch."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import torch2keras
from models import (ConvSliceReLU, NobucoEssentials, OnlyScalarInput, ScalarInputs, SliceReLU, TwoOutputs,
                    transformer_encoder)
from support import assert_reloads_like_torch, max_abs_error

ATOL = 1e-4


def _reference(model, inputs):
    with torch.no_grad():
        out = model(*[t.clone() for t in inputs])
    return [o.numpy() for o in torch.utils._pytree.tree_flatten(out)[0]]



def _check(result, model, inputs, tmp_path, name, tol=ATOL):
    ref = _reference(model, inputs)
    keras_out = result.run_keras([t.numpy() for t in inputs])
    for k, r in zip(keras_out, ref):
        assert k.shape == r.shape
        assert max_abs_error(k, r) < tol, f"{name}: Keras differs from PyTorch by {max_abs_error(k, r)}"
    assert result.report.ok
    path = result.export_tflite(str(tmp_path / f"{name}.tflite"))
    tfl_out = result.run_tflite(path, [t.numpy() for t in inputs])
    for t, r in zip(tfl_out, ref):
        assert max_abs_error(t, r) < tol, f"{name}: TFLite differs from PyTorch by {max_abs_error(t, r)}"
    assert result.report.tflite["max_abs_error"] < tol
    return ref


@pytest.mark.parametrize("layouts", [None, "channels_last"])
def test_nobuco_essentials(tmp_path, layouts):
    torch.manual_seed(0)
    model = NobucoEssentials().eval()
    x = torch.rand(1, 3, 256, 256)
    result = torch2keras.compile(model, x, input_layouts=layouts, output_layouts=layouts)
    ref = _check(result, model, (x,), tmp_path, "essentials")
    assert_reloads_like_torch({"essentials": (result, (x,), ref)}, tmp_path, ATOL)
    if layouts == "channels_last":
        assert result.report.tflite["transposes"] == 0


def test_transformer_encoder(tmp_path):
    torch.manual_seed(0)
    model = transformer_encoder().eval()
    x = torch.randn(2, 10, 32)
    result = torch2keras.compile(model, x)
    ref = _check(result, model, (x,), tmp_path, "encoder")
    assert_reloads_like_torch({"encoder": (result, (x,), ref)}, tmp_path, ATOL)


def test_inplace_relu_on_view_writes_through(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    for model in (SliceReLU().eval(), ConvSliceReLU().eval()):
        ref = _reference(model, (x,))
        assert not np.allclose(ref[0], (model.conv(x) if hasattr(model, "conv") else x).detach().numpy())
        result = torch2keras.compile(model, x)
        _check(result, model, (x,), tmp_path, type(model).__name__)


def test_export_fallback_traces_concrete_values(tmp_path):
    torch.manual_seed(0)
    model = DataDependentIfModel = __import__("models").DataDependentIf().eval()
    x = torch.randn(1, 3, 16, 16)
    with pytest.warns(UserWarning, match="torch.export could not capture"):
        result = torch2keras.compile(model, x)
    assert result.report.capture_method == "trace"
    assert "specialised" in result.report.warnings[0]
    ref = _reference(DataDependentIfModel, (x,))
    assert max_abs_error(result.run_keras([x.numpy()])[0], ref[0]) < ATOL


def test_names_follow_signature_and_nested_outputs(tmp_path):
    torch.manual_seed(0)
    model = TwoOutputs().eval()
    image, bias = torch.randn(1, 3, 8, 8), torch.randn(1, 4, 1, 1)
    result = torch2keras.compile(model, (image, bias), input_layouts={"image": "channels_last"},
                                 output_layouts={"output_0_features": "channels_last"})
    assert result.input_names == ["image", "bias"]
    assert result.output_names == ["output_0_features", "output_0_logits", "output_1"]
    assert [t.name for t in result.keras_model.inputs] == ["image", "bias"]
    assert tuple(result.keras_model.inputs[0].shape) == (1, 8, 8, 3)  # channels-last input
    assert tuple(result.keras_model.outputs[0].shape) == (1, 8, 8, 4)
    _check(result, model, (image, bias), tmp_path, "two_outputs")
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(result.report.tflite["path"]).get_signature_list()["serving_default"]
    assert sorted(sig["inputs"]) == ["bias", "image"]
    assert sorted(sig["outputs"]) == ["output_0_features", "output_0_logits", "output_1"]
    saved = result.export_saved_model(str(tmp_path / "sm"))
    import tensorflow as tf

    fn = tf.saved_model.load(saved).signatures["serving_default"]
    outs = fn(**{k: tf.constant(v) for k, v in result.keras_inputs([image.numpy(), bias.numpy()]).items()})
    assert sorted(outs) == ["output_0_features", "output_0_logits", "output_1"]
    ref = _reference(model, (image, bias))
    assert max_abs_error(outs["output_0_logits"].numpy(), ref[1]) < ATOL
    assert json.loads(result.report.to_json())["ok"] is True


@pytest.mark.parametrize("layouts", [None, "channels_last"])
def test_scalar_inputs_and_outputs(tmp_path, layouts):
    """0-d tensors are model inputs and outputs of shape () in Keras, the SavedModel and TFLite."""
    torch.manual_seed(0)
    model = ScalarInputs().eval()
    inputs = (torch.randn(1, 3, 8, 8), torch.tensor(1.7), torch.tensor(-0.3))
    result = torch2keras.compile(model, inputs, input_layouts={"image": layouts} if layouts else None)
    assert [tuple(t.shape) for t in result.keras_model.inputs][1:] == [(), ()]
    assert tuple(result.keras_model.outputs[1].shape) == ()
    ref = _check(result, model, inputs, tmp_path, f"scalar_inputs_{layouts}")
    assert ref[1].shape == () and abs(float(ref[1])) > 1e-3
    from ai_edge_litert.interpreter import Interpreter

    details = {d["name"]: tuple(d["shape"]) for d in Interpreter(result.report.tflite["path"]).get_input_details()}
    assert sorted(shape for name, shape in details.items() if "image" not in name) == [(), ()]
    if layouts is None:
        assert_reloads_like_torch({"scalar_inputs": (result, inputs, ref)}, tmp_path, ATOL)


def test_only_input_is_scalar(tmp_path):
    torch.manual_seed(0)
    model = OnlyScalarInput().eval()
    t = torch.tensor(0.8)
    result = torch2keras.compile(model, t)
    assert tuple(result.keras_model.inputs[0].shape) == ()
    ref = _check(result, model, (t,), tmp_path, "only_scalar")
    assert [r.shape for r in ref] == [(16,), ()]
    saved = result.export_saved_model(str(tmp_path / "sm"))
    import tensorflow as tf

    outs = tf.saved_model.load(saved).signatures["serving_default"](t=tf.constant(0.8))
    assert max_abs_error(outs["output_0"].numpy(), ref[0]) < ATOL and outs["output_1"].shape == ()


def test_unsupported_op_names_op_and_source_line():
    class UsesFFT(torch.nn.Module):
        def forward(self, x):
            y = x * 2
            return torch.fft.rfft(y).abs()  # no lowering for fft

    with pytest.raises(torch2keras.UnsupportedOpError) as info:
        torch2keras.compile(UsesFFT(), torch.randn(1, 8))
    text = str(info.value)
    assert "aten._fft_r2c" in text
    assert f"{os.path.basename(__file__)}:" in text
    assert "torch.fft.rfft(y)" in text
