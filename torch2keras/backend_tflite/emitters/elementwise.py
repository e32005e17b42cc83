"""Emitters of the elementwise IR ops: binary arithmetic (with fused activations), comparisons,
``where``, casts and unary math.

Elementwise ops run in any layout: the layout pass stores every full-rank operand as the result
and leaves lower-rank operands in PyTorch's order only where that broadcasts the same, so the
stored arrays broadcast as numpy does. Ops without a TFLite builtin are written as short
compositions of builtins (``silu`` = x * sigmoid(x), ``hardsigmoid`` = relu6(x + 3) / 6,
``trunc`` = sign(x) floor(|x|), ``asin`` = atan2(x, sqrt(1 - x^2)), softplus with torch's
threshold, ...). An op whose LiteRT kernel does not take the operands' type is refused by name.
"""

from __future__ import annotations

import math
from typing import Optional
import numpy as np

from ...ir import Node
from ...ir.types import dtype_to_numpy
from ..context import Context, DirectExportError, emitter
from ...ir.ops.elementwise import fused_activation
from ..schema import fb
from .common import binary

__all__: list[str] = []

# IR op -> builtin; ops with a fused activation take it from the plan
BINARY = {
    "add": "ADD", "sub": "SUB", "mul": "MUL", "div": "DIV", "pow": "POW", "maximum": "MAXIMUM", "minimum": "MINIMUM",
    "floor_divide": "FLOOR_DIV", "remainder": "FLOOR_MOD", "atan2": "ATAN2", "eq": "EQUAL", "ne": "NOT_EQUAL",
    "lt": "LESS", "le": "LESS_EQUAL", "gt": "GREATER", "ge": "GREATER_EQUAL", "logical_and": "LOGICAL_AND",
    "logical_or": "LOGICAL_OR",
}
_COMPARE = {"eq", "ne", "lt", "le", "gt", "ge"}
UNARY = {
    "neg": "NEG", "abs": "ABS", "exp": "EXP", "log": "LOG", "sqrt": "SQRT", "rsqrt": "RSQRT", "sin": "SIN",
    "cos": "COS", "tanh": "TANH", "sigmoid": "LOGISTIC", "relu": "RELU", "floor": "FLOOR", "ceil": "CEIL",
    "round": "ROUND", "sign": "SIGN", "square": "SQUARE", "hardswish": "HARD_SWISH",
    "logical_not": "LOGICAL_NOT",
}


_F32, _INTS = {"float32"}, {"int32", "int16", "int8", "uint8"}
# the operand types LiteRT's kernels take, for the builtins whose list is narrower than the IR's dtypes
KERNEL_TYPES = {
    "DIV": _F32 | {"int32", "uint8"}, "FLOOR_DIV": _F32 | _INTS, "POW": _F32 | {"int32"},
    "FLOOR_MOD": _F32 | _INTS | {"int64"}, "ABS": _F32 | _INTS, "SIGN": _F32 | {"float64", "int32"},
    "BITWISE_XOR": {"int8", "int16", "int32", "uint8", "uint16", "uint32"}, "ATAN2": _F32, "SQUARE": _F32, "ROUND": _F32, "FLOOR": _F32, "CEIL": _F32,
    **{op: _F32 for op in ("EXP", "LOG", "SQRT", "RSQRT", "SIN", "COS", "TANH", "LOGISTIC", "HARD_SWISH", "GELU",
                           "LEAKY_RELU", "ELU", "RELU", "RELU6", "RELU_N1_TO_1")},
}


def require_kernel(ctx: Context, node: Node, op: str, tensors) -> None:
    """A ``DirectExportError`` where LiteRT has no ``op`` kernel for the operands' type."""
    allowed = KERNEL_TYPES.get(op)
    dtype = ctx.dtype(tensors[0]).name
    if allowed is not None and dtype not in allowed:
        raise DirectExportError(node, f"on {dtype} values has no TFLite kernel ({op} takes {', '.join(sorted(allowed))})")


def _operands(ctx: Context, node: Node) -> list[int]:
    """The tensors of a binary node's inputs, cast to one type (the result's, for arithmetic)."""
    tensors = [ctx.tensor(v) for v in node.inputs]
    if node.op in _COMPARE:
        common = np.result_type(*[ctx.dtype(t) for t in tensors])
    elif node.op in ("logical_and", "logical_or"):
        common = np.dtype(np.bool_)
    else:
        common = dtype_to_numpy(node.output.type.dtype)
    return [ctx.cast(t, common, f"cast{i}") for i, t in enumerate(tensors)]


# builtins whose LiteRT kernel does not broadcast (ATAN2 takes its first operand's shape and reads
# both as flat arrays: operands of one rank and different shapes give wrong numbers, not an error)
_NO_BROADCAST = {"ATAN2"}


