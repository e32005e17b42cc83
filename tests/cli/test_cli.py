"""The torch2keras command line: argument checks before torch, readable failures, exit codes, outputs."""

from __future__ import annotations

import configparser
import io
import json
import os
import resource
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from torch2keras.cli import main
from torch2keras.commands import supported
from torch2keras.commands.console import Progress
from torch2keras.tflite.file import read_tflite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models.py")
ESSENTIALS = f"{MODEL_FILE}:NobucoEssentials"

# runs main(argv) in a fresh interpreter and reports which heavy libraries it imported
_CHILD = """
import sys
from torch2keras.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # argparse's own refusals
    code = e.code
heavy = sorted(m for m in ("torch", "tensorflow", "keras") if m in sys.modules)
print("imported:" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def run_cli(argv: list[str], cwd: str = ROOT, env: dict | None = None, timeout: int = 900):
    """(exit code, stdout, stderr lines without the import marker, heavy modules imported, wall s, CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT, **(env or {})})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = proc.stderr.splitlines()
    imported = lines.pop()[len("imported:"):].split(",") if lines and lines[-1].startswith("imported:") else None
    return proc.returncode, proc.stdout, lines, imported, wall, cpu


def _essentials():
    torch.manual_seed(0)
    from models import NobucoEssentials

    return NobucoEssentials()


# ----------------------------------------------------------------------------- mistakes caught before torch

_TOKENS = """
import torch
from torch import nn


class BagOfTokens(nn.Module):
    \"\"\"Token ids -> embedding -> mean over the sequence -> logits.\"\"\"

    def __init__(self, vocab=50, dim=16, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(dim=1))


def build():
    torch.manual_seed(0)
    return BagOfTokens()
"""


@pytest.fixture
def workdir(tmp_path):
    """A folder with a model file, data files of every kind, and a text file posing as data."""
    (tmp_path / "tokens.py").write_text(_TOKENS)
    np.savez(tmp_path / "cal.npz", x=np.zeros((4, 1, 3, 8, 8), np.float32))
    np.savez(tmp_path / "ids.npz", tokens=np.zeros((2, 7), np.int64))
    (tmp_path / "notes.npz").write_text("not numpy")
    return tmp_path


