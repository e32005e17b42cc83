"""Shape and indexing ops: views, permutes, slicing, concatenation, padding, scatter/gather."""

from __future__ import annotations

import numpy as np

from ...ir import Value
from ..registry import LoweringContext, lowering
from ._util import aten, norm_axes, norm_axis, overloads

_BIG = 2**62


@lowering(*overloads("view", "default"), *overloads("_unsafe_view", "default"), aten.reshape.default)
def lower_view(ctx: LoweringContext, x: Value, shape):
    return ctx.reshape(x, ctx.out_type.shape)


@lowering(*overloads("flatten", "using_ints"), *overloads("unflatten", "int"))
def lower_flatten(ctx, x, *args):
    return ctx.reshape(x, ctx.out_type.shape)


@lowering(*overloads("unsqueeze", "default"), *overloads("squeeze", "default", "dim", "dims"))
def lower_squeeze(ctx, x, *args):
    return ctx.reshape(x, ctx.out_type.shape)


def permute(ctx, x: Value, perm) -> Value:
    perm = [norm_axis(p, x.type.rank) for p in perm]
    if perm == list(range(x.type.rank)):
        return x
    return ctx.emit("permute", [x], perm=perm)


@lowering(*overloads("permute", "default"))
def lower_permute(ctx, x, dims):
    return permute(ctx, x, dims)


@lowering(*overloads("transpose", "int"))
def lower_transpose(ctx, x, dim0, dim1):
    perm = list(range(x.type.rank))
    a, b = norm_axis(dim0, x.type.rank), norm_axis(dim1, x.type.rank)
    perm[a], perm[b] = perm[b], perm[a]
    return permute(ctx, x, perm)


@lowering(*overloads("t", "default"), aten.numpy_T.default)
def lower_t(ctx, x):
    return permute(ctx, x, list(reversed(range(x.type.rank))))


@lowering(*overloads("expand", "default"), aten.expand_as.default, aten.broadcast_to.default)
def lower_expand(ctx, x, shape, *args, **kwargs):
    out = list(ctx.out_type.shape)
    if tuple(out) == tuple(x.type.shape):
        return x
    from .symbolic_shape import expand

    return expand(ctx, x, out)


@lowering(aten.repeat.default)
def lower_repeat(ctx, x, repeats):
    return ctx.emit("tile", [x], reps=list(repeats))


@lowering(aten.cat.default, aten.concat.default)
def lower_cat(ctx, tensors, dim=0):
    dtype = ctx.out_dtype
    rank = ctx.out_type.rank
    tensors = [ctx.cast(t, dtype) for t in tensors if not (t.type.rank == 1 and t.type.shape[0] == 0)]
    if len(tensors) == 1:
        return tensors[0]
    return ctx.emit("concat", tensors, axis=norm_axis(dim, rank))


@lowering(aten.stack.default)
def lower_stack(ctx, tensors, dim=0):
    rank = tensors[0].type.rank + 1
    axis = norm_axis(dim, rank)
    parts = []
    for t in tensors:
        shape = list(t.type.shape)
        shape.insert(axis, 1)
        parts.append(ctx.reshape(ctx.cast(t, ctx.out_dtype), shape))
    return parts[0] if len(parts) == 1 else ctx.emit("concat", parts, axis=axis)


def slice_(ctx, x: Value, axis: int, start, end, step=1, length=None) -> Value:
    """x[start:end:step] along ``axis``; bounds or a size known only at run time give a
    ``dynamic_slice`` (``length``: the result's size along ``axis``, torch's where known)."""
    axis = norm_axis(axis, x.type.rank)
    size = x.type.shape[axis]
    if isinstance(size, str) or isinstance(start, Value) or isinstance(end, Value):
        from .symbolic_shape import dynamic_slice

        return dynamic_slice(ctx, x, axis, start, end, step, length)
    start, end, step = slice(start, end, step).indices(size)
    if (start, end, step) == (0, size, 1):
        return x
    return ctx.emit("slice", [x], axis=axis, start=start, end=end, step=step)


@lowering(*overloads("slice", "Tensor"))
def lower_slice(ctx, x, dim=0, start=None, end=None, step=1):
    return slice_(ctx, x, dim, start, end, step, length=ctx.out_type.shape[norm_axis(dim, x.type.rank)])


@lowering(aten.narrow.default, aten.narrow_copy.default)
def lower_narrow(ctx, x, dim, start, length):
    if isinstance(start, Value) or isinstance(length, Value):
        end = ctx.emit("add", [ctx.sizes.scalar(start), ctx.sizes.scalar(length)])
        return slice_(ctx, x, dim, start, end, length=ctx.out_type.shape[norm_axis(dim, x.type.rank)])
    return slice_(ctx, x, dim, start, start + length)


@lowering(*overloads("select", "int"))
def lower_select(ctx, x, dim, index):
    axis = norm_axis(dim, x.type.rank)
    if isinstance(x.type.shape[axis], str) or isinstance(index, Value):
        from .symbolic_shape import dynamic_select

        return ctx.reshape(dynamic_select(ctx, x, axis, index), ctx.out_type.shape)
    index = index % x.type.shape[axis]
    return ctx.reshape(slice_(ctx, x, axis, index, index + 1), ctx.out_type.shape)


