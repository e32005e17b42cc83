"""Kernels of the elementwise family: unary math and activations, arithmetic, comparisons,
``where``, ``cast``, and the special functions Keras lacks.

Special functions without a Keras op (lgamma, digamma, polygamma) are computed from series that
keep float32 accuracy, so that they also convert to plain TFLite builtins; so are the functions
whose TensorFlow op has no TFLite builtin (sinh, erf, int64 floor division and bitwise ops, ...).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from .registry import register

__all__ = ["dtype_name", "is_integer"]


def dtype_name(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def is_integer(x) -> bool:
    """Integer or bool: no NaN, no float kernels."""
    return "int" in dtype_name(x) or dtype_name(x) == "bool"


# ----------------------------------------------------------------------------- activations and arithmetic


def _hardsigmoid(x):
    return ops.relu6(x + 3.0) / 6.0


def _hardswish(x):
    return x * ops.relu6(x + 3.0) / 6.0  # the form TFLite's converter fuses into HARD_SWISH


def _add(x, y):
    """``x + y``. keras.ops.add (TensorFlow backend) turns an add whose second operand has one
    non-1 axis matching x's second or last axis into ``bias_add`` over the axis it guesses. Only
    a channels-last ``bias_add`` of a float bias on x's last axis is kept: over another axis the
    guess can be wrong (e.g. [5, 5, 5] + [1, 5, 1]), a channels-first one crashes the TFLite
    converter on tensors of rank other than 4 (it transposes with a rank-4 permutation), a bias
    of higher rank than x loses the broadcast, and integers have no TFLite kernel. Those subtract
    the negation instead, which is exact."""
    y_shape, x_rank = tuple(y.shape), len(x.shape)
    big = [i for i, d in enumerate(y_shape) if d != 1]
    if len(big) == 1 and x_rank > 1:
        axis = big[0] + x_rank - len(y_shape)
        last = axis == x_rank - 1 and x.shape[-1] == y_shape[big[0]] and len(y_shape) <= x_rank
        if not last or "int" in keras.backend.standardize_dtype(x.dtype):
            return ops.subtract(x, ops.negative(y))
    return ops.add(x, y)


def _atan2(y, x):
    """atan2 with its operands broadcast to one shape first: TFLite's ATAN2 does not broadcast
    (the converter refuses operands of different shapes). Multiplying by ones is exact (signed
    zeros, infinities and NaN included)."""
    if tuple(y.shape) != tuple(x.shape):
        y, x = y * ops.ones_like(x), x * ops.ones_like(y)
    return ops.arctan2(y, x)


def _remainder(x, y):  # python/torch sign convention (result has the divisor's sign)
    if is_integer(x):
        return ops.mod(x, y)  # FLOOR_MOD (every integer width)
    return x - ops.floor_divide(x, y) * y


def _fmod(x, y):
    q = x / y if "float" in str(x.dtype) else ops.cast(x, "float32") / ops.cast(y, "float32")
    return x - ops.cast(ops.trunc(q), x.dtype) * y


def _softplus(x, beta, threshold):
    return ops.where(x * beta > threshold, x, ops.softplus(x * beta) / beta)


def _elu(x, alpha, scale, input_scale):
    xs = x * input_scale
    return scale * ops.where(x > 0, x, alpha * (ops.exp(xs) - 1.0))


def _clamp(x, min, max):  # noqa: A002 - the IR's attribute names
    if min is None or max is None:
        return ops.clip(x, -np.inf if min is None else min, np.inf if max is None else max)
    return ops.clip(x, min, max)


def _copysign(x, y):
    negative = ops.logical_or(y < 0, ops.logical_and(ops.equal(y, 0), 1.0 / y < 0))
    return ops.where(negative, -ops.abs(x), ops.abs(x))


def _nan_extreme(fn):
    def extreme(x, y):  # fmax/fmin: a NaN loses against a number
        out = fn(x, y)
        if is_integer(x):
            return out
        return ops.where(ops.isnan(x), y, ops.where(ops.isnan(y), x, out))

    return extreme


# ----------------------------------------------------------------------------- forms of TFLite builtins
# TensorFlow ops the TFLite converter has no builtin for (Sinh, Asinh, Acos, Atan, Erf, Erfc, Tan,
# BitwiseAnd/Or, and FloorDiv/BitwiseXor/Invert on int64), written with ops that have one; each
# keeps float32 accuracy (small arguments take a Taylor series where the identity cancels).

_LN2 = math.log(2.0)
_LARGE = 1e10  # above it, x * x may overflow: asinh/acosh take log(2x)


def _odd_series(x, coefs):
    """x * (c0 + c1 x^2 + c2 x^4 + ...)."""
    x2 = x * x
    acc = ops.zeros_like(x) + coefs[-1]
    for c in reversed(coefs[:-1]):
        acc = acc * x2 + c
    return x * acc


def _sinh(x):
    a = ops.exp(ops.abs(x) - _LN2)  # e^|x| / 2, finite up to sinh's own overflow
    big = ops.sign(x) * (a - 0.25 / a)
    small = _odd_series(x, [1.0, 1 / 6, 1 / 120, 1 / 5040, 1 / 362880])
    return ops.where(ops.abs(x) < 0.5, small, big)


def _cosh(x):
    a = ops.exp(ops.abs(x) - _LN2)
    return ops.where(ops.isnan(x), x, a + 0.25 / a)  # (TFLite's EXP of NaN is not NaN everywhere)


def _tan(x):
    return ops.sin(x) / ops.cos(x)


def _asinh(x):
    ax = ops.abs(x)
    mid = ops.log(ax + ops.sqrt(ops.minimum(ax, _LARGE) ** 2 + 1.0))
    big = ops.log(ax) + _LN2
    small = _odd_series(x, [1.0, -1 / 6, 3 / 40, -15 / 336, 105 / 3456])
    out = ops.sign(x) * ops.where(ax > _LARGE, big, mid)
    return ops.where(ax < 0.125, small, out)


def _acosh(x):
    mid = ops.log(x + ops.sqrt((x - 1.0) * (x + 1.0)))
    return ops.where(x > _LARGE, ops.log(x) + _LN2, mid)


def _atanh(x):
    small = _odd_series(x, [1.0, 1 / 3, 1 / 5, 1 / 7, 1 / 9, 1 / 11])
    return ops.where(ops.abs(x) < 0.125, small, 0.5 * (ops.log(1.0 + x) - ops.log(1.0 - x)))


def _atan(x):
    return ops.arctan2(x, ops.ones_like(x))


def _asin(x):
    return ops.arctan2(x, ops.sqrt((1.0 - x) * (1.0 + x)))


def _acos(x):
    return ops.arctan2(ops.sqrt((1.0 - x) * (1.0 + x)), x)


# erfc(x) = t * exp(-x^2) * P(t), t = 1 / (1 + p x), for x >= 0 (Abramowitz and Stegun 7.1.26,
# |error| < 1.5e-7); below |x| = 0.5 erf takes its Taylor series instead
_ERFC_P = 0.3275911
_ERFC_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_ERF_SERIES = [c * 2 / math.sqrt(math.pi) for c in (1.0, -1 / 3, 1 / 10, -1 / 42, 1 / 216, -1 / 1320, 1 / 9360)]


def _erfc_tail(ax):
    """erfc(|x|) for |x| >= 0.5."""
    t = 1.0 / (1.0 + _ERFC_P * ax)
    poly = ops.zeros_like(ax) + _ERFC_A[-1]
    for a in reversed(_ERFC_A[:-1]):
        poly = poly * t + a
    return poly * t * ops.exp(-ax * ax)


def _erf(x):
    ax = ops.abs(x)
    small = _odd_series(ops.minimum(ops.maximum(x, -0.5), 0.5), _ERF_SERIES)
    return ops.where(ax < 0.5, small, ops.sign(x) * (1.0 - _erfc_tail(ops.maximum(ax, 0.5))))


def _erfc(x):
    ax = ops.abs(x)
    tail = _erfc_tail(ops.maximum(ax, 0.5))
    small = 1.0 - _odd_series(ops.minimum(ops.maximum(x, -0.5), 0.5), _ERF_SERIES)
    return ops.where(ax < 0.5, small, ops.where(x > 0, tail, 2.0 - tail))


# integers: TFLite's FLOOR_DIV, BITWISE_XOR and the bitwise ops stop at int32 (AND and OR do not
# exist); int64 goes through float32 estimates corrected exactly, and 16-bit pieces


def _floor_divide(x, y):
    """x // y; for int64, float32 estimates of the quotient refined on the exact residue
    ``x - q * y - (x mod y)`` (int64 arithmetic wraps around, so the residue is exact even where
    ``q * y`` overflows): each step shrinks the error ~2^23 times, exact after three."""
    if dtype_name(x) != "int64":
        return ops.floor_divide(x, y)
    x, y = ops.cast(x, "int64"), ops.cast(y, "int64")
    rest, fy = _floor_mod(x, y), ops.cast(y, "float32")

    def estimate(n):  # round(n / y), kept inside int64's range
        return ops.cast(ops.clip(ops.round(ops.cast(n, "float32") / fy), -2.0 ** 62, 2.0 ** 62), "int64")

    q = estimate(x)
    for _ in range(3):
        q = q + estimate(x - q * y - rest)
    return q


def _floor_mod(x, y):
    return ops.mod(x, y)


_PIECE = 16


def _pieces(x):
    """x (int64) as 4 int32 pieces of 16 bits, low first; the top one signed (sign-extended).
    Each piece times its power of two is exact in float32, so the division is too."""
    out, below = [], None
    for k in range(1, 4):
        upto = _floor_mod(x, np.int64(1) << (_PIECE * k))
        part = upto if below is None else upto - below
        out.append(ops.cast(ops.cast(part, "float32") * float(2.0 ** (-_PIECE * (k - 1))), "int32"))
        below = upto
    top = ops.cast(ops.cast(x - below, "float32") * float(2.0 ** (-_PIECE * 3)), "int32")
    return out + [top]


def _bitwise(kind):
    def fn(x, y):
        name = dtype_name(x)
        if name == "bool":
            return {"and": ops.logical_and, "or": ops.logical_or, "xor": ops.not_equal}[kind](x, y)
        if name in ("int32", "int16", "int8", "uint8") and kind == "xor":
            return ops.bitwise_xor(x, y)
        result = None
        for k, (p, q) in enumerate(zip(_pieces(ops.cast(x, "int64")), _pieces(ops.cast(y, "int64")))):
            xor = ops.bitwise_xor(p, q)
            both = ops.right_shift(p + q - xor, 1)  # p + q = (p ^ q) + 2 (p & q)
            piece = {"and": both, "or": xor + both, "xor": xor}[kind]
            piece = ops.cast(piece, "int64") * (np.int64(1) << (_PIECE * k))
            result = piece if result is None else result + piece
        return ops.cast(result, name)

    return fn


def _bitwise_not(x):
    if dtype_name(x) == "bool":
        return ops.logical_not(x)
    return -x - 1  # two's complement


# ----------------------------------------------------------------------------- special functions

_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7)


def _frac(x):
    """x - floor(x): exact in floating point, so sin/tan(pi * frac) keep their accuracy."""
    return x - ops.floor(x)


def _lgamma_right(z):
    """log|Gamma(z)| for z >= 0.5 (Lanczos, g = 7)."""
    z = z - 1.0
    a = ops.ones_like(z) * _LANCZOS[0]
    for i in range(1, 9):
        a = a + _LANCZOS[i] / (z + float(i))
    t = z + 7.5
    return 0.5 * math.log(2 * math.pi) + (z + 0.5) * ops.log(t) - t + ops.log(a)


def _lgamma(x):
    reflect = x < 0.5
    y = ops.where(reflect, 1.0 - x, x)
    lg = _lgamma_right(y)
    s = ops.abs(ops.sin(math.pi * _frac(x)))
    out = ops.where(reflect, math.log(math.pi) - ops.log(s) - lg, lg)
    pole = ops.logical_and(x <= 0, ops.equal(x, ops.floor(x)))
    return ops.where(ops.logical_or(pole, ops.isinf(x)), ops.full_like(x, np.inf), out)


def _digamma_right(y):
    """digamma(y) for y >= 0.5: the recurrence up by 6, then the asymptotic series."""
    acc = ops.zeros_like(y)
    for i in range(6):
        acc = acc + 1.0 / (y + float(i))
    z = y + 6.0
    iz2 = 1.0 / (z * z)
    series = iz2 * (1.0 / 12 - iz2 * (1.0 / 120 - iz2 * (1.0 / 252 - iz2 * (1.0 / 240 - iz2 * (1.0 / 132)))))
    return ops.log(z) - 0.5 / z - series - acc


def _digamma(x):
    reflect = x < 0.5
    y = ops.where(reflect, 1.0 - x, x)
    psi = _digamma_right(y)
    angle = math.pi * _frac(x)
    cot = math.pi * ops.cos(angle) / ops.sin(angle)  # (TFLite has no TAN)
    out = ops.where(reflect, psi - cot, psi)
    pole = ops.logical_and(x < 0, ops.equal(x, ops.floor(x)))
    out = ops.where(pole, ops.full_like(x, np.nan), out)
    out = ops.where(ops.equal(x, 0.0), ops.full_like(x, -np.inf), out)
    return ops.where(ops.equal(x, np.inf), x, out)


_BERNOULLI = (1.0 / 6, -1.0 / 30, 1.0 / 42, -1.0 / 30, 5.0 / 66, -691.0 / 2730, 7.0 / 6)


def _polygamma(x, n):
    """psi^(n)(x) = (-1)^(n+1) n! zeta(n+1, x): the recurrence up by 20, then Euler-Maclaurin."""
    if n == 0:
        return _digamma(x)
    shift = 20
    s = ops.zeros_like(x)
    for k in range(shift):
        s = s + ops.power(x + float(k), -float(n + 1))
    z = x + float(shift)
    tail = ops.power(z, -float(n)) / n + 0.5 * ops.power(z, -float(n + 1))
    for j, b in enumerate(_BERNOULLI, 1):
        coef = b * math.factorial(n + 2 * j - 1) / (math.factorial(2 * j) * math.factorial(n))
        tail = tail + coef * ops.power(z, -float(n + 2 * j))
    sign = 1.0 if n % 2 == 1 else -1.0
    out = sign * math.factorial(n) * (s + tail)
    pole = ops.logical_and(x <= 0, ops.equal(x, ops.floor(x)))
    return ops.where(pole, ops.full_like(x, np.inf if n % 2 == 1 else -np.inf), out)


def _gammainc(a, x, upper: bool):
    """Regularized incomplete gamma P(a, x) (Q with ``upper``): the backend's own kernel (Keras
    has no op; TFLite has no builtin, so TFLite files keep it as a Flex op)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return (tf.math.igammac if upper else tf.math.igamma)(a, x)
    if backend == "jax":
        import jax.scipy.special as special

        return (special.gammaincc if upper else special.gammainc)(a, x)
    if backend == "torch":  # the tensors are torch tensors: their own methods, no import here
        return (a.igammac if upper else a.igamma)(x)
    raise NotImplementedError(f"the incomplete gamma function has no kernel on the {backend} backend")