ESS = ["tests/models.py:NobucoEssentials", "--input-shape", "1,3,8,8"]
PREFLIGHT_CASES = {
    "module typo": (["torchvisoin.models:resnet18", "--input-shape", "1,3,8,8", "-o", "m.keras"],
                    "no module named 'torchvisoin' (did you mean torchvision?)"),
    "submodule typo": (["torchvision.modles:resnet18", "--input-shape", "1,3,8,8", "-o", "m.keras"],
                       "torchvision has no module 'modles' (did you mean models?)"),
    "factory typo in a package": (["torchvision.models:resnet181", "--input-shape", "1,3,8,8", "-o", "m.keras"],
                                  "torchvision.models has no 'resnet181' (did you mean resnet18"),
    "file typo": (["tests/modles.py:NobucoEssentials", "--input-shape", "1,3,8,8", "-o", "m.keras"],
                  "no file 'tests/modles.py' (for MODEL tests/modles.py:NobucoEssentials) (did you mean "
                  "tests/models.py"),
    "factory typo in a file": (["tests/models.py:NobucoEsentials", "--input-shape", "1,3,8,8", "-o", "m.keras"],
                               "tests/models.py has no 'NobucoEsentials' (did you mean NobucoEssentials?)"),
    "no factory": (["tests/models.py", "--input-shape", "1,3,8,8", "-o", "m.keras"],
                   "needs the factory's name: tests/models.py:FACTORY"),
    "dot instead of colon": (["torchvision.models.resnet18", "--input-shape", "1,3,8,8", "-o", "m.keras"],
                             "needs a ':' between the module and the factory: torchvision.models:resnet18?"),
    "missing weights": ([*ESS, "-o", "m.keras", "--weights", "nope.pt"], "--weights nope.pt: no such file"),
    "onnx output": ([*ESS, "-o", "m.onnx"], "for ONNX use torch.onnx.export"),
    "unknown output": ([*ESS, "-o", "m.pb"], "unknown output type '.pb'"),
    "same output twice": ([*ESS, "-o", "m.keras", "-o", "./m.keras"], "is given twice"),
    "bad shape": (["tests/models.py:NobucoEssentials", "--input-shape", "1,3,8x,8", "-o", "m.keras"],
                  "expected sizes separated by commas, e.g. 1,3,224,224"),
    "zero size": (["tests/models.py:NobucoEssentials", "--input-shape", "1,0", "-o", "m.keras"],
                  "every size must be positive"),
    "no input": (["tests/models.py:NobucoEssentials", "-o", "m.keras"], "give the example input: --input-shape"),
    "inputs and shape": ([*ESS, "--inputs", "{w}/ids.npz", "-o", "m.keras"], "drop --input-shape"),
    "inputs not numpy": (["tests/models.py:NobucoEssentials", "--inputs", "{w}/notes.npz", "-o", "m.keras"],
                         "is not a .npz/.npy file numpy reads"),
    "int8 without calibration": ([*ESS, "-o", "m.tflite", "--quantize", "int8"],
                                 "--quantize int8 needs --calibration FILE.npz"),
    "quantize without tflite": ([*ESS, "-o", "m.keras", "--quantize", "fp16"],
                                "--quantize applies to .tflite outputs: add -o model.tflite"),
    "unknown quantize": ([*ESS, "-o", "m.tflite", "--quantize", "fp16,int4"], "'int4': choose among"),
    "keep-float without weight quantization": ([*ESS, "-o", "m.tflite", "--quantize", "fp16", "--keep-float", "fc"],
                                               "--keep-float applies to weight quantization or int8: add --quantize "
                                               "dynamic_int8"),
    "target agreement without int8": ([*ESS, "-o", "m.tflite", "--quantize", "dynamic_int8", "--target-agreement",
                                       "0.99"], "--target-agreement chooses the layers kept float in a calibrated "
                                                "int8 file: add --quantize int8"),
    "calibration without int8": ([*ESS, "-o", "m.tflite", "--calibration", "{w}/cal.npz"],
                                 "--calibration is used by --quantize int8 only"),
    "calibration of another shape": (["tests/models.py:NobucoEssentials", "--input-shape", "1,3,16,16", "-o",
                                      "m.tflite", "--quantize", "int8", "--calibration", "{w}/cal.npz"],
                                     "array 'x' has shape [4, 1, 3, 8, 8]; expected [samples, 1, 3, 16, 16]"),
    "calibration not numpy": ([*ESS, "-o", "m.tflite", "--quantize", "int8", "--calibration", "{w}/notes.npz"],
                              "is not a .npz/.npy file numpy reads"),
    "dynamic axis out of range": ([*ESS, "-o", "m.keras", "--dynamic", "0=batch,4=w"],
                                  "--dynamic axis 4: the first input has 4 axes (0..3)"),
    "negative tolerance": ([*ESS, "-o", "m.keras", "--atol", "-1"], "--atol -1.0: a tolerance is a non-negative"),
    "bad layout": ([*ESS, "-o", "m.keras", "--layout", "x=nhwc"], "expected INPUT_OR_OUTPUT=channels_last"),
    "unknown dtype": ([*ESS, "-o", "m.keras", "--input-dtype", "int65"], "unknown dtype 'int65'"),
}


@pytest.mark.parametrize("case", sorted(PREFLIGHT_CASES))
def test_mistake_is_one_line_before_torch(case, workdir):
    """Each mistake: exit 2, one `error:` line with the fix, without importing torch, TensorFlow
    or Keras, in well under two seconds of CPU time (wall time printed; it includes the machine's load)."""
    argv, expected = PREFLIGHT_CASES[case]
    argv = ["convert", *[a.format(w=workdir) for a in argv]]
    code, out, err, imported, wall, cpu = run_cli(argv)
    assert code == 2, (code, err)
    assert len(err) == 1 and err[0].startswith("torch2keras convert: error: "), err
    assert expected in err[0], err[0]
    assert imported == [""], f"imported {imported} before refusing the arguments"
    assert cpu < 2.0, f"{case}: {cpu:.2f}s CPU, {wall:.2f}s wall"
    print(f"{case}: {wall:.2f}s wall, {cpu:.2f}s CPU")


