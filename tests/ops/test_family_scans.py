"""Running scans converted and compared with PyTorch in Keras and TFLite (builtin ops only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras


class Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _outputs(result, path, feed):
    return {"Keras": result.run_keras(feed), "TFLite": result.run_tflite(path, feed)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_cumprod_is_exact_with_zeros_and_negatives(dtype, tmp_path):
    """TFLite has no CUMPROD: a scan of products, exact where the factors are small integers
    (zeros, negatives, runs of each) and within float rounding elsewhere."""
    g = torch.Generator().manual_seed(0)
    ints = torch.randint(-2, 3, (3, 19, 4), generator=g).to(dtype)
    model = Fn(lambda x: (torch.cumprod(x, 1), torch.cumprod(x, -1), torch.cumprod(x, 0)))
    result = torch2keras.compile(model.eval(), ints)
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    want = [w.numpy() for w in model(ints)]
    assert any((w == 0).any() and (w < 0).any() for w in want)
    for backend, got in _outputs(result, path, [ints.numpy()]).items():
        for g_, w in zip(got, want):
            assert g_.dtype == w.dtype and np.array_equal(g_, w), backend


def test_cumprod_of_floats(tmp_path):
    x = torch.tanh(torch.randn(2, 33, generator=torch.Generator().manual_seed(1))) + 1.0
    model = Fn(lambda x: torch.cumprod(x, 1))
    result = torch2keras.compile(model.eval(), x)
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    want = model(x).numpy()
    for backend, (got,) in _outputs(result, path, [x.numpy()]).items():
        err = float(np.abs(got - want).max())
        assert err <= 1e-6 * float(np.abs(want).max()), (backend, err)


def test_cummax_with_a_dynamic_batch(tmp_path):
    """The positions the scan carries broadcast to x at run time (x's batch size is symbolic)."""
    model = Fn(lambda x: torch.cummax(x, -3))
    x = torch.randn(2, 6, 4, 7, generator=torch.Generator().manual_seed(2))
    result = torch2keras.compile(model.eval(), x, dynamic_shapes={"x": {0: "batch"}})
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    other = torch.randn(5, 6, 4, 7, generator=torch.Generator().manual_seed(3))
    want = [w.numpy() for w in model(other)]
    for backend, got in _outputs(result, path, [other.numpy()]).items():
        assert np.abs(got[0] - want[0]).max() == 0.0 and np.array_equal(got[1], want[1]), backend


def test_scans_along_a_dynamic_axis(tmp_path):
    """Along the run-time batch axis every prefix is reduced at once (n x n masks): cumprod,
    logcumsumexp, cummax / cummin with ties (the last position holding the extreme) and a NaN."""
    model = Fn(lambda x: (torch.cumprod(x, 0), torch.logcumsumexp(x, 0), *torch.cummax(x.round(), 0),
                          *torch.cummin(x, 0), *torch.cummax(x.round().long(), 0),
                          *torch.cummax(torch.where(x > 1.5, torch.nan, x), 0)))
    g = torch.Generator().manual_seed(4)
    result = torch2keras.compile(model.eval(), torch.randn(3, 4, generator=g), dynamic_shapes={"x": {0: "batch"}})
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    other = torch.randn(7, 4, generator=g) * 1.5
    want = [w.numpy() for w in model(other)]
    assert np.isnan(want[-2]).any()
    for backend, got in _outputs(result, path, [other.numpy()]).items():
        for k, (g_, w) in enumerate(zip(got, want)):
            assert g_.dtype == w.dtype and g_.shape == w.shape, (backend, k)
            if w.dtype.kind == "f":
                assert np.array_equal(np.isnan(g_), np.isnan(w)), (backend, k)
                assert np.nanmax(np.abs(g_ - w)) <= 1e-5 * max(1.0, float(np.nanmax(np.abs(w)))), (backend, k)
            else:
                assert np.array_equal(g_, w), (backend, k)
