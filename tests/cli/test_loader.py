"""Model loading: factories found without running code, zoos whose compiled ops do not load, weights."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from compat import import_torchvision
from torch2keras import model_spec
from torch2keras.loader import WeightsError, load_factory, load_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository


def _child(code: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (torchvision not yet imported, nothing declared)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, cwd])})


def test_torchvision_models_load_though_its_compiled_ops_do_not():
    """torchvision's compiled ops never load against this torch: the plain import fails, the
    loader gives resnet18 with one warning, and nms fails with a line naming the call."""
    proc = _child("""
        import warnings, torch
        try:
            import torchvision
            raise SystemExit("torchvision imported without help: this test needs the mismatch")
        except RuntimeError as e:
            assert "torchvision::nms does not exist" in str(e), e
        from torch2keras.loader import CompiledOpsWarning, load_factory, missing_kernel_message
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_factory("torchvision.models:resnet18")().eval()
        mine = [w for w in caught if issubclass(w.category, CompiledOpsWarning)]
        assert len(mine) == 1 and "\\n" not in str(mine[0].message), [str(w.message) for w in caught]
        print(mine[0].message)
        assert type(model).__name__ == "ResNet"
        with torch.no_grad():
            assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
        import torchvision
        try:
            torchvision.ops.nms(torch.rand(5, 4), torch.rand(5), 0.5)
        except RuntimeError as e:
            print(missing_kernel_message(e))
        else:
            raise SystemExit("nms ran without its kernel")
    """)
    assert proc.returncode == 0, proc.stderr
    warning, nms = proc.stdout.splitlines()
    assert warning.startswith("torchvision's compiled ops do not load against torch ")
    assert "(torchvision::nms, torchvision::qnms, ...) fail when called" in warning
    assert nms.startswith("the model calls torchvision.ops.boxes.nms (called at <string>:")
    assert "which needs torchvision's compiled ops; they do not load against torch" in nms


_ZOO_INIT = """
import torch

@torch.library.register_fake("fakezoo::shift_boxes")
def _shift_boxes_fake(boxes, amount):
    return torch.empty_like(boxes)

from .nets import TinyNet

def shift_boxes(boxes, amount):
    return torch.ops.fakezoo.shift_boxes(boxes, amount)
"""

_ZOO_NETS = """
import torch

