"""The Keras model carries the PyTorch model's input and output names: inputs named after
forward's arguments (fed by name), a dict returned for a dict-returning forward (also after a
.keras round trip, in safe mode), lists in order for tuples, output layers named after the
outputs -- and the SavedModel and TFLite signatures and the .tflite ops stay what they were."""

from __future__ import annotations

import collections

import keras
import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.backend_keras import emit as keras_emit
from torch2keras.tflite.convert import keras_to_tflite
from torch2keras.tflite.file import read_tflite
from support import max_abs_error

ATOL = 1e-5


class SmallHead(nn.Module):
    """conv -> relu -> strided conv -> global mean -> linear, scaled: logits and probabilities,
    returned as a dict, a tuple or (``"single"``) the probabilities alone."""

    def __init__(self, returns: str):
        super().__init__()
        self.returns = returns
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 5)

    def forward(self, image, scale):
        x = torch.relu(self.c1(image))
        x = torch.relu(self.c2(x)).mean((2, 3))
        logits = self.fc(x) * scale
        probs = torch.softmax(logits, -1)
        if self.returns == "dict":
            return {"logits": logits, "probs": probs}
        if self.returns == "tuple":
            return logits, probs
        return probs


class InputNamedOutput(nn.Module):
    """Outputs named like the input (``x``) and passing an input through (``same``)."""

    def forward(self, x):
        return {"x": x * 2, "same": x}


