"""Emitters of the matrix products: ``linear`` (FULLY_CONNECTED, torch's [out, in] weights as they
are), ``matmul`` (FULLY_CONNECTED against a constant matrix, else BATCH_MATMUL) and ``sdpa``
(attention as BATCH_MATMUL, SOFTMAX, BATCH_MATMUL, with the scale applied to the queries).

A linear layer's input keeps its features physically last (the layout pass guarantees it), so
FULLY_CONNECTED with ``keep_num_dims`` runs on the stored rows in whatever order they are kept;
where the plan merges its rows (``flatten_rows``) it writes [rows, out] directly.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..ir import Node, Value
from .context import Context, DirectExportError, emitter
from .emit_math import binary
from .schema import fb

__all__ = ["fully_connected"]


def fully_connected(ctx: Context, x: int, weight: int, bias: Optional[int], out: int, keep_dims: bool,
                    activation: int = 0) -> int:
    options = fb.FullyConnectedOptionsT()
    options.keepNumDims = keep_dims
    options.fusedActivationFunction = activation
    ctx.op("FULLY_CONNECTED", [x, weight, -1 if bias is None else bias], [out], options)
    return out


def _bias(ctx: Context, node: Node, b: Optional[Value]) -> Optional[int]:
    """The bias tensor, with the plan's constant added (a hardsigmoid's + 3 after the layer)."""
    shift = ctx.plan.bias_shift.get(node.id)
    if shift is None:
        return ctx.tensor(b) if b is not None else None
    out = node.inputs[1].type.shape[0]
    bias = (ctx.const(b) if b is not None else np.zeros(out, np.float32)) + np.float32(shift)
    return ctx.constant(bias.astype(np.float32), ctx.local_name("bias_shifted"), weight=True)


@emitter("linear")
def emit_linear(ctx: Context, node: Node) -> int:
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    if x.type.perm[-1] != x.type.rank - 1:
        raise DirectExportError(node, f"on a value stored as {x.type} (features not last) is not supported")
    tensor = ctx.tensor(x)
    weight = ctx.tensor(w)
    bias = _bias(ctx, node, b)
    act = ctx.activation(node)
    if node.id in ctx.plan.into_reshape:  # the reshape merging the rows reads this: write [rows, out]
        reshape = ctx.graph.node(ctx.plan.into_reshape[node.id])
        return fully_connected(ctx, tensor, weight, bias, ctx.result(reshape), False, act)
    if x.type.rank == 1:
        flat = ctx.reshape(tensor, [1, x.type.shape[0]], "row")
        result = fully_connected(ctx, flat, weight, bias, ctx.temp([1, w.type.shape[0]], np.float32, "fc"), False, act)
        return ctx.reshape(result, ctx.shape(ctx.result(node)), out=ctx.result(node))
    return fully_connected(ctx, tensor, weight, bias, ctx.result(node), x.type.rank > 2, act)


@emitter("matmul")
def emit_matmul(ctx: Context, node: Node) -> int:
    x, y = node.inputs
    if x.type.layout is not None or y.type.layout is not None:
        raise DirectExportError(node, "on re-laid-out operands is not supported")
    if ctx.is_const(y) and y.type.rank == 2 and x.type.rank >= 2 and x.type.dtype == "f32":
        weight = ctx.constant(np.ascontiguousarray(ctx.const(y).T), f"{y.name_hint}/transposed", weight=True)
        return fully_connected(ctx, ctx.tensor(x), weight, None, ctx.result(node), x.type.rank > 2)
    a, b = ctx.tensor(x), ctx.tensor(y)
    if x.type.rank == 1:
        a = ctx.reshape(a, [1, x.type.shape[0]], "row")
    if y.type.rank == 1:
        b = ctx.reshape(b, [y.type.shape[0], 1], "column")
    if x.type.rank >= 2 and y.type.rank >= 2:
        return batch_matmul(ctx, a, b, ctx.result(node))
    shape = _matmul_shape(ctx.shape(a), ctx.shape(b))
    product = batch_matmul(ctx, a, b, ctx.temp(shape, ctx.dtype(a), "product"))
    return ctx.reshape(product, node.output.type.physical_shape, out=ctx.result(node))


def _matmul_shape(a, b) -> list[int]:
    batch = list(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])))
    return batch + [a[-2], b[-1]]


def batch_matmul(ctx: Context, a: int, b: int, out: int, adj_y: bool = False) -> int:
    options = fb.BatchMatMulOptionsT()
    options.adjY = adj_y
    ctx.op("BATCH_MATMUL", [a, b], [out], options)
    return out


@emitter("sdpa")
def emit_sdpa(ctx: Context, node: Node) -> int:
    """softmax(q k^T * scale + mask) v over the last two axes: the scale multiplies q (the
    smaller operand), a causal mask is a constant added to the scores, a boolean mask selects."""
    q, k, v = node.inputs[:3]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    if any(t.type.layout is not None for t in node.inputs):
        raise DirectExportError(node, "on re-laid-out operands is not supported")
    scale = node.attrs["scale"] if node.attrs["scale"] is not None else 1.0 / math.sqrt(q.type.shape[-1])
    dtype = np.float32
    qt = ctx.tensor(q)
    scaled = binary(ctx, "MUL", qt, ctx.scalar(scale, dtype, "scale"), ctx.temp(ctx.shape(qt), dtype, "q_scaled"))
    kt = ctx.tensor(k)
    score_shape = _matmul_shape(ctx.shape(scaled), list(ctx.shape(kt)[:-2]) + [ctx.shape(kt)[-1], ctx.shape(kt)[-2]])
    scores = batch_matmul(ctx, scaled, kt, ctx.temp(score_shape, dtype, "scores"), adj_y=True)
    scores = _masked(ctx, node, scores, mask, score_shape)
    probs = ctx.temp(score_shape, dtype, "probs")
    options = fb.SoftmaxOptionsT()
    options.beta = 1.0
    ctx.op("SOFTMAX", [scores], [probs], options)
    return batch_matmul(ctx, probs, ctx.tensor(v), ctx.result(node))


def _masked(ctx: Context, node: Node, scores: int, mask: Optional[Value], shape: list[int]) -> int:
    if node.attrs["is_causal"]:
        lq, lk = shape[-2], shape[-1]
        causal = np.triu(np.full((lq, lk), -np.inf, np.float32), 1)
        scores = binary(ctx, "ADD", scores, ctx.constant(causal, f"{ctx.scope(node)}/causal"),
                        ctx.temp(shape, np.float32, "causal_scores"))
    if mask is None:
        return scores
    m = ctx.tensor(mask)
    if ctx.dtype(m) == np.bool_:
        out = ctx.temp(shape, np.float32, "masked_scores")
        ctx.op("SELECT_V2", [m, scores, ctx.scalar(-np.inf, np.float32, "neg_inf")], [out])
        return out
    return binary(ctx, "ADD", scores, m, ctx.temp(shape, np.float32, "masked_scores"))
