"""Emitters of the scans along an axis: ``cumsum`` (CUMSUM), ``topk`` (TOPK_V2, which works on
the last stored axis only; the smallest k as the largest of the negated values), ``sort`` (a
TOPK_V2 of every element, the axis transposed last), and the scans TFLite has no builtin for --
``cumulative`` (cumprod, logcumsumexp) and ``cumulative_extreme`` (cummax, cummin with their
indices) -- as Hillis-Steele scans: log2(n) steps, each combining every element with the one k
places before it (the first k combined with the scan's identity: a PADV2 of the shifted slice).
"""

from __future__ import annotations

import numpy as np

from ...ir import Node
from ..context import Context, DirectExportError, emitter
from ..schema import fb
from .common import binary

__all__: list[str] = []


@emitter("cumsum")
def emit_cumsum(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    out = ctx.result(node)
    ctx.op("CUMSUM", [ctx.tensor(x), ctx.ints(x.type.physical_axis(node.attrs["axis"]), "axis")], [out],
           fb.CumsumOptionsT())
    return out


@emitter("topk")
def emit_topk(ctx: Context, node: Node) -> tuple[int, int]:
    x, a = node.inputs[0], node.attrs
    if x.type.physical_axis(a["axis"]) != x.type.rank - 1:
        raise DirectExportError(node, "along another axis than the last stored one is not supported")
    tensor = ctx.tensor(x)
    if not a["largest"]:
        tensor = _negated(ctx, tensor)
    values = ctx.result(node, 0) if a["largest"] else \
        ctx.temp(node.outputs[0].type.physical_shape, ctx.dtype(tensor), "values")
    shape = list(node.outputs[1].type.physical_shape)
    indices = ctx.temp(shape, np.int32, "indices")
    ctx.op("TOPK_V2", [tensor, ctx.ints(a["k"], "k")], [values, indices])
    if not a["largest"]:
        out = ctx.result(node, 0)
        ctx.op("NEG", [values], [out])
        values = out
    index_out = ctx.result(node, 1)
    options = fb.CastOptionsT()
    options.inDataType, options.outDataType = fb.TensorType.INT32, fb.TensorType.INT64
    ctx.op("CAST", [indices], [index_out], options)
    return values, index_out


def _negated(ctx: Context, x: int) -> int:
    out = ctx.temp(ctx.shape(x), ctx.dtype(x), "neg")
    ctx.op("NEG", [x], [out])
    return out


@emitter("sort")
def emit_sort(ctx: Context, node: Node) -> tuple[int, int]:
    """TOPK_V2 of all n elements along the last stored axis (the sorted axis transposed there and
    back): descending as is, ascending as the descending sort of the negated values. Equal values
    keep their order (TOPK_V2 ranks the lower index first, as torch's stable sort)."""
    x = node.inputs[0]
    axis, rank = x.type.physical_axis(node.attrs["axis"]), x.type.rank
    tensor = ctx.tensor(x)
    if ctx.dtype(tensor) == np.bool_:
        tensor = ctx.cast(tensor, np.int32, "as_int")
    if ctx.dtype(tensor) not in (np.float32, np.int32, np.int64):
        raise DirectExportError(node, f"of {ctx.dtype(tensor)} values is not supported (float32, int32, int64 are)")
    perm = [k for k in range(rank) if k != axis] + [axis]
    moved = ctx.transpose(tensor, perm, "axis_last")
    if not node.attrs["descending"]:
        moved = _negated(ctx, moved)
    shape = list(ctx.shape(moved))
    values = ctx.temp(shape, ctx.dtype(moved), "values")
    indices = ctx.temp(shape, np.int32, "indices")
    ctx.op("TOPK_V2", [moved, ctx.ints(shape[-1], "k")], [values, indices])
    if not node.attrs["descending"]:
        values = _negated(ctx, values)
    back = list(np.argsort(perm))
    return (_copy(ctx, ctx.transpose(values, back, "values_back"), ctx.result(node, 0)),
            _copy(ctx, ctx.transpose(indices, back, "indices_back"), ctx.result(node, 1)))


def _copy(ctx: Context, tensor: int, out: int) -> int:
    """``tensor`` written into the node's result tensor ``out``: a CAST where their types differ,
    else a RESHAPE to its own shape."""
    if ctx.dtype(tensor) == ctx.dtype(out):
        return ctx.reshape(tensor, ctx.shape(out), out=out)
    options = fb.CastOptionsT()
    options.inDataType, options.outDataType = ctx.sub.type(tensor), ctx.sub.type(out)
    ctx.op("CAST", [tensor], [out], options)
    return out


def _shifted(ctx: Context, x: int, axis: int, k: int, fill, suffix: str) -> int:
    """x moved k places towards higher indices along ``axis``, the first k places ``fill``."""
    shape = list(ctx.shape(x))
    size = list(shape)
    size[axis] -= k
    head = ctx.temp(size, ctx.dtype(x), f"{suffix}_head")
    ctx.op("SLICE", [x, ctx.ints([0] * len(shape), f"{suffix}_begin"), ctx.ints(size, f"{suffix}_size")], [head])
    pads = [[k, 0] if i == axis else [0, 0] for i in range(len(shape))]
    out = ctx.temp(shape, ctx.dtype(x), suffix)
    ctx.op("PADV2", [head, ctx.ints(pads, f"{suffix}_pads"), ctx.scalar(fill, ctx.dtype(x), f"{suffix}_fill")], [out])
    return out


def _steps(n: int) -> list[int]:
    """The shifts of a Hillis-Steele scan over n elements: 1, 2, 4, ... below n."""
    out, k = [], 1
    while k < n:
        out.append(k)
        k *= 2
    return out


@emitter("cumulative")
def emit_cumulative(ctx: Context, node: Node) -> int:
    """cumprod (MUL of each element and the product k places before, 1 before the start) and
    logcumsumexp (log-add-exp with -inf before the start)."""
    x, kind = node.inputs[0], node.attrs["kind"]
    axis = x.type.physical_axis(node.attrs["axis"])
    tensor = ctx.tensor(x)
    if kind == "logsumexp" and ctx.dtype(tensor) != np.float32:
        raise DirectExportError(node, f"logcumsumexp of {ctx.dtype(tensor)} values has no TFLite kernel")
    steps = _steps(ctx.shape(tensor)[axis])
    for i, k in enumerate(steps):
        out = ctx.result(node) if i == len(steps) - 1 else ctx.temp(ctx.shape(tensor), ctx.dtype(tensor), f"step{k}")
        if kind == "prod":
            tensor = binary(ctx, "MUL", tensor, _shifted(ctx, tensor, axis, k, 1, f"shift{k}"), out)
        else:
            tensor = _log_add_exp(ctx, tensor, _shifted(ctx, tensor, axis, k, -np.inf, f"shift{k}"), out, f"lae{k}")
    return tensor if steps else _copy(ctx, tensor, ctx.result(node))


def _log_add_exp(ctx: Context, a: int, b: int, out: int, suffix: str) -> int:
    """log(exp(a) + exp(b)) = m + log(1 + exp(-|a - b|)), m = max(a, b); m itself where m is
    infinite (both -inf, or an inf)."""
    shape, f32 = list(ctx.shape(a)), np.float32

    def temp(name):
        return ctx.temp(shape, f32, f"{suffix}_{name}")

    top = binary(ctx, "MAXIMUM", a, b, temp("max"))
    gap = temp("gap")
    ctx.op("ABS", [binary(ctx, "SUB", a, b, temp("diff"))], [gap])
    neg = temp("neg_gap")
    ctx.op("NEG", [gap], [neg])
    e = temp("exp")
    ctx.op("EXP", [neg], [e])
    log = temp("log1p")
    ctx.op("LOG", [binary(ctx, "ADD", e, ctx.scalar(1.0, f32, f"{suffix}_one"), temp("one_plus"))], [log])
    total = binary(ctx, "ADD", top, log, temp("sum"))
    magnitude = temp("abs_max")
    ctx.op("ABS", [top], [magnitude])
    infinite = ctx.temp(shape, np.bool_, f"{suffix}_infinite")
    ctx.op("EQUAL", [magnitude, ctx.scalar(np.inf, f32, f"{suffix}_inf")], [infinite])
    ctx.op("SELECT_V2", [infinite, top, total], [out])
    return out


@emitter("cumulative_extreme")
def emit_cumulative_extreme(ctx: Context, node: Node) -> tuple[int, int]:
    """cummax / cummin and the index where each running extreme was (the later one on ties; a
    NaN wins and stays, as in torch)."""
    x, kind = node.inputs[0], node.attrs["kind"]
    axis = x.type.physical_axis(node.attrs["axis"])
    values = ctx.tensor(x)
    dtype = ctx.dtype(values)
    if dtype not in (np.float32, np.int32, np.int64):
        raise DirectExportError(node, f"of {dtype} values is not supported (float32, int32, int64 are)")
    shape = list(ctx.shape(values))
    positions = np.arange(shape[axis], dtype=np.int32).reshape([-1 if i == axis else 1 for i in range(len(shape))])
    index = ctx.constant(np.broadcast_to(positions, shape).copy(), ctx.local_name("positions"))
    low = -np.inf if dtype == np.float32 else np.iinfo(dtype).min
    fill = low if kind == "max" else (np.inf if dtype == np.float32 else np.iinfo(dtype).max)
    steps = _steps(shape[axis])
    for k in steps:
        earlier = _shifted(ctx, values, axis, k, fill, f"values{k}")
        earlier_index = _shifted(ctx, index, axis, k, 0, f"index{k}")
        later = _takes_later(ctx, earlier, values, kind, dtype == np.float32, f"take{k}")
        merged = ctx.result(node, 0) if k == steps[-1] else ctx.temp(shape, dtype, f"merged{k}")
        merged_index = ctx.temp(shape, np.int32, f"merged_index{k}")
        ctx.op("SELECT_V2", [later, values, earlier], [merged])
        ctx.op("SELECT_V2", [later, index, earlier_index], [merged_index])
        values, index = merged, merged_index
    if not steps:
        values = _copy(ctx, values, ctx.result(node, 0))
    return values, _copy(ctx, index, ctx.result(node, 1))


def _takes_later(ctx: Context, a: int, b: int, kind: str, floating: bool, suffix: str) -> int:
    """Where the later element ``b`` replaces the running extreme ``a``: b >= a (max; b <= a for
    min), or b is NaN, unless a is (a NaN stays)."""
    shape = list(ctx.shape(a))

    def flags(name):
        return ctx.temp(shape, np.bool_, f"{suffix}_{name}")

    better = flags("better")
    ctx.op("GREATER_EQUAL" if kind == "max" else "LESS_EQUAL", [b, a], [better])
    if not floating:
        return better
    b_nan, a_number, kept = flags("b_nan"), flags("a_number"), flags("ordered")
    ctx.op("NOT_EQUAL", [b, b], [b_nan])
    ctx.op("EQUAL", [a, a], [a_number])
    ctx.op("LOGICAL_AND", [a_number, better], [kept])
    out = flags("later")
    ctx.op("LOGICAL_OR", [b_nan, kept], [out])
    return out
