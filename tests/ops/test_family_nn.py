"""Linear layers and convolutions converted and compared with PyTorch in Keras and TFLite."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torch2keras
from support import assert_matches_torch

# (kernel, stride, padding, output_padding, dilation): kernels smaller than the stride (Keras pads
# those to in * stride), output paddings at or above the stride (below the dilation, which torch
# allows and Keras refuses), paddings cropped on both sides
TRANSPOSED = [(1, 2, 1, 0, 1), (1, 3, 0, 2, 1), (3, 2, 1, 1, 1), (2, 3, 1, 0, 1), (2, 2, 2, 1, 1)]
# dilated ones: TFLite has no dilated transposed convolution builtin; both backends write them
# with a zero-spread kernel (the direct one: 1-d and 2-d only)
DILATED = [(1, 1, 0, 1, 2), (2, 2, 0, 2, 3), (3, 1, 1, 0, 2)]


class Parallel(nn.Module):
    """Every layer applied to the input: one output each."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        return tuple(layer(x) for layer in self.layers)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("dilated", [False, True], ids=["plain", "dilated"])
def test_conv_transpose_output_sizes(n, dilated, tmp_path):
    cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[n]
    torch.manual_seed(n)
    layers = [cls(3, 4, k, stride=s, padding=p, output_padding=op, dilation=d)
              for k, s, p, op, d in (DILATED if dilated else TRANSPOSED)]
    model = Parallel(layers).eval()
    x = torch.randn(2, 3, *[5, 4, 3][:n])
    result = torch2keras.compile(model, x)
    path = result.export_tflite(str(tmp_path / "m.tflite"), backend="converter")
    assert assert_matches_torch(result, model, [x], atol=1e-5, tflite=path) <= 1e-5
    if dilated and n < 3:
        path = result.export_tflite(str(tmp_path / "direct.tflite"), backend="direct")
        assert assert_matches_torch(result, model, [x], atol=1e-5, tflite=path) <= 1e-5


def test_grouped_transposed_convolutions_of_a_dynamic_batch(tmp_path):
    """Grouped transposed convolutions (no Keras layer: keras.ops per group, the input spread with
    zeros by reshapes that must keep the batch a run-time size)."""
    torch.manual_seed(0)
    model = Parallel([nn.ConvTranspose1d(6, 6, 2, stride=3, padding=1, groups=3, bias=False),
                      nn.ConvTranspose1d(6, 4, 3, stride=2, output_padding=1, groups=2)]).eval()
    result = torch2keras.compile(model, torch.randn(2, 6, 5), dynamic_shapes=[{0: "batch"}])
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    assert assert_matches_torch(result, model, [torch.randn(3, 6, 5)], atol=1e-5, tflite=path) <= 1e-5


def test_dilated_and_grouped_3d_convolutions(tmp_path):
    """TensorFlow writes a dilated Conv3D between SpaceToBatchND / BatchToSpaceND (no 5-d TFLite
    kernels): the kernel is spread with zeros instead, strided or not; TFLite's CONV_3D has no
    groups: a grouped one gets a block-diagonal kernel."""
    torch.manual_seed(0)
    model = Parallel([nn.Conv3d(3, 2, 2, padding="same", dilation=2), nn.Conv3d(3, 4, 2, stride=2, dilation=(1, 2, 3)),
                      nn.Conv3d(3, 3, 3, padding=2, dilation=2, groups=3), nn.Conv3d(3, 6, 2, groups=3)]).eval()
    x = torch.randn(2, 3, 7, 7, 8)
    result = torch2keras.compile(model, x)
    path = result.export_tflite(str(tmp_path / "m.tflite"), backend="converter")
    assert assert_matches_torch(result, model, [x], atol=1e-5, tflite=path) <= 1e-5


def test_linear_of_a_vector(tmp_path):
    """Dense takes rank >= 2: a 1-D input is a row of one."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 5, bias=False)).eval()
    x = torch.randn(3)
    result = torch2keras.compile(model, x)
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    assert result.run_keras([x.numpy()])[0].shape == (5,)
    assert assert_matches_torch(result, model, [x], atol=1e-5, tflite=path) <= 1e-5
