"""Shape ops: views, permutes, broadcasts, slicing, splitting, concatenation, padding, flips and
rolls, and writing into slices."""

from __future__ import annotations

from ...ir import Value
from ..registry import LoweringContext, lowering, tensor_type
from ..symbolic import INT32_MAX, dim_of, expression
from .common import aten, dynamic_slice, expand, norm_axes, norm_axis, overloads, permute, slice_


@lowering(*overloads("view", "default"), *overloads("_unsafe_view", "default"), aten.reshape.default, emits=())
def lower_view(ctx: LoweringContext, x: Value, shape):
    return ctx.reshape(x, ctx.out_type.shape)


@lowering(*overloads("flatten", "using_ints"), *overloads("unflatten", "int"), emits=())
def lower_flatten(ctx, x, *args):
    return ctx.reshape(x, ctx.out_type.shape)


@lowering(*overloads("unsqueeze", "default"), *overloads("squeeze", "default", "dim", "dims"), emits=())
def lower_squeeze(ctx, x, *args):
    return ctx.reshape(x, ctx.out_type.shape)


@lowering(*overloads("permute", "default"), emits=("permute",))
def lower_permute(ctx, x, dims):
    return permute(ctx, x, dims)


@lowering(*overloads("transpose", "int"), emits=("permute",))
def lower_transpose(ctx, x, dim0, dim1):
    perm = list(range(x.type.rank))
    a, b = norm_axis(dim0, x.type.rank), norm_axis(dim1, x.type.rank)
    perm[a], perm[b] = perm[b], perm[a]
    return permute(ctx, x, perm)


@lowering(*overloads("t", "default"), aten.numpy_T.default, emits=("permute",))
def lower_t(ctx, x):
    return permute(ctx, x, list(reversed(range(x.type.rank))))


@lowering(*overloads("expand", "default"), aten.expand_as.default, aten.broadcast_to.default,
          emits=("expand", "dynamic_expand"))
def lower_expand(ctx, x, shape, *args, **kwargs):
    out = list(ctx.out_type.shape)
    if tuple(out) == tuple(x.type.shape):
        return x
    return expand(ctx, x, out)


@lowering(aten.repeat.default, emits=("tile", "dynamic_expand"))
def lower_repeat(ctx, x, repeats):
    if all(isinstance(r, int) for r in repeats):
        return ctx.emit("tile", [x], reps=list(repeats))
    return _repeat_run_time(ctx, x, repeats)


def _repeat_run_time(ctx: LoweringContext, x: Value, repeats) -> Value:
    """``x.repeat(*repeats)`` with counts known at run time only (e.g. the batch size, as
    instance_norm repeats its weights): the copies of each axis as a new axis before it -- x
    reshaped to [1, d0, 1, d1, ...], broadcast to [r0, d0, r1, d1, ...] -- merged into it."""
    out = list(ctx.out_type.shape)
    shape = [1] * (len(repeats) - x.type.rank) + list(x.type.shape)
    counts = [dim_of(expression(o) / expression(d)) for o, d in zip(out, shape)]
    spread = ctx.reshape(x, [d for s in shape for d in (1, s)])
    sizes = ctx.sizes.vector([d for r, s in zip(repeats, shape) for d in (r, s)])
    copies = ctx.emit("dynamic_expand", [spread, sizes], shape=[d for c, s in zip(counts, shape) for d in (c, s)])
    return ctx.reshape(copies, out)


@lowering(aten.cat.default, aten.concat.default, emits=("concat",))
def lower_cat(ctx, tensors, dim=0):
    dtype = ctx.out_dtype
    rank = ctx.out_type.rank
    tensors = [ctx.cast(t, dtype) for t in tensors if not (t.type.rank == 1 and t.type.shape[0] == 0)]
    if len(tensors) == 1:
        return tensors[0]
    return ctx.emit("concat", tensors, axis=norm_axis(dim, rank))


@lowering(aten.stack.default, emits=("concat",))
def lower_stack(ctx, tensors, dim=0):
    rank = tensors[0].type.rank + 1
    axis = norm_axis(dim, rank)
    parts = []
    for t in tensors:
        shape = list(t.type.shape)
        shape.insert(axis, 1)
        parts.append(ctx.reshape(ctx.cast(t, ctx.out_dtype), shape))
    return parts[0] if len(parts) == 1 else ctx.emit("concat", parts, axis=axis)


@lowering(*overloads("slice", "Tensor"), emits=("slice", "dynamic_slice"))
def lower_slice(ctx, x, dim=0, start=None, end=None, step=1):
    return slice_(ctx, x, dim, start, end, step, length=ctx.out_type.shape[norm_axis(dim, x.type.rank)])


@lowering(aten.narrow.default, aten.narrow_copy.default, emits=("add", "slice", "dynamic_slice"))
def lower_narrow(ctx, x, dim, start, length):
    if isinstance(start, Value) or isinstance(length, Value):
        end = ctx.emit("add", [ctx.sizes.scalar(start), ctx.sizes.scalar(length)])
        return slice_(ctx, x, dim, start, end, length=ctx.out_type.shape[norm_axis(dim, x.type.rank)])
    return slice_(ctx, x, dim, start, start + length)


@lowering(*overloads("select", "int"), emits=("add", "slice", "dynamic_slice"))
def lower_select(ctx, x, dim, index):
    axis = norm_axis(dim, x.type.rank)
    if isinstance(x.type.shape[axis], str) or isinstance(index, Value):
        return ctx.reshape(_dynamic_select(ctx, x, axis, index), ctx.out_type.shape)
    index = index % x.type.shape[axis]
    return ctx.reshape(slice_(ctx, x, axis, index, index + 1), ctx.out_type.shape)


