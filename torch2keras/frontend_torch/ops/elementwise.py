"""Elementwise ops: activations, arithmetic, comparisons, casts (layout-agnostic in the IR)."""

from __future__ import annotations

import torch

from ...ir import Value
from ...ir.types import is_float
from ..registry import LoweringContext, lowering, torch_dtype
from ._util import aten, overloads

# aten op -> IR unary op: no per-op code needed.
UNARY = {
    aten.relu.default: "relu", aten.sigmoid.default: "sigmoid", aten.tanh.default: "tanh",
    aten.exp.default: "exp", aten.expm1.default: "expm1", aten.log.default: "log",
    aten.log1p.default: "log1p", aten.log2.default: "log2", aten.sqrt.default: "sqrt",
    aten.rsqrt.default: "rsqrt", aten.neg.default: "neg", aten.abs.default: "abs",
    aten.sin.default: "sin", aten.cos.default: "cos", aten.tan.default: "tan", aten.asin.default: "asin",
    aten.acos.default: "acos", aten.atan.default: "atan", aten.sinh.default: "sinh",
    aten.cosh.default: "cosh", aten.asinh.default: "asinh", aten.acosh.default: "acosh",
    aten.atanh.default: "atanh", aten.erf.default: "erf", aten.floor.default: "floor",
    aten.ceil.default: "ceil", aten.round.default: "round", aten.trunc.default: "trunc",
    aten.reciprocal.default: "reciprocal", aten.sign.default: "sign",
    aten.bitwise_not.default: "bitwise_not", aten.logical_not.default: "logical_not",
    aten.isnan.default: "isnan", aten.isinf.default: "isinf",
    aten.hardswish.default: "hardswish", aten.hardsigmoid.default: "hardsigmoid",
    aten.silu.default: "silu", aten.mish.default: "mish",
}

BINARY = {
    "mul": "mul", "maximum": "maximum", "minimum": "minimum", "remainder": "remainder",
    "fmod": "fmod", "atan2": "atan2", "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor", "floor_divide": "floor_divide",
}
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"]


def _unary(op: str):
    def lower_unary(ctx: LoweringContext, x: Value) -> Value:
        if op == "bitwise_not" and x.type.dtype == "bool":
            return ctx.emit("logical_not", [x])
        if op in ("floor", "ceil", "round", "trunc", "sign") and not is_float(ctx.out_dtype) \
                and ctx.out_dtype == x.type.dtype and (op != "sign" or x.type.dtype == "bool"):
            return x  # integral already (and a bool is its own sign)
        return ctx.emit(op, [ctx.cast(x, ctx.out_dtype) if op not in ("logical_not", "isnan", "isinf") else x])

    lower_unary.__name__ = f"lower_{op}"
    return lower_unary


for _target, _op in UNARY.items():
    lowering(_target)(_unary(_op))


def _scalar_dtype(x) -> str:
    if isinstance(x, bool):
        return "bool"
    return "i64" if isinstance(x, int) else "f32"


def common_dtype(a, b) -> str:
    """torch's type promotion for two operands (tensors are IR values, scalars python numbers)."""
    def as_torch(x):
        if isinstance(x, Value):
            return torch.empty((1,) * max(x.type.rank, 1), dtype=_TORCH[x.type.dtype])
        return x

    return torch_dtype(torch.result_type(as_torch(a), as_torch(b)))


_TORCH = {v: k for k, v in {
    torch.float16: "f16", torch.float32: "f32", torch.float64: "f64", torch.int8: "i8", torch.uint8: "u8",
    torch.int16: "i16", torch.int32: "i32", torch.int64: "i64", torch.bool: "bool"}.items()}
_TORCH["bf16"] = torch.bfloat16


# on bools, arithmetic is logic (TF has no bool kernels for mul, add, maximum, ...)
_BOOL_BINARY = {"mul": "logical_and", "add": "logical_or", "maximum": "logical_or", "minimum": "logical_and",
                "bitwise_and": "logical_and", "bitwise_or": "logical_or", "bitwise_xor": "logical_xor",
                "fmax": "logical_or", "fmin": "logical_and"}
