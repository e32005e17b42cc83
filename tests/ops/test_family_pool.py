"""Pooling converted and compared with PyTorch in Keras and TFLite (TensorFlow's converter)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import torch2keras
from support import assert_matches_torch, max_abs_error


class Parallel(nn.Module):
    """Every layer applied to the input: one output each."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        return tuple(layer(x) for layer in self.layers)


def test_3d_pools_convert_to_tflite_builtins(tmp_path):
    """TFLite has no 3-d pool builtin (the converter refused AvgPool3D / MaxPool3D): two 2-d pools,
    with torch's padding, ceil_mode and divisors; LocalResponseNorm of a 4-d input is an avg_pool3d."""
    torch.manual_seed(0)
    model = Parallel([nn.MaxPool3d((2, 3, 3), (1, 2, 2), (1, 1, 0)), nn.MaxPool3d(3, 2, 1, ceil_mode=True),
                      nn.AvgPool3d((2, 3, 3), (2, 2, 1), 1), nn.AvgPool3d(3, 2, 1, ceil_mode=True,
                                                                          count_include_pad=False),
                      nn.AvgPool3d(2, divisor_override=3), nn.AdaptiveAvgPool3d((7, 3, 4)),
                      nn.AdaptiveMaxPool3d((1, 3, 2))]).eval()
    x = torch.randn(2, 3, 7, 9, 8)
    result = torch2keras.compile(model, x)
    path = result.export_tflite(str(tmp_path / "m.tflite"), backend="converter")
    assert assert_matches_torch(result, model, [x], atol=1e-5, tflite=path) <= 1e-5
    assert not {"AVERAGE_POOL_3D", "MAX_POOL_3D"} & set(result.report.tflite["all_op_counts"])


def test_local_response_norm_of_a_dynamic_batch(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.LocalResponseNorm(3)).eval()
    x = torch.randn(2, 3, 8, 7)
    result = torch2keras.compile(model, x, dynamic_shapes=[{0: "batch"}])
    path = result.export_tflite(str(tmp_path / "m.tflite"), backend="converter")
    other = torch.randn(3, 3, 8, 7)
    with torch.no_grad():
        want = model(other).numpy()
    feed = [other.numpy()]
    assert max_abs_error(result.run_keras(feed)[0], want) <= 1e-5
    assert max_abs_error(result.run_tflite(path, feed)[0], want) <= 1e-5


class DilatedPools(nn.Module):
    """Dilated max pools reaching into the padding (window tables, the padded slots masked)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool3d = nn.MaxPool3d(2, stride=1, padding=1, dilation=2)
        self.pool2d = nn.MaxPool2d(3, stride=2, padding=1, dilation=2, return_indices=True)

    def forward(self, x):
        values, indices = self.pool2d(x.flatten(1, 2))
        return self.pool3d(x), values, indices


def test_dilated_max_pools_of_a_dynamic_batch(tmp_path):
    torch.manual_seed(2)
    model = DilatedPools().eval()
    result = torch2keras.compile(model, torch.randn(3, 5, 3, 6, 7), dynamic_shapes=[{0: "batch"}])
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    x = torch.randn(4, 5, 3, 6, 7)
    with torch.no_grad():
        want = [t.numpy() for t in model(x)]
    for got in (result.run_keras([x.numpy()]), result.run_tflite(path, [x.numpy()])):
        assert max_abs_error(got[0], want[0]) <= 1e-6 and max_abs_error(got[1], want[1]) <= 1e-6
        assert (got[2] == want[2]).all()


class NearestResizes(nn.Module):
    """Nearest resizes by non-integer ratios, where torch's float32 index arithmetic rounds (10 -> 6
    reads rows 0, 1, 3, 5, 6, 8: 3 * float32(10 / 6) is 5.0 in float32)."""

    def forward(self, x):
        return (F.interpolate(x, size=(6, 2), mode="nearest"), F.interpolate(x, size=(7, 9), mode="nearest"),
                F.interpolate(x, size=(3, 5), mode="nearest-exact"), F.interpolate(x[:, :, 0], size=13, mode="nearest"))


def test_nearest_resizes_read_torch_rows(tmp_path):
    model = NearestResizes().eval()
    x = torch.randn(2, 3, 10, 7, generator=torch.Generator().manual_seed(0))
    result = torch2keras.compile(model, x)
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    assert assert_matches_torch(result, model, [x], atol=0.0, tflite=path) == 0.0