def _broadcast_to(ctx: Context, t: int, shape: list[int], suffix: str) -> int:
    """``t`` broadcast to ``shape`` (BROADCAST_TO), or ``t`` where it has that shape."""
    if list(ctx.shape(t)) == list(shape):
        return t
    out = ctx.temp(shape, ctx.dtype(t), suffix)
    ctx.op("BROADCAST_TO", [t, ctx.ints(list(shape), f"{suffix}_shape")], [out])
    return out


@emitter(*BINARY)
def emit_binary(ctx: Context, node: Node) -> int:
    op = BINARY[node.op]
    x, y = _operands(ctx, node)
    require_kernel(ctx, node, op, [x])
    if op in _NO_BROADCAST:
        shape = list(node.output.type.physical_shape)
        x, y = _broadcast_to(ctx, x, shape, "broadcast0"), _broadcast_to(ctx, y, shape, "broadcast1")
    return binary(ctx, op, x, y, ctx.result(node), ctx.activation(node))


@emitter(*UNARY)
def emit_unary(ctx: Context, node: Node) -> int:
    x = ctx.tensor(node.inputs[0])
    if node.op == "logical_not":
        x = ctx.cast(x, np.bool_)
    require_kernel(ctx, node, UNARY[node.op], [x])
    out = ctx.result(node)
    ctx.op(UNARY[node.op], [x], [out])
    return out


@emitter("identity")
def emit_identity(ctx: Context, node: Node) -> int:
    return ctx.tensor(node.inputs[0])


@emitter("cast")
def emit_cast(ctx: Context, node: Node) -> int:
    x = ctx.tensor(node.inputs[0])
    out = ctx.result(node)
    if ctx.dtype(x) == ctx.dtype(out):
        return x
    options = fb.CastOptionsT()
    options.inDataType, options.outDataType = ctx.sub.type(x), ctx.sub.type(out)
    ctx.op("CAST", [x], [out], options)
    return out


@emitter("where")
def emit_where(ctx: Context, node: Node) -> int:
    cond, x, y = (ctx.tensor(v) for v in node.inputs)
    dtype = dtype_to_numpy(node.output.type.dtype)
    out = ctx.result(node)
    ctx.op("SELECT_V2", [ctx.cast(cond, np.bool_), ctx.cast(x, dtype, "cast1"), ctx.cast(y, dtype, "cast2")], [out])
    return out


def _float_input(ctx: Context, node: Node) -> int:
    """The node's input, which its TFLite form computes in float32 only."""
    x = ctx.tensor(node.inputs[0])
    require_kernel(ctx, node, "EXP", [x])
    return x


def _float_scalar(ctx: Context, node: Node, value: float, suffix: str) -> int:
    return ctx.scalar(value, dtype_to_numpy(node.output.type.dtype), suffix)


def _unary_temp(ctx: Context, node: Node, op: str, x: int, suffix: str) -> int:
    out = ctx.temp(ctx.shape(x), ctx.dtype(x), suffix)
    ctx.op(op, [x], [out])
    return out


@emitter("gelu")
def emit_gelu(ctx: Context, node: Node) -> int:
    options = fb.GeluOptionsT()
    options.approximate = node.attrs["approximate"] == "tanh"
    out = ctx.result(node)
    ctx.op("GELU", [_float_input(ctx, node)], [out], options)
    return out


@emitter("leaky_relu")
def emit_leaky_relu(ctx: Context, node: Node) -> int:
    options = fb.LeakyReluOptionsT()
    options.alpha = float(node.attrs["slope"])
    out = ctx.result(node)
    ctx.op("LEAKY_RELU", [_float_input(ctx, node)], [out], options)
    return out


@emitter("elu")
def emit_elu(ctx: Context, node: Node) -> int:
    """ELU; with other alpha / scale / input_scale (selu, celu), which the builtin does not take:
    scale * where(x > 0, x, alpha * (exp(input_scale * x) - 1))."""
    a = node.attrs
    x = _float_input(ctx, node)
    out = ctx.result(node)
    if (a["alpha"], a["scale"], a["input_scale"]) == (1.0, 1.0, 1.0):
        ctx.op("ELU", [x], [out])
        return out
    e = _temp_op(ctx, "EXP", [_mul_scalar(ctx, node, x, a["input_scale"], "scaled")], x, "exp")
    negative = binary(ctx, "SUB", e, _float_scalar(ctx, node, 1.0, "one"), ctx.temp(ctx.shape(x), np.float32, "expm1"))
    negative = _mul_scalar(ctx, node, negative, a["alpha"], "alpha")
    positive = ctx.temp(ctx.shape(x), np.bool_, "positive")
    ctx.op("GREATER", [x, _float_scalar(ctx, node, 0.0, "zero")], [positive])
    if a["scale"] == 1.0:
        ctx.op("SELECT_V2", [positive, x, negative], [out])
        return out
    chosen = ctx.temp(ctx.shape(x), np.float32, "chosen")
    ctx.op("SELECT_V2", [positive, x, negative], [chosen])
    return _mul_scalar(ctx, node, chosen, a["scale"], "scale", out=out)


