"""More elementwise math: special functions, IEEE helpers (copysign, frexp, nextafter, ...),
bit shifts, gcd/lcm, and the no-op asserts and copies of functional graphs."""

from __future__ import annotations

import math

import numpy as np

from ...ir import Value
from ...ir.types import is_float
from ..registry import LoweringContext, lowering
from ._util import aten, overloads
from .elementwise import _unary, binary

# aten op -> IR unary op (the input cast to the result's dtype first)
MORE_UNARY = {
    aten.erfc.default: "erfc", aten.erfinv.default: "erfinv", aten.exp2.default: "exp2",
    aten.log10.default: "log10", aten.lgamma.default: "lgamma", aten.digamma.default: "digamma",
    aten.i0.default: "i0",
}
for _target, _op in MORE_UNARY.items():
    lowering(_target)(_unary(_op))

# torch name -> IR binary op (both operands brought to the result's dtype)
MORE_BINARY = {
    "copysign": "copysign", "fmax": "fmax", "fmin": "fmin", "hypot": "hypot", "nextafter": "nextafter",
    "igamma": "igamma", "igammac": "igammac", "gcd": "gcd", "lcm": "lcm",
    "bitwise_left_shift": "bitwise_left_shift", "bitwise_right_shift": "bitwise_right_shift",
}


def _more_binary(op: str):
    def lower_more_binary(ctx, a, b):
        return binary(ctx, op, a, b, ctx.out_dtype)

    lower_more_binary.__name__ = f"lower_{op}"
    return lower_more_binary


for _name, _op in MORE_BINARY.items():
    lowering(*overloads(_name, "default", "Tensor", "Scalar", "Tensor_Scalar", "Scalar_Tensor"))(_more_binary(_op))


@lowering(aten.signbit.default)
def lower_signbit(ctx, x):
    if not is_float(x.type.dtype):
        return binary(ctx, "lt", x, 0, x.type.dtype)
    return ctx.emit("signbit", [x])


@lowering(aten.polygamma.default)
def lower_polygamma(ctx, n, x):
    x = ctx.cast(x, ctx.out_dtype)
    return ctx.emit("digamma", [x]) if n == 0 else ctx.emit("polygamma", [x], n=int(n))


@lowering(aten.round.decimals)
def lower_round_decimals(ctx, x, *, decimals=0):
    if decimals == 0:
        return ctx.emit("round", [x])
    scale = 10.0 ** abs(decimals)
    if decimals > 0:  # as torch: round(x * 10^d) / 10^d
        return binary(ctx, "div", ctx.emit("round", [binary(ctx, "mul", x, scale, x.type.dtype)]), scale, x.type.dtype)
    return binary(ctx, "mul", ctx.emit("round", [binary(ctx, "div", x, scale, x.type.dtype)]), scale, x.type.dtype)


@lowering(aten.angle.default)
def lower_angle(ctx, x):
    """The argument of a real number: pi for negatives, 0 otherwise (NaN stays NaN)."""
    dtype = ctx.out_dtype
    x = ctx.cast(x, dtype)
    zero, pi = ctx.const(0.0, dtype), ctx.const(math.pi, dtype)
    out = ctx.emit("where", [binary(ctx, "lt", x, 0.0, dtype), pi, zero])
    return ctx.emit("where", [ctx.emit("isnan", [x]), x, out])


@lowering(aten.ldexp.Tensor)
def lower_ldexp(ctx, x, other):
    dtype = ctx.out_dtype
    return ctx.emit("mul", [ctx.cast(x, dtype), ctx.emit("exp2", [ctx.cast(other, dtype)])])


@lowering(aten.frexp.Tensor)
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


# ----------------------------------------------------------------------------- functional-graph plumbing


@lowering(aten._assert_tensor_metadata.default, aten._assert_scalar.default,
          *overloads("_assert_async", "default", "msg"))
def lower_assert(ctx, *args, **kwargs):
    """Checks torch.export leaves in the graph; static shapes and dtypes already hold them."""
    return None


@lowering(aten.copy.default)
def lower_copy(ctx, x, src, non_blocking=False):
    """copy(x, src): src broadcast to x's shape, in x's dtype (functionalized ``x.copy_(src)``)."""
    out = ctx.cast(src, x.type.dtype)
    if tuple(out.type.shape) != tuple(x.type.shape):
        out = ctx.emit("expand", [out], shape=list(x.type.shape))
    return out


@lowering(aten.fill.Scalar, aten.fill.Tensor)
def lower_fill(ctx, x, value):
    if isinstance(value, Value):
        value = ctx.cast(value, x.type.dtype)
        return value if tuple(x.type.shape) == () else ctx.emit("expand", [ctx.reshape(value, [1] * x.type.rank)],
                                                                 shape=list(x.type.shape))
    from ...ir.types import dtype_to_numpy

    return ctx.const(np.full(x.type.shape, value, dtype=dtype_to_numpy(x.type.dtype)), x.type.dtype)
