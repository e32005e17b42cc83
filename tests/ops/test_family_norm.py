"""Normalisation models converted and compared with PyTorch in Keras and TFLite."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torch2keras
from support import assert_matches_torch


def _instance_norm_1d(channels: int) -> nn.Module:
    torch.manual_seed(0)
    norm = nn.InstanceNorm1d(channels, affine=True)
    nn.init.normal_(norm.weight, 1.0, 0.3)
    nn.init.normal_(norm.bias, 0.0, 0.3)
    return norm.eval()


@pytest.mark.parametrize("shape", [(3, 8), (2, 3, 8)], ids=["unbatched", "batched"])
def test_instance_norm1d_affine_exports_to_tflite(shape, tmp_path):
    """The per-channel bias of a rank-3 tensor on axis 1 is a plain add: a channels-first
    BiasAdd made the TFLite converter transpose it with a rank-4 permutation."""
    model = _instance_norm_1d(3)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    result = torch2keras.compile(model, x)
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    assert assert_matches_torch(result, model, [x], atol=1e-5, tflite=path) <= 1e-5
