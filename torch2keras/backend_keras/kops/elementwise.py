"""Kernels of the elementwise family: unary math and activations, arithmetic, comparisons,
``where``, ``cast``, and the special functions Keras lacks.

Special functions without a Keras op (lgamma, digamma, polygamma) are computed from series that
keep float32 accuracy, so that they also convert to plain TFLite builtins; so are the functions
whose TensorFlow op has no TFLite builtin (sinh, erf, int64 floor division and bitwise ops, ...).
The special functions the direct TFLite writer computes too are the formulas of
``ir/formulas.py``, evaluated here over ``keras.ops``.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
from keras import ops

from ...ir import formulas
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
# keeps float32 accuracy (small arguments take a Taylor series where the identity cancels); the
# special functions among them are below.

def _tan(x):
    return ops.sin(x) / ops.cos(x)


def _atan(x):
    return ops.arctan2(x, ops.ones_like(x))


def _asin(x):
    return ops.arctan2(x, ops.sqrt((1.0 - x) * (1.0 + x)))


def _acos(x):
    return ops.arctan2(ops.sqrt((1.0 - x) * (1.0 + x)), x)


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
# (those of ``formulas.FUNCTIONS``: the formulas of ir/formulas.py, which the direct TFLite writer
# evaluates as builtins, here over keras.ops; each kernel named as its IR op)


def _formula(name: str):
    """The formula over keras.ops. (sinh and cosh take no overflow bound: exp overflows to inf
    here, and the TFLite converter would write a constant inf as the largest float.)"""
    return functools.partial(getattr(formulas, name), ops)


_digamma = _formula("digamma")
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
    **{name: _formula(name) for name in formulas.FUNCTIONS},
    "identity": lambda x: x,
    "neg": ops.negative, "abs": ops.abs, "exp": ops.exp, "expm1": ops.expm1, "log": ops.log, "log1p": ops.log1p,
    "log2": ops.log2, "sqrt": ops.sqrt, "rsqrt": ops.rsqrt, "sin": ops.sin, "cos": ops.cos, "tan": _tan,
    "asin": _asin, "acos": _acos, "atan": _atan, "tanh": ops.tanh,
    "sigmoid": ops.sigmoid, "relu": ops.relu, "silu": ops.silu, "floor": ops.floor,
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
    "erfinv": ops.erfinv, "exp2": ops.exp2, "log10": ops.log10, "i0": ops.i0,
    "polygamma": _polygamma, "signbit": ops.signbit,
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