def _dynamic_select(ctx: LoweringContext, x: Value, axis: int, index) -> Value:
    """x[index] along ``axis``, keeping the axis (of size 1)."""
    if isinstance(index, int):
        end = index + 1 if index != -1 else INT32_MAX
        return dynamic_slice(ctx, x, axis, index, end, 1, 1)
    end = ctx.emit("add", [ctx.sizes.scalar(index), ctx.sizes.scalar(1)])
    return dynamic_slice(ctx, x, axis, index, end, 1, 1)


def _split(ctx, x, sizes, dim):
    axis = norm_axis(dim, x.type.rank)
    if isinstance(x.type.shape[axis], str) or any(not isinstance(s, int) for s in sizes):
        return _split_run_time(ctx, x, sizes, axis)
    outs, start = [], 0
    for s in sizes:
        outs.append(slice_(ctx, x, axis, start, start + s))
        start += s
    return tuple(outs)


def _split_run_time(ctx, x, sizes, axis):
    """Pieces of sizes known at run time only (e.g. a dynamic batch cut in two): one
    ``dynamic_slice`` each, its bounds the running sums of the sizes (the last to the end), its
    length torch's."""
    pieces = ctx.meta_val if isinstance(ctx.meta_val, (tuple, list)) else [ctx.meta_val]
    example = sum(int(getattr(getattr(p.shape[axis], "node", None), "hint", p.shape[axis]) or 0) for p in pieces)
    if example <= 1:  # (torch.export fixed the number of pieces at the example's size, without a guard)
        raise ctx.fail(f"splitting axis {axis} of run-time size {x.type.shape[axis]} whose example size is "
                       f"{example} is not supported: the number of pieces is fixed to the example's; give an "
                       f"example input of size 2 or more along it")
    outs, start = [], 0
    for k, (size, piece) in enumerate(zip(sizes, pieces)):
        size = ctx.sizes.value(size)
        if k == len(sizes) - 1:
            end = INT32_MAX
        elif isinstance(start, int) and isinstance(size, int):
            end = start + size
        else:
            end = ctx.emit_ambient("add", [ctx.sizes.scalar(start), ctx.sizes.scalar(size)])
        outs.append(dynamic_slice(ctx, x, axis, start, end, 1, tensor_type(piece).shape[axis]))
        start = end
    return tuple(outs)


@lowering(*overloads("split_with_sizes", "default"), emits=("slice", "dynamic_slice"))
def lower_split_with_sizes(ctx, x, split_sizes, dim=0):
    return _split(ctx, x, split_sizes, dim)


@lowering(*overloads("split", "Tensor"), emits=("slice",))
def lower_split(ctx, x, split_size, dim=0):
    size = x.type.shape[norm_axis(dim, x.type.rank)]
    if isinstance(size, str) or not isinstance(split_size, int):
        raise ctx.fail(f"splitting along an axis of run-time size ({size}) is not supported yet")
    sizes = [min(split_size, size - i) for i in range(0, size, split_size)]
    return _split(ctx, x, sizes, dim)


@lowering(*overloads("unbind", "int"), emits=("slice",))
def lower_unbind(ctx, x, dim=0):
    axis = norm_axis(dim, x.type.rank)
    if isinstance(x.type.shape[axis], str):
        raise ctx.fail(f"unbinding an axis of run-time size ({x.type.shape[axis]}) is not supported yet")
    shape = [d for i, d in enumerate(x.type.shape) if i != axis]
    return tuple(ctx.reshape(s, shape) for s in _split(ctx, x, [1] * x.type.shape[axis], axis))


@lowering(aten.chunk.default, emits=("slice",))
def lower_chunk(ctx, x, chunks, dim=0):
    size = x.type.shape[norm_axis(dim, x.type.rank)]
    if isinstance(size, str):
        raise ctx.fail(f"chunking an axis of run-time size ({size}) is not supported yet")
    step = -(-size // chunks)
    return lower_split(ctx, x, step, dim)


@lowering(*overloads("slice_scatter", "default"), emits=("slice_scatter",))
def lower_slice_scatter(ctx, x, src, dim=0, start=None, end=None, step=1):
    axis = norm_axis(dim, x.type.rank)
    _static_axis(ctx, x, axis, "writing into a slice")
    start, end, step = slice(start, end, step).indices(x.type.shape[axis])
    if (start, end, step) == (0, x.type.shape[axis], 1):
        return ctx.cast(src, x.type.dtype)
    return ctx.emit("slice_scatter", [x, ctx.cast(src, x.type.dtype)], axis=axis, start=start, end=end, step=step)


@lowering(*overloads("select_scatter", "default"), emits=("slice_scatter",))
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


_PAD_OPS = ("pad", "slice", "expand", "concat")  # (cropping, replicated and circular edges: slices)


@lowering(aten.constant_pad_nd.default, emits=_PAD_OPS)
def lower_constant_pad_nd(ctx, x, pad, value=0):
    return lower_pad(ctx, x, pad, "constant", value)


@lowering(aten.pad.default, emits=_PAD_OPS)
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
          aten.replication_pad1d.default, aten.replication_pad2d.default, aten.replication_pad3d.default,
          emits=_PAD_OPS)
def lower_mode_pad(ctx, x, padding):
    mode = "reflect" if "reflection" in ctx.loc.op else "replicate"
    return lower_pad(ctx, x, padding, mode=mode)


@lowering(aten.flip.default, emits=("flip",))
def lower_flip(ctx, x, dims):
    return ctx.emit("flip", [x], axes=norm_axes(dims, x.type.rank))


@lowering(aten.roll.default, emits=("slice", "concat"))
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
