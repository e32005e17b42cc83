"""Emitters of the elementwise IR ops: binary arithmetic (with fused activations), comparisons,
``where``, casts and unary math.

Elementwise ops run in any layout: the layout pass stores every full-rank operand as the result
and leaves lower-rank operands in PyTorch's order only where that broadcasts the same, so the
stored arrays broadcast as numpy does. Unary ops without a TFLite builtin are written as short
exact compositions (``silu`` = x * sigmoid(x), ``hardsigmoid`` = relu6(x + 3) / 6, ...).
"""

from __future__ import annotations

import math
import numpy as np

from ..ir import Node
from ..ir.types import dtype_to_numpy
from .context import Context, DirectExportError, emitter
from .plan import activation_of
from .schema import fb

__all__: list[str] = []

# IR op -> (builtin, options class or None); ops with a fused activation take it from the plan
BINARY = {
    "add": ("ADD", fb.AddOptionsT), "sub": ("SUB", fb.SubOptionsT), "mul": ("MUL", fb.MulOptionsT),
    "div": ("DIV", fb.DivOptionsT), "pow": ("POW", None), "maximum": ("MAXIMUM", None),
    "minimum": ("MINIMUM", None), "floor_divide": ("FLOOR_DIV", None), "remainder": ("FLOOR_MOD", None),
    "atan2": ("ATAN2", None), "eq": ("EQUAL", None), "ne": ("NOT_EQUAL", None), "lt": ("LESS", None),
    "le": ("LESS_EQUAL", None), "gt": ("GREATER", None), "ge": ("GREATER_EQUAL", None),
    "logical_and": ("LOGICAL_AND", None), "logical_or": ("LOGICAL_OR", None),
    "bitwise_xor": ("BITWISE_XOR", None),
}
_COMPARE = {"eq", "ne", "lt", "le", "gt", "ge"}
UNARY = {
    "neg": "NEG", "abs": "ABS", "exp": "EXP", "log": "LOG", "sqrt": "SQRT", "rsqrt": "RSQRT", "sin": "SIN",
    "cos": "COS", "tanh": "TANH", "sigmoid": "LOGISTIC", "relu": "RELU", "floor": "FLOOR", "ceil": "CEIL",
    "round": "ROUND", "sign": "SIGN", "square": "SQUARE", "hardswish": "HARD_SWISH",
    "logical_not": "LOGICAL_NOT",
}


def binary(ctx: Context, op: str, x: int, y: int, out: int, activation: int = 0) -> int:
    """``out = op(x, y)`` (a builtin of ``BINARY``'s values) with a fused activation if it takes one."""
    options_class = {b: o for b, o in BINARY.values()}.get(op)
    options = options_class() if options_class is not None else None
    if options is not None:
        options.fusedActivationFunction = activation
    ctx.op(op, [x, y], [out], options)
    return out


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


@emitter(*BINARY)
def emit_binary(ctx: Context, node: Node) -> int:
    op = BINARY[node.op][0]
    x, y = _operands(ctx, node)
    return binary(ctx, op, x, y, ctx.result(node), ctx.activation(node))


@emitter(*UNARY)
def emit_unary(ctx: Context, node: Node) -> int:
    out = ctx.result(node)
    ctx.op(UNARY[node.op], [ctx.tensor(node.inputs[0])], [out])
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
    ctx.op("GELU", [ctx.tensor(node.inputs[0])], [out], options)
    return out


@emitter("leaky_relu")
def emit_leaky_relu(ctx: Context, node: Node) -> int:
    options = fb.LeakyReluOptionsT()
    options.alpha = float(node.attrs["slope"])
    out = ctx.result(node)
    ctx.op("LEAKY_RELU", [ctx.tensor(node.inputs[0])], [out], options)
    return out


@emitter("elu")
def emit_elu(ctx: Context, node: Node) -> int:
    a = node.attrs
    if (a["alpha"], a["scale"], a["input_scale"]) != (1.0, 1.0, 1.0):
        raise DirectExportError(node, f"with alpha/scale/input_scale {a['alpha']}, {a['scale']}, "
                                      f"{a['input_scale']} has no TFLite builtin (ELU is alpha=1 only)")
    out = ctx.result(node)
    ctx.op("ELU", [ctx.tensor(node.inputs[0])], [out])
    return out


@emitter("clamp")
def emit_clamp(ctx: Context, node: Node) -> int:
    x = ctx.tensor(node.inputs[0])
    out = ctx.result(node)
    act = activation_of(node)
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
    x = ctx.tensor(node.inputs[0])
    gate = _unary_temp(ctx, node, "LOGISTIC", x, "sigmoid")
    return binary(ctx, "MUL", x, gate, ctx.result(node))


@emitter("hardsigmoid")
def emit_hardsigmoid(ctx: Context, node: Node) -> int:
    """relu6(x + 3) / 6: an ADD with a fused RELU6 and a MUL (the MUL alone where the + 3 and
    the relu6 went into the conv or linear before it, see plan.py)."""
    x = ctx.tensor(node.inputs[0])
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
    x = ctx.tensor(node.inputs[0])
    ln = _unary_temp(ctx, node, "LOG", x, "ln")
    base = 2.0 if node.op == "log2" else 10.0
    return binary(ctx, "MUL", ln, _float_scalar(ctx, node, 1.0 / math.log(base), "inv_ln_base"), ctx.result(node))


@emitter("expm1", "log1p")
def emit_shifted(ctx: Context, node: Node) -> int:
    x = ctx.tensor(node.inputs[0])
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

