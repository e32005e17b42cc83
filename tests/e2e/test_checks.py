"""Bad input is refused at the API boundary, before any work, with an error naming the problem
and the fix (torch2keras/checks.py, torch2keras/io_checks.py)."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn

import torch2keras


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x * 2 + y.mean()


class Returns(nn.Module):
    def __init__(self, what):
        super().__init__()
        self.what = what

    def forward(self, x):
        return {"none": None, "str": "done", "item": x.sum().item(), "pair": (x * 2, 3.0)}[self.what]


@pytest.fixture(scope="module")
def conv():
    torch.manual_seed(0)
    return torch2keras.compile(Conv().eval(), torch.randn(1, 3, 8, 8))


@pytest.fixture(scope="module")
def dynamic_conv(tmp_path_factory):
    """A Keras model whose batch is free, next to a TFLite file exported with a static batch."""
    torch.manual_seed(0)
    static = torch2keras.compile(Conv().eval(), torch.randn(2, 3, 8, 8))
    path = static.export_tflite(str(tmp_path_factory.mktemp("tfl") / "static.tflite"), validate=False)
    free = torch2keras.compile(Conv().eval(), torch.randn(2, 3, 8, 8), dynamic_shapes={"x": {0: "batch"}})
    return free, path


# ----------------------------------------------------------------------------- the model
@pytest.mark.parametrize("model, named", [
    (lambda x: x * 2, "the function"), ("resnet18.pt", "a str ('resnet18.pt')"), (None, "None"),
    (Conv, "the class"),
])
def test_non_module_models_are_refused(model, named):
    with pytest.raises(TypeError) as e:
        torch2keras.compile(model, torch.randn(1, 3, 8, 8))
    text = str(e.value)
    assert "expects a torch.nn.Module instance" in text and named in text
    if model is Conv:
        assert "pass MyModel(...) rather than MyModel" in text
    elif callable(model):
        assert "wrap the computation in a torch.nn.Module" in text
    else:
        assert "build or load the model first" in text


@pytest.mark.parametrize("what, expected", [
    ("none", "returned None"), ("str", "output 'output' of the model is a str ('done')"),
    ("item", "output 'output' of the model is a Python float ("), ("pair", "output 'output_1' of the model is a "
                                                                         "Python float (3.0)"),
])
def test_outputs_that_are_not_tensors_are_refused(what, expected):
    with pytest.raises(TypeError) as e:
        torch2keras.compile(Returns(what).eval(), torch.randn(2, 3), validate=False)
    assert expected in str(e.value)
    assert "return" in str(e.value) and "tensor" in str(e.value)
    if what == "item":
        assert "drop .item()" in str(e.value)


# ----------------------------------------------------------------------------- inputs and layouts
def test_input_count_against_forward():
    with pytest.raises(ValueError) as e:
        torch2keras.compile(TwoInputs().eval(), torch.randn(2, 3))
    assert "TwoInputs.forward(x, y) cannot take the example inputs (1 positional)" in str(e.value)
    assert "pass one example per parameter" in str(e.value)


def test_input_rank_mismatch_names_the_inputs():
    with pytest.raises(ValueError) as e:
        torch2keras.compile(Conv().eval(), torch.randn(3, 8))
    assert "Conv raised on the example inputs [(3, 8) float32]" in str(e.value)
    assert "fix the inputs' count, shapes (rank) or dtypes" in str(e.value)


@pytest.mark.parametrize("value, dtype_text", [(np.zeros((1, 3, 8, 8), np.float32), "numpy array"),
                                               (torch.zeros(1, 3, 8, 8, dtype=torch.complex64), "complex64")])
def test_input_types_and_dtypes(value, dtype_text):
    with pytest.raises((TypeError, ValueError)) as e:
        torch2keras.compile(Conv().eval(), value)
    assert dtype_text in str(e.value)
    assert "torch.from_numpy" in str(e.value) or "supported: float32" in str(e.value)


@pytest.mark.parametrize("kwargs, expected", [
    ({"input_layouts": "NHWC"}, "unknown layout 'NHWC' for every input; allowed: 'channels_last'"),
    ({"input_layouts": {"nosuch": "channels_last"}}, "unknown input name(s) ['nosuch']; the model's inputs are ['x']"),
    ({"output_layouts": ["channels_last", None]}, "2 layouts given for 1 output(s) ['output']"),
    ({"output_layouts": {"out": "channels_last"}}, "unknown output name(s) ['out']; the model's outputs are "
                                                   "['output']"),
])
def test_layout_options_are_checked(kwargs, expected):
    with pytest.raises(ValueError) as e:
        torch2keras.compile(Conv().eval(), torch.randn(1, 3, 8, 8), **kwargs)
    assert expected in str(e.value)
    assert "NHWC" not in kwargs.get("input_layouts", "") or "pass 'channels_last'" in str(e.value)


def test_channels_last_on_a_rank2_input_is_refused():
    with pytest.raises(ValueError) as e:
        torch2keras.compile(TwoInputs().eval(), (torch.randn(1, 3, 4), torch.randn(2, 5)),
                            input_layouts={"x": "channels_last", "y": "channels_last"})
    assert "input 'y' has rank 2; 'channels_last' needs a channel axis" in str(e.value)
    assert "pass None" in str(e.value)


# ----------------------------------------------------------------------------- running converted models
@pytest.mark.parametrize("feed, expected", [
    (lambda x: [x, x], "run_keras takes 1 input(s) ['x'], got 2"),
    (lambda x: [x[:, :, :4]], "run_keras: input 'x' has shape (1, 3, 4, 8), the model takes (1, 3, 8, 8)"),
])
def test_run_keras_checks_the_inputs(conv, feed, expected):
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError) as e:
        conv.run_keras(feed(x))
    assert expected in str(e.value)


def test_run_tflite_checks_the_inputs(conv, tmp_path):
    path = conv.export_tflite(str(tmp_path / "m.tflite"), validate=False)
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"run_tflite takes 1 input\(s\) \['x'\], got 2"):
        conv.run_tflite(path, [x, x])
    ref = conv.run_keras([x])[0]
    assert np.max(np.abs(conv.run_tflite(path, [x])[0] - ref)) < 1e-4


def test_static_tflite_next_to_a_free_batch(dynamic_conv):
    free, path = dynamic_conv
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert free.run_keras([x])[0].shape == (3, 4, 8, 8)  # Keras takes any batch
    with pytest.raises(ValueError) as e:
        free.run_tflite(path, [x])
    assert "static.tflite was exported with input 'x' of static shape (2, 3, 8, 8)" in str(e.value)
    assert "cannot run shape (3, 3, 8, 8); export with dynamic_shapes=" in str(e.value)


# ----------------------------------------------------------------------------- files
def test_export_tflite_refuses_other_extensions(conv, tmp_path):
    with pytest.raises(ValueError) as e:
        conv.export_tflite(str(tmp_path / "x.keras"))
    assert "export_tflite writes a .tflite file; got" in str(e.value) and "written by CompileResult.save" in str(e.value)
    assert not os.path.exists(tmp_path / "x.keras")


def test_unwritable_output_directory(conv, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for call in (lambda p: conv.save(p + ".keras"), lambda p: conv.export_tflite(p + ".tflite")):
        with pytest.raises(PermissionError) as e:
            call(str(blocker / "out" / "model"))
        assert f"cannot write '{blocker}" in str(e.value) and "choose another output path" in str(e.value)


def test_read_only_output_directory(conv, tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root writes into mode-0555 directories; not into /sys
        ro = "/sys"
    else:
        ro = str(tmp_path / "ro")
        os.mkdir(ro, 0o555)
    with pytest.raises(PermissionError) as e:
        conv.save(os.path.join(ro, "m.keras"))
    assert f"cannot write '{ro}/m.keras': the directory '{ro}' is not writable" in str(e.value)
    assert "choose another output path" in str(e.value)


def test_corrupt_keras_file(conv, tmp_path):
    good = conv.save(str(tmp_path / "good.keras"))
    bad = tmp_path / "bad.keras"
    bad.write_bytes(open(good, "rb").read()[:200])
    with pytest.raises(ValueError) as e:
        torch2keras.load_model(str(bad))
    assert "is not a valid .keras file" in str(e.value) and "corrupt or truncated" in str(e.value)
    empty = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("other.txt", "x")
    with pytest.raises(ValueError, match="no config.json"):
        torch2keras.load_model(str(empty))
    with pytest.raises(FileNotFoundError, match="no such model file"):
        torch2keras.load_model(str(tmp_path / "missing.keras"))
    loaded = torch2keras.load_model(good)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert np.max(np.abs(np.asarray(loaded(x)) - conv.run_keras([x])[0])) < 1e-5


# ----------------------------------------------------------------------------- the command line
def test_cli_refuses_unwritable_outputs_and_non_models(tmp_path, capsys):
    from torch2keras.cli import main

    factories = tmp_path / "factories.py"
    factories.write_text("import torch\n\ndef not_a_model():\n    return torch.nn.Linear\n")
    assert main(["convert", f"{factories}:not_a_model", "--input-shape", "1,4", "-o", "/sys/m.tflite"]) == 2
    err = capsys.readouterr().err
    assert "-o /sys/m.tflite: cannot write '/sys/m.tflite'" in err and "choose another output path" in err
    assert main(["convert", f"{factories}:not_a_model", "--input-shape", "1,4", "-o", str(tmp_path / "m.keras")]) == 2
    err = capsys.readouterr().err
    assert "returned no model" in err and "the class torch.nn.modules.linear.Linear" in err
    assert not (tmp_path / "m.keras").exists()


# ----------------------------------------------------------------------------- TFLite outputs by signature name
class GruTwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.a = nn.Conv1d(32, 40, 3, padding=1)
        self.b = nn.Conv1d(32, 60, 3, padding=1)

    def forward(self, x):
        h = self.gru(x)[0].transpose(1, 2)
        return self.a(h), self.b(h)


def test_tflite_outputs_are_matched_by_signature_name(conv, tmp_path):
    """The converter orders the file's output tensors its own way (here the reverse of the
    model's); outputs are matched by signature name, in a process that converted other models
    first (the module's fixtures) as in one that did not."""
    from ai_edge_litert.interpreter import Interpreter

    from torch2keras.tflite.file import read_tflite

    torch.manual_seed(0)
    model = GruTwoHeads().eval()
    result = torch2keras.compile(model, torch.randn(1, 128, 16), output_layouts="channels_last")
    path = result.export_tflite(str(tmp_path / "gru.tflite"))  # its own check compares both outputs
    signature = read_tflite(path).signatures["serving_default"]["outputs"]
    raw_order = [d["index"] for d in Interpreter(model_path=path).get_output_details()]
    assert raw_order != [signature[n] for n in result.output_names]  # tensor order differs from the model's
    assert result.report.tflite["signature"]["output_0"] == [1, 128, 40]
    assert result.report.tflite["max_abs_error"] < 1e-4
    x = np.random.default_rng(3).standard_normal((1, 128, 16)).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(x))]
    got = result.run_tflite(path, [x])
    assert [g.shape for g in got] == [(1, 40, 128), (1, 60, 128)]
    for g, w in zip(got, want):
        assert np.max(np.abs(g - w)) < 1e-4
