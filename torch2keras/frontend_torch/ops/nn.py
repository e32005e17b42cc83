"""High-level neural-network ops kept whole: convolution, linear/matmul, norms, pooling,
resizing, softmax and attention."""

from __future__ import annotations

import numpy as np

from ...ir import Value
from ..registry import LoweringContext, lowering
from ._util import aten, norm_axis


def _tuple(v, n):
    if isinstance(v, (list, tuple)):
        v = list(v)
        return v * n if len(v) == 1 else v
    return [v] * n


def _pairs(padding, n):
    pads = _tuple(padding, n)
    return [p for p in pads for _ in (0, 1)]


def conv(ctx, x, w, b, stride, padding, dilation, groups, transposed=False, output_padding=0):
    n = x.type.rank - 2
    dilation = _tuple(dilation, n)
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
    return ctx.emit("conv", inputs, stride=_tuple(stride, n), padding=pads, dilation=dilation,
                    groups=groups, transposed=bool(transposed),
                    output_padding=_tuple(output_padding, n) if transposed else None)


@lowering(aten.conv1d.default, aten.conv2d.default, aten.conv3d.default,
          aten.conv1d.padding, aten.conv2d.padding, aten.conv3d.padding)
def lower_conv(ctx, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return conv(ctx, x, w, b, stride, padding, dilation, groups)


@lowering(aten.conv_transpose1d.default, aten.conv_transpose2d.input, aten.conv_transpose3d.input)
def lower_conv_transpose(ctx, x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return conv(ctx, x, w, b, stride, padding, dilation, groups, True, output_padding)


@lowering(aten.convolution.default)
def lower_convolution(ctx, x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    return conv(ctx, x, w, b, stride, padding, dilation, groups, transposed, output_padding)


@lowering(aten.linear.default)
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


@lowering(aten.addmm.default)
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


@lowering(aten.mm.default, aten.bmm.default, aten.matmul.default)
def lower_matmul(ctx, a, b):
    w = _constant_transposed(ctx, b) if b.type.rank == 2 and a.type.rank >= 2 else None
    if w is not None:
        return ctx.emit("linear", [a, w])
    return ctx.emit("matmul", [a, b])


def batch_norm(ctx, x, w, b, mean, var, eps):
    inputs = [x, mean, var] + ([w] if w is not None else [])
    if b is not None:
        if w is None:
            inputs.append(ctx.const(np.ones(x.type.shape[1], np.float32)))
        inputs.append(b)
    return ctx.emit("batch_norm", inputs, eps=float(eps))


@lowering(aten._native_batch_norm_legit_no_training.default)
def lower_bn_no_training(ctx, x, w, b, mean, var, momentum, eps):
    return batch_norm(ctx, x, w, b, mean, var, eps), None, None


@lowering(aten.batch_norm.default)
def lower_batch_norm(ctx, x, w, b, mean, var, training, momentum, eps, cudnn_enabled=True):
    if training or mean is None:
        raise ctx.fail("batch norm in training mode (batch statistics): call model.eval() first")
    return batch_norm(ctx, x, w, b, mean, var, eps)


@lowering(aten.native_batch_norm.default, aten._native_batch_norm_legit.default)
def lower_native_batch_norm(ctx, x, w, b, mean, var, training, momentum, eps):
    if training:
        raise ctx.fail("batch norm in training mode (batch statistics): call model.eval() first")
    return batch_norm(ctx, x, w, b, mean, var, eps), None, None


def _affine_inputs(ctx, x, w, b, shape):
    inputs = [x]
    if w is not None or b is not None:
        inputs.append(w if w is not None else ctx.const(np.ones(shape, np.float32)))
    if b is not None:
        inputs.append(b)
    return inputs


@lowering(aten.layer_norm.default)
def lower_layer_norm(ctx, x, normalized_shape, w=None, b=None, eps=1e-5, cudnn_enable=True):
    return ctx.emit("layer_norm", _affine_inputs(ctx, x, w, b, normalized_shape),
                    num_axes=len(normalized_shape), eps=float(eps))


@lowering(aten.native_layer_norm.default)
def lower_native_layer_norm(ctx, x, normalized_shape, w, b, eps):
    return lower_layer_norm(ctx, x, normalized_shape, w, b, eps), None, None


@lowering(aten.group_norm.default)
def lower_group_norm(ctx, x, groups, w=None, b=None, eps=1e-5, cudnn_enabled=True):
    return ctx.emit("group_norm", _affine_inputs(ctx, x, w, b, [x.type.shape[1]]), groups=groups, eps=float(eps))


@lowering(aten.native_group_norm.default)
def lower_native_group_norm(ctx, x, w, b, n, c, hw, groups, eps):
    return lower_group_norm(ctx, x, groups, w, b, eps), None, None


def _pool_args(x, kernel, stride, padding, n):
    kernel = _tuple(kernel, n)
    stride = _tuple(stride, n) if stride not in (None, [], ()) else kernel
    return kernel, stride, _tuple(padding, n)


@lowering(aten.max_pool1d.default, aten.max_pool2d.default, aten.max_pool3d.default,
          aten.max_pool2d_with_indices.default, aten.max_pool3d_with_indices.default)
def lower_max_pool(ctx, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    n = len(_tuple(kernel_size, 1)) if isinstance(kernel_size, (list, tuple)) and len(kernel_size) > 1 \
        else int(ctx.loc.op.split("max_pool")[1][0])
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding, n)
    out = ctx.emit("max_pool", [x], kernel=kernel, stride=stride, padding=padding,
                   dilation=_tuple(dilation, n), ceil_mode=bool(ceil_mode))
    return (out, None) if "with_indices" in ctx.loc.op else out


@lowering(aten.avg_pool1d.default, aten.avg_pool2d.default, aten.avg_pool3d.default)
def lower_avg_pool(ctx, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                   divisor_override=None):
    n = int(ctx.loc.op.split("avg_pool")[1][0])
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding, n)
    return ctx.emit("avg_pool", [x], kernel=kernel, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
                    count_include_pad=bool(count_include_pad), divisor_override=divisor_override)


@lowering(aten.adaptive_avg_pool1d.default, aten.adaptive_avg_pool2d.default, aten._adaptive_avg_pool2d.default,
          aten.adaptive_avg_pool3d.default, aten._adaptive_avg_pool3d.default)
def lower_adaptive_avg_pool(ctx, x, output_size):
    n = len(output_size)
    return ctx.emit("adaptive_avg_pool", [x], output_size=list(ctx.out_type.shape[-n:]))


@lowering(aten.adaptive_max_pool1d.default, aten.adaptive_max_pool2d.default)
def lower_adaptive_max_pool(ctx, x, output_size):
    n = len(output_size)
    out = ctx.emit("adaptive_max_pool", [x], output_size=list(ctx.meta_val[0].shape[-n:]))
    return out, None


@lowering(aten.upsample_nearest1d.vec, aten.upsample_nearest2d.vec, aten.upsample_nearest3d.vec,
          aten.upsample_nearest2d.default, aten._upsample_nearest_exact2d.vec)
def lower_upsample_nearest(ctx, x, output_size=None, scale_factors=None, *args):
    if "exact" in ctx.loc.op:
        raise ctx.fail("nearest-exact resizing is not supported yet")
    n = x.type.rank - 2
    return ctx.emit("upsample", [x], size=list(ctx.out_type.shape[-n:]), mode="nearest")


@lowering(aten.upsample_bilinear2d.vec, aten.upsample_bilinear2d.default, aten.upsample_bicubic2d.vec)
def lower_upsample_bilinear(ctx, x, output_size, align_corners, scale_factors=None, *args):
    mode = "bicubic" if "bicubic" in ctx.loc.op else "bilinear"
    return ctx.emit("upsample", [x], size=list(ctx.out_type.shape[-2:]), mode=mode, align_corners=bool(align_corners))


@lowering(aten._softmax.default, aten.softmax.int)
def lower_softmax(ctx, x, dim, half_to_float=None):
    return ctx.emit("softmax", [ctx.cast(x, ctx.out_dtype)], axis=norm_axis(dim, x.type.rank))


@lowering(aten._log_softmax.default, aten.log_softmax.int)
def lower_log_softmax(ctx, x, dim, half_to_float=None):
    return ctx.emit("log_softmax", [ctx.cast(x, ctx.out_dtype)], axis=norm_axis(dim, x.type.rank))


@lowering(aten.scaled_dot_product_attention.default)
def lower_sdpa(ctx, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False):
    if enable_gqa and q.type.shape[-3] != k.type.shape[-3]:
        raise ctx.fail("grouped-query attention (enable_gqa with fewer key heads) is not supported yet")
    inputs = [q, k, v]
    if attn_mask is not None:
        if attn_mask.type.dtype == "bool":  # True = attend: turn into an additive mask
            zero = ctx.const(0.0, q.type.dtype)
            neg = ctx.const(-np.inf, q.type.dtype)
            attn_mask = ctx.emit("where", [attn_mask, zero, neg])
        inputs.append(ctx.cast(attn_mask, q.type.dtype))
    return ctx.emit("sdpa", inputs, scale=None if scale is None else float(scale), is_causal=bool(is_causal))
