"""Elementwise ops: unary math, activations, arithmetic, comparisons, ``where`` and ``cast``.

All are layout-agnostic (rule ``agnostic``): every tensor input broadcasts to the result, which
is stored like its full-rank inputs.
"""

from __future__ import annotations

import math

import numpy as np

from ..types import TensorType, dtype_to_numpy
from .common import broadcast, broadcast_shapes, compare, same, with_dtype
from .schema import define

__all__ = ["BINARY", "COMPARE", "UNARY", "fused_activation"]

FAMILY = "elementwise"

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
_SPECIAL = "a special function numpy lacks: nothing folds it"


def _like(fn):
    """``fn`` computed in float64 where needed, returned in the input's dtype."""
    return lambda x: np.asarray(fn(x)).astype(x.dtype)


def _relu6_3(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


# IR op -> (numpy reference, TFLite builtins it becomes)
UNARY = {
    "neg": (np.negative, ("NEG",)), "abs": (np.abs, ("ABS",)), "exp": (np.exp, ("EXP",)),
    "expm1": (np.expm1, ()), "log": (np.log, ("LOG",)), "log1p": (np.log1p, ()),
    "log2": (np.log2, ()), "sqrt": (np.sqrt, ("SQRT",)), "rsqrt": (lambda x: 1 / np.sqrt(x), ("RSQRT",)),
    "sin": (np.sin, ("SIN",)), "cos": (np.cos, ("COS",)), "tan": (np.tan, ("SIN", "COS", "DIV")),
    "asin": (np.arcsin, ("ATAN2", "SQRT")), "acos": (np.arccos, ("ATAN2", "SQRT")), "atan": (np.arctan, ("ATAN2",)),
    "sinh": (np.sinh, ("EXP", "SELECT_V2")),
    "cosh": (np.cosh, ("EXP",)), "tanh": (np.tanh, ("TANH",)), "asinh": (np.arcsinh, ("LOG", "SQRT", "SELECT_V2")),
    "acosh": (np.arccosh, ("LOG", "SQRT", "SELECT_V2")),
    "atanh": (np.arctanh, ("LOG", "SELECT_V2")), "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), ("LOGISTIC",)),
    "relu": (lambda x: np.maximum(x, 0).astype(x.dtype), ("RELU",)),
    "silu": (lambda x: x / (1 + np.exp(-x)), ()),
    "hardswish": (lambda x: x * _relu6_3(x), ("HARD_SWISH",)),
    "hardsigmoid": (_relu6_3, ()),
    "erf": (_like(_erf), ("EXP", "SELECT_V2")), "floor": (np.floor, ("FLOOR",)), "ceil": (np.ceil, ("CEIL",)),
    "round": (np.round, ("ROUND",)), "trunc": (np.trunc, ()), "reciprocal": (lambda x: 1 / x, ("DIV",)),
    "sign": (np.sign, ("SIGN",)), "bitwise_not": (np.invert, ("NEG", "SUB", "LOGICAL_NOT")),
    "mish": (lambda x: x * np.tanh(np.log1p(np.exp(x))), ()),
    "square": (np.square, ("SQUARE",)), "identity": (lambda x: x, ()),
    "erfc": (_like(_erfc), ("EXP", "SELECT_V2")), "exp2": (np.exp2, ()), "log10": (np.log10, ()),
    "lgamma": (_like(_lgamma), ()), "i0": (np.i0, ()),
}
UNARY_WITHOUT_REFERENCE = ("erfinv", "digamma")  # special functions numpy lacks

# integers: 16-bit pieces (FLOOR_MOD) combined with BITWISE_XOR and RIGHT_SHIFT (TFLite has no AND / OR)
_BITWISE = ("BITWISE_XOR", "RIGHT_SHIFT", "FLOOR_MOD")

BINARY = {
    "add": (np.add, ("ADD",)), "sub": (np.subtract, ("SUB",)), "mul": (np.multiply, ("MUL",)),
    "div": (None, ("DIV",)), "floor_divide": (np.floor_divide, ("FLOOR_DIV", "FLOOR_MOD", "ROUND")),
    "remainder": (np.remainder, ("FLOOR_MOD",)), "fmod": (np.fmod, ()), "pow": (np.power, ("POW",)),
    "maximum": (np.maximum, ("MAXIMUM",)), "minimum": (np.minimum, ("MINIMUM",)), "atan2": (np.arctan2, ("ATAN2",)),
    "bitwise_and": (np.bitwise_and, _BITWISE + ("LOGICAL_AND",)),
    "bitwise_or": (np.bitwise_or, _BITWISE + ("LOGICAL_OR",)),
    "bitwise_xor": (np.bitwise_xor, _BITWISE + ("NOT_EQUAL",)),
    "copysign": (np.copysign, ()), "fmax": (np.fmax, ()), "fmin": (np.fmin, ()), "hypot": (np.hypot, ()),
    "nextafter": (np.nextafter, ()), "gcd": (np.gcd, ()), "lcm": (np.lcm, ()),
    "bitwise_left_shift": (np.left_shift, ()), "bitwise_right_shift": (np.right_shift, ("RIGHT_SHIFT",)),
}
BINARY_WITHOUT_REFERENCE = ("igamma", "igammac")  # regularised incomplete gamma: numpy lacks it

COMPARE = {
    "eq": (np.equal, ("EQUAL",)), "ne": (np.not_equal, ("NOT_EQUAL",)), "lt": (np.less, ("LESS",)),
    "le": (np.less_equal, ("LESS_EQUAL",)), "gt": (np.greater, ("GREATER",)),
    "ge": (np.greater_equal, ("GREATER_EQUAL",)), "logical_and": (np.logical_and, ("LOGICAL_AND",)),
    "logical_or": (np.logical_or, ("LOGICAL_OR",)), "logical_xor": (np.logical_xor, ("NOT_EQUAL",)),
}


def _div(x, y):
    if np.issubdtype(np.result_type(x, y), np.integer):
        raise NotImplementedError("integer true division")
    return np.divide(x, y)


def _gelu(x, approximate):
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        out = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        out = 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))
    return out.astype(x.dtype)


