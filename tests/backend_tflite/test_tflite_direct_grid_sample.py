"""grid_sample written by the direct TFLite backend (the formula of ir/formulas.py over builtins)
and run in LiteRT with its default delegates against PyTorch: every mode x padding mode x
align_corners, on channels-first and channels-last inputs, at grid values beyond [-1, 1], on
the borders and at pixel midpoints (nearest's halves round to even); 3-d inputs; grids computed
in the model. Max abs error <= 1e-5; the ops each file takes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from direct_check import annotated_ir, reference, run_file, xnnpack_leftovers
from torch2keras.backend_tflite import DirectExportError, write_tflite
from torch2keras.ir import formulas

TOL = 1e-5
GATHERS = {"bilinear": 4, "nearest": 1, "bicubic": 16}  # 2-d: one per corner
CASTS = {"bilinear": 4, "nearest": 2, "bicubic": 8}  # one per axis and offset


class ConvSample(nn.Module):
    """A conv (channels-last values) sampled at a grid input."""

    def __init__(self, mode, padding_mode, align_corners):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}

    def forward(self, x, grid):
        return F.grid_sample(self.conv(x), grid, **self.attrs)


def _grid(n, h, w, width, seed=0):
    """Uniform in [-1.6, 1.6], with the borders, just past them, far outside and the pixel
    centres and midpoints along x (align_corners=False) in its first row."""
    g = torch.rand(n, h, w, 2, generator=torch.Generator().manual_seed(seed)) * 3.2 - 1.6
    special = [-1.0, 1.0, 0.0, -1.0000001, 1.0000001, 1.25, -3.5, 7.0] + [k / width - 1 for k in range(2 * width + 1)]
    flat = g.view(-1)
    flat[:len(special)] = torch.tensor(special)
    return g


def _write_and_run(model, inputs, tmp_path, name, **layouts):
    graph = annotated_ir(model.eval(), inputs, **layouts)
    written = write_tflite(graph, str(tmp_path / f"{name}.tflite"))
    outs = run_file(graph, written.path, [t.numpy() for t in inputs], invocations=2)
    (want,) = reference(model, inputs)
    assert outs[0].shape == want.shape
    return float(np.abs(outs[0] - want).max()), written


@pytest.mark.parametrize("layout", [None, "channels_last"])
@pytest.mark.parametrize("mode,padding_mode,align_corners",
                         list(itertools.product(formulas.GRID_SAMPLE_MODES, formulas.GRID_SAMPLE_PADDINGS,
                                                [False, True])))
def test_grid_sample_2d(mode, padding_mode, align_corners, layout, tmp_path):
    torch.manual_seed(0)
    model = ConvSample(mode, padding_mode, align_corners)
    inputs = (torch.randn(2, 3, 5, 6), _grid(2, 4, 7, 6))
    name = f"{mode}_{padding_mode}_{align_corners}_{layout}"
    error, written = _write_and_run(model, inputs, tmp_path, name, input_layouts=layout)
    assert error <= TOL, f"{name}: {error:.3g}"
    counts = written.op_counts
    assert counts["GATHER"] == GATHERS[mode] and counts["CONV_2D"] == 1 and counts["PAD"] == 1
    assert counts["UNPACK"] == 1 and counts["CAST"] == CASTS[mode]
    # the output's (in PyTorch's order), and the input's where the input is channels-first
    assert counts.get("TRANSPOSE", 0) == (1 if layout else 2)
    assert not {"CUSTOM", "FlexGatherNd"} & set(counts)
    # (loads with the default delegates: XNNPACK takes the float arithmetic, not the integer
    # row offsets, GATHER, CAST, UNPACK, nor reflection's EQUAL / SELECT_V2)
    leftovers = set(xnnpack_leftovers(written.path))
    assert "CONV_2D" not in leftovers and leftovers <= {"GATHER", "CAST", "MAXIMUM", "MINIMUM", "ADD", "MUL", "UNPACK",
                                                        "EQUAL", "SELECT_V2"}


class Sample(nn.Module):
    def __init__(self, **attrs):
        super().__init__()
        self.attrs = attrs

    def forward(self, x, grid):
        return F.grid_sample(x, grid, **self.attrs)


@pytest.mark.parametrize("mode,padding_mode,align_corners",
                         [("bilinear", "zeros", False), ("nearest", "reflection", True), ("bilinear", "border", True)])
def test_grid_sample_3d(mode, padding_mode, align_corners, tmp_path):
    """A 5-d input (trilinear / nearest): 8 or 1 GATHERs."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 3, 4, 5)
    grid = torch.rand(2, 2, 3, 4, 3) * 3.2 - 1.6
    grid.view(-1)[:6] = torch.tensor([-1.0, 1.0, 0.0, 1.25, -3.5, 7.0])
    model = Sample(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    error, written = _write_and_run(model, (x, grid), tmp_path, f"3d_{mode}_{padding_mode}")
    assert error <= TOL
    assert written.op_counts["GATHER"] == (8 if mode == "bilinear" else 1)


class FlowWarp(nn.Module):
    """A grid computed in the model (an identity grid plus a flow from a conv), sampling a
    one-channel map of an input of one image: the grid's coordinates come channels-last."""

    def __init__(self):
        super().__init__()
        self.flow = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        n, _, h, w = x.shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        base = torch.stack([xs, ys], -1).unsqueeze(0)
        grid = base + 2 * torch.tanh(self.flow(x)).permute(0, 2, 3, 1)
        return F.grid_sample(x[:, :1], grid, padding_mode="border", align_corners=True)


def test_grid_from_the_model(tmp_path):
    torch.manual_seed(0)
    error, written = _write_and_run(FlowWarp(), (torch.randn(1, 3, 6, 7),), tmp_path, "flow_warp")
    assert error <= TOL
    assert written.op_counts["GATHER"] == 4


def test_bicubic_3d_is_refused_naming_the_op(tmp_path):
    """(torch has no bicubic 3-d sampling: the attribute is set on a trilinear graph here.)"""
    graph = annotated_ir(Sample(align_corners=False).eval(), (torch.randn(1, 2, 3, 4, 5), torch.rand(1, 2, 2, 2, 3)))
    next(iter(graph.nodes_by_op("grid_sample"))).attrs["mode"] = "bicubic"
    with pytest.raises(DirectExportError, match=r"'grid_sample'.*bicubic sampling of a 3-d input"):
        write_tflite(graph, str(tmp_path / "bicubic_3d.tflite"))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", formulas.GRID_SAMPLE_PADDINGS)
def test_non_finite_grid_values_keep_the_gathers_in_bounds(mode, padding_mode, tmp_path):
    """NaN and infinite coordinates (whose samples are not compared) gather rows of the table,
    not out of it: the file runs, and every other sample is torch's."""
    grid = _grid(2, 4, 5, 6)
    grid[0, 0, 0, 0], grid[0, 1, 1, 1], grid[1, 2, 0, 0] = float("nan"), float("inf"), -float("inf")
    x = torch.randn(2, 3, 5, 6)
    model = Sample(mode=mode, padding_mode=padding_mode, align_corners=False).eval()
    graph = annotated_ir(model, (x, grid))
    written = write_tflite(graph, str(tmp_path / "non_finite.tflite"))
    (got,) = run_file(graph, written.path, [x.numpy(), grid.numpy()])
    (want,) = reference(model, (x, grid))
    finite = np.isfinite(grid.numpy()).all(-1)[:, None].repeat(3, 1)
    assert np.abs(got[finite] - want[finite]).max() <= TOL
