"""Kernels of the nn family's ops without a Keras layer: ``matmul`` and ``conv_dynamic``
(convolutions whose weights the model computes, of integers, or grouped and transposed)."""

from __future__ import annotations

import numpy as np
from keras import ops

from .elementwise import is_integer
from .registry import register

__all__: list[str] = []


def _sizes(x) -> list:
    """x's shape: ints where static, run-time scalars elsewhere (a dynamic batch)."""
    return [d if d is not None else ops.shape(x)[i] for i, d in enumerate(x.shape)]


def _dilate_zeros(x, axis, factor):
    """Insert factor - 1 zeros between the elements of x along axis (a static axis)."""
    if factor == 1:
        return x
    parts = [ops.expand_dims(x, axis + 1)] + [ops.expand_dims(ops.zeros_like(x), axis + 1)] * (factor - 1)
    y = ops.concatenate(parts, axis=axis + 1)
    shape = _sizes(x)
    shape[axis] = shape[axis] * factor
    y = ops.reshape(y, shape)
    index = [slice(None)] * len(shape)
    index[axis] = slice(0, (x.shape[axis] - 1) * factor + 1)
    return y[tuple(index)]


def _pad_or_crop(x, pads):
    """pads: (before, after) per axis; negative values crop."""
    grow = [[max(lo, 0), max(hi, 0)] for lo, hi in pads]
    if any(p for pair in grow for p in pair):
        x = ops.pad(x, grow)
    index = tuple(slice(max(-lo, 0), x.shape[i] - max(-hi, 0) if hi < 0 else None) for i, (lo, hi) in enumerate(pads))
    return x[index]


def _integer_conv(x, kernel, strides, dilation):
    """Convolution of integer tensors (no integer conv kernels in TF): gather the patches, then
    an integer matmul -- exact, with torch's wrap-around on overflow."""
    n = len(x.shape) - 2
    spatial, k = tuple(x.shape[1:-1]), tuple(kernel.shape[:n])
    c, o = x.shape[-1], kernel.shape[-1]
    out = [(spatial[d] - dilation[d] * (k[d] - 1) - 1) // strides[d] + 1 for d in range(n)]
    ids = np.zeros((1, 1), np.int64)
    for d in range(n):
        pos = np.arange(out[d])[:, None] * strides[d] + np.arange(k[d])[None, :] * dilation[d]
        ids = (ids[:, None, :, None] * spatial[d] + pos[None, :, None, :]).reshape(ids.shape[0] * out[d], -1)
    flat = ops.reshape(x, (-1, int(np.prod(spatial)), c))  # (-1: the batch, static or not)
    patches = ops.take(flat, ops.convert_to_tensor(ids.astype(np.int32)), axis=1)  # [N, P, K, C]
    patches = ops.reshape(patches, (-1, ids.shape[0], ids.shape[1] * c))
    y = ops.matmul(patches, ops.reshape(kernel, (ids.shape[1] * c, o)))
    return ops.reshape(y, (-1, *out, o))


def _conv_one(x, kernel, strides, dilation):
    if is_integer(x):
        return _integer_conv(x, kernel, strides, dilation)
    if any(s > 1 for s in strides) and any(d > 1 for d in dilation):  # TF takes one or the other:
        y = ops.conv(x, kernel, strides=1, padding="valid", dilation_rate=dilation)  # subsample after
        return y[(slice(None), *(slice(None, None, s) for s in strides), slice(None))]
    return ops.conv(x, kernel, strides=strides, padding="valid", dilation_rate=dilation)


def _conv_groups(x, kernel, groups, strides, dilation):
    if groups == 1:
        return _conv_one(x, kernel, strides, dilation)
    xs = ops.split(x, groups, axis=-1)
    ks = ops.split(kernel, groups, axis=-1)
    return ops.concatenate([_conv_one(a, k, strides, dilation) for a, k in zip(xs, ks)], axis=-1)


def _conv_dynamic(x, w, b=None, *, stride, padding, dilation, groups, transposed, output_padding):
    """N-d convolution of channels-last x with a torch-layout weight tensor (the weights are computed
    by the model, so no Keras layer can hold them). Transposed convolution is a convolution of the
    zero-dilated input with the flipped kernel."""
    n = len(x.shape) - 2
    spatial_w = list(range(2, 2 + n))
    if not transposed:
        kernel = ops.transpose(w, (*spatial_w, 1, 0))  # [O, I/g, *k] -> [*k, I/g, O]
        x = _pad_or_crop(x, [(0, 0)] + [(padding[2 * i], padding[2 * i + 1]) for i in range(n)] + [(0, 0)])
        y = _conv_groups(x, kernel, groups, tuple(stride), tuple(dilation))
    else:
        cin = w.shape[0]
        cout_g = w.shape[1]
        k = w.shape[2:]
        # [I, O/g, *k] -> per group [O/g, I/g, *k] stacked as [O, I/g, *k], spatially flipped
        wg = ops.reshape(w, (groups, cin // groups, cout_g, *k))
        wg = ops.transpose(wg, (0, 2, 1, *range(3, 3 + n)))
        wg = ops.reshape(wg, (groups * cout_g, cin // groups, *k))
        wg = ops.flip(wg, axis=tuple(spatial_w)) if n > 1 else ops.flip(wg, axis=2)
        kernel = ops.transpose(wg, (*spatial_w, 1, 0))
        for i in range(n):
            x = _dilate_zeros(x, 1 + i, stride[i])
        pads = [(0, 0)]
        for i in range(n):
            edge = dilation[i] * (k[i] - 1)
            pads.append((edge - padding[2 * i], edge - padding[2 * i + 1] + output_padding[i]))
        x = _pad_or_crop(x, pads + [(0, 0)])
        y = _conv_groups(x, kernel, groups, (1,) * n, tuple(dilation))
    if b is not None:
        y = y + b
    return y


register({"matmul": ops.matmul, "conv_dynamic": _conv_dynamic})