@emitter("clamp")
def emit_clamp(ctx: Context, node: Node) -> int:
    x = ctx.tensor(node.inputs[0])
    out = ctx.result(node)
    act = fused_activation(node) if ctx.dtype(x) == np.float32 else None
    if act is not None:
        ctx.op(act, [x], [out])
        return out
    low, high = node.attrs["min"], node.attrs["max"]
    if low is not None and high is not None:
        lower = ctx.temp(ctx.shape(x), ctx.dtype(x), "max")
        ctx.op("MAXIMUM", [x, _float_scalar(ctx, node, low, "min")], [lower])
        ctx.op("MINIMUM", [lower, _float_scalar(ctx, node, high, "max")], [out])
    elif low is not None:
        ctx.op("MAXIMUM", [x, _float_scalar(ctx, node, low, "min")], [out])
    elif high is not None:
        ctx.op("MINIMUM", [x, _float_scalar(ctx, node, high, "max")], [out])
    else:
        return x
    return out


@emitter("silu")
def emit_silu(ctx: Context, node: Node) -> int:
    x = _float_input(ctx, node)
    gate = _unary_temp(ctx, node, "LOGISTIC", x, "sigmoid")
    return binary(ctx, "MUL", x, gate, ctx.result(node))


@emitter("hardsigmoid")
def emit_hardsigmoid(ctx: Context, node: Node) -> int:
    """relu6(x + 3) / 6: an ADD with a fused RELU6 and a MUL (the MUL alone where the + 3 and
    the relu6 went into the conv or linear before it, see plan.py)."""
    x = _float_input(ctx, node)
    if node.id in ctx.plan.scale_only:
        return binary(ctx, "MUL", x, _float_scalar(ctx, node, 1.0 / 6.0, "sixth"), ctx.result(node))
    shifted = ctx.temp(ctx.shape(x), ctx.dtype(x), "add3")
    binary(ctx, "ADD", x, _float_scalar(ctx, node, 3.0, "three"), shifted, fb.ActivationFunctionType.RELU6)
    return binary(ctx, "MUL", shifted, _float_scalar(ctx, node, 1.0 / 6.0, "sixth"), ctx.result(node))


@emitter("reciprocal")
def emit_reciprocal(ctx: Context, node: Node) -> int:
    return binary(ctx, "DIV", _float_scalar(ctx, node, 1.0, "one"), ctx.tensor(node.inputs[0]), ctx.result(node))


@emitter("log2", "log10")
def emit_log_base(ctx: Context, node: Node) -> int:
    x = _float_input(ctx, node)
    ln = _unary_temp(ctx, node, "LOG", x, "ln")
    base = 2.0 if node.op == "log2" else 10.0
    return binary(ctx, "MUL", ln, _float_scalar(ctx, node, 1.0 / math.log(base), "inv_ln_base"), ctx.result(node))


@emitter("expm1", "log1p")
def emit_shifted(ctx: Context, node: Node) -> int:
    x = _float_input(ctx, node)
    one = _float_scalar(ctx, node, 1.0, "one")
    if node.op == "expm1":
        return binary(ctx, "SUB", _unary_temp(ctx, node, "EXP", x, "exp"), one, ctx.result(node))
    shifted = ctx.temp(ctx.shape(x), ctx.dtype(x), "add1")
    binary(ctx, "ADD", x, one, shifted)
    out = ctx.result(node)
    ctx.op("LOG", [shifted], [out])
    return out


@emitter("isnan")
def emit_isnan(ctx: Context, node: Node) -> int:
    x = ctx.tensor(node.inputs[0])
    out = ctx.result(node)
    ctx.op("NOT_EQUAL", [x, x], [out])
    return out


@emitter("isinf")
def emit_isinf(ctx: Context, node: Node) -> int:
    x = ctx.tensor(node.inputs[0])
    magnitude = _unary_temp(ctx, node, "ABS", x, "abs")
    out = ctx.result(node)
    ctx.op("EQUAL", [magnitude, ctx.scalar(np.inf, ctx.dtype(x), "inf")], [out])
    return out


# ---------------------------------------------------------------------------- compositions of builtins


def _temp_op(ctx: Context, op: str, inputs: list[int], like: int, suffix: str, options=None) -> int:
    out = ctx.temp(ctx.shape(like), ctx.dtype(like), suffix)
    ctx.op(op, inputs, [out], options)
    return out


def _mul_scalar(ctx: Context, node: Node, x: int, value: float, suffix: str, out=None) -> int:
    return binary(ctx, "MUL", x, _float_scalar(ctx, node, value, f"{suffix}_factor"),
                  out if out is not None else ctx.temp(ctx.shape(x), ctx.dtype(x), suffix))


