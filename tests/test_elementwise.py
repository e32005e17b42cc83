"""Elementwise ops converted and compared with PyTorch in Keras and TFLite (the TFLite file
written by the converter with builtin ops only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from support import assert_matches_torch


class Fn(nn.Module):
    """``fn(*inputs, *constants)``: tensors given as constants become model buffers."""

    def __init__(self, fn, *constants: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        for k, c in enumerate(constants):
            self.register_buffer(f"c{k}", c)

    def forward(self, *xs):
        return self.fn(*xs, *(getattr(self, f"c{k}") for k in range(len(self._buffers))))


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _check(model: nn.Module, inputs, tmp_path, atol: float) -> float:
    result = torch2keras.compile(model.eval(), tuple(inputs))
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    return assert_matches_torch(result, model, inputs, atol=atol, tflite=path)


@pytest.mark.parametrize("x_shape,c_shape", [((3, 2, 7), (1, 2, 7)), ((4, 1), (3,)), ((2, 5), ())],
                         ids=["batch", "outer", "scalar"])
def test_atan2_broadcasting_operands(x_shape, c_shape, tmp_path):
    """TFLite's ATAN2 does not broadcast: both operands are brought to the result's shape."""
    model = Fn(torch.atan2, _randn(*c_shape, seed=1))
    assert _check(model, [_randn(*x_shape)], tmp_path, atol=1e-5) <= 1e-5


def test_atan2_keeps_signed_zeros_and_infinities(tmp_path):
    """Broadcasting keeps -0.0 and infinities (TFLite's kernel differs from PyTorch only for
    both operands infinite, left out)."""
    y = torch.tensor([[0.0, -0.0, 1.0, -1.0, np.inf, -np.inf]])
    model = Fn(torch.atan2, torch.tensor([[-1.0], [1.0], [0.0], [-0.0]]))
    assert _check(model, [y], tmp_path, atol=1e-6) <= 1e-6


@pytest.mark.parametrize("bias_shape", [(1, 3, 1), (3, 1), (1, 1, 8), (1, 1, 1, 8)],
                         ids=["channels_first", "middle", "last", "higher_rank"])
def test_add_of_a_bias_like_operand(bias_shape, tmp_path):
    """x + b where b has one non-1 axis: never a channels-first BiasAdd (the TFLite converter
    transposes those with a rank-4 permutation) nor one over the wrong axis or rank."""
    model = Fn(torch.add, _randn(*bias_shape, seed=1))
    assert _check(model, [_randn(2, 3, 8)], tmp_path, atol=1e-6) <= 1e-6
