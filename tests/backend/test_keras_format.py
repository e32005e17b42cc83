"""The ``.keras`` format contract (docs/keras_format.md): files written before the format had a
version keep loading and computing the same; renamed kernels load through ``ALIASES``; configs
carry their format version.

``tests/backend/data/keras_format_v1/`` holds files written by an earlier torch2keras (``make.py``)
with their feeds, what PyTorch returned and what the Keras model returned when it was written.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import torch2keras
from torch2keras.backend_keras import TorchOp
from torch2keras.backend_keras.kops import ALIASES, FORMAT_VERSION, KOPS, resolve
from support import max_abs_error

DATA = Path(__file__).resolve().parent / "data" / "keras_format_v1"
NAMES = ["kernels", "dynamic", "layers", "state"]
ATOL_TORCH = 1e-4  # float32 kernels against PyTorch's
ATOL_SAME = 1e-5  # the same kernels on the same inputs: equal up to float32 rounding of the backend


def _configs(config, class_name: str) -> list[dict]:
    """Every config of layers of ``class_name`` in a model config, nested models included."""
    found = []
    if isinstance(config, dict):
        if config.get("class_name") == class_name:
            found.append(config["config"])
        for value in config.values():
            found += _configs(value, class_name)
    elif isinstance(config, list):
        for value in config:
            found += _configs(value, class_name)
    return found


def _file_config(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("config.json"))


def _run(model: keras.Model, arrays) -> list[np.ndarray]:
    feeds = {k[3:]: arrays[k] for k in arrays.files if k.startswith("in_")}
    out = model(feeds, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]



def _check_outputs(outs: list[np.ndarray], arrays) -> None:
    assert len(outs) == len([k for k in arrays.files if k.startswith("keras_")])
    for i, out in enumerate(outs):
        then, torch_ref = arrays[f"keras_{i}"], arrays[f"torch_{i}"]
        assert out.shape == then.shape and out.dtype == then.dtype
        if out.dtype.kind in "iub":
            assert np.array_equal(out, then) and np.array_equal(out, torch_ref), f"output {i}"
        else:
            assert max_abs_error(out, then) < ATOL_SAME, f"output {i} changed since the file was written"
            assert max_abs_error(out, torch_ref) < ATOL_TORCH, f"output {i} differs from PyTorch"


def test_the_files_are_of_format_1_and_use_nearly_every_kernel():
    kernel_names = (DATA / "kernel_names.txt").read_text().split()
    used = set()
    for name in NAMES:
        ops = _configs(_file_config(DATA / f"{name}.keras"), "TorchOp")
        assert ops and all("version" not in c for c in ops)  # written before the key existed
        used |= {c["fn"] for c in ops}
    assert used <= set(kernel_names) and len(used) >= len(kernel_names) - 3
    classes = json.dumps([_file_config(DATA / f"{name}.keras") for name in NAMES])
    for registered in ("TorchOp", "ConstantOutput", "ControlFlow", "ModelState", "TorchLSTM", "TorchGRU",
                       "TorchSimpleRNN"):
        assert f'"torch2keras>{registered}"' in classes


def test_every_format_1_kernel_name_resolves():
    names = (DATA / "kernel_names.txt").read_text().split()
    assert len(names) == 127
    assert all(resolve(name, 1) in KOPS for name in names)


@pytest.mark.parametrize("name", NAMES)
def test_a_format_1_file_loads_and_computes_the_same(name):
    model = torch2keras.load_model(str(DATA / f"{name}.keras"))  # safe mode
    arrays = np.load(DATA / f"{name}.npz")
    _check_outputs(_run(model, arrays), arrays)


def test_a_format_1_model_saves_in_the_current_format(tmp_path):
    model = torch2keras.load_model(str(DATA / "kernels.keras"))
    path = tmp_path / "again.keras"
    model.save(str(path))
    old = _configs(_file_config(DATA / "kernels.keras"), "TorchOp")
    new = _configs(_file_config(path), "TorchOp")
    assert [c["fn"] for c in new] == [c["fn"] for c in old]
    assert {c["version"] for c in new} == {FORMAT_VERSION}
    arrays = np.load(DATA / "kernels.npz")
    _check_outputs(_run(torch2keras.load_model(str(path)), arrays), arrays)


def test_a_renamed_kernel_loads_through_its_alias(monkeypatch):
    monkeypatch.setitem(KOPS, "sum_of", KOPS["add"])  # "add" renamed "sum_of", as docs/keras_format.md says
    monkeypatch.delitem(KOPS, "add")
    monkeypatch.setitem(ALIASES, "add", "sum_of")
    model = torch2keras.load_model(str(DATA / "kernels.keras"))
    fns = [layer.fn for layer in model.layers if isinstance(layer, TorchOp)]
    assert "sum_of" in fns and "add" not in fns
    arrays = np.load(DATA / "kernels.npz")
    _check_outputs(_run(model, arrays), arrays)


def test_a_dropped_kernel_name_fails_naming_it(monkeypatch):
    monkeypatch.delitem(KOPS, "lgamma")
    with pytest.raises(Exception, match="unknown op 'lgamma'.*ALIASES"):
        torch2keras.load_model(str(DATA / "kernels.keras"))


def test_configs_of_another_format():
    config = TorchOp("add", name="plus").get_config()
    assert config["version"] == FORMAT_VERSION and config["fn"] == "add"
    assert TorchOp.from_config({k: v for k, v in config.items() if k != "version"}).fn == "add"  # format 1
    with pytest.raises(Exception, match=f"format {FORMAT_VERSION + 1}.*newer torch2keras"):
        TorchOp.from_config({**config, "version": FORMAT_VERSION + 1})