def _softplus(ctx: Context, node: Node, x: int, beta: float, threshold: float, out: int) -> int:
    """where(beta x > threshold, x, log(1 + exp(beta x)) / beta): torch's softplus."""
    z = _mul_scalar(ctx, node, x, beta, "beta_x") if beta != 1.0 else x
    soft = _temp_op(ctx, "LOG", [binary(ctx, "ADD", _temp_op(ctx, "EXP", [z], x, "exp"),
                                        _float_scalar(ctx, node, 1.0, "one"), ctx.temp(ctx.shape(x), np.float32,
                                                                                      "one_plus_exp"))], x, "log")
    if beta != 1.0:
        soft = _mul_scalar(ctx, node, soft, 1.0 / beta, "over_beta")
    large = ctx.temp(ctx.shape(x), np.bool_, "linear_region")
    ctx.op("GREATER", [z, _float_scalar(ctx, node, threshold, "threshold")], [large])
    ctx.op("SELECT_V2", [large, x, soft], [out])
    return out


@emitter("softplus")
def emit_softplus(ctx: Context, node: Node) -> int:
    x = _float_input(ctx, node)
    return _softplus(ctx, node, x, float(node.attrs["beta"]), float(node.attrs["threshold"]), ctx.result(node))


@emitter("mish")
def emit_mish(ctx: Context, node: Node) -> int:
    """x * tanh(softplus(x))."""
    x = _float_input(ctx, node)
    soft = _softplus(ctx, node, x, 1.0, 20.0, ctx.temp(ctx.shape(x), np.float32, "softplus"))
    return binary(ctx, "MUL", x, _temp_op(ctx, "TANH", [soft], x, "tanh"), ctx.result(node))


def _trunc(ctx: Context, x: int, out: int) -> int:
    """sign(x) * floor(|x|)."""
    magnitude = _temp_op(ctx, "FLOOR", [_temp_op(ctx, "ABS", [x], x, "abs")], x, "floor_abs")
    return binary(ctx, "MUL", _temp_op(ctx, "SIGN", [x], x, "sign"), magnitude, out)


@emitter("trunc")
def emit_trunc(ctx: Context, node: Node) -> int:
    return _trunc(ctx, _float_input(ctx, node), ctx.result(node))


@emitter("fmod")
def emit_fmod(ctx: Context, node: Node) -> int:
    """x - trunc(x / y) * y (the remainder with x's sign)."""
    x, y = _operands(ctx, node)
    require_kernel(ctx, node, "EXP", [x])
    out_shape = list(node.output.type.physical_shape)
    quotient = binary(ctx, "DIV", x, y, ctx.temp(out_shape, np.float32, "quotient"))
    whole = _trunc(ctx, quotient, ctx.temp(out_shape, np.float32, "whole"))
    return binary(ctx, "SUB", x, binary(ctx, "MUL", whole, y, ctx.temp(out_shape, np.float32, "multiple")),
                  ctx.result(node))


@emitter("exp2")
def emit_exp2(ctx: Context, node: Node) -> int:
    out = ctx.result(node)
    ctx.op("EXP", [_mul_scalar(ctx, node, _float_input(ctx, node), math.log(2.0), "ln2_x")], [out])
    return out


@emitter("tan")
def emit_tan(ctx: Context, node: Node) -> int:
    x = _float_input(ctx, node)
    return binary(ctx, "DIV", _temp_op(ctx, "SIN", [x], x, "sin"), _temp_op(ctx, "COS", [x], x, "cos"),
                  ctx.result(node))


_SINH_SERIES = [1.0, 1 / 6, 1 / 120, 1 / 5040, 1 / 362880]
_HYPERBOLIC_OVERFLOW = 89.41599  # log(2 * float32 max): above it sinh and cosh overflow (EXP may saturate)


@emitter("sinh", "cosh")
def emit_hyperbolic(ctx: Context, node: Node) -> int:
    """a = exp(|x| - log 2); cosh = a + 1/(4a), sinh = sign(x) (a - 1/(4a)) and its Taylor series
    below |x| = 0.5 (where the difference cancels; signed zeros kept); +-inf beyond 89.416 and NaN
    for NaN (EXP's kernels neither overflow to inf nor keep NaN everywhere)."""
    x = _float_input(ctx, node)
    shape = ctx.shape(x)
    ax = _temp_op(ctx, "ABS", [x], x, "abs")
    a = _temp_op(ctx, "EXP", [binary(ctx, "SUB", ax, _float_scalar(ctx, node, math.log(2.0), "ln2"),
                                     ctx.temp(shape, np.float32, "abs_minus_ln2"))], x, "half_exp")
    quarter = binary(ctx, "DIV", _float_scalar(ctx, node, 0.25, "quarter"), a, ctx.temp(shape, np.float32, "inverse"))
    big = binary(ctx, "SUB" if node.op == "sinh" else "ADD", a, quarter, ctx.temp(shape, np.float32, "big"))
    infinity = _float_scalar(ctx, node, np.inf, "inf")
    if node.op == "sinh":
        sign = _temp_op(ctx, "SIGN", [x], x, "sign")
        big = binary(ctx, "MUL", sign, big, ctx.temp(shape, np.float32, "signed"))
        signed = ctx.temp(shape, np.float32, "signed_inf")  # (a SELECT: MUL clamps to the float32 range)
        ctx.op("SELECT_V2", [_below(ctx, node, x, 0.0, "negative"), _float_scalar(ctx, node, -np.inf, "minus_inf"),
                             infinity], [signed])
        infinity = signed
    overflow = ctx.temp(shape, np.bool_, "overflow")
    ctx.op("GREATER", [ax, _float_scalar(ctx, node, _HYPERBOLIC_OVERFLOW, "overflow_bound")], [overflow])
    value = ctx.temp(shape, np.float32, "value")
    ctx.op("SELECT_V2", [overflow, infinity, big], [value])
    if node.op == "sinh":
        small = ctx.temp(shape, np.float32, "small_or_not")
        ctx.op("SELECT_V2", [_below(ctx, node, ax, 0.5, "small"), _odd_series(ctx, node, x, _SINH_SERIES, "series"),
                             value], [small])
        value = small
    nan = ctx.temp(shape, np.bool_, "nan")
    ctx.op("NOT_EQUAL", [x, x], [nan])
    out = ctx.result(node)
    ctx.op("SELECT_V2", [nan, x, value], [out])
    return out