class CountingDict(nn.Module):
    """A stateful model returning a dict: a running total kept in a buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("total", torch.zeros(4))

    def forward(self, x):
        self.total += x.sum(0)
        return {"running": self.total * 1.0, "scaled": x * 3}


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 16, 16, generator=g), torch.rand(2, 1, generator=g) + 1  # scale: per sample


@pytest.fixture(scope="module")
def dict_head():
    torch.manual_seed(0)
    model = SmallHead("dict").eval()
    image, scale = _inputs()
    with torch.no_grad():
        ref = {k: v.numpy() for k, v in model(image, scale).items()}
    result = torch2keras.compile(model, (image, scale), input_layouts={"image": "channels_last"})
    return result, (image.numpy(), scale.numpy()), ref



def _check_dict(result, out, ref: dict) -> None:
    """``out`` (the Keras model's result) is a dict of ``ref``'s keys whose values, back in
    PyTorch's layout, equal PyTorch's."""
    assert isinstance(out, dict) and list(out) == list(ref)
    got = result.torch_outputs([np.asarray(out[n]) for n in result.output_names])
    for name, g in zip(result.output_names, got):
        assert max_abs_error(g, ref[name]) < ATOL and np.abs(ref[name]).max() > 1e-2, name


def test_a_dict_returning_forward_gives_a_keras_model_returning_that_dict(dict_head):
    result, example, ref = dict_head
    assert result.output_names == ["logits", "probs"]
    feed = result.keras_inputs(example)
    _check_dict(result, result.keras_model(feed, training=False), ref)
    _check_dict(result, result.keras_model.predict(feed, verbose=0), ref)
    assert sorted(result.keras_model.output_names) == ["logits", "probs"]
    assert {name: result.layer_nodes[name].op for name in ("logits", "probs")} == {"logits": "mul", "probs": "softmax"}
    assert max(o.max_abs_error for o in result.report.outputs) < ATOL  # validation reads the dict by name
    assert [max_abs_error(o, ref[n]) < ATOL for o, n in zip(result.run_keras(example), result.output_names)] == [True, True]


def test_inputs_are_named_after_forwards_arguments_and_fed_by_name(dict_head):
    result, example, ref = dict_head
    model = result.keras_model
    assert [t.name for t in model.inputs] == ["image", "scale"] == result.input_names
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer)] == ["image", "scale"]
    feed = result.keras_inputs(example)
    _check_dict(result, model({"scale": feed["scale"], "image": feed["image"]}, training=False), ref)  # any order


def test_the_keras_file_reloads_in_safe_mode_returning_the_dict(dict_head, tmp_path):
    result, example, ref = dict_head
    loaded = torch2keras.load_model(result.save(str(tmp_path / "head.keras")))
    assert [t.name for t in loaded.inputs] == ["image", "scale"]
    out = loaded(result.keras_inputs(example), training=False)
    _check_dict(result, out, ref)
    now = result.keras_model(result.keras_inputs(example), training=False)
    assert all(max_abs_error(out[n], now[n]) < ATOL for n in ref)
    h5 = torch2keras.load_model(result.save(str(tmp_path / "head.h5")))
    _check_dict(result, h5(result.keras_inputs(example), training=False), ref)


def test_saved_model_and_tflite_signatures_keep_the_output_names(dict_head, tmp_path):
    import tensorflow as tf

    result, example, ref = dict_head
    feed = result.keras_inputs(example)
    serve = tf.saved_model.load(result.export_saved_model(str(tmp_path / "saved"))).signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == ["image", "scale"]
    outs = serve(**{k: tf.constant(v) for k, v in feed.items()})
    assert sorted(outs) == ["logits", "probs"]
    _check_dict(result, {n: outs[n].numpy() for n in ("logits", "probs")}, ref)

    path = result.export_tflite(str(tmp_path / "head.tflite"), delegates=False)
    signature = read_tflite(path).signatures["serving_default"]
    assert sorted(signature["inputs"]) == ["image", "scale"] and sorted(signature["outputs"]) == ["logits", "probs"]
    got = result.run_tflite(path, example, delegates=False)
    assert max(max_abs_error(g, ref[n]) for g, n in zip(got, result.output_names)) < ATOL
    assert result.report.tflite["max_abs_error"] < ATOL


def test_a_tuple_returning_forward_gives_a_list_in_order():
    torch.manual_seed(0)
    model = SmallHead("tuple").eval()
    image, scale = _inputs(1)
    with torch.no_grad():
        ref = [t.numpy() for t in model(image, scale)]
    result = torch2keras.compile(model, (image, scale))
    out = result.keras_model(result.keras_inputs([image.numpy(), scale.numpy()]), training=False)
    assert isinstance(out, (list, tuple)) and len(out) == 2
    assert result.keras_model.output_names == ["output_0", "output_1"] == result.output_names
    for got, want in zip(result.torch_outputs([np.asarray(o) for o in out]), ref):
        assert got.shape == want.shape and max_abs_error(got, want) < ATOL


def test_a_single_output_is_a_tensor_named_output():
    torch.manual_seed(0)
    model = SmallHead("single").eval()
    image, scale = _inputs(2)
    with torch.no_grad():
        ref = model(image, scale).numpy()
    result = torch2keras.compile(model, (image, scale))
    out = result.keras_model(result.keras_inputs([image.numpy(), scale.numpy()]), training=False)
    assert not isinstance(out, (list, tuple, dict))
    assert result.keras_model.output_names == ["output"]
    assert max_abs_error(out, ref) < ATOL


def test_output_names_taken_by_an_input_or_passing_an_input_through():
    x = torch.randn(2, 4)
    model = InputNamedOutput()
    result = torch2keras.compile(model, (x,))
    out = result.keras_model({"x": x.numpy()}, training=False)
    assert list(out) == ["x", "same"]
    assert max_abs_error(out["x"], 2 * x.numpy()) < ATOL and max_abs_error(out["same"], x.numpy()) < ATOL
    names = [layer.name for layer in result.keras_model.layers]
    assert names.count("x") == 1 and "same" in names  # the input keeps "x"; the pass-through takes "same"


def test_a_stateful_dict_model_keeps_its_state_and_its_keys(tmp_path):
    model = CountingDict()
    xs = [torch.randn(3, 4, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    result = torch2keras.compile(CountingDict(), (xs[0],))
    assert result.state_names == ["total"]
    assert sorted(result.keras_model.output_names) == ["running", "scaled"]
    for x in xs:  # each call adds to the total, in PyTorch and in Keras alike
        with torch.no_grad():
            ref = {k: v.numpy().copy() for k, v in model(x).items()}
        out = result.keras_model({"x": x.numpy()}, training=False)
        assert list(out) == ["running", "scaled"]
        assert all(max_abs_error(out[k], ref[k]) < ATOL for k in ref)
    assert max_abs_error(result.state["total"], model.total.numpy()) < ATOL
    result.reset_state()
    assert max_abs_error(result.run_keras([xs[0].numpy()])[0], xs[0].sum(0).numpy()) < ATOL
    loaded = torch2keras.load_model(result.save(str(tmp_path / "counting.keras")))
    first = loaded({"x": xs[1].numpy()}, training=False)  # saved in its initial state
    assert list(first) == ["running", "scaled"] and max_abs_error(first["running"], xs[1].sum(0).numpy()) < ATOL


def _op_counts(path: str) -> dict[str, int]:
    return dict(collections.Counter(op.name for op in read_tflite(path).main_ops()))


def _unnamed_op_counts(result, path: str, monkeypatch) -> dict[str, int]:
    """The ops of a .tflite file of the result's IR emitted without output names (a plain list of
    outputs, every layer keeping its op's name, no identity added)."""
    with monkeypatch.context() as patch:
        patch.setattr(keras_emit, "_name_output_layers", lambda ctx, names, outputs: outputs)
        patch.setattr(keras_emit, "_output_structure", lambda graph, outputs: list(outputs))
        plain, _ = keras_emit.emit_model(result.ir, "plain")
    assert not set(plain.output_names) & set(result.output_names)  # really emitted without the names
    return _op_counts(keras_to_tflite(plain, path, result.input_names, result.output_names,
                                      resource_variables=bool(result.state_names)))


def test_naming_adds_no_op_to_the_tflite_file(dict_head, tmp_path, monkeypatch):
    """The named model's .tflite has the very ops of the same IR emitted without output names:
    renamed producing layers (the CNN) and named identities after the state's write call."""
    result, _, _ = dict_head
    named = _op_counts(result.export_tflite(str(tmp_path / "named.tflite"), validate=False, delegates=False))
    assert named == _unnamed_op_counts(result, str(tmp_path / "plain.tflite"), monkeypatch)
    assert not {"RESHAPE", "IDENTITY"} & set(named)
    assert named.get("CONV_2D") == 2 and named.get("SOFTMAX") == 1

    stateful = torch2keras.compile(CountingDict(), (torch.randn(3, 4),))
    identities = [layer.name for layer in stateful.keras_model.layers
                  if getattr(layer, "fn", None) == "identity"]
    assert sorted(identities) == ["running", "scaled"]  # past the write call, which returns both
    named = _op_counts(stateful.export_tflite(str(tmp_path / "state.tflite"), validate=False, delegates=False))
    assert named == _unnamed_op_counts(stateful, str(tmp_path / "state_plain.tflite"), monkeypatch)
    assert named.get("ASSIGN_VARIABLE") == 1 and "IDENTITY" not in named
