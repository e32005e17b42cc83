"""Emitters of the normalisations, decomposed into builtins exactly as torch computes them:

* ``layer_norm``: d = x - mean(x); y = d * rsqrt(mean(d^2) + eps) * w + b over the trailing
  axes (stored last: the layout pass keeps them there), nine ops at most (MEAN,
  SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, SUB, MUL, and the affine MUL, ADD);
* ``batch_norm`` (inference statistics not folded into a conv): x * s + t per channel, s and t
  computed here;
* ``group_norm``: the stored [N, *spatial, C] (or [N, C]) viewed as [N, positions, groups, C / groups],
  normalised over positions and the channels of a group, then the per-channel affine.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import Node, Value
from ..context import Context, DirectExportError, emitter
from .common import binary, reduce

__all__ = ["normalize"]


def normalize(ctx: Context, x: int, axes: list[int], eps: float) -> int:
    """(x - mean) * rsqrt(var + eps) over stored ``axes`` (biased variance), a new tensor."""
    shape = list(ctx.shape(x))
    kept = [1 if k in axes else d for k, d in enumerate(shape)]
    f32 = np.float32
    mean = reduce(ctx, "MEAN", x, axes, True, ctx.temp(kept, f32, "mean"))
    squared = ctx.temp(shape, f32, "squared_difference")
    ctx.op("SQUARED_DIFFERENCE", [x, mean], [squared])
    var = reduce(ctx, "MEAN", squared, axes, True, ctx.temp(kept, f32, "variance"))
    var_eps = binary(ctx, "ADD", var, ctx.scalar(eps, f32, "eps"), ctx.temp(kept, f32, "variance_eps"))
    rstd = ctx.temp(kept, f32, "rstd")
    ctx.op("RSQRT", [var_eps], [rstd])
    centered = binary(ctx, "SUB", x, mean, ctx.temp(shape, f32, "centered"))
    return binary(ctx, "MUL", centered, rstd, ctx.temp(shape, f32, "normalized"))


def _affine(ctx: Context, node: Node, y: int, w: Optional[int], b: Optional[int]) -> int:
    """y * w + b (either may be missing), into the node's result."""
    if w is None and b is None:
        return ctx.reshape(y, ctx.shape(y), out=ctx.result(node))
    if w is not None:
        y = binary(ctx, "MUL", y, w, ctx.result(node) if b is None else ctx.temp(ctx.shape(y), np.float32, "scaled"))
    if b is not None:
        y = binary(ctx, "ADD", y, b, ctx.result(node))
    return y


@emitter("layer_norm")
def emit_layer_norm(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    k = node.attrs["num_axes"]
    rank = x.type.rank
    if tuple(x.type.perm[rank - k:]) != tuple(range(rank - k, rank)):
        raise DirectExportError(node, f"on a value stored as {x.type} (normalised axes not last) is not supported")
    if x.type.dtype != "f32":
        raise DirectExportError(node, f"on {x.type.dtype} values is not supported (float32 only)")
    y = normalize(ctx, ctx.tensor(x), list(range(rank - k, rank)), node.attrs["eps"])
    w = ctx.tensor(node.inputs[1]) if len(node.inputs) > 1 else None
    b = ctx.tensor(node.inputs[2]) if len(node.inputs) > 2 else None
    return _affine(ctx, node, y, w, b)


def _channel_vector(ctx: Context, x: Value, values: np.ndarray, name: str) -> int:
    """Per-channel values shaped to broadcast against x as stored (channel = logical axis 1)."""
    shape = [1] * x.type.rank
    shape[x.type.physical_axis(1)] = values.size
    while len(shape) > 1 and shape[0] == 1:  # leading 1s broadcast anyway
        shape.pop(0)
    return ctx.constant(values.astype(np.float32).reshape(shape), name, weight=True)


@emitter("batch_norm")
def emit_batch_norm(ctx: Context, node: Node) -> int:
    x, mean, var = node.inputs[:3]
    w = node.inputs[3] if len(node.inputs) > 3 else None
    b = node.inputs[4] if len(node.inputs) > 4 else None
    if not all(ctx.is_const(v) for v in node.inputs[1:]):
        raise DirectExportError(node, "with statistics computed by the model is not supported")
    c = x.type.shape[1]
    gamma = ctx.const(w).astype(np.float64) if w is not None else np.ones(c)
    beta = ctx.const(b).astype(np.float64) if b is not None else np.zeros(c)
    scale = gamma / np.sqrt(ctx.const(var).astype(np.float64) + node.attrs["eps"])
    shift = beta - ctx.const(mean).astype(np.float64) * scale
    name = ctx.scope(node)
    scaled = binary(ctx, "MUL", ctx.tensor(x), _channel_vector(ctx, x, scale, f"{name}/scale"),
                    ctx.temp(node.output.type.physical_shape, np.float32, "scaled"))
    return binary(ctx, "ADD", scaled, _channel_vector(ctx, x, shift, f"{name}/shift"), ctx.result(node))


@emitter("group_norm")
def emit_group_norm(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    if x.type.rank > 2 and x.type.perm[-1] != 1:
        raise DirectExportError(node, f"on a value stored as {x.type} (not channels-last) is not supported")
    groups = node.attrs["groups"]
    n, c = x.type.shape[0], x.type.shape[1]
    positions = int(np.prod(x.type.shape[2:]))  # (1 for [N, C])
    grouped = ctx.reshape(ctx.tensor(x), [n, positions, groups, c // groups], "grouped")
    y = normalize(ctx, grouped, [1, 3], node.attrs["eps"])
    y = ctx.reshape(y, node.output.type.physical_shape, "ungrouped")
    w = ctx.tensor(node.inputs[1]) if len(node.inputs) > 1 else None
    b = ctx.tensor(node.inputs[2]) if len(node.inputs) > 2 else None
    return _affine(ctx, node, y, w, b)
