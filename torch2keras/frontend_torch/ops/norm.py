"""Normalisations: batch norm (with running or batch statistics), layer norm and group norm,
and the statistics their native forms also return."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import Value
from ..registry import lowering
from .common import aten, binary, numel

# what the helpers emit: batch_norm (a batch_norm op; elementwise ops for computed statistics),
# batch_norm_batch_stats, and layer_norm_stats / group_norm_stats
_BATCH_NORM_OPS = ("batch_norm", "rsqrt", "add", "sub", "mul")
_BATCH_STATS_OPS = ("reduce", "var", "rsqrt", "add", "sub", "mul")
_STATS_OPS = ("reduce", "var", "rsqrt", "add")


def batch_norm(ctx, x, w, b, mean, var, eps):
    if any(v is not None and v.producer.op != "constant" for v in (mean, var, w, b)):  # computed statistics
        shape = [1, x.type.shape[1]] + [1] * (x.type.rank - 2)
        rstd = ctx.emit("rsqrt", [ctx.emit("add", [ctx.reshape(var, shape), ctx.const(float(eps), x.type.dtype)])])
        y = ctx.emit("mul", [ctx.emit("sub", [x, ctx.reshape(mean, shape)]), rstd])
        y = y if w is None else ctx.emit("mul", [y, ctx.reshape(w, shape)])
        return y if b is None else ctx.emit("add", [y, ctx.reshape(b, shape)])
    inputs = [x, mean, var] + ([w] if w is not None else [])
    if b is not None:
        if w is None:
            inputs.append(ctx.const(np.ones(x.type.shape[1], np.float32)))
        inputs.append(b)
    return ctx.emit("batch_norm", inputs, eps=float(eps))


@lowering(aten._native_batch_norm_legit_no_training.default, emits=_BATCH_NORM_OPS)
def lower_bn_no_training(ctx, x, w, b, mean, var, momentum, eps):
    return batch_norm(ctx, x, w, b, mean, var, eps), None, None


@lowering(aten.batch_norm.default, emits=_BATCH_NORM_OPS + ("reduce", "var"))
def lower_batch_norm(ctx, x, w, b, mean, var, training, momentum, eps, cudnn_enabled=True):
    if training or mean is None:  # normalised by the batch's own statistics (as torch computes it)
        return batch_norm_batch_stats(ctx, x, w, b, eps)[0]
    return batch_norm(ctx, x, w, b, mean, var, eps)


@lowering(aten.native_batch_norm.default, aten._native_batch_norm_legit.default,
          emits=_BATCH_NORM_OPS + ("reduce", "var"))
def lower_native_batch_norm(ctx, x, w, b, mean, var, training, momentum, eps):
    if training or mean is None:  # normalised by the batch's own statistics (as torch computes it)
        return batch_norm_batch_stats(ctx, x, w, b, eps)[:3]
    return batch_norm(ctx, x, w, b, mean, var, eps), None, None


def _per_channel(ctx, v: Value, rank: int) -> Value:
    """A [C] vector shaped to broadcast over an N, C, *spatial tensor."""
    return ctx.reshape(v, [1, v.type.shape[0]] + [1] * (rank - 2))


def batch_norm_batch_stats(ctx, x: Value, w: Optional[Value], b: Optional[Value], eps: float):
    """Normalisation by the batch's own statistics (training-mode batch norm, instance norm):
    (output, mean [C], inverse std [C], unbiased variance [C])."""
    rank = x.type.rank
    axes = [0] + list(range(2, rank))
    mean = ctx.emit("reduce", [x], kind="mean", axes=axes, keepdim=True)
    var = ctx.emit("var", [x], axes=axes, correction=0.0, keepdim=True)
    rstd = ctx.emit("rsqrt", [binary(ctx, "add", var, float(eps), x.type.dtype)])
    out = ctx.emit("mul", [ctx.emit("sub", [x, mean]), rstd])
    if w is not None:
        out = ctx.emit("mul", [out, _per_channel(ctx, w, rank)])
    if b is not None:
        out = ctx.emit("add", [out, _per_channel(ctx, b, rank)])
    c = x.type.shape[1]
    count = numel([d for i, d in enumerate(x.type.shape) if i != 1])
    unbiased = binary(ctx, "mul", var, count / max(count - 1, 1), x.type.dtype)
    return out, ctx.reshape(mean, [c]), ctx.reshape(rstd, [c]), ctx.reshape(unbiased, [c])


def _running(ctx, old: Optional[Value], new: Value, momentum: float) -> Optional[Value]:
    if old is None:
        return None
    return ctx.emit("add", [binary(ctx, "mul", old, 1.0 - momentum, old.type.dtype),
                            binary(ctx, "mul", new, float(momentum), old.type.dtype)])


@lowering(aten._native_batch_norm_legit_functional.default, emits=_BATCH_NORM_OPS + ("reduce", "var"))
def lower_batch_norm_functional(ctx, x, w, b, running_mean, running_var, training, momentum, eps):
    if not training:
        return batch_norm(ctx, x, w, b, running_mean, running_var, eps), None, None, running_mean, running_var
    out, mean, rstd, unbiased = batch_norm_batch_stats(ctx, x, w, b, eps)
    return out, mean, rstd, _running(ctx, running_mean, mean, momentum), _running(ctx, running_var, unbiased, momentum)


@lowering(aten._native_batch_norm_legit.no_stats, emits=_BATCH_STATS_OPS)
def lower_batch_norm_no_stats(ctx, x, w, b, training, momentum, eps):
    out, mean, rstd, _ = batch_norm_batch_stats(ctx, x, w, b, eps)
    return out, mean, rstd


# ----------------------------------------------------------------------------- layer and group norm


def _affine_inputs(ctx, x, w, b, shape):
    inputs = [x]
    if w is not None or b is not None:
        inputs.append(w if w is not None else ctx.const(np.ones(shape, np.float32)))
    if b is not None:
        inputs.append(b)
    return inputs


@lowering(aten.layer_norm.default, keep_whole=True, emits=("layer_norm", "mul", "add"))
def lower_layer_norm(ctx, x, normalized_shape, w=None, b=None, eps=1e-5, cudnn_enable=True):
    if any(v is not None and v.producer.op != "constant" for v in (w, b)):  # weights computed by the model
        y = ctx.emit("layer_norm", [x], num_axes=len(normalized_shape), eps=float(eps))
        y = y if w is None else ctx.emit("mul", [y, w])
        return y if b is None else ctx.emit("add", [y, b])
    return ctx.emit("layer_norm", _affine_inputs(ctx, x, w, b, normalized_shape),
                    num_axes=len(normalized_shape), eps=float(eps))


@lowering(aten.native_layer_norm.default, emits=("layer_norm", "mul") + _STATS_OPS)
def lower_native_layer_norm(ctx, x, normalized_shape, w, b, eps):
    return (lower_layer_norm(ctx, x, normalized_shape, w, b, eps),
            *layer_norm_stats(ctx, x, len(normalized_shape), eps))


@lowering(aten.group_norm.default, keep_whole=True, emits=("group_norm", "mul", "add"))
def lower_group_norm(ctx, x, groups, w=None, b=None, eps=1e-5, cudnn_enabled=True):
    if any(v is not None and v.producer.op != "constant" for v in (w, b)):  # weights computed by the model
        y = ctx.emit("group_norm", [x], groups=groups, eps=float(eps))
        shape = [1, x.type.shape[1]] + [1] * (x.type.rank - 2)
        y = y if w is None else ctx.emit("mul", [y, ctx.reshape(w, shape)])
        return y if b is None else ctx.emit("add", [y, ctx.reshape(b, shape)])
    return ctx.emit("group_norm", _affine_inputs(ctx, x, w, b, [x.type.shape[1]]), groups=groups, eps=float(eps))


@lowering(aten.native_group_norm.default, emits=("group_norm", "mul") + _STATS_OPS)
def lower_native_group_norm(ctx, x, w, b, n, c, hw, groups, eps):
    return (lower_group_norm(ctx, x, groups, w, b, eps), *group_norm_stats(ctx, x, groups, eps))


def layer_norm_stats(ctx, x: Value, num_axes: int, eps: float) -> tuple[Value, Value]:
    """Mean and inverse std over the trailing ``num_axes`` axes (kept as size-1 axes)."""
    axes = list(range(x.type.rank - num_axes, x.type.rank))
    mean = ctx.emit("reduce", [x], kind="mean", axes=axes, keepdim=True)
    var = ctx.emit("var", [x], axes=axes, correction=0.0, keepdim=True)
    return mean, ctx.emit("rsqrt", [binary(ctx, "add", var, float(eps), x.type.dtype)])


def group_norm_stats(ctx, x: Value, groups: int, eps: float) -> tuple[Value, Value]:
    """Mean and inverse std per (sample, group): [N, groups]."""
    n = x.type.shape[0]
    g = ctx.reshape(x, [n, groups, x.type.numel // (n * groups)])
    mean, rstd = layer_norm_stats(ctx, g, 1, eps)
    return ctx.reshape(mean, [n, groups]), ctx.reshape(rstd, [n, groups])