def _split(ctx, x, sizes, dim):
    axis = norm_axis(dim, x.type.rank)
    if isinstance(x.type.shape[axis], str) or any(not isinstance(s, int) for s in sizes):
        raise ctx.fail(f"splitting along an axis of run-time size ({x.type.shape[axis]}) is not supported yet")
    outs, start = [], 0
    for s in sizes:
        outs.append(slice_(ctx, x, axis, start, start + s))
        start += s
    return tuple(outs)


@lowering(*overloads("split_with_sizes", "default"))
def lower_split_with_sizes(ctx, x, split_sizes, dim=0):
    return _split(ctx, x, split_sizes, dim)


@lowering(*overloads("split", "Tensor"))
def lower_split(ctx, x, split_size, dim=0):
    size = x.type.shape[norm_axis(dim, x.type.rank)]
    if isinstance(size, str) or not isinstance(split_size, int):
        raise ctx.fail(f"splitting along an axis of run-time size ({size}) is not supported yet")
    sizes = [min(split_size, size - i) for i in range(0, size, split_size)]
    return _split(ctx, x, sizes, dim)


@lowering(*overloads("unbind", "int"))
def lower_unbind(ctx, x, dim=0):
    axis = norm_axis(dim, x.type.rank)
    if isinstance(x.type.shape[axis], str):
        raise ctx.fail(f"unbinding an axis of run-time size ({x.type.shape[axis]}) is not supported yet")
    shape = [d for i, d in enumerate(x.type.shape) if i != axis]
    return tuple(ctx.reshape(s, shape) for s in _split(ctx, x, [1] * x.type.shape[axis], axis))


