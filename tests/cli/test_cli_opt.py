"""``torch2keras opt``: passes run on the IR files ``compile(dump_ir=...)`` writes give the same
text (and weights) as the in-process pass run."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

import torch2keras
from torch2keras.cli import main
from torch2keras.passes import DEFAULT_PIPELINE


class ConvBnHead(torch.nn.Module):
    """conv -> batch norm -> relu -> pool -> flatten -> linear: folding, layouts and reshapes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.nn.functional.max_pool2d(y, 2).flatten(1))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = ConvBnHead().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.bn.weight.uniform_(0.5, 2)
    return model


def _dump(directory, **options):
    torch2keras.compile(_model(), torch.randn(1, 3, 8, 8), dump_ir=str(directory), dump_weights=True,
                        validate=False, **options)
    return sorted(f for f in os.listdir(directory) if f.endswith(".txt"))


def _same_weights(a: str, b: str) -> None:
    assert os.path.exists(a) == os.path.exists(b), (a, b)
    if os.path.exists(a):
        x, y = np.load(a), np.load(b)
        assert sorted(x.files) == sorted(y.files)
        for key in x.files:
            assert x[key].dtype == y[key].dtype and x[key].tobytes() == y[key].tobytes(), key


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dump")
    return directory, _dump(directory)


def test_each_pass_on_the_previous_stage_gives_the_next_stage(dumped, tmp_path):
    directory, files = dumped
    assert files[0] == "00_lowered.txt" and len(files) == len(DEFAULT_PIPELINE) + 1
    assert " = batch_norm(" in (directory / files[0]).read_text()
    for before, after, name in zip(files, files[1:], DEFAULT_PIPELINE):
        out = tmp_path / after
        assert main(["opt", "-p", name, str(directory / before), "-o", str(out)]) == 0
        assert out.read_text() == (directory / after).read_text(), f"{name} on {before}"
        _same_weights(f"{out}.npz", f"{directory / after}.npz")


def test_the_whole_pipeline_on_the_lowered_stage(dumped, capsys):
    directory, files = dumped
    assert main(["opt", "-p", ",".join(DEFAULT_PIPELINE), str(directory / files[0])]) == 0
    assert capsys.readouterr().out == (directory / files[-1]).read_text()


def test_pass_options_reproduce_a_channels_last_compile(tmp_path):
    files = _dump(tmp_path, input_layouts="channels_last", output_layouts="channels_last")
    layout = DEFAULT_PIPELINE.index("assign_layout") + 1
    assert files[layout] == f"{layout:02d}_assign_layout.txt"
    after = DEFAULT_PIPELINE[layout]
    spec = f"assign_layout{{input_layouts='channels_last', output_layouts='channels_last'}},{after}"
    out = tmp_path / "out.ir"
    assert main(["opt", "-p", spec, str(tmp_path / files[layout - 1]), "-o", str(out)]) == 0
    assert out.read_text() == (tmp_path / files[layout + 1]).read_text()
    assert "%x : f32[1,3,8,8]{0,2,3,1} = input() {name='x'}" in out.read_text()


def test_without_weights_a_pass_that_needs_them_stops_and_says_why(dumped, tmp_path, capsys):
    directory, files = dumped
    text_only = tmp_path / "01.txt"
    shutil.copy(directory / "01_simplify.txt", text_only)
    assert main(["opt", "-p", "fold_batchnorm", str(text_only)]) == 1
    err = capsys.readouterr().err
    assert f"note: {text_only} has" in err and "large constant(s) without values" in err and "--dump-weights" in err
    assert "error: pass 'fold_batchnorm' failed" in err and "are not loaded" in err
    # passes that only look at types still run on it
    assert main(["opt", "-p", "dce,cse", str(text_only)]) == 0


def test_verification_and_its_opt_out(dumped, tmp_path, capsys):
    directory, files = dumped
    text = (directory / files[0]).read_text()
    broken = tmp_path / "broken.ir"
    broken.write_text(text.replace("%relu : f32[1,8,8,8]", "%relu : f32[1,8,8,9]", 1))
    assert main(["opt", "-p", "dce", str(broken)]) == 1
    assert "IR verification failed" in capsys.readouterr().err
    assert main(["opt", "-p", "dce", "--no-verify", str(broken)]) == 0
    assert "%relu : f32[1,8,8,9]" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["-p", "no_such_pass"], "unknown pass 'no_such_pass'; registered: "),
    (["-p", "dce{x=1}"], "pass 'dce': "),
    (["-p", "dce,"], "expected a pass name, found the end of the line (column 5)"),
])
def test_bad_pass_lists_are_usage_errors(dumped, argv, message, capsys):
    directory, files = dumped
    assert main(["opt", *argv, str(directory / files[0])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("torch2keras opt: error: ") and message in err, err


def test_a_malformed_file_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.ir"
    bad.write_text("graph g\n  %x : f32[2] = input() {name='x'}\n  return y=%x,\n")
    assert main(["opt", "-p", "dce", str(bad)]) == 2
    assert f"{bad}:3:15: expected an output name, found the end of the line" in capsys.readouterr().err


MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models.py")


def test_convert_dump_weights_then_opt(tmp_path, capsys):
    """The command line end to end: convert --dump-ir --dump-weights, then opt on a stage."""
    ir = tmp_path / "ir"
    assert main(["convert", f"{MODELS}:NobucoEssentials", "--input-shape", "1,3,8,8", "-o", str(tmp_path / "m.keras"),
                 "--dump-ir", str(ir), "--dump-weights"]) == 0
    assert (ir / "00_lowered.txt.npz").is_file()
    capsys.readouterr()
    layout = DEFAULT_PIPELINE.index("assign_layout") + 1
    before = f"{layout - 1:02d}_{DEFAULT_PIPELINE[layout - 2]}.txt"
    assert main(["opt", "-p", "assign_layout", str(ir / before)]) == 0
    assert capsys.readouterr().out == (ir / f"{layout:02d}_assign_layout.txt").read_text()


def test_dump_weights_goes_with_dump_ir(tmp_path, capsys):
    assert main(["convert", f"{MODELS}:NobucoEssentials", "--input-shape", "1,3,8,8", "-o", str(tmp_path / "m.keras"),
                 "--dump-weights"]) == 2
    assert "--dump-weights goes with --dump-ir DIR" in capsys.readouterr().err