class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
"""


def test_any_zoo_with_missing_compiled_ops(tmp_path):
    """The same failure in a package the loader knows nothing about: its op is declared with a
    catch-all schema, its pure-Python model loads and runs, the op's call is named."""
    (tmp_path / "fakezoo").mkdir()
    (tmp_path / "fakezoo" / "__init__.py").write_text(_ZOO_INIT)
    (tmp_path / "fakezoo" / "nets.py").write_text(_ZOO_NETS)
    (tmp_path / "uses_zoo.py").write_text("import fakezoo\n\ndef build():\n    return fakezoo.TinyNet()\n")
    proc = _child("""
        import warnings, torch
        from torch2keras.loader import declared_ops, load_factory, missing_kernel_message
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            net = load_factory("uses_zoo.py:build")()
        print(len(caught), caught[0].message)
        torch.manual_seed(0)
        x = torch.randn(3, 4)
        assert torch.allclose(net(x), x @ net.fc.weight.T + net.fc.bias)
        assert declared_ops() == {"fakezoo": ["shift_boxes"]}
        import fakezoo
        try:
            fakezoo.shift_boxes(x, 1.0)
        except Exception as e:
            print(missing_kernel_message(e))
    """, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    warning, call = proc.stdout.splitlines()
    assert warning.startswith("1 fakezoo's compiled ops do not load against torch")
    assert call.startswith("the model calls fakezoo.shift_boxes (called at <string>:"), call


def test_a_zoo_imported_inside_the_factory_loads_too(tmp_path):
    """``def build(): import torchvision`` (the import runs only when the factory is called)."""
    (tmp_path / "late.py").write_text("def build():\n    import torchvision\n    return torchvision.models.resnet18()\n")
    proc = _child("""
        import warnings, torch
        from torch2keras.loader import CompiledOpsWarning, load_factory
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_factory("late.py:build")().eval()
        assert sum(issubclass(w.category, CompiledOpsWarning) for w in caught) == 1
        with torch.no_grad():
            print(tuple(model(torch.randn(1, 3, 32, 32)).shape))
    """, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 1000)"


def test_factory_lookup_never_refuses_what_exists():
    """Every torchvision model builder, where the import finds it: accepted in its own module, in
    its subpackage, and in torchvision.models exactly when that module has it (segmentation,
    detection, video builders are not there: refused). Names bound by imports, attributes a
    module binds (os.path), classes and functions in a file: accepted."""
    tv = import_torchvision()
    checked = 0
    for name in tv.models.list_models():
        builder = tv.models.get_model_builder(name)
        module = builder.__module__
        for where, attr in ((module, builder.__name__), (module.rpartition(".")[0], builder.__name__),
                            ("torchvision.models", name)):
            spec = model_spec.parse(f"{where}:{attr}")
            if hasattr(importlib.import_module(where), attr):
                model_spec.check(spec)
                checked += 1
            else:
                with pytest.raises(model_spec.SpecError, match=f"{where} has no '{attr}'"):
                    model_spec.check(spec)
    assert checked > 150
    for text in ("torch.nn:Linear", "os.path:join", "torch.nn.functional:relu", "tests/models.py:NobucoEssentials",
                 "tests/models.py:transformer_encoder", "torchvision.models:ResNet.__init__"):
        model_spec.check(model_spec.parse(os.path.join(ROOT, text) if text.startswith("tests/") else text))
    with pytest.raises(model_spec.SpecError, match=r"torch.nn has no 'Lineer' \(did you mean Linear"):
        model_spec.check(model_spec.parse("torch.nn:Lineer"))


def test_opaque_modules_are_left_to_the_import(tmp_path):
    """A module-level __getattr__ (or globals() edits) can bind anything: the name is accepted."""
    (tmp_path / "lazy.py").write_text("def __getattr__(name):\n    return lambda: None\n")
    (tmp_path / "dynamic.py").write_text("for n in ('a', 'b'):\n    globals()[n] = lambda: None\n")
    (tmp_path / "plain.py").write_text("def build():\n    pass\n")
    model_spec.check(model_spec.parse(f"{tmp_path}/lazy.py:anything"))
    model_spec.check(model_spec.parse(f"{tmp_path}/dynamic.py:a"))
    with pytest.raises(model_spec.SpecError, match="plain.py has no 'biuld' \\(did you mean build\\?\\)"):
        model_spec.check(model_spec.parse(f"{tmp_path}/plain.py:biuld"))


def test_weights_checkpoint_forms_and_refusals(tmp_path):
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    x = torch.randn(1, 3, 8, 8)
    expected = source(x)
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "ckpt.pt")
    target = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    load_weights(target, str(tmp_path / "ckpt.pt"))  # a checkpoint dict, DataParallel names
    assert torch.equal(target(x), expected)

    wider = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    with pytest.raises(WeightsError, match=r"6 tensor\(s\) of another shape \(0.weight: file \[4, 3, 3, 3\], model "
                                           r"\[8, 3, 3, 3\], 0.bias: file \[4\], model \[8\], 1.weight: .*, \.\.\.\)"):
        load_weights(wider, str(tmp_path / "ckpt.pt"))
    torch.save(source, tmp_path / "pickled.pt")
    with pytest.raises(WeightsError, match="holds more than tensors .* save model.state_dict"):
        load_weights(target, str(tmp_path / "pickled.pt"))
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(WeightsError, match="is not a file torch.save wrote"):
        load_weights(target, str(tmp_path / "text.pt"))


def test_load_factory_names_what_is_missing(tmp_path):
    (tmp_path / "nets.py").write_text("class Net:\n    pass\n\nvalue = 3\n")
    with pytest.raises(AttributeError, match=r"nets.py:Net has no attribute 'build'"):
        load_factory(f"{tmp_path}/nets.py:Net.build")
    with pytest.raises(TypeError, match=r"nets.py:value is a int, not a callable that builds the model"):
        load_factory(f"{tmp_path}/nets.py:value")


def test_model_file_named_like_a_loaded_module(tmp_path, monkeypatch):
    """A user's copy.py is loaded under another name: the standard library's copy stays."""
    import copy

    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader puts the file's folder first: undone after

    (tmp_path / "copy.py").write_text("import torch\n\ndef build():\n    return torch.nn.Linear(2, 2)\n")
    model = load_factory(f"{tmp_path}/copy.py:build")()
    assert isinstance(model, torch.nn.Linear) and sys.modules["copy"] is copy and copy.deepcopy([1]) == [1]
