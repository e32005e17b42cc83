"""The special functions that have no op of their own in Keras or TFLite, each written once
against a small array namespace (``ArrayOps``), so that every backend computes the same formula
with its own ops: the Keras kernels pass ``keras.ops``, the direct TFLite writer an adapter that
emits builtins (``backend_tflite/emitters/common.py``), a test may pass numpy.

Invariants: each formula keeps float32 accuracy (relative error ~1e-6; a Taylor series where an
identity cancels, the asymptotic form where a square may overflow) and torch's special values:
NaN for NaN, the infinities and poles torch gives, signed zeros of the odd functions kept (but
digamma(-0) is -inf, +inf in torch; and just below 0, where x - floor(x) rounds, lgamma and
digamma lose accuracy). Only the namespace's functions, Python operators and Python floats are
used, so a formula runs on any array type whose arithmetic takes Python floats on either side
(``grid_sample`` also adds int32 numpy constants to integer arrays: its batch's first rows).

``grid_sample`` is the sampling arithmetic of torch's grid_sample (any spatial rank; bicubic 2-d
only): unnormalised coordinates, the padding modes, the corners' rows of a table of the input and
their weights. The caller lays out the table (the input channels-last, each spatial axis padded
with one zero before and after, flattened to rows) and the grid's coordinates.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Protocol, Sequence

import numpy as np

__all__ = ["FLOAT32_HYPERBOLIC_OVERFLOW", "FUNCTIONS", "GRID_SAMPLE_MODES", "GRID_SAMPLE_PADDINGS", "ArrayOps", "acosh",
           "asinh", "atanh", "cosh", "digamma", "erf", "erfc", "grid_sample", "lgamma", "sinh"]

# the formulas, each named as the IR op it computes (``fn(xp, x)``; sinh and cosh take an overflow)
FUNCTIONS = ("sinh", "cosh", "asinh", "acosh", "atanh", "erf", "erfc", "lgamma", "digamma")

Array = Any  # an array of the namespace: +, -, *, / and unary - with arrays and Python floats


class ArrayOps(Protocol):
    """The functions the formulas call (numpy's and keras.ops's names and meanings; numpy has no
    ``cast``: ``x.astype(dtype)``). ``b`` may be a Python float; ``where``'s ``a`` or ``b`` too
    (not both)."""

    def abs(self, x: Array) -> Array: ...
    def exp(self, x: Array) -> Array: ...
    def log(self, x: Array) -> Array: ...
    def sqrt(self, x: Array) -> Array: ...
    def square(self, x: Array) -> Array: ...
    def floor(self, x: Array) -> Array: ...
    def round(self, x: Array) -> Array: ...  # halves to even
    def sign(self, x: Array) -> Array: ...
    def sin(self, x: Array) -> Array: ...
    def cos(self, x: Array) -> Array: ...
    def isnan(self, x: Array) -> Array: ...
    def minimum(self, a: Array, b: Any) -> Array: ...
    def maximum(self, a: Array, b: Any) -> Array: ...
    def less(self, a: Array, b: Any) -> Array: ...
    def less_equal(self, a: Array, b: Any) -> Array: ...
    def greater(self, a: Array, b: Any) -> Array: ...
    def equal(self, a: Array, b: Any) -> Array: ...
    def logical_and(self, a: Array, b: Array) -> Array: ...
    def logical_or(self, a: Array, b: Array) -> Array: ...
    def where(self, condition: Array, a: Any, b: Any) -> Array: ...
    def cast(self, x: Array, dtype: str) -> Array: ...
    def expand_dims(self, x: Array, axis: int) -> Array: ...
    def take(self, x: Array, indices: Array, axis: int) -> Array: ...


_LN2 = math.log(2.0)
_LARGE = 1e10  # above it, x * x may overflow: asinh/acosh take log(2x)
# log(2 * float32 max): beyond it sinh and cosh overflow (for exp kernels that saturate at the
# largest float instead of overflowing to inf)
FLOAT32_HYPERBOLIC_OVERFLOW = 89.41599

_SINH_SERIES = (1.0, 1 / 6, 1 / 120, 1 / 5040, 1 / 362880)
_ASINH_SERIES = (1.0, -1 / 6, 3 / 40, -15 / 336, 105 / 3456)
_ATANH_SERIES = (1.0, 1 / 3, 1 / 5, 1 / 7, 1 / 9, 1 / 11)


def _horner(t: Array, coefs: Sequence[float]) -> Array:
    """c0 + c1 t + c2 t^2 + ... (at least two coefficients)."""
    acc = t * coefs[-1] + coefs[-2]
    for c in reversed(coefs[:-2]):
        acc = acc * t + c
    return acc


def _odd_series(xp: ArrayOps, x: Array, coefs: Sequence[float]) -> Array:
    """x (c0 + c1 x^2 + c2 x^4 + ...): exact signed zeros."""
    return x * _horner(xp.square(x), coefs)


# ----------------------------------------------------------------------------- hyperbolic


def _hyperbolic(xp: ArrayOps, x: Array, odd: bool, overflow: Optional[float]) -> Array:
    """a = exp(|x| - log 2); cosh = a + 1/(4a), sinh = sign(x) (a - 1/(4a)) and its Taylor series
    below |x| = 0.5 (where the difference cancels). With ``overflow``, +-inf beyond it; NaN for
    NaN (TFLite's EXP kernels neither overflow to inf nor keep NaN everywhere)."""
    ax = xp.abs(x)
    a = xp.exp(ax - _LN2)  # e^|x| / 2, finite up to the function's own overflow
    value = xp.sign(x) * (a - 0.25 / a) if odd else a + 0.25 / a
    if overflow is not None:  # (selects: a MUL by inf may clamp to the float range)
        value = xp.where(xp.greater(x if odd else ax, overflow), math.inf, value)
        if odd:
            value = xp.where(xp.less(x, -overflow), -math.inf, value)
    if odd:
        value = xp.where(xp.less(ax, 0.5), _odd_series(xp, x, _SINH_SERIES), value)
    return xp.where(xp.isnan(x), x, value)


def sinh(xp: ArrayOps, x: Array, overflow: Optional[float] = None) -> Array:
    """sinh(x); ``overflow``: the |x| above which it is +-inf (``FLOAT32_HYPERBOLIC_OVERFLOW``)."""
    return _hyperbolic(xp, x, True, overflow)


def cosh(xp: ArrayOps, x: Array, overflow: Optional[float] = None) -> Array:
    """cosh(x); ``overflow``: the |x| above which it is +inf (``FLOAT32_HYPERBOLIC_OVERFLOW``)."""
    return _hyperbolic(xp, x, False, overflow)


def asinh(xp: ArrayOps, x: Array) -> Array:
    """sign(x) log(|x| + sqrt(x^2 + 1)); log(2 |x|) above 1e10; the Taylor series below 0.125."""
    ax = xp.abs(x)
    mid = xp.log(ax + xp.sqrt(xp.square(xp.minimum(ax, _LARGE)) + 1.0))
    big = xp.log(ax) + _LN2
    out = xp.sign(x) * xp.where(xp.greater(ax, _LARGE), big, mid)
    return xp.where(xp.less(ax, 0.125), _odd_series(xp, x, _ASINH_SERIES), out)


def acosh(xp: ArrayOps, x: Array) -> Array:
    """log(x + sqrt((x - 1)(x + 1))); log(x) + log 2 above 1e10 (where the product may
    overflow). Below 1 the square root is NaN, as torch's result."""
    mid = xp.log(x + xp.sqrt((x - 1.0) * (x + 1.0)))
    return xp.where(xp.greater(x, _LARGE), xp.log(x) + _LN2, mid)


def atanh(xp: ArrayOps, x: Array) -> Array:
    """(log(1 + x) - log(1 - x)) / 2; the Taylor series below |x| = 0.125 (where the difference
    of logs cancels). +-inf at +-1, NaN beyond, as torch's result."""
    logs = (xp.log(1.0 + x) - xp.log(1.0 - x)) * 0.5
    return xp.where(xp.less(xp.abs(x), 0.125), _odd_series(xp, x, _ATANH_SERIES), logs)


# ----------------------------------------------------------------------------- error function
# erfc(x) = t * exp(-x^2) * P(t), t = 1 / (1 + p x), for x >= 0 (Abramowitz and Stegun 7.1.26,
# |error| < 1.5e-7); below |x| = 0.5 erf takes its Taylor series instead

_ERFC_P = 0.3275911
_ERFC_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_ERF_SERIES = tuple(c * 2 / math.sqrt(math.pi) for c in (1.0, -1 / 3, 1 / 10, -1 / 42, 1 / 216, -1 / 1320, 1 / 9360))


def _erfc_tail(xp: ArrayOps, ax: Array) -> Array:
    """erfc(|x|) for |x| >= 0.5 (``ax``: |x|, taken up to 0.5 here)."""
    ax = xp.maximum(ax, 0.5)
    t = 1.0 / (ax * _ERFC_P + 1.0)
    return _horner(t, _ERFC_A) * t * xp.exp(-xp.square(ax))


def _erf_series(xp: ArrayOps, x: Array) -> Array:
    """erf's Taylor series, of x clipped to [-0.5, 0.5] (where it is used)."""
    return _odd_series(xp, xp.minimum(xp.maximum(x, -0.5), 0.5), _ERF_SERIES)


def erf(xp: ArrayOps, x: Array) -> Array:
    """|x| < 0.5: the Taylor series; else sign(x) (1 - erfc(|x|))."""
    ax = xp.abs(x)
    return xp.where(xp.less(ax, 0.5), _erf_series(xp, x), xp.sign(x) * (1.0 - _erfc_tail(xp, ax)))


def erfc(xp: ArrayOps, x: Array) -> Array:
    """|x| < 0.5: 1 - the Taylor series of erf; else the tail, 2 - the tail for negative x."""
    ax = xp.abs(x)
    tail = _erfc_tail(xp, ax)
    return xp.where(xp.less(ax, 0.5), 1.0 - _erf_series(xp, x), xp.where(xp.less(x, 0.0), 2.0 - tail, tail))


# ----------------------------------------------------------------------------- gamma

_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7)


