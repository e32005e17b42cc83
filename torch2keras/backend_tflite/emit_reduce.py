"""Emitters of the reductions and scans along axes: softmax / log_softmax, reduce (SUM, MEAN,
REDUCE_MAX, ...), argmax / argmin, var, cumsum and topk.

Axes are mapped through the input's layout. SOFTMAX, LOG_SOFTMAX and TOPK_V2 work on the last
stored axis only: another axis is moved last by a TRANSPOSE and back after.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..ir import Node, Value
from .context import Context, DirectExportError, emitter
from .emit_math import binary
from .schema import fb

__all__ = ["reduce"]

_REDUCERS = {"sum": "SUM", "mean": "MEAN", "max": "REDUCE_MAX", "min": "REDUCE_MIN", "prod": "REDUCE_PROD",
             "any": "REDUCE_ANY", "all": "REDUCE_ALL"}


def reduce(ctx: Context, op: str, x: int, axes: Sequence[int], keep_dims: bool, out: int) -> int:
    options = fb.ReducerOptionsT()
    options.keepDims = keep_dims
    ctx.op(op, [x, ctx.ints(sorted(axes), "axes")], [out], options)
    return out


def _axes(x: Value, axes) -> list[int]:
    return sorted(x.type.physical_axis(a) for a in (range(x.type.rank) if axes is None else axes))


def _last_axis_op(ctx: Context, node: Node, build) -> int:
    """Run ``build(tensor, out)`` with the node's axis moved last (a TRANSPOSE each way if needed)."""
    x = node.inputs[0]
    axis = x.type.physical_axis(node.attrs["axis"])
    tensor = ctx.tensor(x)
    rank = x.type.rank
    if axis == rank - 1 or rank == 0:
        return build(tensor, ctx.result(node))
    perm = [a for a in range(rank) if a != axis] + [axis]
    moved = ctx.transpose(tensor, perm, "to_last")
    inner = build(moved, ctx.temp(ctx.shape(moved), ctx.dtype(tensor), "last_axis"))
    back = [perm.index(a) for a in range(rank)]
    return ctx.transpose(inner, back, "from_last", out=ctx.result(node))


@emitter("softmax", "log_softmax")
def emit_softmax(ctx: Context, node: Node) -> int:
    def build(x: int, out: int) -> int:
        if node.op == "softmax":
            options = fb.SoftmaxOptionsT()
            options.beta = 1.0
            ctx.op("SOFTMAX", [x], [out], options)
        else:
            ctx.op("LOG_SOFTMAX", [x], [out])
        return out

    return _last_axis_op(ctx, node, build)


@emitter("reduce")
def emit_reduce(ctx: Context, node: Node) -> int:
    x, a = node.inputs[0], node.attrs
    tensor = ctx.tensor(x)
    if a["kind"] in ("any", "all"):
        tensor = ctx.cast(tensor, np.bool_)
    if node.id in ctx.plan.into_reshape:  # the reshape dropping the reduced axes reads this: write its shape
        out = ctx.result(ctx.graph.node(ctx.plan.into_reshape[node.id]))
        return reduce(ctx, _REDUCERS[a["kind"]], tensor, _axes(x, a["axes"]), False, out)
    return reduce(ctx, _REDUCERS[a["kind"]], tensor, _axes(x, a["axes"]), a["keepdim"], ctx.result(node))


@emitter("argreduce")
def emit_argreduce(ctx: Context, node: Node) -> int:
    x, a = node.inputs[0], node.attrs
    axis = x.type.physical_axis(a["axes"][0])
    shape = [d for k, d in enumerate(ctx.shape(ctx.tensor(x))) if k != axis]
    options = fb.ArgMaxOptionsT() if a["kind"] == "argmax" else fb.ArgMinOptionsT()
    options.outputType = fb.TensorType.INT64
    out = ctx.result(node) if not a["keepdim"] else ctx.temp(shape, np.int64, "index")
    ctx.op("ARG_MAX" if a["kind"] == "argmax" else "ARG_MIN", [ctx.tensor(x), ctx.ints([axis], "axis")], [out],
           options)
    return out if not a["keepdim"] else ctx.reshape(out, node.output.type.physical_shape, out=ctx.result(node))


@emitter("var")
def emit_var(ctx: Context, node: Node) -> int:
    """mean((x - mean(x))^2) * n / (n - correction)."""
    x, a = node.inputs[0], node.attrs
    tensor = ctx.tensor(x)
    axes = _axes(x, a["axes"])
    shape = ctx.shape(tensor)
    n = int(np.prod([shape[k] for k in axes]))
    kept = [1 if k in axes else d for k, d in enumerate(shape)]
    mean = reduce(ctx, "MEAN", tensor, axes, True, ctx.temp(kept, np.float32, "mean"))
    squared = ctx.temp(shape, np.float32, "squared")
    ctx.op("SQUARED_DIFFERENCE", [tensor, mean], [squared])
    if not a["correction"]:
        return reduce(ctx, "MEAN", squared, axes, a["keepdim"], ctx.result(node))
    total = reduce(ctx, "SUM", squared, axes, a["keepdim"], ctx.temp(ctx.shape(ctx.result(node)), np.float32, "sum"))
    divisor = ctx.scalar(1.0 / max(n - a["correction"], 1e-12), np.float32, "divisor")
    return binary(ctx, "MUL", total, divisor, ctx.result(node))


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
