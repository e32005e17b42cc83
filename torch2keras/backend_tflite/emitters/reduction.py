"""Emitters of the reductions along axes: softmax / log_softmax, reduce (SUM, MEAN, REDUCE_MAX,
...), argmax / argmin and var.

Axes are mapped through the input's layout. SOFTMAX and LOG_SOFTMAX work on the last stored axis
only: another axis is moved last by a TRANSPOSE and back after.
"""

from __future__ import annotations

import numpy as np

from ...ir import Node, Value
from ..context import Context, emitter
from ..schema import fb
from .common import binary, reduce

__all__: list[str] = []

_REDUCERS = {"sum": "SUM", "mean": "MEAN", "max": "REDUCE_MAX", "min": "REDUCE_MIN", "prod": "REDUCE_PROD",
             "any": "REDUCE_ANY", "all": "REDUCE_ALL"}


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