def _reflected(xp: ArrayOps, x: Array) -> tuple[Array, Array, Array, Array]:
    """(x < 0.5, y = 1 - x there else x, pi (x - floor x), whether x is an integer): the
    reflection's pieces; pi x is taken of x - floor(x), exact, to keep sin and cos exact."""
    floor = xp.floor(x)
    reflect = xp.less(x, 0.5)
    return reflect, xp.where(reflect, 1.0 - x, x), (x - floor) * math.pi, xp.equal(x, floor)


def _lgamma_right(xp: ArrayOps, z: Array) -> Array:
    """log|Gamma(z)| for z >= 0.5 (Lanczos, g = 7)."""
    z = z - 1.0
    a = _LANCZOS[1] / (z + 1.0) + _LANCZOS[0]
    for i in range(2, 9):
        a = a + _LANCZOS[i] / (z + float(i))
    t = z + 7.5
    return (z + 0.5) * xp.log(t) + 0.5 * math.log(2 * math.pi) - t + xp.log(a)


def lgamma(xp: ArrayOps, x: Array) -> Array:
    """log|Gamma(x)|: Lanczos (g = 7) from 0.5 up, the reflection log(pi / |sin(pi x)|) -
    lgamma(1 - x) below; +inf at the poles (0, -1, ...) and at +-inf."""
    reflect, y, angle, integer = _reflected(xp, x)
    lg = _lgamma_right(xp, y)
    out = xp.where(reflect, math.log(math.pi) - xp.log(xp.abs(xp.sin(angle))) - lg, lg)
    pole = xp.logical_or(xp.logical_and(xp.less_equal(x, 0.0), integer), xp.equal(xp.abs(x), math.inf))
    return xp.where(pole, math.inf, out)


