"""Reductions converted and compared with PyTorch in Keras and TFLite (builtin ops only)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import torch2keras


class GatherAtArgmax(nn.Module):
    """The values at the argmax / argmin along axis 0, kept as a dimension (``keepdim=True``)."""

    def forward(self, x):
        return (torch.gather(x, 0, torch.argmax(x, 0, keepdim=True)),
                torch.argmin(x, 1, keepdim=True), torch.argmax(x, -1, keepdim=True))


def test_argmax_with_keepdim_exports_to_builtins(tmp_path):
    """keras.ops.argmax tells -0.0 from 0.0 with a BitwiseAnd (no TFLite builtin); the argmax
    kept as a dimension is ARG_MAX / ARG_MIN, and -0.0 ties with 0.0 as in PyTorch."""
    x = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(0))
    x[:, 0, 0] = torch.tensor([-0.0, 0.0])
    x[0, 1, :2] = torch.tensor([0.0, -0.0])
    model = GatherAtArgmax().eval()
    result = torch2keras.compile(model, x)
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    want = [w.numpy() for w in model(x)]
    for backend, got in {"Keras": result.run_keras([x.numpy()]), "TFLite": result.run_tflite(path, [x.numpy()])}.items():
        assert np.abs(got[0] - want[0]).max() == 0.0, backend
        for g, w in zip(got[1:], want[1:]):
            assert g.dtype == w.dtype and np.array_equal(g, w), (backend, g, w)


class BatchVariance(nn.Module):
    def forward(self, x):
        return torch.var(x, dim=0, keepdim=True), torch.std(x, dim=(0, 2), correction=0), torch.var(x, dim=1)


def test_variance_over_a_dynamic_batch(tmp_path):
    """The correction's n - 1 over an axis of run-time size is a tensor (no Python max of it)."""
    model = BatchVariance().eval()
    g = torch.Generator().manual_seed(1)
    result = torch2keras.compile(model, torch.randn(2, 4, 3, generator=g), dynamic_shapes=[{0: "batch"}])
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    x = torch.randn(5, 4, 3, generator=g)
    want = [w.numpy() for w in model(x)]
    for backend, got in {"Keras": result.run_keras([x.numpy()]), "TFLite": result.run_tflite(path, [x.numpy()])}.items():
        for g_, w in zip(got, want):
            assert g_.shape == w.shape and np.abs(g_ - w).max() <= 1e-5, backend
