"""Emitters of pooling, resizing and depth/space rearrangements: MAX_POOL_2D / AVERAGE_POOL_2D
with torch's padding and divisor semantics, adaptive pools (MEAN / REDUCE_MAX over the whole map,
or a pool whose window divides it), RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR,
DEPTH_TO_SPACE / SPACE_TO_DEPTH, and grid_sample (the formula of ``ir/formulas.py``: GATHERs of
the input's channels-last rows, weighted and summed).

Padding. Where TFLite's SAME padding places the windows as torch does, max pooling is exact (SAME
ignores the padding, torch pads with -inf) and so is average pooling with
``count_include_pad=False`` (SAME divides by the window's overlap with the input). Otherwise the
input is padded explicitly -- max pooling with a lower bound of the input (0 after a ReLU; the
smallest integer for a quantized model's integers), so that the pad is never the maximum -- and
the pool runs VALID; an average pool is then corrected
by a constant per-position factor (window size / torch's divisor) where they differ.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...ir import Node, Value, formulas
from ...ir.types import DTYPES
from ..context import Context, DirectExportError, emitter
from ..schema import fb
from .common import Builtins, Window, binary, padding_mode
from .shape import strided_slice

__all__ = ["lower_bound"]

_NON_NEGATIVE = {"relu", "sigmoid", "hardsigmoid", "softmax", "exp", "abs", "square"}
_SAME, _VALID = fb.Padding.SAME, fb.Padding.VALID


def lower_bound(v: Value) -> float:
    """A lower bound of every element of ``v`` known from the ops computing it (else the most
    negative float32; for integers, the smallest integer of their type)."""
    if v.type.dtype in ("i8", "u8", "i16", "i32"):
        return float(np.iinfo(DTYPES[v.type.dtype]).min)
    node = v.producer
    if node.op in _NON_NEGATIVE:
        return 0.0
    if node.op == "clamp" and node.attrs.get("min") is not None:
        return float(node.attrs["min"])
    if node.op in ("max_pool", "relayout", "permute", "reshape") and node.inputs:
        return lower_bound(node.inputs[0])
    return float(np.finfo(np.float32).min)


def _as_4d(ctx: Context, node: Node) -> tuple[int, bool]:
    """The input tensor as [N, H, W, C] (a 1-d pool's [N, L, C] as [N, 1, L, C])."""
    x = node.inputs[0]
    if x.type.rank == 4:
        return ctx.tensor(x), False
    if x.type.rank == 3:
        n, length, c = ctx.shape(ctx.tensor(x))
        return ctx.reshape(ctx.tensor(x), [n, 1, length, c], "as_2d"), True
    raise DirectExportError(node, f"{x.type.rank - 2}-d pooling is not supported (1-d, 2-d and 3-d are)")


def _pool_geometry(node: Node, attrs: dict, flat: bool, in_shape, out_shape) -> Window:
    a = attrs
    dil = a.get("dilation") or [1] * len(a["kernel"])
    if any(d != 1 for d in dil):
        raise DirectExportError(node, "with dilation has no TFLite builtin")
    k, s, p = list(a["kernel"]), list(a["stride"]), list(a["padding"])
    if flat:
        k, s, p = [1] + k, [1] + s, [0] + p
    pads = []
    for i in range(2):  # ceil_mode: extra padding after, so that VALID yields torch's count
        need = (out_shape[1 + i] - 1) * s[i] + k[i]
        pads += [p[i], max(need - in_shape[1 + i] - p[i], p[i])]
    return Window(in_shape[1:3], k, s, pads, [1, 1], out_shape[1:3])


def _pool_op(ctx: Context, op: str, x: int, window: Window, padding: int, out: int, activation: int = 0) -> int:
    options = fb.Pool2DOptionsT()
    options.padding = padding
    options.strideH, options.strideW = window.stride
    options.filterHeight, options.filterWidth = window.kernel
    options.fusedActivationFunction = activation
    ctx.op(op, [x], [out], options)
    return out


def _finish(ctx: Context, node: Node, result: int, flat: bool) -> int:
    return ctx.reshape(result, node.output.type.physical_shape, out=ctx.result(node)) if flat else result


def _out_4d(ctx: Context, node: Node, flat: bool) -> tuple[list[int], int]:
    shape = list(node.output.type.physical_shape)
    if flat:
        shape = [shape[0], 1, shape[1], shape[2]]
        return shape, ctx.temp(shape, np.float32, "pool_2d")
    return shape, ctx.result(node)


def _pool_2d(ctx: Context, node: Node, attrs: dict, x: int, flat: bool, shape: list[int], out: int) -> int:
    """``node``'s pooling (with ``attrs``: a 2-d pool's, or the 1-d one over a height of 1 where
    ``flat``) of the [N, H, W, C] tensor ``x`` into ``out`` of ``shape``."""
    window = _pool_geometry(node, attrs, flat, ctx.shape(x), shape)
    if node.op == "max_pool":
        x, padding = padding_mode(ctx, x, window, value=lower_bound(node.inputs[0]))
        return _pool_op(ctx, "MAX_POOL_2D", x, window, padding, out)
    if window.padded and window.same() and not attrs["count_include_pad"] and not attrs["divisor_override"]:
        return _pool_op(ctx, "AVERAGE_POOL_2D", x, window, _SAME, out)
    factor = _divisor_fix(attrs, window, flat)
    padded, _ = padding_mode(ctx, x, Window(window.size, window.kernel, window.stride, window.pads, [1, 1],
                                            [-1, -1]))  # (never SAME: the factor assumes VALID windows)
    if factor is None:
        return _pool_op(ctx, "AVERAGE_POOL_2D", padded, window, _VALID, out)
    pooled = _pool_op(ctx, "AVERAGE_POOL_2D", padded, window, _VALID, ctx.temp(shape, np.float32, "pool"))
    scale = ctx.constant(factor.reshape(1, *factor.shape, 1), f"{ctx.scope(node)}/divisor")
    return binary(ctx, "MUL", pooled, scale, out)


@emitter("max_pool", "avg_pool")
def emit_pool(ctx: Context, node: Node) -> int:
    if node.inputs[0].type.rank == 5:
        return _pool_3d(ctx, node)
    x, flat = _as_4d(ctx, node)
    shape, out = _out_4d(ctx, node, flat)
    return _finish(ctx, node, _pool_2d(ctx, node, node.attrs, x, flat, shape, out), flat)


def _pool_3d(ctx: Context, node: Node) -> int:
    """A 3-d pool as two 2-d ones (max and mean over a box are separable, and so are the counts
    of its padded or valid elements): over (H, W) with the depth folded into the batch, then
    over (D, 1) with H * W as the width; with ``divisor_override``, that mean times a constant
    per position (torch's divisor / the override). Input and output stored [N, D, H, W, C]."""
    x, a = node.inputs[0], node.attrs
    if x.type.perm != (0, 2, 3, 4, 1):
        raise DirectExportError(node, f"3-d pooling of a value stored as {x.type} (not channels-last) is not supported")
    n, d, h, w, c = ctx.shape(ctx.tensor(x))
    _, d2, h2, w2, _ = node.output.type.physical_shape
    override = a.get("divisor_override") if node.op == "avg_pool" else None
    a = {**a, "divisor_override": None} if override else a
    plane = {**a, "kernel": a["kernel"][1:], "stride": a["stride"][1:], "padding": a["padding"][1:],
             "dilation": (a.get("dilation") or [1, 1, 1])[1:]}
    depth = {**a, "kernel": [a["kernel"][0], 1], "stride": [a["stride"][0], 1], "padding": [a["padding"][0], 0],
             "dilation": [(a.get("dilation") or [1])[0], 1]}
    folded = ctx.reshape(ctx.tensor(x), [n * d, h, w, c], "depth_in_batch")
    planes = _pool_2d(ctx, node, plane, folded, False, [n * d, h2, w2, c],
                      ctx.temp([n * d, h2, w2, c], np.float32, "pool_hw"))
    columns = ctx.reshape(planes, [n, d, h2 * w2, c], "hw_as_width")
    pooled = _pool_2d(ctx, node, depth, columns, False, [n, d2, h2 * w2, c],
                      ctx.temp([n, d2, h2 * w2, c], np.float32, "pool_d"))
    if not override:
        return ctx.reshape(pooled, [n, d2, h2, w2, c], out=ctx.result(node))
    # divisor_override: the mean times torch's own divisor per position is the window's sum
    factor = _torch_divisors(a, (d, h, w), (d2, h2, w2)) / np.float32(override)
    mean = ctx.reshape(pooled, [n, d2, h2, w2, c], "mean")
    scale = ctx.constant(factor.reshape(1, d2, h2, w2, 1).astype(np.float32), f"{ctx.scope(node)}/divisor")
    return binary(ctx, "MUL", mean, scale, ctx.result(node))


def _torch_divisors(attrs: dict, size, out_size) -> np.ndarray:
    """torch's average-pool divisor (no override) per output position: per axis the window
    clipped to the padded input (``count_include_pad``) or to the input; their product."""
    result = np.ones((), np.float64)
    for k, s, p, length, count in zip(attrs["kernel"], attrs["stride"], attrs["padding"], size, out_size):
        start = np.arange(count) * s - p
        end = np.minimum(start + k, length + p)
        sizes = end - start if attrs["count_include_pad"] else np.minimum(end, length) - np.maximum(start, 0)
        result = np.multiply.outer(result, sizes.astype(np.float64))
    return result


def _divisor_fix(attrs: dict, window: Window, flat: bool) -> "np.ndarray | None":
    """window size / torch's divisor per output position, or None where they agree."""
    a = attrs
    size = window.size
    real = np.ones(size, np.float32)
    p = window.pads
    torch_pad = [0] + list(a["padding"]) if flat else list(a["padding"])
    inside = np.pad(real, [(p[0], p[1]), (p[2], p[3])])
    counted = np.pad(np.pad(real, [(q, q) for q in torch_pad], constant_values=1),
                     [(0, p[1] - torch_pad[0]), (0, p[3] - torch_pad[1])])
    windows = sliding_window_view(counted if a["count_include_pad"] else inside, tuple(window.kernel))
    counts = windows[::window.stride[0], ::window.stride[1]].sum(axis=(-2, -1))
    divisor = np.full_like(counts, a["divisor_override"]) if a["divisor_override"] else counts
    factor = (float(np.prod(window.kernel)) / divisor).astype(np.float32)
    return None if np.allclose(factor, 1.0) else factor


@emitter("adaptive_avg_pool", "adaptive_max_pool")
def emit_adaptive_pool(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    size = list(x.type.shape[2:])
    out_size = list(node.attrs["output_size"])
    reduce_op, pool_op = ("MEAN", "AVERAGE_POOL_2D") if node.op == "adaptive_avg_pool" else \
        ("REDUCE_MAX", "MAX_POOL_2D")
    if all(o == 1 for o in out_size):
        axes = sorted(x.type.physical_axis(2 + i) for i in range(len(size)))
        options = fb.ReducerOptionsT()
        options.keepDims = node.id not in ctx.plan.into_reshape  # (else: write the reshape dropping them)
        out = ctx.result(ctx.graph.node(ctx.plan.into_reshape.get(node.id, node.id)))
        ctx.op(reduce_op, [ctx.tensor(x), ctx.ints(axes, "axes")], [out], options)
        return out
    if any(s % o for s, o in zip(size, out_size)) or x.type.rank not in (3, 4):
        return _adaptive_windows(ctx, node, reduce_op, size, out_size)
    tensor, flat = _as_4d(ctx, node)
    shape, out = _out_4d(ctx, node, flat)
    kernel = [s // o for s, o in zip(size, out_size)]
    kernel = [1] + kernel if flat else kernel
    window = Window(ctx.shape(tensor)[1:3], kernel, kernel, [0, 0, 0, 0], [1, 1], shape[1:3])
    return _finish(ctx, node, _pool_op(ctx, pool_op, tensor, window, _VALID, out), flat)


def _adaptive_windows(ctx: Context, node: Node, reduce_op: str, size: list[int], out_size: list[int]) -> int:
    """An adaptive pool whose windows differ in size (or of a 3-d map): axis by axis, each output
    position the MEAN / REDUCE_MAX of its window (torch's [floor(o in / out), ceil((o + 1) in /
    out))), a STRIDED_SLICE each, CONCATENATED. A box's mean is the mean of its axes' means."""
    x = node.inputs[0]
    tensor = ctx.tensor(x)
    for k, (n, m) in enumerate(zip(size, out_size)):
        if n == m:
            continue
        axis = x.type.physical_axis(2 + k)
        shape = list(ctx.shape(tensor))
        pieces = []
        for o in range(m):
            lo, hi = (o * n) // m, -((-(o + 1) * n) // m)
            window = list(shape)
            window[axis] = hi - lo
            piece = strided_slice(ctx, tensor, axis, lo, hi, 1, ctx.temp(window, np.float32, f"a{k}_window{o}"))
            window[axis] = 1
            options = fb.ReducerOptionsT()
            options.keepDims = True
            pieces.append(ctx.temp(window, np.float32, f"a{k}_pooled{o}"))
            ctx.op(reduce_op, [piece, ctx.ints([axis], f"a{k}_axis")], [pieces[-1]], options)
        shape[axis] = m
        last = all(a == b for a, b in zip(size[k + 1:], out_size[k + 1:]))
        out = ctx.result(node) if last else ctx.temp(shape, np.float32, f"a{k}_pooled")
        options = fb.ConcatenationOptionsT()
        options.axis = axis
        ctx.op("CONCATENATION", pieces, [out], options)
        tensor = out
    return tensor


@emitter("upsample")
def emit_upsample(ctx: Context, node: Node) -> int:
    x, a = node.inputs[0], node.attrs
    if x.type.rank != 4 or x.type.perm != (0, 2, 3, 1):
        raise DirectExportError(node, f"of a value stored as {x.type} (only 2-d channels-last) is not supported")
    if a["mode"] == "nearest":
        options = fb.ResizeNearestNeighborOptionsT()
        op = "RESIZE_NEAREST_NEIGHBOR"
        if a["align_corners"]:
            raise DirectExportError(node, "nearest resize with align_corners=True is not supported")
    elif a["mode"] == "bilinear":
        options = fb.ResizeBilinearOptionsT()
        options.alignCorners = bool(a["align_corners"])
        options.halfPixelCenters = not a["align_corners"]
        op = "RESIZE_BILINEAR"
    else:
        raise DirectExportError(node, f"mode {a['mode']!r} has no TFLite builtin (nearest and bilinear have)")
    out = ctx.result(node)
    ctx.op(op, [ctx.tensor(x), ctx.ints(list(a["size"]), "size")], [out], options)
    return out


@emitter("depth_to_space", "space_to_depth")
def emit_depth_to_space(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    if x.type.rank != 4 or x.type.perm != (0, 2, 3, 1):
        raise DirectExportError(node, f"on a value stored as {x.type} (not channels-last) is not supported")
    if node.op == "depth_to_space":
        options = fb.DepthToSpaceOptionsT()
    else:
        options = fb.SpaceToDepthOptionsT()
    options.blockSize = int(node.attrs["block"])
    out = ctx.result(node)
    ctx.op(node.op.upper(), [ctx.tensor(x)], [out], options)
    return out


# ---------------------------------------------------------------------------- grid_sample


def _stored(ctx: Context, v: Value) -> tuple[int, tuple[int, ...]]:
    """``v``'s tensor and layout; where ``v`` is a relayout's result, its input's (grid_sample
    reads any layout: the relayout's TRANSPOSE, then unread, is dropped)."""
    p = v.producer
    if p.op == "relayout":
        return ctx.tensor(p.inputs[0]), p.inputs[0].type.perm
    return ctx.tensor(v), v.type.perm


def _in_order(ctx: Context, tensor: int, perm: tuple[int, ...], order: list[int], suffix: str) -> int:
    """A tensor stored in layout ``perm`` with its logical axes in ``order`` (a TRANSPOSE if needed)."""
    return ctx.transpose(tensor, [perm.index(a) for a in order], suffix)


def _coordinates(ctx: Context, grid: Value) -> tuple[list[int], list[int]]:
    """The grid's coordinates UNPACKed along its last logical axis, and the grid's logical axes
    they keep, in their stored order (the batch first: else the grid is transposed first)."""
    tensor, perm = _stored(ctx, grid)
    last = len(perm) - 1
    if perm[0] != 0:
        tensor, perm = _in_order(ctx, tensor, perm, list(range(last + 1)), "grid"), tuple(range(last + 1))
    kept = [a for a in perm if a != last]
    shape = [ctx.shape(tensor)[perm.index(a)] for a in kept]
    outs = [ctx.temp(shape, np.float32, f"grid_{k}") for k in range(ctx.shape(tensor)[perm.index(last)])]
    options = fb.UnpackOptionsT()
    options.num, options.axis = len(outs), perm.index(last)
    ctx.op("UNPACK", [tensor], outs, options)
    return outs, kept


@emitter("grid_sample")
def emit_grid_sample(ctx: Context, node: Node) -> int:
    """The formula of ``ir/formulas.py`` over builtins (as the Keras kernel evaluates it): a
    table of the input's channels-last rows (each spatial axis PADded by one zero before and
    after, RESHAPEd to [rows, C]), the grid UNPACKed into its coordinates, a GATHER per corner;
    the result (the grid's layout, then the channels) transposed to the output's layout."""
    x, grid = node.inputs
    a = node.attrs
    nd = x.type.rank - 2
    if a["mode"] not in formulas.GRID_SAMPLE_MODES or a["padding_mode"] not in formulas.GRID_SAMPLE_PADDINGS:
        raise DirectExportError(node, f"mode {a['mode']!r} / padding_mode {a['padding_mode']!r} is not supported")
    if a["mode"] == "bicubic" and nd != 2:
        raise DirectExportError(node, f"bicubic sampling of a {nd}-d input is not supported (torch's is 2-d only)")
    if x.type.dtype != "f32" or grid.type.dtype != "f32":
        raise DirectExportError(node, f"of {x.type.dtype} values is not supported (float32 is)")
    if not all(isinstance(d, int) for d in (*x.type.shape, *grid.type.shape)):
        raise DirectExportError(node, "with run-time sizes is not supported (the direct backend writes static shapes)")
    tensor, perm = _stored(ctx, x)
    channels_last = [0, *range(2, nd + 2), 1]
    rows = _in_order(ctx, tensor, perm, channels_last, "channels_last")
    n, *size, c = (int(d) for d in ctx.shape(rows))
    padded = ctx.temp([n, *(s + 2 for s in size), c], np.float32, "padded")
    ctx.op("PAD", [rows, ctx.ints([[0, 0]] + [[1, 1]] * nd + [[0, 0]], "paddings")], [padded])
    table = ctx.reshape(padded, [n * int(np.prod([s + 2 for s in size])), c], "table")
    ops = Builtins(ctx)
    unpacked, kept = _coordinates(ctx, grid)
    value = formulas.grid_sample(ops, ops.tensor(table), [ops.tensor(t) for t in unpacked[::-1]], size,
                                 [int(d) for d in ctx.shape(unpacked[0])], a["mode"], a["padding_mode"], bool(a["align_corners"]))
    # (the value's axes: the grid's kept ones in their stored order -- grid axis k > 0 is output
    # axis k + 1 -- then the channels)
    axes = [k + 1 if k else 0 for k in kept] + [1]
    order = [axes.index(k) for k in node.output.type.perm]
    if order == sorted(order):
        return ops.result(node, value)
    return ctx.transpose(value.index, order, out=ctx.result(node))