def _digamma_right(xp: ArrayOps, y: Array) -> Array:
    """digamma(y) for y >= 0.5: the recurrence up by 6, then the asymptotic series."""
    acc = 1.0 / y
    for i in range(1, 6):
        acc = acc + 1.0 / (y + float(i))
    z = y + 6.0
    iz2 = 1.0 / (z * z)
    series = iz2 * (1.0 / 12 - iz2 * (1.0 / 120 - iz2 * (1.0 / 252 - iz2 * (1.0 / 240 - iz2 * (1.0 / 132)))))
    return xp.log(z) - 0.5 / z - series - acc


def digamma(xp: ArrayOps, x: Array) -> Array:
    """psi(x): the recurrence and asymptotic series from 0.5 up, the reflection psi(1 - x) -
    pi cot(pi x) below (cos / sin: TFLite has no TAN); NaN at the negative integers, -inf at 0,
    +inf at +inf."""
    reflect, y, angle, integer = _reflected(xp, x)
    psi = _digamma_right(xp, y)
    out = xp.where(reflect, psi - math.pi * xp.cos(angle) / xp.sin(angle), psi)
    out = xp.where(xp.logical_and(xp.less(x, 0.0), integer), math.nan, out)
    out = xp.where(xp.equal(x, 0.0), -math.inf, out)
    return xp.where(xp.equal(x, math.inf), x, out)