@emitter("atan", "asin", "acos")
def emit_inverse_trig(ctx: Context, node: Node) -> int:
    """atan = ATAN2(x, 1), asin = ATAN2(x, sqrt(1 - x^2)), acos = ATAN2(sqrt(1 - x^2), x)."""
    x = _float_input(ctx, node)
    out = ctx.result(node)
    if node.op == "atan":  # (ATAN2 does not broadcast: a FILL of ones)
        ones = ctx.temp(ctx.shape(x), np.float32, "ones")
        ctx.op("FILL", [ctx.ints(list(ctx.shape(x)), "shape"), _float_scalar(ctx, node, 1.0, "one")], [ones])
        ctx.op("ATAN2", [x, ones], [out])
        return out
    one_minus = binary(ctx, "SUB", _float_scalar(ctx, node, 1.0, "one"), _temp_op(ctx, "SQUARE", [x], x, "square"),
                       ctx.temp(ctx.shape(x), np.float32, "one_minus_square"))
    root = _temp_op(ctx, "SQRT", [one_minus], x, "root")
    ctx.op("ATAN2", [x, root] if node.op == "asin" else [root, x], [out])
    return out


@emitter("hypot")
def emit_hypot(ctx: Context, node: Node) -> int:
    x, y = _operands(ctx, node)
    require_kernel(ctx, node, "EXP", [x])
    shape = list(node.output.type.physical_shape)
    total = binary(ctx, "ADD", _temp_op(ctx, "SQUARE", [x], x, "x_square"), _temp_op(ctx, "SQUARE", [y], y, "y_square"),
                   ctx.temp(shape, np.float32, "sum"))
    out = ctx.result(node)
    ctx.op("SQRT", [total], [out])
    return out


_BOOL_BITWISE = {"bitwise_and": "LOGICAL_AND", "bitwise_or": "LOGICAL_OR", "bitwise_xor": "NOT_EQUAL"}


@emitter("bitwise_and", "bitwise_or", "bitwise_xor")
def emit_bitwise(ctx: Context, node: Node) -> int:
    """On bools, the logical builtins (xor: NOT_EQUAL); on integers, BITWISE_XOR (8 to 32 bits;
    TFLite has no AND / OR of integers)."""
    x, y = _operands(ctx, node)
    out = ctx.result(node)
    if ctx.dtype(x) == np.bool_:
        ctx.op(_BOOL_BITWISE[node.op], [x, y], [out])
        return out
    if node.op != "bitwise_xor":
        raise DirectExportError(node, f"on {ctx.dtype(x)} values has no TFLite builtin (bools only)")
    require_kernel(ctx, node, "BITWISE_XOR", [x])
    return binary(ctx, "BITWISE_XOR", x, y, out)


@emitter("logical_xor")
def emit_logical_xor(ctx: Context, node: Node) -> int:
    x, y = (ctx.cast(ctx.tensor(v), np.bool_, f"bool{k}") for k, v in enumerate(node.inputs))
    out = ctx.result(node)
    ctx.op("NOT_EQUAL", [x, y], [out])
    return out


# ---------------------------------------------------------------------------- special functions
# (the forms of backend_keras/kops/elementwise.py, in builtins: a Taylor series where the
# identity cancels, Abramowitz and Stegun 7.1.26 for erfc, |error| < 1.5e-7)

_ERFC_P = 0.3275911
_ERFC_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_ERF_SERIES = [c * 2 / math.sqrt(math.pi) for c in (1.0, -1 / 3, 1 / 10, -1 / 42, 1 / 216, -1 / 1320, 1 / 9360)]
_ASINH_SERIES = [1.0, -1 / 6, 3 / 40, -15 / 336, 105 / 3456]
_LARGE = 1e10  # above it, x * x may overflow: asinh takes log(2x)