_ORDERED = ("lt", "le", "gt", "ge")  # no bool kernels either: compared as integers


def binary(ctx: LoweringContext, op: str, a, b, dtype: str) -> Value:
    """``op(a, b)`` with both operands brought to ``dtype`` (scalars become constants)."""
    if dtype == "bool":
        op = _BOOL_BINARY.get(op, op)
        if op in _ORDERED:
            dtype = "i32"
    return ctx.emit(op, [ctx.as_value(a, dtype), ctx.as_value(b, dtype)])


def _scaled(ctx, b, alpha, dtype):
    if alpha is None or alpha == 1:
        return b
    return binary(ctx, "mul", b, alpha, dtype)


@lowering(aten.add.Tensor, aten.add.Scalar)
def lower_add(ctx, a, b, alpha=1):
    return binary(ctx, "add", a, _scaled(ctx, b, alpha, ctx.out_dtype), ctx.out_dtype)


@lowering(aten.sub.Tensor, aten.sub.Scalar)
def lower_sub(ctx, a, b, alpha=1):
    return binary(ctx, "sub", a, _scaled(ctx, b, alpha, ctx.out_dtype), ctx.out_dtype)


@lowering(aten.rsub.Scalar, aten.rsub.Tensor)
def lower_rsub(ctx, a, b, alpha=1):
    return binary(ctx, "sub", b, _scaled(ctx, a, alpha, ctx.out_dtype), ctx.out_dtype)


def _binary_lowering(op: str):
    def lower_binary(ctx, a, b):
        return binary(ctx, op, a, b, ctx.out_dtype)

    lower_binary.__name__ = f"lower_{op}"
    return lower_binary


for _name, _op in BINARY.items():
    lowering(*overloads(_name, "Tensor", "Scalar", "default"))(_binary_lowering(_op))


@lowering(aten.div.Tensor, aten.div.Scalar)
def lower_div(ctx, a, b):
    return binary(ctx, "div", a, b, ctx.out_dtype)


@lowering(aten.div.Tensor_mode, aten.div.Scalar_mode)
def lower_div_mode(ctx, a, b, *, rounding_mode=None):
    dtype = ctx.out_dtype
    if rounding_mode is None:
        return binary(ctx, "div", a, b, dtype)
    if rounding_mode == "floor":
        return binary(ctx, "floor_divide", a, b, dtype)
    if is_float(dtype):
        return ctx.emit("trunc", [binary(ctx, "div", a, b, dtype)])
    q = binary(ctx, "div", a, b, "f32")
    return ctx.cast(ctx.emit("trunc", [q]), dtype)


@lowering(aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.pow.Scalar)
def lower_pow(ctx, a, b):
    dtype = ctx.out_dtype
    if isinstance(a, Value) and not isinstance(b, Value):
        if b == 2:
            a = ctx.cast(a, dtype)
            return ctx.emit("mul", [a, a])
        if b == 0.5 and is_float(dtype):
            return ctx.emit("sqrt", [ctx.cast(a, dtype)])
        if b == 1:
            return ctx.cast(a, dtype)
    if not is_float(dtype) and (isinstance(b, Value) or b < 0):
        return _int_pow(ctx, a, b, dtype)
    return binary(ctx, "pow", a, b, dtype)


def _int_pow(ctx, a, b, dtype):
    """Integer powers as torch's: a negative exponent gives 1 for a base of 1, +-1 for -1, else 0."""
    a, b = ctx.as_value(a, dtype), ctx.as_value(b, dtype)
    negative = binary(ctx, "lt", b, 0, dtype)
    power = ctx.emit("pow", [a, binary(ctx, "maximum", b, 0, dtype)])
    odd = binary(ctx, "ne", binary(ctx, "remainder", b, 2, dtype), 0, dtype)
    minus_one = ctx.emit("where", [odd, ctx.const(-1, dtype), ctx.const(1, dtype)])
    small = ctx.emit("where", [binary(ctx, "eq", a, 1, dtype), ctx.const(1, dtype),
                               ctx.emit("where", [binary(ctx, "eq", a, -1, dtype), minus_one, ctx.const(0, dtype)])])
    return ctx.emit("where", [negative, small, power])