# ----------------------------------------------------------------------------- grid_sample

GRID_SAMPLE_MODES = ("bilinear", "nearest", "bicubic")
GRID_SAMPLE_PADDINGS = ("zeros", "border", "reflection")


def _clip(xp: ArrayOps, x: Array, low: Any, high: Any) -> Array:
    return xp.minimum(xp.maximum(x, low), high)


def _reflect(xp: ArrayOps, c: Array, twice_low: int, twice_high: int) -> Array:
    """``c`` reflected into [low, high] (given doubled, as torch does): mirrored at each bound in
    turn. One position (low = high): ``c`` itself, which the clip that follows makes ``low``."""
    if twice_low == twice_high:
        return c
    low = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    c = xp.abs(c - low) if low else xp.abs(c)
    flips = xp.floor(c / span)
    extra = c - flips * span
    even = xp.equal(flips - 2.0 * xp.floor(flips * 0.5), 0.0)
    if low:
        return xp.where(even, extra + low, span - extra + low)
    return xp.where(even, extra, span - extra)


def _pad_coordinate(xp: ArrayOps, c: Array, size: int, padding_mode: str, align_corners: bool) -> Array:
    """An unnormalised coordinate along an axis of ``size`` as ``padding_mode`` takes it: into
    [0, size - 1] (border, reflection), or as it is (zeros: outside, the table's zero rows)."""
    if padding_mode == "border":
        return _clip(xp, c, 0.0, float(size - 1))
    if padding_mode == "reflection":
        c = _reflect(xp, c, 0, 2 * (size - 1)) if align_corners else _reflect(xp, c, -1, 2 * size - 1)
        return _clip(xp, c, 0.0, float(size - 1))
    return c


def _cubic_weights(t: Array, a: float = -0.75) -> list[Array]:
    """torch's cubic convolution weights of the taps at -1, 0, 1, 2 from the fraction ``t``."""

    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


class _Table:
    """The rows of grid_sample's table (see ``grid_sample``) and the coordinates that index it."""

    def __init__(self, xp: ArrayOps, table: Array, size: Sequence[int], out_shape: Sequence[int], padding_mode: str,
                 align_corners: bool) -> None:
        self.xp, self.table, self.size = xp, table, list(size)
        self.padding_mode, self.align_corners = padding_mode, align_corners
        padded = [s + 2 for s in size]
        self.strides = [math.prod(padded[d + 1:]) for d in range(len(size))]
        n = out_shape[0]  # (each image's first row, added to the first axis' offsets)
        self.firsts = None if n == 1 else \
            (np.arange(n, dtype=np.int32) * math.prod(padded)).reshape([n] + [1] * (len(out_shape) - 1))

    def unnormalised(self, c: Array, d: int) -> Array:
        """A normalised coordinate along axis ``d`` in pixels (torch's, align_corners or not)."""
        if self.align_corners:
            return (c + 1.0) * 0.5 * float(self.size[d] - 1)
        return ((c + 1.0) * float(self.size[d]) - 1.0) * 0.5

    def padded(self, c: Array, d: int) -> Array:
        return _pad_coordinate(self.xp, c, self.size[d], self.padding_mode, self.align_corners)

    def rows(self, d: int, shifted: Array) -> Array:
        """Row offsets along axis ``d`` of integer coordinates plus one (the padding's zero),
        clipped to the table as integers: within it whatever the grid holds (a NaN, an infinity
        or a float beyond int32 casts to some integer, for zeros padding a zero row either way;
        border and reflection took finite coordinates into [0, size - 1] already)."""
        xp = self.xp
        r = _clip(xp, xp.cast(shifted, "int32"), 0, self.size[d] + 1)
        if self.strides[d] != 1:
            r = r * self.strides[d]
        return r + self.firsts if d == 0 and self.firsts is not None else r

    def values(self, axis_rows: Sequence[Array]) -> Array:
        """The rows at the sum of per-axis offsets: [*index shape, C]."""
        index = axis_rows[0]
        for r in axis_rows[1:]:
            index = index + r
        return self.xp.take(self.table, index, axis=0)