def _horner(ctx: Context, node: Node, t: int, coefs, suffix: str) -> int:
    """c0 + c1 t + c2 t^2 + ... (MUL and ADD of scalar constants)."""
    acc = _mul_scalar(ctx, node, t, coefs[-1], f"{suffix}_{len(coefs) - 1}")
    for k in range(len(coefs) - 2, -1, -1):
        acc = binary(ctx, "ADD", acc, _float_scalar(ctx, node, coefs[k], f"{suffix}_c{k}"),
                     ctx.temp(ctx.shape(t), np.float32, f"{suffix}_add{k}"))
        if k:
            acc = binary(ctx, "MUL", acc, t, ctx.temp(ctx.shape(t), np.float32, f"{suffix}_mul{k}"))
    return acc


def _odd_series(ctx: Context, node: Node, x: int, coefs, suffix: str) -> int:
    """x (c0 + c1 x^2 + c2 x^4 + ...)."""
    square = _temp_op(ctx, "SQUARE", [x], x, f"{suffix}_square")
    return binary(ctx, "MUL", x, _horner(ctx, node, square, coefs, suffix), ctx.temp(ctx.shape(x), np.float32,
                                                                                      f"{suffix}_odd"))


def _clip(ctx: Context, node: Node, x: int, low: float, high: float, suffix: str) -> int:
    above = binary(ctx, "MAXIMUM", x, _float_scalar(ctx, node, low, f"{suffix}_low"),
                   ctx.temp(ctx.shape(x), np.float32, f"{suffix}_max"))
    return binary(ctx, "MINIMUM", above, _float_scalar(ctx, node, high, f"{suffix}_high"),
                  ctx.temp(ctx.shape(x), np.float32, f"{suffix}_min"))


def _below(ctx: Context, node: Node, x: int, bound: float, suffix: str) -> int:
    flags = ctx.temp(ctx.shape(x), np.bool_, suffix)
    ctx.op("LESS", [x, _float_scalar(ctx, node, bound, f"{suffix}_bound")], [flags])
    return flags


def _erfc_tail(ctx: Context, node: Node, ax: int) -> int:
    """erfc(|x|) for |x| >= 0.5: t P(t) exp(-x^2), t = 1 / (1 + p |x|)."""
    shape = ctx.shape(ax)
    ax = binary(ctx, "MAXIMUM", ax, _float_scalar(ctx, node, 0.5, "half"), ctx.temp(shape, np.float32, "tail_x"))
    denominator = binary(ctx, "ADD", _mul_scalar(ctx, node, ax, _ERFC_P, "p_x"), _float_scalar(ctx, node, 1.0, "one"),
                         ctx.temp(shape, np.float32, "one_plus_p_x"))
    t = binary(ctx, "DIV", _float_scalar(ctx, node, 1.0, "one_t"), denominator, ctx.temp(shape, np.float32, "t"))
    poly = binary(ctx, "MUL", _horner(ctx, node, t, _ERFC_A, "poly"), t, ctx.temp(shape, np.float32, "t_poly"))
    gauss = _temp_op(ctx, "EXP", [_temp_op(ctx, "NEG", [_temp_op(ctx, "SQUARE", [ax], ax, "x2")], ax, "neg_x2")],
                     ax, "gauss")
    return binary(ctx, "MUL", poly, gauss, ctx.temp(shape, np.float32, "tail"))


@emitter("erf", "erfc")
def emit_erf(ctx: Context, node: Node) -> int:
    """|x| < 0.5: the Taylor series of erf; else 1 - erfc(|x|) with x's sign (erfc: the tail, or
    2 - tail for negative x)."""
    x = _float_input(ctx, node)
    shape = ctx.shape(x)
    ax = _temp_op(ctx, "ABS", [x], x, "abs")
    series = _odd_series(ctx, node, _clip(ctx, node, x, -0.5, 0.5, "clip"), _ERF_SERIES, "series")
    tail = _erfc_tail(ctx, node, ax)
    one = _float_scalar(ctx, node, 1.0, "one_minus")
    if node.op == "erf":
        large = binary(ctx, "MUL", _temp_op(ctx, "SIGN", [x], x, "sign"),
                       binary(ctx, "SUB", one, tail, ctx.temp(shape, np.float32, "one_minus_tail")),
                       ctx.temp(shape, np.float32, "signed"))
        small = series
    else:
        negative = binary(ctx, "SUB", _float_scalar(ctx, node, 2.0, "two"), tail, ctx.temp(shape, np.float32, "two_minus"))
        large = ctx.temp(shape, np.float32, "large")
        ctx.op("SELECT_V2", [_below(ctx, node, x, 0.0, "negative"), negative, tail], [large])
        small = binary(ctx, "SUB", one, series, ctx.temp(shape, np.float32, "one_minus_series"))
    out = ctx.result(node)
    ctx.op("SELECT_V2", [_below(ctx, node, ax, 0.5, "small"), small, large], [out])
    return out