def test_calibration_matched_to_named_inputs(tmp_path):
    """Named --inputs with positional calibration arrays pass the early check when every array
    fits one of the inputs (forward's order decides later); an array fitting none is refused."""
    from torch2keras.cli import build_parser
    from torch2keras.commands import preflight
    from torch2keras.commands.exits import UsageError

    np.savez(tmp_path / "x.npz", image=np.zeros((1, 3, 8, 8), np.float32), bias=np.zeros((1, 4, 1, 1), np.float32))
    np.savez(tmp_path / "cal.npz", np.zeros((5, 1, 3, 8, 8), np.float32), np.zeros((5, 1, 4, 1, 1), np.float32))
    np.savez(tmp_path / "bad.npz", np.zeros((5, 1, 3, 8, 8), np.float32), np.zeros((5, 1, 4, 2, 2), np.float32))
    argv = ["convert", ESSENTIALS, "--inputs", str(tmp_path / "x.npz"), "-o", "m.tflite", "--quantize", "int8",
            "--calibration"]
    plan = preflight.check(build_parser().parse_args([*argv, str(tmp_path / "cal.npz")]))
    assert sorted(plan.calibration) == ["arr_0", "arr_1"] and plan.shapes == []
    with pytest.raises(UsageError, match=r"array 'arr_1' has shape \[5, 1, 4, 2, 2\]; expected \[samples, 1, 3, 8, "
                                         r"8\] or \[samples, 1, 4, 1, 1\]"):
        preflight.check(build_parser().parse_args([*argv, str(tmp_path / "bad.npz")]))


def test_version_and_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "torch2keras", "--version"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, timeout=60)
    assert proc.returncode == 0
    import torch2keras

    assert proc.stdout.startswith(f"torch2keras {torch2keras.__version__} (torch {torch.__version__}")


