"""Convolutions and products: conv (and transposed conv), linear, matmul and the addmm family,
bilinear forms."""

from __future__ import annotations

import numpy as np

from ...ir import Value
from ..registry import lowering
from .common import aten, axis_values, binary, norm_axis


def _pairs(padding, n):
    pads = axis_values(padding, n)
    return [p for p in pads for _ in (0, 1)]


def conv(ctx, x, w, b, stride, padding, dilation, groups, transposed=False, output_padding=0):
    n = w.type.rank - 2
    if x.type.rank == n + 1:  # an unbatched input: a batch of one
        out = conv(ctx, ctx.reshape(x, [1] + list(x.type.shape)), w, b, stride, padding, dilation, groups,
                   transposed, output_padding)
        return ctx.reshape(out, list(out.type.shape[1:]))
    dilation = axis_values(dilation, n)
    if isinstance(padding, str):
        if padding == "valid":
            pads = [0] * (2 * n)
        else:  # "same": total = dilation * (k - 1), the extra pixel at the end (as torch does)
            pads = []
            for i in range(n):
                total = dilation[i] * (w.type.shape[2 + i] - 1)
                pads += [total // 2, total - total // 2]
    else:
        pads = _pairs(padding, n)
    inputs = [x, w] + ([b] if b is not None else [])
    return ctx.emit("conv", inputs, stride=axis_values(stride, n), padding=pads, dilation=dilation,
                    groups=groups, transposed=bool(transposed),
                    output_padding=axis_values(output_padding, n) if transposed else None)


@lowering(aten.conv1d.default, aten.conv2d.default, aten.conv3d.default, keep_whole=True, emits=("conv",))
@lowering(aten.conv1d.padding, aten.conv2d.padding, aten.conv3d.padding, emits=("conv",))
def lower_conv(ctx, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return conv(ctx, x, w, b, stride, padding, dilation, groups)


@lowering(aten.conv_transpose1d.default, aten.conv_transpose2d.input, aten.conv_transpose3d.input, keep_whole=True,
          emits=("conv",))
def lower_conv_transpose(ctx, x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return conv(ctx, x, w, b, stride, padding, dilation, groups, True, output_padding)


@lowering(aten.convolution.default, emits=("conv",))
def lower_convolution(ctx, x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    return conv(ctx, x, w, b, stride, padding, dilation, groups, transposed, output_padding)


# ----------------------------------------------------------------------------- products


@lowering(aten.linear.default, keep_whole=True, emits=("linear",))
def lower_linear(ctx, x, w, b=None):
    return ctx.emit("linear", [x, w] + ([b] if b is not None else []))


def _constant_transposed(ctx, v: Value):
    """The [out, in] weight behind ``v`` if ``v`` is a constant [in, out] matrix or its transpose."""
    node = v.producer
    if node.op == "permute" and node.inputs[0].producer.op == "constant" and list(node.attrs["perm"]) == [1, 0]:
        return node.inputs[0]
    if node.op == "constant":
        return ctx.const(np.ascontiguousarray(node.value.T), name=f"{ctx.name}_weight")
    return None


@lowering(aten.addmm.default, emits=("linear", "matmul", "mul", "add"))
def lower_addmm(ctx, bias, a, b, *, beta=1, alpha=1):
    w = _constant_transposed(ctx, b)
    if w is not None and beta == 1 and alpha == 1 and bias.type.rank == 1:
        return ctx.emit("linear", [a, w, bias])
    y = ctx.emit("matmul", [a, b])
    if alpha != 1:
        y = ctx.emit("mul", [y, ctx.const(alpha, y.type.dtype)])
    if beta != 1:
        bias = ctx.emit("mul", [bias, ctx.const(beta, y.type.dtype)])
    return ctx.emit("add", [y, bias])


@lowering(aten.mm.default, aten.bmm.default, aten.matmul.default, emits=("linear", "matmul"))
def lower_matmul(ctx, a, b):
    w = _constant_transposed(ctx, b) if b.type.rank == 2 and a.type.rank >= 2 else None
    if w is not None:
        return ctx.emit("linear", [a, w])
    return ctx.emit("matmul", [a, b])


def _scaled(ctx, v: Value, factor) -> Value:
    return v if factor == 1 else binary(ctx, "mul", v, factor, v.type.dtype)


def _beta_plus(ctx, x: Value, product: Value, beta, alpha) -> Value:
    product = _scaled(ctx, product, alpha)
    if beta == 0:  # torch ignores the input then (NaNs in it do not propagate)
        shape = list(ctx.out_type.shape)
        return product if tuple(product.type.shape) == tuple(shape) else ctx.emit("expand", [product], shape=shape)
    return ctx.emit("add", [_scaled(ctx, ctx.cast(x, product.type.dtype), beta), product])


@lowering(aten.addbmm.default, emits=("matmul", "reduce", "mul", "expand", "add"))
def lower_addbmm(ctx, x, batch1, batch2, *, beta=1, alpha=1):
    """beta * x + alpha * sum over the batch of batch1 @ batch2."""
    product = ctx.emit("reduce", [ctx.emit("matmul", [batch1, batch2])], kind="sum", axes=[0], keepdim=False)
    return _beta_plus(ctx, x, product, beta, alpha)


@lowering(aten.addmv.default, emits=("matmul", "mul", "expand", "add"))
def lower_addmv(ctx, x, mat, vec, *, beta=1, alpha=1):
    return _beta_plus(ctx, x, ctx.emit("matmul", [mat, vec]), beta, alpha)


@lowering(aten._trilinear.default, emits=("mul", "reduce"))
def lower_trilinear(ctx, i1, i2, i3, expand1, expand2, expand3, sumdim, unroll_dim=1):
    """Each input with size-1 axes inserted at its ``expand`` positions, multiplied, summed over
    ``sumdim`` (the kernel behind nn.functional.bilinear)."""
    def expanded(t, dims):
        shape = list(t.type.shape)
        for d in sorted(dims):
            shape.insert(d, 1)
        return ctx.reshape(t, shape)

    prod = ctx.emit("mul", [ctx.emit("mul", [expanded(i1, expand1), expanded(i2, expand2)]), expanded(i3, expand3)])
    if not sumdim:
        return prod
    return ctx.emit("reduce", [prod], kind="sum", axes=sorted(norm_axis(d, prod.type.rank) for d in sumdim),
                    keepdim=False)