@emitter("asinh")
def emit_asinh(ctx: Context, node: Node) -> int:
    """sign(x) log(|x| + sqrt(x^2 + 1)); log(2 |x|) above 1e10; the Taylor series below 0.125."""
    x = _float_input(ctx, node)
    shape = ctx.shape(x)
    ax = _temp_op(ctx, "ABS", [x], x, "abs")
    capped = binary(ctx, "MINIMUM", ax, _float_scalar(ctx, node, _LARGE, "large"), ctx.temp(shape, np.float32, "capped"))
    radicand = binary(ctx, "ADD", _temp_op(ctx, "SQUARE", [capped], x, "square"), _float_scalar(ctx, node, 1.0, "one"),
                      ctx.temp(shape, np.float32, "radicand"))
    mid = _temp_op(ctx, "LOG", [binary(ctx, "ADD", ax, _temp_op(ctx, "SQRT", [radicand], x, "root"),
                                       ctx.temp(shape, np.float32, "sum"))], x, "mid")
    big = binary(ctx, "ADD", _temp_op(ctx, "LOG", [ax], x, "log_abs"), _float_scalar(ctx, node, math.log(2.0), "ln2"),
                 ctx.temp(shape, np.float32, "big"))
    magnitude = ctx.temp(shape, np.float32, "magnitude")
    huge = ctx.temp(shape, np.bool_, "huge")
    ctx.op("GREATER", [ax, _float_scalar(ctx, node, _LARGE, "large_bound")], [huge])
    ctx.op("SELECT_V2", [huge, big, mid], [magnitude])
    signed = binary(ctx, "MUL", _temp_op(ctx, "SIGN", [x], x, "sign"), magnitude, ctx.temp(shape, np.float32, "signed"))
    out = ctx.result(node)
    ctx.op("SELECT_V2", [_below(ctx, node, ax, 0.125, "small"), _odd_series(ctx, node, x, _ASINH_SERIES, "series"),
                         signed], [out])
    return out


_ATANH_SERIES = [1.0, 1 / 3, 1 / 5, 1 / 7, 1 / 9, 1 / 11]


@emitter("acosh")
def emit_acosh(ctx: Context, node: Node) -> int:
    """log(x + sqrt((x - 1)(x + 1))); log(x) + log 2 above 1e10 (where the product may overflow).
    Below 1 the square root is NaN, as torch's result."""
    x = _float_input(ctx, node)
    shape = ctx.shape(x)
    radicand = binary(ctx, "MUL", binary(ctx, "SUB", x, _float_scalar(ctx, node, 1.0, "one"),
                                         ctx.temp(shape, np.float32, "x_minus_1")),
                      binary(ctx, "ADD", x, _float_scalar(ctx, node, 1.0, "one_plus"),
                             ctx.temp(shape, np.float32, "x_plus_1")), ctx.temp(shape, np.float32, "radicand"))
    mid = _temp_op(ctx, "LOG", [binary(ctx, "ADD", x, _temp_op(ctx, "SQRT", [radicand], x, "root"),
                                       ctx.temp(shape, np.float32, "sum"))], x, "mid")
    big = binary(ctx, "ADD", _temp_op(ctx, "LOG", [x], x, "log_x"), _float_scalar(ctx, node, math.log(2.0), "ln2"),
                 ctx.temp(shape, np.float32, "big"))
    huge = ctx.temp(shape, np.bool_, "huge")
    ctx.op("GREATER", [x, _float_scalar(ctx, node, _LARGE, "large_bound")], [huge])
    out = ctx.result(node)
    ctx.op("SELECT_V2", [huge, big, mid], [out])
    return out


@emitter("atanh")
def emit_atanh(ctx: Context, node: Node) -> int:
    """(log(1 + x) - log(1 - x)) / 2; the Taylor series below |x| = 0.125 (where the difference
    of logs cancels). +-inf at +-1, NaN beyond, as torch's result."""
    x = _float_input(ctx, node)
    shape = ctx.shape(x)
    one = _float_scalar(ctx, node, 1.0, "one")
    up = _temp_op(ctx, "LOG", [binary(ctx, "ADD", x, one, ctx.temp(shape, np.float32, "one_plus_x"))], x, "log_up")
    down = _temp_op(ctx, "LOG", [binary(ctx, "SUB", one, x, ctx.temp(shape, np.float32, "one_minus_x"))], x, "log_down")
    logs = _mul_scalar(ctx, node, binary(ctx, "SUB", up, down, ctx.temp(shape, np.float32, "difference")), 0.5, "half")
    out = ctx.result(node)
    small = _below(ctx, node, _temp_op(ctx, "ABS", [x], x, "abs"), 0.125, "small")
    ctx.op("SELECT_V2", [small, _odd_series(ctx, node, x, _ATANH_SERIES, "series"), logs], [out])
    return out