def test_install_brings_what_tflite_needs():
    """`pip install .` installs the LiteRT interpreter (checking .tflite files) and rich (the progress)."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    required = [line.split("#")[0].strip() for line in cfg["options"]["install_requires"].splitlines()]
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in required if r}
    assert {"ai-edge-litert", "rich", "torch", "tensorflow-cpu", "keras"} <= names
    assert cfg["options.entry_points"]["console_scripts"].strip() == "torch2keras = torch2keras.cli:main"


# ----------------------------------------------------------------------------- mistakes found with the model


def test_state_dict_of_another_model_is_one_line(tmp_path, capsys):
    torch.save(torch.nn.Linear(3, 3).state_dict(), tmp_path / "other.pt")
    code = main(["convert", ESSENTIALS, "--input-shape", "1,3,8,8", "--weights", str(tmp_path / "other.pt"),
                 "-o", str(tmp_path / "m.keras")])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"torch2keras convert: error: {tmp_path / 'other.pt'} does not fit the model: 2 missing "
                       "key(s) (conv.weight, conv.bias); 2 unexpected key(s) (weight, bias) -- a state_dict for "
                       "another model?")
    assert not (tmp_path / "m.keras").exists()


def test_wrong_input_shape_fails_before_tensorflow(tmp_path):
    """The model rejects the example: one paragraph naming the user's line, exit 2, TensorFlow
    never imported."""
    code, out, err, imported, wall, cpu = run_cli(["convert", ESSENTIALS, "--input-shape", "1,4,8,8", "-o",
                                                   str(tmp_path / "m.keras")])
    assert code == 2
    assert "tensorflow" not in imported and "torch" in imported
    assert err[-1].startswith("torch2keras convert: error: the model fails on the example input (x float32[1, 4, 8, 8]): "
                              "RuntimeError: Given groups=1, weight of size [16, 3, 3, 3], expected input[1, 4, 8, 8] "
                              "to have 3 channels")
    assert "(at tests/models.py:17: x = self.conv(x)); check --input-shape" in err[-1]
    assert not any("Traceback" in line for line in err)
    print(f"wrong input shape: {wall:.2f}s wall, {cpu:.2f}s CPU")


def test_failing_factory_and_unknown_input_name(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(_TOKENS + "\n\ndef broken():\n    raise ValueError('vocabulary file missing')\n")
    np.savez(tmp_path / "bad.npz", ids=np.zeros((2, 7), np.int64))
    assert main(["convert", f"{tmp_path}/nets.py:broken", "--input-shape", "2,7", "-o", str(tmp_path / "m.keras")]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"torch2keras convert: error: building the model with {tmp_path}/nets.py:broken() failed: "
                          "ValueError: vocabulary file missing (at ")
    assert err.endswith("nets.py:24: raise ValueError('vocabulary file missing'))")
    assert main(["convert", f"{tmp_path}/nets.py:broken", "--input-shape", "2,7", "-o", str(tmp_path / "m.keras"),
                 "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'nets.py", line 24, in broken' in err
    assert main(["convert", f"{tmp_path}/nets.py:build", "--inputs", str(tmp_path / "bad.npz"), "-o",
                 str(tmp_path / "m.keras")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        "torch2keras convert: error: --inputs: array 'ids' is no argument of BagOfTokens.forward(tokens)"


def test_model_needing_missing_compiled_ops_says_so(tmp_path):
    """torchvision.ops.nms needs torchvision's compiled ops, which do not load against this torch:
    the model builds (one warning line), the run stops with a line naming the call, exit 1."""
    (tmp_path / "boxes.py").write_text(textwrap.dedent("""
        import torch
        import torchvision


        class KeepBoxes(torch.nn.Module):
            def forward(self, boxes, scores):
                return torchvision.ops.nms(boxes, scores, 0.5)


        def build():
            return KeepBoxes()
    """))
    code, out, err, imported, wall, cpu = run_cli(["convert", "boxes.py:build", "--input-shape", "5,4",
                                                   "--input-shape", "5", "-o", "b.keras"], cwd=str(tmp_path))
    assert code == 1, err
    assert sum(line.startswith("warning: torchvision's compiled ops do not load against torch") for line in err) == 1
    assert err[-1].startswith("torch2keras convert: error: the model calls torchvision.ops.boxes.nms (called at "
                              "boxes.py:8), which needs torchvision's compiled ops; they do not load against torch")
    assert "tensorflow" not in imported


def test_failed_conversion_is_one_paragraph_exit_1(tmp_path, capsys):
    """An op without a lowering: exit 1, the compiler's message (op, user's line, stub), no traceback."""
    (tmp_path / "spectrum.py").write_text("import torch\n\n\nclass Spectrum(torch.nn.Module):\n"
                                          "    def forward(self, x):\n        return torch.fft.rfft(x).abs()\n")
    assert main(["convert", f"{tmp_path}/spectrum.py:Spectrum", "--input-shape", "1,16", "-o",
                 str(tmp_path / "s.keras")]) == 1
    err = capsys.readouterr().err
    message = err[err.index("torch2keras convert: error: "):]
    assert message.startswith("torch2keras convert: error: lowering to the IR failed: 1 call(s) of 1 op(s) have no "
                              "lowering: aten._fft_r2c.default")
    assert "spectrum.py:6" in message and "Traceback" not in err
    assert not (tmp_path / "s.keras").exists()


# ----------------------------------------------------------------------------- conversions


def test_convert_writes_files_and_report(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    model = _essentials()
    torch.save(model.state_dict(), weights)
    out = tmp_path / "m.tflite"
    report = tmp_path / "r.json"
    code = main(["convert", ESSENTIALS, "--input-shape", "1,3,32,32", "--weights", str(weights), "-o", str(out), "-o",
                 str(tmp_path / "m.keras"), "-o", str(tmp_path / "m.h5"), "-o", str(tmp_path / "saved"),
                 "--channels-last", "--dump-ir", str(tmp_path / "ir"), "--report-json", str(report)])
    assert code == 0
    printed = capsys.readouterr()
    assert "max |err|" in printed.out and "TFLite:" in printed.out and f"wrote {out}" in printed.out
    assert "tolerance: max |err| <= atol 1.0e-04 + rtol 1.0e-04 * max |ref|" in printed.out
    stages = ["loading the model", "loading the weights", "running the PyTorch model", "loading TensorFlow and Keras",
              "capture", "lowering to the IR", "IR passes", "building the Keras model", "checking against PyTorch",
              f"writing {out}", "SavedModel for the TFLite converter", "TFLite converter (float32)",
              "checking m.tflite with LiteRT", "delegate readiness", f"writing {tmp_path / 'saved'}"]
    progress = [line.split("] ", 1)[1] for line in printed.err.splitlines() if line.startswith("[")]
    assert [s for s in stages if not any(line.startswith(s) for line in progress)] == []
    data = json.loads(report.read_text())
    assert data["ok"] and data["tflite"]["transposes"] == 0 and data["max_abs_error"] < 1e-4
    assert (data["atol"], data["rtol"], data["exit_code"]) == (1e-4, 1e-4, 0)
    assert (tmp_path / "m.keras").is_file() and (tmp_path / "m.h5").is_file() and out.is_file()
    assert (tmp_path / "saved" / "saved_model.pb").is_file()
    assert any(p.endswith("_assign_layout.txt") for p in os.listdir(tmp_path / "ir"))


def test_weights_change_the_result(tmp_path):
    """--weights really loads: a model with zeroed weights converts to an all-constant output."""
    model = _essentials()
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "zero.pt")  # a checkpoint dict
    keras_path = tmp_path / "z.keras"
    assert main(["convert", ESSENTIALS, "--input-shape", "1,3,16,16",
                 "--weights", str(tmp_path / "zero.pt"), "-o", str(keras_path)]) == 0
    import torch2keras

    m = torch2keras.load_model(str(keras_path))
    y = np.asarray(m(np.random.rand(1, 3, 16, 16).astype(np.float32)))
    assert np.allclose(y, 0.75)  # hardsigmoid(0) = 0.5 -> 1 - 0.25


def test_token_model_with_sample_inputs_end_to_end(tmp_path):
    """An int64 token-id model in the user's file, converted with --inputs from `python -m
    torch2keras`: .keras and two .tflite variants agree with PyTorch; stderr holds our progress
    and nothing from TensorFlow, absl, oneDNN or LiteRT."""
    (tmp_path / "tokens.py").write_text(_TOKENS)
    ids = np.random.default_rng(0).integers(0, 50, (2, 7))
    np.savez(tmp_path / "tokens.npz", tokens=ids)
    proc = subprocess.run([sys.executable, "-m", "torch2keras", "convert", "tokens.py:build", "--inputs", "tokens.npz",
                           "-o", "t.keras", "-o", "t.tflite", "--quantize", "float32,fp16", "--report-json", "r.json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=900,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    for noise in ("oneDNN", "absl", "I0000", "W0000", "XNNPACK delegate", "tensorflow/", "UserWarning"):
        assert noise not in proc.stderr, noise
    assert all(line.startswith("[") for line in proc.stderr.splitlines()), proc.stderr
    assert "wrote t_fp16.tflite" in proc.stdout and "wrote t.tflite" in proc.stdout

    sys.path.insert(0, str(tmp_path))
    try:
        import tokens
    finally:
        sys.path.remove(str(tmp_path))
    with torch.no_grad():
        ref = tokens.build()(torch.from_numpy(ids)).numpy()
    import torch2keras
    from torch2keras.tflite.runtime import run_tflite

    keras_out = np.asarray(torch2keras.load_model(str(tmp_path / "t.keras"))({"tokens": ids}))
    assert np.abs(keras_out - ref).max() < 1e-5
    assert np.abs(run_tflite(str(tmp_path / "t.tflite"), {"tokens": ids})["output"] - ref).max() < 1e-5
    assert np.abs(run_tflite(str(tmp_path / "t_fp16.tflite"), {"tokens": ids})["output"] - ref).max() < 1e-2
    data = json.loads((tmp_path / "r.json").read_text())
    assert [(f["path"], f["quantize"]) for f in data["tflite_files"]] == [("t.tflite", None), ("t_fp16.tflite", "fp16")]


def test_random_int_inputs_and_exact_tolerance(tmp_path, capsys):
    """--input-dtype int64 draws ids below the embedding's size; --atol is passed as given
    (rtol then 0): 1e-12 fails a model whose error is ~1e-8 with exit 3, the report says so."""
    (tmp_path / "tokens.py").write_text(_TOKENS)
    argv = ["convert", f"{tmp_path}/tokens.py:build", "--input-shape", "2,7", "--input-dtype", "int64", "-o",
            str(tmp_path / "t.keras"), "--report-json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    assert "random tokens in [0, 50) (the smallest nn.Embedding's size" in capsys.readouterr().err
    assert main([*argv, "--atol", "1e-12"]) == 3
    printed = capsys.readouterr()
    data = json.loads((tmp_path / "r.json").read_text())
    error = data["max_abs_error"]
    assert 0 < error < 1e-6 and (data["atol"], data["rtol"], data["exit_code"]) == (1e-12, 0.0, 3)
    assert "tolerance: max |err| <= atol 1.0e-12 + rtol 0.0e+00 * max |ref|" in printed.out
    assert f"output 'output' differs from PyTorch by {error:.3e}, above the tolerance 1.000e-12" in printed.err


def test_specialised_branch_is_one_line_and_strict_exits_3(tmp_path, capsys):
    """A Python `if` on tensor data: one short warning naming the user's line (no graph dump),
    exit 0, and exit 3 under --strict."""
    argv = ["convert", f"{MODEL_FILE}:DataDependentIf", "--input-shape", "1,3,8,8", "-o", str(tmp_path / "d.keras")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warning == ["warning: models.py:49 `if x.mean() > -100:` branches on tensor data: only this example's "
                       "branch was converted (torch.cond keeps both; README 'Control flow')"]
    assert "def forward" not in err and "Unable to find user code" not in err
    assert main([*argv, "--strict"]) == 3
    assert "--strict: code was specialised to the example" in capsys.readouterr().err


_TWO_INPUTS = """
import torch
from torch import nn


class ImageAndBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, image, bias):
        return torch.relu(self.conv(image) + bias)


def build():
    torch.manual_seed(0)
    return ImageAndBias()
"""


def test_layout_per_input(tmp_path):
    """--layout image=channels_last stores that input NHWC and leaves the other as PyTorch has
    it; the numbers match PyTorch."""
    (tmp_path / "two.py").write_text(_TWO_INPUTS)
    rng = np.random.default_rng(0)
    image, bias = rng.standard_normal((1, 3, 8, 8), np.float32), rng.standard_normal((1, 4, 1, 1), np.float32)
    np.savez(tmp_path / "x.npz", bias=bias, image=image)  # any order: matched by forward's names
    assert main(["convert", f"{tmp_path}/two.py:build", "--inputs", str(tmp_path / "x.npz"), "--layout",
                 "image=channels_last", "-o", str(tmp_path / "two.keras")]) == 0
    import torch2keras

    model = torch2keras.load_model(str(tmp_path / "two.keras"))
    assert [tuple(t.shape) for t in model.inputs] == [(1, 8, 8, 3), (1, 4, 1, 1)]
    sys.path.insert(0, str(tmp_path))
    try:
        import two
    finally:
        sys.path.remove(str(tmp_path))
    with torch.no_grad():
        ref = two.build()(torch.from_numpy(image), torch.from_numpy(bias)).numpy()
    out = np.asarray(model({"image": image.transpose(0, 2, 3, 1), "bias": bias}))
    assert out.shape == ref.shape and np.abs(out - ref).max() < 1e-5


def test_convert_quantized_with_calibration_file(tmp_path, capsys):
    """--quantize int8 --calibration FILE.npz: an int8 file, the per-layer check and the
    readiness report in the output."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", x=rng.standard_normal((16, 1, 3, 32, 32)).astype(np.float32))
    out = tmp_path / "q.tflite"
    code = main(["convert", ESSENTIALS, "--input-shape", "1,3,32,32", "-o", str(out),
                 "--channels-last", "--quantize", "int8", "--calibration", str(tmp_path / "cal.npz"),
                 "--io-dtype", "float32", "--report-json", str(tmp_path / "r.json")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "TFLite: int8, float32 I/O" in printed and "int8 per-layer check" in printed
    assert "delegate readiness" in printed and "GPU:" in printed and "EdgeTPU:" in printed
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["tflite"]["quantize"] == "int8" and len(data["quantization"]["layers"]) >= 3
    assert all(layer["rel_error"] < 0.2 for layer in data["quantization"]["layers"])
    assert data["delegates"]["static_shapes"] is True


def test_convert_int4_weights_keeping_a_layer_float(tmp_path, capsys):
    """--quantize dynamic_int4_b32 --keep-float head: written by the direct writer, int4 weights
    (a float16 scale per 32 inputs) except the kept layer's; the summary names the mode."""
    (tmp_path / "mlp.py").write_text(
        "import torch\n"
        "class MLP(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body, self.head = torch.nn.Linear(64, 128), torch.nn.Linear(128, 32)\n"
        "    def forward(self, x):\n"
        "        return self.head(torch.relu(self.body(x)))\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    return MLP().eval()\n")
    out = tmp_path / "m.tflite"
    code = main(["convert", f"{tmp_path}/mlp.py:build", "--input-shape", "2,64", "-o", str(out),
                 "--quantize", "dynamic_int4_b32", "--keep-float", "head", "--report-json", str(tmp_path / "r.json")])
    assert code == 0
    assert "dynamic_int4_b32" in capsys.readouterr().out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["tflite"]["backend"] == "direct" and data["tflite"]["quantize"] == "dynamic_int4_b32"
    tensors = {t.name: t for t in read_tflite(str(out)).tensors[0]}
    assert tensors["p_body_weight"].dtype == "int4" and tensors["p_head_weight"].dtype == "float32"


OUTLIER_MLP = """\
import torch
def build():
    # the middle layer's first channel ~300x the others: per-tensor int8 mixes the classes up
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                            torch.nn.Linear(64, 10)).eval()
    with torch.no_grad():
        m[2].weight[0].mul_(300.0)
        m[2].bias[0] = 50.0
        m[4].weight[:, 0].mul_(1 / 300.0)
    return m
"""


def _fully_connected_dtypes(path: str) -> dict[str, int]:
    f = read_tflite(path)
    counts: dict[str, int] = {}
    for op in f.main_ops():
        if op.name == "FULLY_CONNECTED":
            counts[f.tensor(op.outputs[0]).dtype] = counts.get(f.tensor(op.outputs[0]).dtype, 0) + 1
    return counts


@pytest.mark.parametrize("selection, expected", [(["--keep-float", "2"], {"float32": 1, "int8": 2}),
                                                 (["--target-agreement", "0.95"], {"float32": 2, "int8": 1})])
def test_convert_int8_keeping_layers_float(tmp_path, capsys, selection, expected):
    """--quantize int8 with --keep-float (a torch module path) or --target-agreement: the named
    layer, or the layers the per-layer check ranks first until the held-out agreement reaches
    the target (its 95% lower bound on 300 held-out inputs), compute in float32 (FULLY_CONNECTED ops
    counted by dtype); the report has the trade."""
    (tmp_path / "mlp.py").write_text(OUTLIER_MLP)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "cal.npz", x=rng.standard_normal((32, 1, 16)).astype(np.float32))
    np.savez(tmp_path / "hold.npz", x=rng.standard_normal((300, 1, 16)).astype(np.float32))
    out = tmp_path / "q.tflite"
    code = main(["convert", f"{tmp_path}/mlp.py:build", "--input-shape", "1,16", "-o", str(out), "--quantize", "int8",
                 "--calibration", str(tmp_path / "cal.npz"), "--holdout", str(tmp_path / "hold.npz"),
                 "--io-dtype", "float32", *selection, "--report-json", str(tmp_path / "r.json")])
    assert code == 0
    assert "selective int8: top-1 agreement" in capsys.readouterr().out
    assert _fully_connected_dtypes(str(out)) == expected
    choice = json.loads((tmp_path / "r.json").read_text())["quantization_selection"]
    assert choice["samples"] == 300 and len(choice["kept_float"]) == expected["float32"]
    if "--target-agreement" in selection:
        assert choice["agreement_int8"] < 0.9 and choice["agreement_bound"] >= 0.95
        assert choice["agreement_bound"] < choice["agreement"]


# ----------------------------------------------------------------------------- supported


def test_supported_is_grouped_readable_and_fast(tmp_path):
    """`supported` groups the ops by family with readable names; from the package's own listing,
    the very first call answers without torch, in under 3 s, and caches nothing."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    first = run_cli(["supported"], env=env)
    second = run_cli(["supported"], env=env)
    assert first[0] == second[0] == 0 and first[1] == second[1]
    assert first[3] == [""] and first[4] < 3.0, f"{first[4]:.2f}s wall, {first[5]:.2f}s CPU"
    assert not (tmp_path / "torch2keras").exists()
    print(f"supported: first {first[4]:.2f}s wall ({first[5]:.2f}s CPU), then {second[4]:.2f}s wall "
          f"({second[5]:.2f}s CPU)")
    text = first[1]
    from torch2keras.frontend_torch import LOWERINGS

    torch_ops = {supported.op_name(t) for t in LOWERINGS} - {"torch2keras.opaque.default"}  # converter calls
    assert text.startswith(f"torch2keras lowers {len(torch_ops)} ops, by family.")
    counts = [int(line.rsplit("(", 1)[1].rstrip(")")) for line in text.splitlines()[3:]
              if line and not line.startswith("  ")]
    assert sum(counts) == len(torch_ops) and len(counts) >= 10
    assert "<built-in function" not in text and "<function" not in text and " at 0x" not in text
    assert "\nElementwise ops (" in text and "add.Scalar/Tensor" in text and "operator.add" in text
    assert "higher_order.cond" in text and "torch.sym_max" in text
    looked_up = run_cli(["supported", "conv2d"], env=env)
    assert looked_up[0] == 0 and "aten.conv2d.default" in looked_up[1] and looked_up[3] == [""]
    refused = run_cli(["supported", "--unsupported"], env=env)[1]
    assert "aten.nonzero.default: its output shape depends on the input values" in refused


def test_the_shipped_supported_listing_is_current():
    """The package's listing is the live registries' (else: ``make supported-list``)."""
    with open(supported.SHIPPED) as f:
        shipped = json.load(f)
    assert shipped.pop("key") == supported._key(), "stale torch2keras/data/supported.json: run make supported-list"
    assert shipped == json.loads(json.dumps(supported.listing()))


def test_another_torch_or_source_gets_its_own_listing(tmp_path, monkeypatch):
    """A listing whose key does not match (another torch, a changed lowering) is not used: the
    live one is computed once and cached."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(supported, "_torch_version", lambda: "0.0-other")
    assert supported._stored() is None
    data = supported._refresh()
    assert supported._stored() == data and os.path.isfile(supported.cache_path())


def test_supported_listing_follows_the_source(tmp_path, monkeypatch):
    """The cached listing is keyed by the frontend's source: editing a lowering makes a new key."""
    frontend = tmp_path / "frontend_torch"
    (frontend / "ops").mkdir(parents=True)
    (frontend / "ops" / "nn.py").write_text("# a lowering\n")
    monkeypatch.setattr(supported, "_FRONTEND", str(frontend))
    before = supported._key()
    (frontend / "ops" / "nn.py").write_text("# a lowering, changed\n")
    assert supported._key() != before


_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))

    def forward(self, x):
        return self.body(x)


def build():
    return Net()
"""


@pytest.mark.slow
def test_readme_command_lines(tmp_path):
    """Every command of the README's "Command line" block, as a newcomer types it (with a net.py,
    its weights and a tokens.py/tokens.npz beside it); torchvision's compiled ops do not load
    here, and the loader still gives resnet18."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].split() for line in block.splitlines() if line.startswith("torch2keras ")]
    assert len(commands) == 2  # a conversion and a look-up (docs/*.md hold the others: test_docs_snippets)
    (tmp_path / "net.py").write_text(_NET)
    torch.manual_seed(0)
    sys.path.insert(0, str(tmp_path))
    try:
        import net
    finally:
        sys.path.remove(str(tmp_path))
    torch.save(net.build().state_dict(), tmp_path / "net.pt")
    (tmp_path / "tokens.py").write_text(_TOKENS)
    np.savez(tmp_path / "tokens.npz", tokens=np.random.default_rng(0).integers(0, 50, (2, 7)))
    for command in commands:
        code, out, err, imported, wall, cpu = run_cli(command[1:], cwd=str(tmp_path))
        assert code == 0, (command, err)
        outputs = [command[i + 1] for i, a in enumerate(command) if a == "-o"]
        assert all((tmp_path / o).exists() for o in outputs), command
        if command[1] == "convert":
            assert "max |err|" in out and "MISMATCH" not in out, out


def test_progress_shows_how_a_long_stage_is_getting_on():
    """``"<stage>: ..."`` while the stage runs is a line under it (not a new stage) off a terminal."""
    stream = io.StringIO()
    progress = Progress(stream)
    progress("write...")
    progress("write: 10 s, 5.0 GB resident, 1.18 of 4.40 GB of weights written")
    assert progress.stage == "write" and progress.detail.startswith("10 s, 5.0 GB resident")
    progress("validate...")
    progress.close()
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == ["write", "  write: 10 s, 5.0 GB resident, 1.18 of 4.40 GB of weights written",
                     "checking against PyTorch"]