def _weighted_sum(terms) -> Array:
    """Sum over (values, weight) pairs of values * weight, in order."""
    out = None
    for values, weight in terms:
        term = values * weight
        out = term if out is None else out + term
    return out


def _bicubic(t: _Table, coordinates: Sequence[Array]) -> Array:
    """16 taps at floor - 1 .. floor + 2 per axis (each padded as the padding mode takes it),
    weighted by the cubic convolution weights of the fraction."""
    xp = t.xp
    coords = [t.unnormalised(c, d) for d, c in enumerate(coordinates)]
    base = [xp.floor(c) for c in coords]
    weights = [[xp.expand_dims(w, -1) for w in _cubic_weights(c - b)] for c, b in zip(coords, base)]
    if t.padding_mode == "zeros":  # (tap k of base b: b + k - 1, shifted by one: b + k)
        taps = [[t.rows(d, base[d] + float(k) if k else base[d]) for k in range(4)] for d in range(2)]
    else:
        taps = [[t.rows(d, t.padded(base[d] + float(k - 1) if k != 1 else base[d], d) + 1.0) for k in range(4)]
                for d in range(2)]
    return _weighted_sum((t.values([taps[0][i], taps[1][j]]), weights[0][i] * weights[1][j])
                         for i in range(4) for j in range(4))


def _linear(t: _Table, coords: Sequence[Array]) -> Array:
    """The 2^nd corners at floor and floor + 1 per axis, weighted by products of the fractions
    (1 - f at floor, f above) in axis order; corners in binary order, the last axis fastest."""
    xp, nd = t.xp, len(coords)
    lows = [xp.floor(c) for c in coords]
    fractions = [xp.expand_dims(c - low, -1) for c, low in zip(coords, lows)]
    sides = [[1.0 - f, f] for f in fractions]
    axis_rows = [[t.rows(d, low + 1.0), t.rows(d, low + 2.0)] for d, low in enumerate(lows)]

    def corner(k: int):
        bits = [(k >> (nd - 1 - d)) & 1 for d in range(nd)]
        weight = sides[0][bits[0]]
        for d in range(1, nd):
            weight = weight * sides[d][bits[d]]
        return t.values([axis_rows[d][b] for d, b in enumerate(bits)]), weight

    return _weighted_sum(corner(k) for k in range(2 ** nd))


def grid_sample(xp: ArrayOps, table: Array, coordinates: Sequence[Array], size: Sequence[int],
                out_shape: Sequence[int], mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False) -> Array:
    """torch's grid_sample of an input of spatial ``size`` (D, H, W or H, W) at the grid's
    normalised ``coordinates`` (per spatial axis, in that order: the grid's last axis reversed),
    each of ``out_shape`` ([N, *output spatial]); the result is [*out_shape, C].

    ``table``: the input [N, *size, C] with each spatial axis padded by one zero before and after,
    as rows [N * prod(size + 2), C]. A sample's row clips its integer coordinate to [-1, size] (a
    zero for every position outside, as torch's zeros padding; border and reflection take
    coordinates into [0, size - 1] first); the corners' values times their weights (products
    over the axes, in axis order), summed corner by corner. nearest rounds halves to even, as
    torch does."""
    if mode not in GRID_SAMPLE_MODES or padding_mode not in GRID_SAMPLE_PADDINGS:
        raise ValueError(f"grid_sample: unknown mode {mode!r} or padding mode {padding_mode!r}")
    if mode == "bicubic" and len(size) != 2:
        raise ValueError("bicubic grid sampling is 2-D only")
    t = _Table(xp, table, size, out_shape, padding_mode, align_corners)
    if mode == "bicubic":
        return _bicubic(t, coordinates)
    coords = [t.padded(t.unnormalised(c, d), d) for d, c in enumerate(coordinates)]
    if mode == "nearest":
        return t.values([t.rows(d, xp.round(c) + 1.0) for d, c in enumerate(coords)])
    return _linear(t, coords)