class _Expr:
    """A float tensor of the node being emitted, with arithmetic written as builtins (scalars
    become constants): the special functions below read as their Keras forms
    (backend_keras/kops/elementwise.py)."""

    def __init__(self, ctx: Context, node: Node, tensor: int) -> None:
        self.ctx, self.node, self.t = ctx, node, tensor

    def _operand(self, other) -> int:
        return other.t if isinstance(other, _Expr) else _float_scalar(self.ctx, self.node, float(other), "c")

    def _binary(self, op: str, a: int, b: int, dtype=np.float32) -> "_Expr":
        out = self.ctx.temp(self.ctx.shape(self.t), dtype, op.lower())
        if dtype == np.float32:
            binary(self.ctx, op, a, b, out)
        else:
            self.ctx.op(op, [a, b], [out])
        return _Expr(self.ctx, self.node, out)

    def __add__(self, other): return self._binary("ADD", self.t, self._operand(other))
    def __radd__(self, other): return self._binary("ADD", self._operand(other), self.t)
    def __sub__(self, other): return self._binary("SUB", self.t, self._operand(other))
    def __rsub__(self, other): return self._binary("SUB", self._operand(other), self.t)
    def __mul__(self, other): return self._binary("MUL", self.t, self._operand(other))
    def __rmul__(self, other): return self._binary("MUL", self._operand(other), self.t)
    def __truediv__(self, other): return self._binary("DIV", self.t, self._operand(other))
    def __rtruediv__(self, other): return self._binary("DIV", self._operand(other), self.t)

    def compare(self, op: str, other) -> "_Expr":
        return self._binary(op, self.t, self._operand(other), np.bool_)

    def both(self, other: "_Expr", op: str = "LOGICAL_AND") -> "_Expr":
        return self._binary(op, self.t, other.t, np.bool_)

    def apply(self, op: str) -> "_Expr":
        return _Expr(self.ctx, self.node, _temp_op(self.ctx, op, [self.t], self.t, op.lower()))

    def where(self, then, otherwise, out: Optional[int] = None) -> "_Expr":
        """``then`` where this bool tensor holds, else ``otherwise``."""
        t = self.ctx.temp(self.ctx.shape(self.t), np.float32, "select") if out is None else out
        self.ctx.op("SELECT_V2", [self.t, self._operand(then), self._operand(otherwise)], [t])
        return _Expr(self.ctx, self.node, t)


_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7)


def _lgamma_right(z: _Expr) -> _Expr:
    """log|Gamma(z)| for z >= 0.5 (Lanczos, g = 7)."""
    z = z - 1.0
    a = 1.0 / (z + 1.0) * _LANCZOS[1] + _LANCZOS[0]
    for i in range(2, 9):
        a = a + (1.0 / (z + float(i))) * _LANCZOS[i]
    t = z + 7.5
    return (z + 0.5) * t.apply("LOG") + (0.5 * math.log(2 * math.pi)) - t + a.apply("LOG")


def _digamma_right(y: _Expr) -> _Expr:
    """digamma(y) for y >= 0.5: the recurrence up by 6, then the asymptotic series."""
    acc = 1.0 / y
    for i in range(1, 6):
        acc = acc + 1.0 / (y + float(i))
    z = y + 6.0
    iz2 = 1.0 / (z * z)
    series = iz2 * (1.0 / 12 - iz2 * (1.0 / 120 - iz2 * (1.0 / 252 - iz2 * (1.0 / 240 - iz2 * (1.0 / 132)))))
    return z.apply("LOG") - 0.5 / z - series - acc


@emitter("lgamma", "digamma")
def emit_gamma_logs(ctx: Context, node: Node) -> int:
    """lgamma: Lanczos (g = 7) above 0.5, the reflection log(pi / |sin(pi x)|) - lgamma(1 - x)
    below, +inf at the poles and infinities. digamma: the recurrence and asymptotic series above
    0.5, the reflection psi(1 - x) - pi cot(pi x) below; NaN at the negative integers, -inf at 0,
    +inf at +inf. (The Keras forms, in builtins; pi x taken of x - floor(x) to keep sin exact.)"""
    x = _Expr(ctx, node, _float_input(ctx, node))
    reflect = x.compare("LESS", 0.5)
    y = reflect.where(1.0 - x, x)
    angle = (x - x.apply("FLOOR")) * math.pi
    integer = x.compare("EQUAL", x.apply("FLOOR"))
    out = ctx.result(node)
    if node.op == "lgamma":
        lg = _lgamma_right(y)
        value = reflect.where(math.log(math.pi) - angle.apply("SIN").apply("ABS").apply("LOG") - lg, lg)
        pole = x.compare("LESS_EQUAL", 0.0).both(integer).both(x.apply("ABS").compare("EQUAL", np.inf), "LOGICAL_OR")
        return pole.where(np.inf, value, out).t
    psi = _digamma_right(y)
    value = reflect.where(psi - angle.apply("COS") * math.pi / angle.apply("SIN"), psi)
    value = x.compare("LESS", 0.0).both(integer).where(np.nan, value)
    value = x.compare("EQUAL", 0.0).where(-np.inf, value)
    return x.compare("EQUAL", np.inf).where(x, value, out).t
