"""Kernels of the shape family: slicing, concatenation, padding, reshapes, transposes,
broadcasts, tiling and flips (static sizes; run-time sizes are the dynamic family's)."""

from __future__ import annotations

import numpy as np
from keras import ops

from .registry import register

__all__: list[str] = []


def _slice(x, axis, start, end, step):
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, end, step)
    return x[tuple(index)]


def _slice_scatter(x, src, axis, start, end, step):
    size = x.shape[axis]
    if step == 1:
        parts = [p for p in (_slice(x, axis, 0, start, 1), src, _slice(x, axis, end, size, 1)) if p.shape[axis]]
        return ops.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]
    # interleave src with zeros so element j lands at start + j * step, then select with a mask
    n = src.shape[axis]
    spread = ops.stack([src] + [ops.zeros_like(src)] * (step - 1), axis=axis + 1)
    shape = list(src.shape)
    shape[axis] = n * step
    spread = ops.reshape(spread, shape)
    spread = _slice(spread, axis, 0, min(n * step, size - start), 1)
    pads = [[0, 0] for _ in x.shape]
    pads[axis] = [start, size - start - spread.shape[axis]]
    spread = ops.pad(spread, pads)
    mask = np.zeros(size, bool)
    mask[start:end:step] = True
    mask_shape = [1] * len(x.shape)
    mask_shape[axis] = size
    return ops.where(ops.convert_to_tensor(mask.reshape(mask_shape)), spread, x)


def _pad(x, pads, mode, value):
    if mode == "constant":
        return ops.pad(x, pads, mode=mode, constant_values=ops.cast(value, x.dtype))
    return ops.pad(x, pads, mode=mode)


def _flip(x, axes):
    for a in axes:
        x = ops.flip(x, axis=a)
    return x


register({
    "slice": _slice, "slice_scatter": _slice_scatter,
    "concat": lambda *xs, axis: ops.concatenate(list(xs), axis=axis),
    "stack": lambda *xs, axis: ops.stack(list(xs), axis=axis),
    "pad": _pad,
    "reshape": lambda x, shape: ops.reshape(x, shape),
    "transpose": lambda x, perm: ops.transpose(x, perm),
    "expand": lambda x, shape: ops.broadcast_to(x, shape),
    "tile": lambda x, reps: ops.tile(x, reps),
    "flip": lambda x, axes: ops.flip(x, axis=axes) if len(axes) == 1 else _flip(x, axes),
})
