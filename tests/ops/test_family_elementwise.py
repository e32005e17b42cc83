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


# functions TensorFlow has ops for but TFLite has no builtin (Sinh, Asinh, Erf, ...): each is written
# with builtins, so that the file exports without Flex ops; name -> (function, tolerance)
UNARY_WITHOUT_BUILTIN = {
    "sinh": (lambda x: torch.sinh(x * 4), 1e-6),  # relative to max |ref| (~1.5e6 here)
    "cosh": (lambda x: torch.cosh(x * 4), 1e-6),
    "tan": (lambda x: torch.tan(x * 0.4), 1e-5),
    "asinh": (lambda x: torch.asinh(x * 100), 1e-6),
    "acosh": (lambda x: torch.acosh(x.abs() * 100 + 1), 1e-6),
    "atanh": (lambda x: torch.atanh(torch.tanh(x) * 0.9), 1e-6),
    "asin": (lambda x: torch.asin(torch.tanh(x) * 0.9), 1e-6),
    "acos": (lambda x: torch.acos(torch.tanh(x) * 0.9), 1e-6),
    "atan": (lambda x: torch.atan(x * 10), 1e-6),
    "erf": (lambda x: torch.erf(x * 2), 1e-6),
    "erfc": (lambda x: torch.erfc(x * 2), 1e-6),
}


def _unary_inputs() -> torch.Tensor:
    """Random values, values at each identity's switch points (|x| = 0.125, 0.5), and signed zeros."""
    edges = torch.tensor([0.0, -0.0, 1e-6, -1e-6, 0.03125, 0.0625, 0.124, 0.126, 0.249, 0.251, 1.0, -1.0])
    return torch.cat([_randn(4, 25).flatten(), edges, -edges[2:]]).reshape(2, -1)


def test_functions_without_a_tflite_builtin(tmp_path):
    fns = list(UNARY_WITHOUT_BUILTIN.values())
    model = Fn(lambda x: tuple(fn(x) for fn, _ in fns))
    x = _unary_inputs()
    result = torch2keras.compile(model.eval(), x)
    path = result.export_tflite(str(tmp_path / "m.tflite"))  # builtins only, else an ExportError
    want = [fn(x).numpy() for fn, _ in fns]
    for backend, got in {"Keras": result.run_keras([x.numpy()]), "TFLite": result.run_tflite(path, [x.numpy()])}.items():
        for name, g, w in zip(UNARY_WITHOUT_BUILTIN, got, want):
            tol = UNARY_WITHOUT_BUILTIN[name][1] * max(1.0, float(np.abs(w).max()))
            err = float(np.abs(g.astype(np.float64) - w).max())
            assert err <= tol, f"{backend} {name}: max |err| {err:.3g} > {tol:.3g}"


def test_special_values_of_functions_without_a_tflite_builtin(tmp_path):
    x = torch.tensor([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e20, -1e20, 1.0, -1.0, 2.0])
    fns = [torch.sinh, torch.cosh, torch.asinh, torch.atan, torch.erf, torch.erfc, torch.acos, torch.asin]
    model = Fn(lambda x: tuple(fn(x) for fn in fns))
    result = torch2keras.compile(model.eval(), x)
    got = result.run_tflite(result.export_tflite(str(tmp_path / "m.tflite")), [x.numpy()])
    for fn, g in zip(fns, got):
        w = fn(x).numpy()
        assert np.array_equal(np.isnan(g), np.isnan(w)), (fn.__name__, g, w)
        finite = np.isfinite(w)
        assert np.array_equal(g[~finite], w[~finite], equal_nan=True), (fn.__name__, g, w)
        assert np.abs(g[finite] - w[finite]).max() <= 1e-6 * max(1.0, np.abs(w[finite]).max()), (fn.__name__, g, w)
        assert np.array_equal(np.signbit(g[w == 0]), np.signbit(w[w == 0])), (fn.__name__, g, w)


def _int64s(seed: int = 0) -> torch.Tensor:
    """int64 values over the whole range, with 0, -1 and the extremes."""
    g = torch.Generator().manual_seed(seed)
    wide = torch.randint(-2 ** 62, 2 ** 62, (40,), generator=g) * torch.randint(1, 3, (40,), generator=g)
    small = torch.randint(-1000, 1000, (40,), generator=g)
    extremes = torch.tensor([0, -1, 1, 2 ** 63 - 1, -2 ** 63, 2 ** 31, -2 ** 31 - 1, 65535, -65536, 2 ** 48])
    return torch.cat([wide, small, extremes]).reshape(3, -1)


INTEGER_OPS = {
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b, "not": lambda a, b: ~a,
    "and_constant": lambda a, b: a & 6, "or_constant": lambda a, b: a | -77, "xor_constant": lambda a, b: a ^ 5,
    "and_int32": lambda a, b: (a.int() & b.int()).long(), "or_int32": lambda a, b: (a.int() | b.int()).long(),
    "bool_and": lambda a, b: ((a > 0) & (b > 0)).long(), "bool_xor": lambda a, b: ((a > 0) ^ (b > 0)).long(),
    "floor_divide": lambda a, b: a // torch.where(b == 0, 7, b).clamp(-2 ** 40, 2 ** 40),
    "floor_divide_constant": lambda a, b: a // -3, "remainder": lambda a, b: a % 7,
}


def test_int64_ops_without_a_tflite_builtin(tmp_path):
    """int64 floor division and bitwise ops (FloorDiv, BitwiseAnd/Or/Xor and Invert have no int64
    TFLite builtin; AND and OR have none at all): exact over the whole int64 range."""
    a, b = _int64s(0), _int64s(1).flip(1)
    model = Fn(lambda a, b: tuple(fn(a, b) for fn in INTEGER_OPS.values()))
    result = torch2keras.compile(model.eval(), (a, b))
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    want = [fn(a, b).numpy() for fn in INTEGER_OPS.values()]
    feed = [a.numpy(), b.numpy()]
    for backend, got in {"Keras": result.run_keras(feed), "TFLite": result.run_tflite(path, feed)}.items():
        for name, g, w in zip(INTEGER_OPS, got, want):
            assert g.dtype == w.dtype and np.array_equal(g, w), (backend, name, g[g != w], w[g != w])
