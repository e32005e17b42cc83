"""Kernels of the pool family's ops without a Keras layer: 3-d pools as 2-d ones (TFLite has no
3-d pool builtin), depth/space rearrangements, ``resize`` to arbitrary sizes and ``grid_sample``."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .registry import register

__all__: list[str] = []


def _depth_to_space(x, block):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.depth_to_space(x, block)
    n, h, w, c = x.shape
    x = ops.reshape(x, (n, h, w, block, block, c // (block * block)))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (n, h * block, w * block, c // (block * block)))


def _space_to_depth(x, block):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.space_to_depth(x, block)
    n, h, w, c = x.shape
    x = ops.reshape(x, (n, h // block, block, w // block, block, c))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (n, h // block, w // block, c * block * block))


def _pool_3d(x, kind, kernel, stride):
    """A VALID 3-d max or average pool of channels-last [N, D, H, W, C] (D, H, W, C static) as two
    2-d pools: over (H, W) with the depth folded into the batch, then over (D, 1) with H * W as the
    width. Max and mean over a box are separable (every window is whole: padding is explicit)."""
    pool = ops.max_pool if kind == "max" else ops.average_pool
    _, d, h, w, c = x.shape
    planes = pool(ops.reshape(x, (-1, h, w, c)), tuple(kernel[1:]), tuple(stride[1:]), padding="valid")
    h2, w2 = planes.shape[1], planes.shape[2]
    columns = pool(ops.reshape(planes, (-1, d, h2 * w2, c)), (kernel[0], 1), (stride[0], 1), padding="valid")
    return ops.reshape(columns, (-1, columns.shape[1], h2, w2, c))


def _resize(x, size, interpolation):
    return ops.image.resize(x, size, interpolation=interpolation, data_format="channels_last")


# ----------------------------------------------------------------------------- grid_sample

def _reflect(c, twice_low, twice_high):
    if twice_low == twice_high:
        return ops.zeros_like(c)
    low = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    c = ops.abs(c - low)
    extra = c - ops.floor(c / span) * span
    flips = ops.floor(c / span)
    even = ops.equal(flips - 2.0 * ops.floor(flips / 2.0), 0.0)
    return ops.where(even, extra + low, span - extra + low)


def _pad_coord(c, size, padding_mode, align_corners):
    if padding_mode == "border":
        return ops.clip(c, 0.0, float(size - 1))
    if padding_mode == "reflection":
        c = _reflect(c, 0, 2 * (size - 1)) if align_corners else _reflect(c, -1, 2 * size - 1)
        return ops.clip(c, 0.0, float(size - 1))
    return c


def _cubic_weights(t, a=-0.75):
    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _grid_sample(x, grid, mode, padding_mode, align_corners):
    n, c = x.shape[0], x.shape[1]
    spatial = tuple(x.shape[2:])
    nd = len(spatial)
    out_spatial = tuple(grid.shape[1:-1])
    p = int(np.prod(out_spatial))
    g = ops.reshape(grid, (n, p, nd))
    flat = ops.reshape(x, (n, c, int(np.prod(spatial))))
    strides = [int(np.prod(spatial[d + 1:])) for d in range(nd)]

    def unnormalize(d):
        size = spatial[d]
        coord = g[:, :, nd - 1 - d]  # the grid's last axis is (x, y[, z]) = (W, H[, D])
        if align_corners:
            return (coord + 1.0) / 2.0 * (size - 1)
        return ((coord + 1.0) * size - 1.0) / 2.0

    def fetch(index):  # integer-valued float coordinates per axis, each [n, p] -> values [n, c, p]
        valid = None
        linear = None
        for d, i in enumerate(index):
            ok = ops.logical_and(i >= 0, i <= spatial[d] - 1)
            valid = ok if valid is None else ops.logical_and(valid, ok)
            i = ops.cast(ops.clip(i, 0, spatial[d] - 1), "int32") * strides[d]
            linear = i if linear is None else linear + i
        idx = ops.broadcast_to(ops.expand_dims(linear, 1), (n, c, p))
        vals = ops.take_along_axis(flat, idx, axis=2)
        return ops.where(ops.expand_dims(valid, 1), vals, ops.zeros_like(vals))

    if mode == "bicubic":
        if nd != 2:
            raise ValueError("bicubic grid sampling is 2-D only")
        coords = [unnormalize(d) for d in range(nd)]
        base = [ops.floor(cd) for cd in coords]
        weights = [_cubic_weights(cd - b) for cd, b in zip(coords, base)]
        out = None
        for i in range(4):
            for j in range(4):
                yy = _pad_coord(base[0] + (i - 1), spatial[0], padding_mode, align_corners)
                xx = _pad_coord(base[1] + (j - 1), spatial[1], padding_mode, align_corners)
                term = fetch([yy, xx]) * ops.expand_dims(weights[0][i] * weights[1][j], 1)
                out = term if out is None else out + term
    else:
        coords = [_pad_coord(unnormalize(d), spatial[d], padding_mode, align_corners) for d in range(nd)]
        if mode == "nearest":
            out = fetch([ops.round(cd) for cd in coords])
        else:  # bilinear (trilinear for 3-D)
            lows = [ops.floor(cd) for cd in coords]
            fracs = [cd - lo for cd, lo in zip(coords, lows)]
            out = None
            for corner in range(2 ** nd):
                bits = [(corner >> (nd - 1 - d)) & 1 for d in range(nd)]
                w = None
                for d, bit in enumerate(bits):
                    wd = fracs[d] if bit else 1.0 - fracs[d]
                    w = wd if w is None else w * wd
                term = fetch([lo + b for lo, b in zip(lows, bits)]) * ops.expand_dims(w, 1)
                out = term if out is None else out + term
    return ops.reshape(out, (n, c, *out_spatial))


register({
    "pool_3d": _pool_3d, "depth_to_space": _depth_to_space, "space_to_depth": _space_to_depth, "resize": _resize,
    "grid_sample": _grid_sample,
})