@lowering(aten.chunk.default)
def lower_chunk(ctx, x, chunks, dim=0):
    size = x.type.shape[norm_axis(dim, x.type.rank)]
    if isinstance(size, str):
        raise ctx.fail(f"chunking an axis of run-time size ({size}) is not supported yet")
    step = -(-size // chunks)
    return lower_split(ctx, x, step, dim)


@lowering(*overloads("slice_scatter", "default"))
def lower_slice_scatter(ctx, x, src, dim=0, start=None, end=None, step=1):
    axis = norm_axis(dim, x.type.rank)
    _static_axis(ctx, x, axis, "writing into a slice")
    start, end, step = slice(start, end, step).indices(x.type.shape[axis])
    if (start, end, step) == (0, x.type.shape[axis], 1):
        return ctx.cast(src, x.type.dtype)
    return ctx.emit("slice_scatter", [x, ctx.cast(src, x.type.dtype)], axis=axis, start=start, end=end, step=step)


@lowering(*overloads("select_scatter", "default"))
def lower_select_scatter(ctx, x, src, dim, index):
    axis = norm_axis(dim, x.type.rank)
    _static_axis(ctx, x, axis, "writing into a slice")
    index = index % x.type.shape[axis]
    shape = list(x.type.shape)
    shape[axis] = 1
    src = ctx.reshape(ctx.cast(src, x.type.dtype), shape)
    return ctx.emit("slice_scatter", [x, src], axis=axis, start=index, end=index + 1, step=1)


def _static_axis(ctx, x: Value, axis: int, what: str) -> None:
    if isinstance(x.type.shape[axis], str):
        raise ctx.fail(f"{what} along an axis of run-time size ({x.type.shape[axis]}) is not supported yet")


@lowering(aten.constant_pad_nd.default)
def lower_constant_pad_nd(ctx, x, pad, value=0):
    return lower_pad(ctx, x, pad, "constant", value)


@lowering(aten.pad.default)
def lower_pad(ctx, x, pad, mode="constant", value=None):
    rank = x.type.rank
    pads = [0] * (2 * rank)
    for i in range(len(pad) // 2):  # torch lists pads from the last axis backwards
        axis = rank - 1 - i
        pads[2 * axis], pads[2 * axis + 1] = pad[2 * i], pad[2 * i + 1]
    if not any(pads):
        return x
    if any(p < 0 for p in pads) or mode in ("replicate", "circular"):
        for axis in range(rank):
            if pads[2 * axis] or pads[2 * axis + 1]:
                _static_axis(ctx, x, axis, f"{mode} padding (or cropping)")
    if any(p < 0 for p in pads):
        for axis in range(rank):
            lo, hi = pads[2 * axis], pads[2 * axis + 1]
            if lo < 0 or hi < 0:
                x = slice_(ctx, x, axis, max(-lo, 0), x.type.shape[axis] - max(-hi, 0))
                pads[2 * axis], pads[2 * axis + 1] = max(lo, 0), max(hi, 0)
        if not any(pads):
            return x
    if mode in ("replicate", "circular"):  # edges repeated / wrapped around: slices and a concat
        for axis in range(rank):
            lo, hi = pads[2 * axis], pads[2 * axis + 1]
            if not lo and not hi:
                continue
            size = x.type.shape[axis]
            if mode == "replicate":
                def edge(at, count, axis=axis):
                    shape = list(x.type.shape)
                    shape[axis] = count
                    return ctx.emit("expand", [slice_(ctx, x, axis, at, at + 1)], shape=shape)

                parts = ([edge(0, lo)] if lo else []) + [x] + ([edge(size - 1, hi)] if hi else [])
            else:
                parts = ([slice_(ctx, x, axis, size - lo, size)] if lo else []) + [x] + \
                    ([slice_(ctx, x, axis, 0, hi)] if hi else [])
            x = ctx.emit("concat", parts, axis=axis)
        return x
    return ctx.emit("pad", [x], pads=pads, mode=mode, value=float(value or 0.0))


@lowering(aten.reflection_pad1d.default, aten.reflection_pad2d.default, aten.reflection_pad3d.default,
          aten.replication_pad1d.default, aten.replication_pad2d.default, aten.replication_pad3d.default)
def lower_mode_pad(ctx, x, padding):
    mode = "reflect" if "reflection" in ctx.loc.op else "replicate"
    return lower_pad(ctx, x, padding, mode=mode)


@lowering(aten.flip.default)
def lower_flip(ctx, x, dims):
    return ctx.emit("flip", [x], axes=norm_axes(dims, x.type.rank))


@lowering(aten.roll.default)
def lower_roll(ctx, x, shifts, dims=()):
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not dims:
        flat = ctx.reshape(x, [x.type.numel])
        return ctx.reshape(lower_roll(ctx, flat, shifts, [0]), x.type.shape)
    for shift, dim in zip(shifts, dims):
        axis = norm_axis(dim, x.type.rank)
        _static_axis(ctx, x, axis, "rolling")
        size = x.type.shape[axis]
        shift %= size
        if shift:
            x = ctx.emit("concat", [slice_(ctx, x, axis, size - shift, size), slice_(ctx, x, axis, 0, size - shift)],
                         axis=axis)
    return x


@lowering(aten.index_select.default)
def lower_index_select(ctx, x, dim, index):
    if x.type.rank == 0:  # the only index is 0
        return x
    return ctx.emit("index_select", [x, index], axis=norm_axis(dim, x.type.rank))


@lowering(aten.gather.default)
def lower_gather(ctx, x, dim, index, sparse_grad=False):
    if x.type.rank == 0:  # gathering from a single element
        out = ctx.emit("gather", [ctx.reshape(x, [1]), ctx.reshape(index, [max(index.type.numel, 1)])], axis=0)
        return ctx.reshape(out, ctx.out_type.shape)
    return ctx.emit("gather", [x, index], axis=norm_axis(dim, x.type.rank))


@lowering(aten.index.Tensor)
def lower_index(ctx, x, indices):
    """x[idx] with one index tensor (the others None), or several that broadcast together."""
    from .indexing import index_tensor

    return index_tensor(ctx, x, indices)


@lowering(aten.embedding.default)
def lower_embedding(ctx, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    if indices.type.rank == 0:
        return ctx.reshape(ctx.emit("embedding", [weight, ctx.reshape(indices, [1])]), [weight.type.shape[1]])
    return ctx.emit("embedding", [weight, indices])


def _tf_channel_order(channels: int, r: int) -> np.ndarray:
    """For each channel k = (i * r + j) * C + c of TensorFlow's depth layout, the torch channel
    c * r * r + i * r + j (pixel shuffle's order)."""
    c_out = channels // (r * r)
    k = np.arange(channels)
    block, c = k // c_out, k % c_out
    return (c * r * r + block).astype(np.int64)


@lowering(aten.pixel_shuffle.default)
def lower_pixel_shuffle(ctx, x, factor):
    """pixel_shuffle = depth_to_space after a channel permutation (which passes fold into a conv)."""
    if factor == 1:
        return x
    if x.type.rank != 4:  # batch axes merged into one, and split again after
        lead = list(x.type.shape[:-3])
        y = lower_pixel_shuffle(ctx, ctx.reshape(x, [int(np.prod(lead))] + list(x.type.shape[-3:])), factor)
        return ctx.reshape(y, lead + list(y.type.shape[1:]))
    order = _tf_channel_order(x.type.shape[1], factor)
    x = ctx.emit("index_select", [x, ctx.const(order, "i64", name=f"{ctx.name}_order")], axis=1)
    return ctx.emit("depth_to_space", [x], block=factor)


@lowering(aten.pixel_unshuffle.default)
def lower_pixel_unshuffle(ctx, x, factor):
    """pixel_unshuffle = space_to_depth followed by a channel permutation."""
    if factor == 1:
        return x
    if x.type.rank != 4:
        lead = list(x.type.shape[:-3])
        y = lower_pixel_unshuffle(ctx, ctx.reshape(x, [int(np.prod(lead))] + list(x.type.shape[-3:])), factor)
        return ctx.reshape(y, lead + list(y.type.shape[1:]))
    y = ctx.emit("space_to_depth", [x], block=factor)
    order = np.argsort(_tf_channel_order(y.type.shape[1], factor))
    return ctx.emit("index_select", [y, ctx.const(order, "i64", name=f"{ctx.name}_order")], axis=1)