register({
    # unary
    "identity": lambda x: x,
    "neg": ops.negative, "abs": ops.abs, "exp": ops.exp, "expm1": ops.expm1, "log": ops.log, "log1p": ops.log1p,
    "log2": ops.log2, "sqrt": ops.sqrt, "rsqrt": ops.rsqrt, "sin": ops.sin, "cos": ops.cos, "tan": _tan,
    "asin": _asin, "acos": _acos, "atan": _atan, "sinh": _sinh, "cosh": _cosh,
    "tanh": ops.tanh, "asinh": _asinh, "acosh": _acosh, "atanh": _atanh,
    "sigmoid": ops.sigmoid, "relu": ops.relu, "silu": ops.silu, "erf": _erf, "floor": ops.floor,
    "ceil": ops.ceil, "round": ops.round, "trunc": ops.trunc, "reciprocal": lambda x: 1.0 / x,
    "sign": ops.sign, "bitwise_not": _bitwise_not, "logical_not": ops.logical_not,
    "isnan": ops.isnan, "isinf": ops.isinf, "square": ops.square,
    "hardsigmoid": _hardsigmoid, "hardswish": _hardswish,
    "mish": lambda x: x * ops.tanh(ops.softplus(x)),
    "gelu": lambda x, approximate: ops.gelu(x, approximate=approximate == "tanh"),
    "clamp": _clamp,
    "leaky_relu": lambda x, slope: ops.where(x >= 0, x, x * slope),
    "elu": _elu, "softplus": _softplus,
    "cast": lambda x, dtype: ops.cast(x, dtype),
    "erfc": _erfc, "erfinv": ops.erfinv, "exp2": ops.exp2, "log10": ops.log10, "i0": ops.i0,
    "lgamma": _lgamma, "digamma": _digamma, "polygamma": _polygamma, "signbit": ops.signbit,
    # binary
    "add": _add, "sub": ops.subtract, "mul": ops.multiply, "div": ops.divide, "pow": ops.power,
    "maximum": ops.maximum, "minimum": ops.minimum, "atan2": _atan2,
    "floor_divide": _floor_divide, "remainder": _remainder, "fmod": _fmod,
    "bitwise_and": _bitwise("and"), "bitwise_or": _bitwise("or"), "bitwise_xor": _bitwise("xor"),
    "bitwise_left_shift": ops.left_shift, "bitwise_right_shift": ops.right_shift,
    "copysign": _copysign, "fmax": _nan_extreme(ops.maximum), "fmin": _nan_extreme(ops.minimum),
    "hypot": ops.hypot, "nextafter": ops.nextafter, "gcd": ops.gcd, "lcm": ops.lcm,
    "igamma": lambda x, y: _gammainc(x, y, upper=False), "igammac": lambda x, y: _gammainc(x, y, upper=True),
    # comparisons and selection
    "eq": ops.equal, "ne": ops.not_equal, "lt": ops.less, "le": ops.less_equal, "gt": ops.greater,
    "ge": ops.greater_equal, "logical_and": ops.logical_and, "logical_or": ops.logical_or,
    "logical_xor": ops.logical_xor, "where": ops.where,
})
