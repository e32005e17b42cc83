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
import numpy as np

from ...ir import Node, formulas
from ...ir.types import dtype_to_numpy
from ..context import Context, DirectExportError, emitter
from ...ir.ops.elementwise import fused_activation
from ..schema import fb
from .common import Builtins, binary

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


@emitter("fmax", "fmin")
def emit_nan_extreme(ctx: Context, node: Node) -> int:
    """fmax / fmin, the extreme that ignores a NaN: on floats
    where(isnan(x), y, where(isnan(y), x, MAXIMUM / MINIMUM(x, y))) (NaN only where both are;
    isnan: NOT_EQUAL(v, v)); on integers the builtin alone."""
    x, y = _operands(ctx, node)
    op = "MAXIMUM" if node.op == "fmax" else "MINIMUM"
    if not np.issubdtype(ctx.dtype(x), np.floating):
        return binary(ctx, op, x, y, ctx.result(node))
    require_kernel(ctx, node, "EXP", [x])
    ops = Builtins(ctx)
    a, b = ops.tensor(x), ops.tensor(y)
    return ops.result(node, ops.where(ops.isnan(a), b, ops.where(ops.isnan(b), a, ops.binary(op, a, b))))


_BOOL_BITWISE = {"bitwise_and": "LOGICAL_AND", "bitwise_or": "LOGICAL_OR", "bitwise_xor": "NOT_EQUAL"}


@emitter("bitwise_and", "bitwise_or", "bitwise_xor")
def emit_bitwise(ctx: Context, node: Node) -> int:
    """On bools, the logical builtins (xor: NOT_EQUAL); on integers, BITWISE_XOR (8 to 32 bits),
    and AND / OR (no TFLite builtin) from XOR and arithmetic on 16-bit halves (``_integer_and_or``)."""
    x, y = _operands(ctx, node)
    out = ctx.result(node)
    if ctx.dtype(x) == np.bool_:
        ctx.op(_BOOL_BITWISE[node.op], [x, y], [out])
        return out
    require_kernel(ctx, node, "BITWISE_XOR", [x])
    if node.op == "bitwise_xor":
        return binary(ctx, "BITWISE_XOR", x, y, out)
    if ctx.dtype(x) not in (np.int8, np.int16, np.int32, np.uint8, np.uint16):
        raise DirectExportError(node, f"on {ctx.dtype(x)} values has no TFLite builtin (bools and 8 to 32-bit "
                                      f"signed integers are written)")
    wide = [ctx.cast(t, np.int32, f"wide{k}") for k, t in enumerate((x, y))]
    result = _integer_and_or(ctx, node.op, wide)
    return ctx.cast(result, ctx.dtype(out), "narrow") if ctx.dtype(out) != np.int32 else \
        ctx.reshape(result, ctx.shape(out), out=out)


def _integer_and_or(ctx: Context, op: str, operands: list[int]) -> int:
    """int32 a & b or a | b without an AND builtin: each operand split into a signed high half
    h = floor(a / 2^16) and a low half l = a - h 2^16 in [0, 2^16); per half, with the identity
    a + b = (a ^ b) + 2 (a & b) of two's complement, and = (p + q - (p ^ q)) / 2 and
    or = p + q - and; then h 2^16 + l. No intermediate leaves int32's range."""
    ops, base = Builtins(ctx), 1 << 16
    halves = []
    for a in map(ops.tensor, operands):
        high = ops.binary("FLOOR_DIV", a, base)
        halves.append((high, a - high * base))
    parts = []
    for p, q in zip(*halves):  # (the high halves, then the low ones)
        total = p + q
        both = ops.binary("FLOOR_DIV", total - ops.binary("BITWISE_XOR", p, q), 2)
        parts.append(both if op == "bitwise_and" else total - both)
    return (parts[0] * base + parts[1]).index


@emitter("logical_xor")
def emit_logical_xor(ctx: Context, node: Node) -> int:
    x, y = (ctx.cast(ctx.tensor(v), np.bool_, f"bool{k}") for k, v in enumerate(node.inputs))
    out = ctx.result(node)
    ctx.op("NOT_EQUAL", [x, y], [out])
    return out


# ---------------------------------------------------------------------------- special functions
# (the formulas of ir/formulas.py, which the Keras kernels evaluate too, written as builtins)


@emitter(*formulas.FUNCTIONS)
def emit_formula(ctx: Context, node: Node) -> int:
    """The op's formula over ``Builtins`` (float32): sinh and cosh +-inf beyond float32's
    overflow, which EXP's kernels do not all reach (they may saturate)."""
    ops = Builtins(ctx)
    x = ops.tensor(_float_input(ctx, node))
    formula = getattr(formulas, node.op)
    if node.op in ("sinh", "cosh"):
        value = formula(ops, x, formulas.FLOAT32_HYPERBOLIC_OVERFLOW)
    else:
        value = formula(ops, x)
    return ops.result(node, value)
