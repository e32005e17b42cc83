"""Elementwise ops: activations, arithmetic, special functions, comparisons, casts and the copies
and dropouts that are identities at inference (layout-agnostic in the IR)."""

from __future__ import annotations

import math

import torch

from ...ir import Value
from ...ir.types import is_float
from ..registry import LoweringContext, lowering, torch_dtype
from .common import BOOL_BINARY, aten, binary, overloads

# aten op -> IR unary op (the input cast to the result's dtype first): no per-op code needed
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
    aten.logical_not.default: "logical_not", aten.isnan.default: "isnan", aten.isinf.default: "isinf",
    aten.hardswish.default: "hardswish", aten.hardsigmoid.default: "hardsigmoid",
    aten.silu.default: "silu", aten.mish.default: "mish",
    aten.erfc.default: "erfc", aten.erfinv.default: "erfinv", aten.exp2.default: "exp2",
    aten.log10.default: "log10", aten.lgamma.default: "lgamma", aten.digamma.default: "digamma",
    aten.i0.default: "i0",
}
# activations kept whole at capture: Keras has them as one op each, their decompositions are longer
_KEPT_WHOLE = (aten.hardswish.default, aten.hardsigmoid.default, aten.silu.default, aten.mish.default)
_UNCAST = ("logical_not", "isnan", "isinf")  # (their input keeps its dtype)
_INTEGRAL = ("floor", "ceil", "round", "trunc", "sign")  # identities on integers

# torch name -> IR binary op (both operands brought to the result's dtype)
BINARY = {
    "mul": "mul", "maximum": "maximum", "minimum": "minimum", "remainder": "remainder",
    "fmod": "fmod", "atan2": "atan2", "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor", "floor_divide": "floor_divide",
    "copysign": "copysign", "fmax": "fmax", "fmin": "fmin", "hypot": "hypot", "nextafter": "nextafter",
    "igamma": "igamma", "igammac": "igammac", "gcd": "gcd", "lcm": "lcm",
    "bitwise_left_shift": "bitwise_left_shift", "bitwise_right_shift": "bitwise_right_shift",
}
# the ops of BINARY whose Tensor_Scalar / Scalar_Tensor overloads are lowered as well
_WITH_SCALAR_FORMS = ("copysign", "fmax", "fmin", "hypot", "nextafter", "igamma", "igammac", "gcd", "lcm",
                      "bitwise_left_shift", "bitwise_right_shift")
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"]


def _with_bool(*ops: str) -> tuple[str, ...]:
    """``ops`` and what ``binary`` makes of them on bools."""
    return tuple(dict.fromkeys([*ops, *(BOOL_BINARY[op] for op in ops if op in BOOL_BINARY)]))


def _unary(op: str):
    def lower_unary(ctx: LoweringContext, x: Value) -> Value:
        if op in _INTEGRAL and not is_float(ctx.out_dtype) and ctx.out_dtype == x.type.dtype \
                and (op != "sign" or x.type.dtype == "bool"):
            return x  # integral already (and a bool is its own sign)
        return ctx.emit(op, [x if op in _UNCAST else ctx.cast(x, ctx.out_dtype)])

    lower_unary.__name__ = f"lower_{op}"
    return lower_unary


for _target, _op in UNARY.items():
    lowering(_target, keep_whole=_target in _KEPT_WHOLE, emits=(_op,))(_unary(_op))


@lowering(aten.bitwise_not.default, emits=("logical_not", "bitwise_not"))
def lower_bitwise_not(ctx, x):
    if x.type.dtype == "bool":
        return ctx.emit("logical_not", [x])
    return ctx.emit("bitwise_not", [ctx.cast(x, ctx.out_dtype)])


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


def _scaled(ctx, b, alpha, dtype):
    if alpha is None or alpha == 1:
        return b
    return binary(ctx, "mul", b, alpha, dtype)


@lowering(aten.add.Tensor, aten.add.Scalar, emits=_with_bool("add", "mul"))
def lower_add(ctx, a, b, alpha=1):
    return binary(ctx, "add", a, _scaled(ctx, b, alpha, ctx.out_dtype), ctx.out_dtype)


@lowering(aten.sub.Tensor, aten.sub.Scalar, emits=_with_bool("sub", "mul"))
def lower_sub(ctx, a, b, alpha=1):
    return binary(ctx, "sub", a, _scaled(ctx, b, alpha, ctx.out_dtype), ctx.out_dtype)


