"""The ``sdpa`` emitter: scaled dot-product attention as BATCH_MATMUL, SOFTMAX, BATCH_MATMUL, with
the scale applied to the queries, a causal mask added as a constant and a boolean mask selecting.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ...ir import Node, Value
from ..context import Context, DirectExportError, emitter
from ..schema import fb
from .common import batch_matmul, binary, matmul_shape

__all__: list[str] = []


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
    score_shape = matmul_shape(ctx.shape(scaled), list(ctx.shape(kt)[:-2]) + [ctx.shape(kt)[-1], ctx.shape(kt)[-2]])
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
