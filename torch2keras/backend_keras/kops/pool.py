"""Kernels of the pool family's ops without a Keras layer: 3-d pools as 2-d ones (TFLite has no
3-d pool builtin), depth/space rearrangements, ``resize`` to arbitrary sizes and ``grid_sample``."""

from __future__ import annotations

import keras
from keras import ops

from ...ir import formulas
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

def _grid_sample(x, grid, mode, padding_mode, align_corners):
    """torch's grid_sample of NC[D]HW ``x`` at grid [N, [D,] H, W, 2 | 3]: the formula of
    ``ir/formulas.py`` (which the direct TFLite writer writes too) over a table of ``x``'s
    channels-last rows, each spatial axis padded by one zero before and after."""
    n, c = x.shape[0], x.shape[1]
    spatial = tuple(x.shape[2:])
    nd = len(spatial)
    rows = ops.pad(ops.transpose(x, (0, *range(2, nd + 2), 1)), [(0, 0)] + [(1, 1)] * nd + [(0, 0)])
    table = ops.reshape(rows, (-1, c))
    coordinates = [grid[..., nd - 1 - d] for d in range(nd)]  # the grid's last axis is (x, y[, z])
    out = formulas.grid_sample(ops, table, coordinates, spatial, (n, *grid.shape[1:-1]), mode, padding_mode,
                               align_corners)
    return ops.transpose(out, (0, nd + 1, *range(1, nd + 1)))


register({
    "pool_3d": _pool_3d, "depth_to_space": _depth_to_space, "space_to_depth": _space_to_depth, "resize": _resize,
    "grid_sample": _grid_sample,
})