def _clamp(x, min, max):  # noqa: A002 - torch's names
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return np.clip(x, lo, hi).astype(x.dtype)


def _elu(x, alpha, scale, input_scale):
    return scale * np.where(x > 0, x, alpha * (np.exp(x * input_scale) - 1.0))


def _softplus(x, beta, threshold):
    return np.where(x * beta > threshold, x, np.log1p(np.exp(x * beta)) / beta)


def _polygamma_infer(types, a):
    return [types[0].replace(layout=None)]


_NOTES = {"hardswish": {"EdgeTPU": {"HARD_SWISH": "use ReLU / ReLU6 activations (hardswish has no Edge TPU kernel)"}}}


def _define_tables() -> None:
    for op, (fn, tfl) in UNARY.items():
        define(op, FAMILY, ["x"], same, "agnostic", reference=fn, tflite=tfl, delegate_notes=_NOTES.get(op))
    for op in UNARY_WITHOUT_REFERENCE:
        define(op, FAMILY, ["x"], same, "agnostic", no_reference=_SPECIAL)
    for op, (fn, tfl) in BINARY.items():
        define(op, FAMILY, ["x", "y"], broadcast, "agnostic", reference=fn or _div, tflite=tfl)
    for op in BINARY_WITHOUT_REFERENCE:
        define(op, FAMILY, ["x", "y"], broadcast, "agnostic", no_reference=_SPECIAL)
    for op, (fn, tfl) in COMPARE.items():
        define(op, FAMILY, ["x", "y"], compare, "agnostic", reference=fn, tflite=tfl)


_define_tables()
define("logical_not", FAMILY, ["x"], with_dtype("bool"), "agnostic", reference=np.logical_not,
       tflite=("LOGICAL_NOT",))
define("isnan", FAMILY, ["x"], with_dtype("bool"), "agnostic", reference=np.isnan)
define("isinf", FAMILY, ["x"], with_dtype("bool"), "agnostic", reference=np.isinf)
define("signbit", FAMILY, ["x"], with_dtype("bool"), "agnostic", reference=np.signbit,
       doc="the sign bit (True for -0.0)")
define("polygamma", FAMILY, ["x"], _polygamma_infer, "agnostic", {"n": ("int",)}, no_reference=_SPECIAL,
       doc="the n-th derivative of digamma")
define("gelu", FAMILY, ["x"], same, "agnostic", {"approximate": ("str", "none")}, reference=_gelu,
       tflite=("GELU",), delegate_notes={"all": {"GELU": "use nn.GELU(approximate='tanh') or another activation "
                                                          "the target has"}})
define("clamp", FAMILY, ["x"], same, "agnostic", {"min": ("float", None), "max": ("float", None)}, reference=_clamp,
       tflite=("MAXIMUM", "MINIMUM", "RELU6", "RELU_N1_TO_1"))
define("leaky_relu", FAMILY, ["x"], same, "agnostic", {"slope": ("float", 0.01)},
       reference=lambda x, slope: np.where(x >= 0, x, x * slope), tflite=("LEAKY_RELU",))
define("elu", FAMILY, ["x"], same, "agnostic",
       {"alpha": ("float", 1.0), "scale": ("float", 1.0), "input_scale": ("float", 1.0)}, reference=_elu,
       tflite=("ELU",))
define("softplus", FAMILY, ["x"], same, "agnostic", {"beta": ("float", 1.0), "threshold": ("float", 20.0)},
       reference=_softplus)
define("cast", FAMILY, ["x"], lambda t, a: [TensorType(t[0].shape, a["dtype"])], "agnostic", {"dtype": ("dtype",)},
       reference=lambda x, dtype: x.astype(dtype_to_numpy(dtype)), tflite=("CAST",),
       delegate_notes={"all": {"CAST": "avoid integer/bool round trips inside the model (e.g. masks as float "
                                       "multiplications)"}})
define("where", FAMILY, ["cond", "x", "y"],
       lambda t, a: [TensorType(broadcast_shapes(*(x.shape for x in t)), t[1].dtype)], "agnostic",
       reference=np.where, tflite=("SELECT_V2",))


def fused_activation(node) -> "str | None":
    """The TFLite fused activation (RELU, RELU6, RELU_N1_TO_1) that computes ``node`` -- a
    relu, or a clamp to [0, 6], [-1, 1] or [0, inf) -- else None."""
    if node.op == "relu":
        return "RELU"
    if node.op != "clamp":
        return None
    low, high = node.attrs["min"], node.attrs["max"]
    return {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, None): "RELU"}.get(
        (None if low is None else float(low), None if high is None else float(high)))
