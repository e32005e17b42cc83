"""Reductions and scans: sum/mean/max/min/prod/var/any/all, arg-reductions, cumsum, top-k."""

from __future__ import annotations

from ...ir import Value
from ..registry import LoweringContext, lowering
from ._util import aten, norm_axes, norm_axis


def reduce(ctx: LoweringContext, kind: str, x: Value, dim, keepdim: bool, dtype=None) -> Value:
    rank = x.type.rank
    if rank == 0:  # reducing a single element
        return ctx.cast(x, ctx.out_dtype)
    axes = None if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0) else \
        norm_axes([dim] if isinstance(dim, int) else dim, rank)
    if kind in ("sum", "mean", "prod"):
        x = ctx.cast(x, ctx.out_dtype)
    out = ctx.emit("reduce", [x], kind=kind, axes=axes, keepdim=bool(keepdim))
    return ctx.cast(out, ctx.out_dtype)


def _reduction(kind):
    def lower_reduction(ctx, x, dim=None, keepdim=False, *, dtype=None):
        return reduce(ctx, kind, x, dim, keepdim)

    lower_reduction.__name__ = f"lower_{kind}"
    return lower_reduction


lowering(aten.sum.dim_IntList)(_reduction("sum"))
lowering(aten.mean.dim)(_reduction("mean"))
lowering(aten.amax.default)(_reduction("max"))
lowering(aten.amin.default)(_reduction("min"))
lowering(aten.any.dim, aten.any.dims)(_reduction("any"))
lowering(aten.all.dim, aten.all.dims)(_reduction("all"))
lowering(aten.prod.dim_int)(_reduction("prod"))


@lowering(aten.sum.default, aten.mean.default, aten.max.default, aten.min.default, aten.prod.default,
          aten.any.default, aten.all.default)
def lower_full_reduction(ctx, x, *, dtype=None):
    kind = ctx.loc.op.split(".")[1]
    return reduce(ctx, kind, x, None, False)


@lowering(aten.max.dim, aten.min.dim)
def lower_max_dim(ctx, x, dim, keepdim=False):
    kind = ctx.loc.op.split(".")[1]
    if x.type.rank == 0:
        return x, ctx.const(0, "i64")
    values = reduce(ctx, kind, x, dim, keepdim)
    indices = ctx.emit("argreduce", [x], kind=f"arg{kind}", axes=[norm_axis(dim, x.type.rank)], keepdim=bool(keepdim))
    return values, indices


@lowering(aten.argmax.default, aten.argmin.default)
def lower_argmax(ctx, x, dim=None, keepdim=False):
    kind = ctx.loc.op.split(".")[1]
    if x.type.rank == 0:
        return ctx.const(0, "i64")
    if dim is None:
        x = ctx.reshape(x, [x.type.numel])
        out = ctx.emit("argreduce", [x], kind=kind, axes=[0], keepdim=False)
        return ctx.reshape(out, ctx.out_type.shape)
    return ctx.emit("argreduce", [x], kind=kind, axes=[norm_axis(dim, x.type.rank)], keepdim=bool(keepdim))


@lowering(aten.var.correction, aten.var.dim, aten.std.correction, aten.std.dim)
def lower_var(ctx, x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if "correction" not in ctx.loc.op:
        correction = 1.0 if unbiased in (None, True) else 0.0
    correction = 1.0 if correction is None else float(correction)
    axes = None if dim is None or len(dim) == 0 else norm_axes(dim, x.type.rank)
    out = ctx.emit("var", [x], axes=axes, correction=correction, keepdim=bool(keepdim))
    return ctx.emit("sqrt", [out]) if ".std." in f".{ctx.loc.op}." or "aten.std" in ctx.loc.op else out


@lowering(aten.cumsum.default)
def lower_cumsum(ctx, x, dim, *, dtype=None):
    if x.type.rank == 0:
        return ctx.cast(x, ctx.out_dtype)
    return ctx.emit("cumsum", [ctx.cast(x, ctx.out_dtype)], axis=norm_axis(dim, x.type.rank))


@lowering(aten.topk.default)
def lower_topk(ctx, x, k, dim=-1, largest=True, sorted=True):
    if x.type.rank == 0:
        return x, ctx.const(0, "i64")
    axis = norm_axis(dim, x.type.rank)
    if axis == x.type.rank - 1:
        return ctx.emit("topk", [x], k=k, axis=axis, largest=bool(largest))
    from .shape import permute  # top-k runs along the last axis: move `axis` there and back

    perm = [a for a in range(x.type.rank) if a != axis] + [axis]
    back = [perm.index(a) for a in range(x.type.rank)]
    values, indices = ctx.emit("topk", [permute(ctx, x, perm)], k=k, axis=-1, largest=bool(largest))
    return permute(ctx, values, back), permute(ctx, indices, back)