def _compare_lowering(op: str):
    def lower_compare(ctx, a, b):
        return binary(ctx, op, a, b, common_dtype(a, b))

    lower_compare.__name__ = f"lower_{op}"
    return lower_compare


for _op in COMPARE:
    lowering(*overloads(_op, "Tensor", "Scalar", "default"))(_compare_lowering(_op))


@lowering(aten.where.self, aten.where.ScalarOther, aten.where.ScalarSelf, aten.where.Scalar)
def lower_where(ctx, cond, a, b):
    dtype = ctx.out_dtype
    return ctx.emit("where", [ctx.as_value(cond, "bool"), ctx.as_value(a, dtype), ctx.as_value(b, dtype)])


@lowering(aten.clamp.default, aten.clamp.Tensor, aten.clamp_min.default, aten.clamp_max.default,
          aten.clamp_min.Tensor, aten.clamp_max.Tensor, aten.hardtanh.default)
def lower_clamp(ctx, x, min=None, max=None):
    target = ctx.loc.op if ctx.loc else ""
    if "clamp_max" in target:
        min, max = None, min
    dtype = ctx.out_dtype
    x = ctx.cast(x, dtype)
    if isinstance(min, Value) or isinstance(max, Value) or not is_float(dtype):  # (clamp's bounds are floats)
        if "hardtanh" in target:
            min = -1 if min is None else min
            max = 1 if max is None else max
        if min is not None:
            x = binary(ctx, "maximum", x, min, dtype)
        if max is not None:
            x = binary(ctx, "minimum", x, max, dtype)
        return x
    if "hardtanh" in target:
        min = -1.0 if min is None else min
        max = 1.0 if max is None else max
    return ctx.emit("clamp", [x], min=None if min is None else float(min), max=None if max is None else float(max))


@lowering(aten.relu6.default)
def lower_relu6(ctx, x):
    if not is_float(x.type.dtype):
        return binary(ctx, "minimum", binary(ctx, "maximum", x, 0, x.type.dtype), 6, x.type.dtype)
    return ctx.emit("clamp", [x], min=0.0, max=6.0)


@lowering(aten.gelu.default)
def lower_gelu(ctx, x, approximate="none"):
    return ctx.emit("gelu", [x], approximate=approximate)


@lowering(aten.leaky_relu.default)
def lower_leaky_relu(ctx, x, negative_slope=0.01):
    return ctx.emit("leaky_relu", [x], slope=float(negative_slope))


@lowering(aten.elu.default)
def lower_elu(ctx, x, alpha=1.0, scale=1.0, input_scale=1.0):
    return ctx.emit("elu", [x], alpha=float(alpha), scale=float(scale), input_scale=float(input_scale))


@lowering(aten.softplus.default)
def lower_softplus(ctx, x, beta=1.0, threshold=20.0):
    return ctx.emit("softplus", [x], beta=float(beta), threshold=float(threshold))


@lowering(aten._to_copy.default, aten.to.dtype, aten.to.dtype_layout, aten.type_as.default)
def lower_to(ctx, x, *args, **kwargs):
    return ctx.cast(x, ctx.out_dtype)


@lowering(*overloads("clone", "default"), *overloads("alias", "default"), *overloads("detach", "default"),
          aten.lift_fresh_copy.default, aten.contiguous.default, *overloads("dropout", "default"),
          aten.native_dropout.default, aten.feature_dropout.default)
def lower_identity(ctx, x, *args, **kwargs):
    target = ctx.loc.op if ctx.loc else ""
    if "native_dropout" in target:
        return x, None
    return x
