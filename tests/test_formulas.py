"""The special functions of ``ir/formulas.py``: written once, evaluated by both backends (the Keras
kernels over keras.ops, the direct TFLite writer over builtins) and by numpy here, in float32,
against PyTorch: NaN and infinities where PyTorch has them, signed zeros of the odd functions
kept, else a relative error (scaled by max(1, |reference|)) within the tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torch2keras.ir import formulas

# name -> (torch function, inputs besides the shared ones, tolerance)
_SHARED = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-7, -1e-7, 0.124, 0.126, -0.49, 0.51, 1.0, -1.0, 2.0, 20.0, -88.0]
CASES = {
    "sinh": (torch.sinh, [89.42, -89.5, 1e20, 0.3, -0.6], 2e-6),
    "cosh": (torch.cosh, [89.42, -89.5, 1e20, 0.3, -0.6], 2e-6),
    "asinh": (torch.asinh, [1e11, -1e11, 3e30, 100.0, -0.3], 1e-6),
    "acosh": (torch.acosh, [1.0001, 1.5, 100.0, 1e12, 3e30, 0.5], 1e-6),
    "atanh": (torch.atanh, [0.5, -0.9, 0.99999, 1.5, -0.1], 1e-6),
    "erf": (torch.erf, [0.3, -3.0, 5.0], 1e-6),
    "erfc": (torch.erfc, [0.3, -3.0, 5.0], 1e-6),
    "lgamma": (torch.lgamma, [0.5, 0.7, 3.5, 10.0, 55.5, 1e4, 0.3, 1e-3, -1e-3, -1.5, -2.7, -7.3, -3.0], 2e-5),
    "digamma": (torch.digamma, [0.5, 0.7, 3.5, 10.0, 55.5, 1e4, 0.3, 1e-3, -1e-3, -1.5, -2.7, -7.3, -3.0], 2e-5),
}
_ODD = {"sinh", "asinh", "atanh", "erf"}


def _inputs(name: str) -> np.ndarray:
    random = np.random.default_rng(0).uniform(-4, 4, 200)
    shared = _SHARED
    if name in ("acosh", "lgamma", "digamma"):
        random = np.abs(random) + 1.0  # (acosh's domain; the gamma functions away from their poles)
        # (not covered: just below 0, where x - floor(x) rounds, and digamma(-0), +inf in torch)
        shared = [v for v in _SHARED if not (v == 0 and np.signbit(v)) and v not in (1e-7, -1e-7)]
    return np.concatenate([shared, CASES[name][1], random]).astype(np.float32)


def _check(name: str, got: np.ndarray, x: np.ndarray) -> float:
    """The relative error of ``got`` against PyTorch after the checks of the special values."""
    want = CASES[name][0](torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32
    assert np.array_equal(np.isnan(got), np.isnan(want)), (x[np.isnan(got) != np.isnan(want)])
    infinite = np.isinf(want)
    assert np.array_equal(got[infinite], want[infinite]), x[infinite]
    if name in _ODD:
        zero = want == 0
        assert np.array_equal(np.signbit(got[zero]), np.signbit(want[zero]))
    finite = np.isfinite(want)
    scale = np.maximum(1.0, np.abs(want[finite].astype(np.float64)))
    return float(np.max(np.abs(got[finite].astype(np.float64) - want[finite]) / scale))


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_formula_evaluated_with_numpy(name):
    x = _inputs(name)
    with np.errstate(all="ignore"):  # (log of negatives, divisions by zero: the NaN and inf torch has)
        got = getattr(formulas, name)(np, x)
    assert _check(name, got, x) <= CASES[name][2]


@pytest.mark.parametrize("name", ["sinh", "cosh"])
def test_the_overflow_bound_gives_infinities_where_exp_saturates(name):
    """With ``overflow``, +-inf beyond it even where exp gives the largest float, not inf."""

    class SaturatingExp:
        def __getattr__(self, attr):
            return getattr(np, attr)

        def exp(self, v):
            return np.minimum(np.exp(v), np.finfo(np.float32).max)

    x = _inputs(name)
    with np.errstate(all="ignore"):
        fn = getattr(formulas, name)
        got = fn(SaturatingExp(), x, formulas.FLOAT32_HYPERBOLIC_OVERFLOW)
        assert _check(name, got, x) <= CASES[name][2]
        with pytest.raises(AssertionError):  # (without the bound: the largest float, not inf)
            _check(name, fn(SaturatingExp(), x), x)


def test_both_backends_evaluate_the_formulas():
    """Each formula is the Keras kernel and the direct TFLite emitter of the IR op of its name."""
    from torch2keras.backend_keras.kops.registry import KOPS
    from torch2keras.backend_tflite import EMITTERS
    from torch2keras.backend_tflite.emitters.elementwise import emit_formula

    assert set(CASES) == set(formulas.FUNCTIONS) == {name for name in formulas.__all__ if name.islower()} - \
        {"grid_sample"}
    for name in CASES:
        assert KOPS[name].func is getattr(formulas, name), name
        assert EMITTERS[name] is emit_formula, name


# ---------------------------------------------------------------- grid_sample


class _Numpy:
    """numpy as the formulas' namespace, with ``cast``."""

    def __getattr__(self, attr):
        return getattr(np, attr)

    def cast(self, x, dtype):
        return x.astype(dtype)


def _numpy_grid_sample(x: np.ndarray, grid: np.ndarray, **attrs) -> np.ndarray:
    """The formula over numpy, laid out as the backends lay it out (channels-last padded rows)."""
    nd = x.ndim - 2
    rows = np.pad(np.moveaxis(x, 1, -1), [(0, 0)] + [(1, 1)] * nd + [(0, 0)]).reshape(-1, x.shape[1])
    coordinates = [grid[..., nd - 1 - d] for d in range(nd)]
    out = formulas.grid_sample(_Numpy(), rows, coordinates, x.shape[2:], grid.shape[:-1], **attrs)
    return np.moveaxis(out, -1, 1)


@pytest.mark.parametrize("mode", formulas.GRID_SAMPLE_MODES)
@pytest.mark.parametrize("padding_mode", formulas.GRID_SAMPLE_PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(5, 6), (1, 4), (3, 4, 5)])
def test_grid_sample_evaluated_with_numpy(mode, padding_mode, align_corners, size):
    """torch's grid_sample within 1e-5 (2-d and 3-d, an axis of one position), at grid values
    beyond [-1, 1], on the borders and on pixel centres and their midpoints (nearest's halves)."""
    if mode == "bicubic" and len(size) == 3:
        pytest.skip("torch's bicubic sampling is 2-d only")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, *size)).astype(np.float32)
    grid = rng.uniform(-1.7, 1.7, (2, 4, *[3] * (len(size) - 1), len(size))).astype(np.float32)
    flat = grid.reshape(-1)
    w = size[-1]
    special = [-1.0, 1.0, 0.0, -1.0000001, 1.25, -3.5, 7.0] + [k / w - 1 for k in range(2 * w + 1)]
    flat[:len(special)] = special
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    want = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), **attrs).numpy()
    assert np.abs(_numpy_grid_sample(x, grid, **attrs) - want).max() <= 1e-5


def test_both_backends_evaluate_grid_sample():
    """The Keras kernel and the direct TFLite emitter of grid_sample evaluate ``formulas.grid_sample``."""
    import inspect

    from torch2keras.backend_keras.kops.registry import KOPS
    from torch2keras.backend_tflite import EMITTERS

    for fn in (KOPS["grid_sample"], EMITTERS["grid_sample"]):
        assert "formulas.grid_sample(" in inspect.getsource(fn)