@lowering(aten.rsub.Scalar, aten.rsub.Tensor, emits=_with_bool("sub", "mul"))
def lower_rsub(ctx, a, b, alpha=1):
    return binary(ctx, "sub", b, _scaled(ctx, a, alpha, ctx.out_dtype), ctx.out_dtype)


def _binary_lowering(op: str):
    def lower_binary(ctx, a, b):
        return binary(ctx, op, a, b, ctx.out_dtype)

    lower_binary.__name__ = f"lower_{op}"
    return lower_binary


for _name, _op in BINARY.items():
    _forms = ("Tensor", "Scalar", "default") + (("Tensor_Scalar", "Scalar_Tensor") if _name in _WITH_SCALAR_FORMS
                                                else ())
    lowering(*overloads(_name, *_forms), emits=_with_bool(_op))(_binary_lowering(_op))


@lowering(aten.div.Tensor, aten.div.Scalar, emits=("div",))
def lower_div(ctx, a, b):
    return binary(ctx, "div", a, b, ctx.out_dtype)


@lowering(aten.div.Tensor_mode, aten.div.Scalar_mode, emits=("div", "floor_divide", "trunc"))
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


@lowering(aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.pow.Scalar,
          emits=("mul", "sqrt", "pow") + _with_bool("lt", "maximum", "remainder", "ne", "eq") + ("where",))
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
    lowering(*overloads(_op, "Tensor", "Scalar", "default"), emits=(_op,))(_compare_lowering(_op))


@lowering(aten.where.self, aten.where.ScalarOther, aten.where.ScalarSelf, aten.where.Scalar, emits=("where",))
def lower_where(ctx, cond, a, b):
    dtype = ctx.out_dtype
    return ctx.emit("where", [ctx.as_value(cond, "bool"), ctx.as_value(a, dtype), ctx.as_value(b, dtype)])


@lowering(aten.clamp.default, aten.clamp.Tensor, aten.clamp_min.default, aten.clamp_max.default,
          aten.clamp_min.Tensor, aten.clamp_max.Tensor, aten.hardtanh.default,
          emits=_with_bool("maximum", "minimum") + ("clamp",))
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


@lowering(aten.relu6.default, emits=_with_bool("minimum", "maximum") + ("clamp",))
def lower_relu6(ctx, x):
    if not is_float(x.type.dtype):
        return binary(ctx, "minimum", binary(ctx, "maximum", x, 0, x.type.dtype), 6, x.type.dtype)
    return ctx.emit("clamp", [x], min=0.0, max=6.0)


@lowering(aten.gelu.default, keep_whole=True, emits=("gelu",))
def lower_gelu(ctx, x, approximate="none"):
    return ctx.emit("gelu", [x], approximate=approximate)


@lowering(aten.leaky_relu.default, emits=("leaky_relu",))
def lower_leaky_relu(ctx, x, negative_slope=0.01):
    return ctx.emit("leaky_relu", [x], slope=float(negative_slope))


@lowering(aten.elu.default, emits=("elu",))
def lower_elu(ctx, x, alpha=1.0, scale=1.0, input_scale=1.0):
    return ctx.emit("elu", [x], alpha=float(alpha), scale=float(scale), input_scale=float(input_scale))


@lowering(aten.softplus.default, emits=("softplus",))
def lower_softplus(ctx, x, beta=1.0, threshold=20.0):
    return ctx.emit("softplus", [x], beta=float(beta), threshold=float(threshold))


# ----------------------------------------------------------------------------- special functions


@lowering(aten.signbit.default, emits=("lt", "signbit"))
def lower_signbit(ctx, x):
    if not is_float(x.type.dtype):
        return binary(ctx, "lt", x, 0, x.type.dtype)
    return ctx.emit("signbit", [x])


@lowering(aten.polygamma.default, emits=("digamma", "polygamma"))
def lower_polygamma(ctx, n, x):
    x = ctx.cast(x, ctx.out_dtype)
    return ctx.emit("digamma", [x]) if n == 0 else ctx.emit("polygamma", [x], n=int(n))


@lowering(aten.round.decimals, emits=("round", "div") + _with_bool("mul"))
def lower_round_decimals(ctx, x, *, decimals=0):
    if decimals == 0:
        return ctx.emit("round", [x])
    scale = 10.0 ** abs(decimals)
    if decimals > 0:  # as torch: round(x * 10^d) / 10^d
        return binary(ctx, "div", ctx.emit("round", [binary(ctx, "mul", x, scale, x.type.dtype)]), scale, x.type.dtype)
    return binary(ctx, "mul", ctx.emit("round", [binary(ctx, "div", x, scale, x.type.dtype)]), scale, x.type.dtype)


@lowering(aten.angle.default, emits=("lt", "where", "isnan"))
def lower_angle(ctx, x):
    """The argument of a real number: pi for negatives, 0 otherwise (NaN stays NaN)."""
    dtype = ctx.out_dtype
    x = ctx.cast(x, dtype)
    zero, pi = ctx.const(0.0, dtype), ctx.const(math.pi, dtype)
    out = ctx.emit("where", [binary(ctx, "lt", x, 0.0, dtype), pi, zero])
    return ctx.emit("where", [ctx.emit("isnan", [x]), x, out])


@lowering(aten.ldexp.Tensor, emits=("mul", "exp2"))
def lower_ldexp(ctx, x, other):
    dtype = ctx.out_dtype
    return ctx.emit("mul", [ctx.cast(x, dtype), ctx.emit("exp2", [ctx.cast(other, dtype)])])


@lowering(aten.frexp.Tensor, emits=("abs", "gt", "isinf", "logical_not", "logical_and", "where", "log2", "floor", "add",
                                    "neg", "exp2", "mul", "ge", "lt", "sub"))
def lower_frexp(ctx, x):
    """x = mantissa * 2^exponent with |mantissa| in [0.5, 1) (0, inf and NaN keep exponent 0)."""
    dtype = x.type.dtype
    mag = ctx.emit("abs", [x])
    finite = ctx.emit("logical_and", [binary(ctx, "gt", mag, 0.0, dtype),
                                      ctx.emit("logical_not", [ctx.emit("isinf", [mag])])])
    safe = ctx.emit("where", [finite, mag, ctx.const(1.0, dtype)])
    e = binary(ctx, "add", ctx.emit("floor", [ctx.emit("log2", [safe])]), 1.0, dtype)
    for _ in range(2):  # log2 may be off by one next to powers of two
        m = ctx.emit("mul", [safe, ctx.emit("exp2", [ctx.emit("neg", [e])])])
        e = ctx.emit("add", [e, ctx.emit("sub", [ctx.cast(binary(ctx, "ge", m, 1.0, dtype), dtype),
                                                 ctx.cast(binary(ctx, "lt", m, 0.5, dtype), dtype)])])
    mantissa = ctx.emit("mul", [x, ctx.emit("exp2", [ctx.emit("neg", [e])])])
    mantissa = ctx.emit("where", [finite, mantissa, x])
    exponent = ctx.cast(ctx.emit("where", [finite, e, ctx.const(0.0, dtype)]), "i32")
    return mantissa, exponent


# ----------------------------------------------------------------------------- casts, copies, identities


@lowering(aten._to_copy.default, aten.to.dtype, aten.to.dtype_layout, aten.type_as.default, emits=())
def lower_to(ctx, x, *args, **kwargs):
    return ctx.cast(x, ctx.out_dtype)


@lowering(aten.copy.default, emits=("expand",))
def lower_copy(ctx, x, src, non_blocking=False):
    """copy(x, src): src broadcast to x's shape, in x's dtype (functionalized ``x.copy_(src)``)."""
    out = ctx.cast(src, x.type.dtype)
    if tuple(out.type.shape) != tuple(x.type.shape):
        out = ctx.emit("expand", [out], shape=list(x.type.shape))
    return out


@lowering(*overloads("clone", "default"), *overloads("alias", "default"), *overloads("detach", "default"),
          aten.lift_fresh_copy.default, aten.contiguous.default, *overloads("dropout", "default"),
          aten.native_dropout.default, aten.feature_dropout.default,
          torch.ops.prims.copy_strided.default, emits=())  # (copy_strided: a copy into other strides)
def lower_identity(ctx, x, *args, **kwargs):
    target = ctx.loc.op if ctx.loc else ""
    if "native_dropout" in target:
        return x, None
    return x
