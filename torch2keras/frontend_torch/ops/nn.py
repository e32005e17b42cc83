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
    n = w.type.rank - 2
    if x.type.rank == n + 1:  # an unbatched input: a batch of one
        out = conv(ctx, ctx.reshape(x, [1] + list(x.type.shape)), w, b, stride, padding, dilation, groups,
                   transposed, output_padding)
        return ctx.reshape(out, list(out.type.shape[1:]))
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
    if any(v is not None and v.producer.op != "constant" for v in (mean, var, w, b)):  # computed statistics
        shape = [1, x.type.shape[1]] + [1] * (x.type.rank - 2)
        rstd = ctx.emit("rsqrt", [ctx.emit("add", [ctx.reshape(var, shape), ctx.const(float(eps), x.type.dtype)])])
        y = ctx.emit("mul", [ctx.emit("sub", [x, ctx.reshape(mean, shape)]), rstd])
        y = y if w is None else ctx.emit("mul", [y, ctx.reshape(w, shape)])
        return y if b is None else ctx.emit("add", [y, ctx.reshape(b, shape)])
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
    if training or mean is None:  # normalised by the batch's own statistics (as torch computes it)
        from .nn_extra import batch_norm_batch_stats

        return batch_norm_batch_stats(ctx, x, w, b, eps)[0]
    return batch_norm(ctx, x, w, b, mean, var, eps)


@lowering(aten.native_batch_norm.default, aten._native_batch_norm_legit.default)
def lower_native_batch_norm(ctx, x, w, b, mean, var, training, momentum, eps):
    if training or mean is None:  # normalised by the batch's own statistics (as torch computes it)
        from .nn_extra import batch_norm_batch_stats

        return batch_norm_batch_stats(ctx, x, w, b, eps)[:3]
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
    if any(v is not None and v.producer.op != "constant" for v in (w, b)):  # weights computed by the model
        y = ctx.emit("layer_norm", [x], num_axes=len(normalized_shape), eps=float(eps))
        y = y if w is None else ctx.emit("mul", [y, w])
        return y if b is None else ctx.emit("add", [y, b])
    return ctx.emit("layer_norm", _affine_inputs(ctx, x, w, b, normalized_shape),
                    num_axes=len(normalized_shape), eps=float(eps))


@lowering(aten.native_layer_norm.default)
def lower_native_layer_norm(ctx, x, normalized_shape, w, b, eps):
    from .nn_extra import layer_norm_stats

    return (lower_layer_norm(ctx, x, normalized_shape, w, b, eps),
            *layer_norm_stats(ctx, x, len(normalized_shape), eps))


@lowering(aten.group_norm.default)
def lower_group_norm(ctx, x, groups, w=None, b=None, eps=1e-5, cudnn_enabled=True):
    if any(v is not None and v.producer.op != "constant" for v in (w, b)):  # weights computed by the model
        y = ctx.emit("group_norm", [x], groups=groups, eps=float(eps))
        shape = [1, x.type.shape[1]] + [1] * (x.type.rank - 2)
        y = y if w is None else ctx.emit("mul", [y, ctx.reshape(w, shape)])
        return y if b is None else ctx.emit("add", [y, ctx.reshape(b, shape)])
    return ctx.emit("group_norm", _affine_inputs(ctx, x, w, b, [x.type.shape[1]]), groups=groups, eps=float(eps))


@lowering(aten.native_group_norm.default)
def lower_native_group_norm(ctx, x, w, b, n, c, hw, groups, eps):
    from .nn_extra import group_norm_stats

    return (lower_group_norm(ctx, x, groups, w, b, eps), *group_norm_stats(ctx, x, groups, eps))


def _pool_args(x, kernel, stride, padding, n):
    kernel = _tuple(kernel, n)
    stride = _tuple(stride, n) if stride not in (None, [], ()) else kernel
    return kernel, stride, _tuple(padding, n)


@lowering(aten.max_pool1d.default, aten.max_pool2d.default, aten.max_pool3d.default,
          aten.max_pool2d_with_indices.default, aten.max_pool3d_with_indices.default)
def lower_max_pool(ctx, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    n = len(_tuple(kernel_size, 1)) if isinstance(kernel_size, (list, tuple)) and len(kernel_size) > 1 \
        else int(ctx.loc.op.split("max_pool")[1][0])
    from .nn_extra import max_pool  # windows as a gather table: any geometry, and torch's indices

    if any(d != 1 for d in _tuple(dilation, n)) or x.type.dtype not in ("f16", "bf16", "f32", "f64"):
        out, indices = max_pool(ctx, x, n, kernel_size, stride, padding, dilation, list(ctx.out_type.shape[-n:]))
        return (out, indices) if "with_indices" in ctx.loc.op else out
    kernel_, stride_, padding_ = _pool_args(x, kernel_size, stride, padding, n)
    out = ctx.emit("max_pool", [x], kernel=kernel_, stride=stride_, padding=padding_,
                   dilation=_tuple(dilation, n), ceil_mode=bool(ceil_mode))
    if "with_indices" in ctx.loc.op:  # (dead code elimination drops the indices where nothing reads them)
        return out, max_pool(ctx, x, n, kernel_size, stride, padding, dilation, list(ctx.out_type.shape[-n:]))[1]
    return out


@lowering(aten.avg_pool1d.default, aten.avg_pool2d.default, aten.avg_pool3d.default)
def lower_avg_pool(ctx, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                   divisor_override=None):
    n = int(ctx.loc.op.split("avg_pool")[1][0])
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding, n)
    if x.type.dtype not in ("f16", "bf16", "f32", "f64"):  # integer: exact window sums, truncating division
        from .nn_extra import integer_avg_pool

        return integer_avg_pool(ctx, x, kernel, stride, padding, bool(count_include_pad), divisor_override,
                                list(ctx.out_type.shape[-n:]))
    return ctx.emit("avg_pool", [x], kernel=kernel, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
                    count_include_pad=bool(count_include_pad), divisor_override=divisor_override)


@lowering(aten.adaptive_avg_pool1d.default, aten.adaptive_avg_pool2d.default, aten._adaptive_avg_pool2d.default,
          aten.adaptive_avg_pool3d.default, aten._adaptive_avg_pool3d.default)
def lower_adaptive_avg_pool(ctx, x, output_size):
    n = len(output_size)
    out = list(ctx.out_type.shape[-n:])
    if _dynamic_spatial(ctx, x, n, out, "adaptive average pooling"):
        return ctx.emit("adaptive_avg_pool", [x], output_size=out)
    if any(s % o for s, o in zip(x.type.shape[-n:], out)) or x.type.rank == n + 1:  # averaging matrices
        from .nn_extra import adaptive_avg_pool

        return adaptive_avg_pool(ctx, x, out)
    return ctx.emit("adaptive_avg_pool", [x], output_size=out)


def _dynamic_spatial(ctx, x, n: int, out, what: str) -> bool:
    """Whether x's pooled axes have a run-time size; only global pooling (to 1) is supported then."""
    if all(isinstance(d, int) for d in x.type.shape[-n:]):
        return False
    if x.type.rank != n + 2 or any(o != 1 for o in out):
        raise ctx.fail(f"{what} of a run-time size {list(x.type.shape[-n:])} to {out} is not supported yet "
                       "(only to size 1)")
    return True


@lowering(aten.adaptive_max_pool1d.default, aten.adaptive_max_pool2d.default)
def lower_adaptive_max_pool(ctx, x, output_size):
    from .nn_extra import adaptive_max_pool  # values and torch's indices from a window table

    n = len(output_size)
    out = list(ctx.meta_val[0].shape[-n:])
    if _dynamic_spatial(ctx, x, n, out, "adaptive max pooling"):
        return ctx.emit("adaptive_max_pool", [x], output_size=out), None  # (no indices of a run-time size)
    values, indices = adaptive_max_pool(ctx, x, output_size)
    if x.type.rank == n + 2 and x.type.dtype in ("f16", "f32", "f64") and \
            not any(s % o for s, o in zip(x.type.shape[-n:], out)):  # a Keras pooling layer
        values = ctx.emit("adaptive_max_pool", [x], output_size=out)
    return values, indices


@lowering(aten.upsample_nearest1d.vec, aten.upsample_nearest2d.vec, aten.upsample_nearest3d.vec,
          aten.upsample_nearest2d.default, aten._upsample_nearest_exact2d.vec)
def lower_upsample_nearest(ctx, x, output_size=None, scale_factors=None, *args):
    n = x.type.rank - 2
    out = list(ctx.out_type.shape[-n:])
    scales = _tuple(scale_factors, n) if scale_factors is not None else [None] * n
    if ctx.loc.op.endswith(".default"):  # (self, output_size, scales_h=None, scales_w=None)
        scales = ([scale_factors] + list(args) + [None, None])[:2]
    spatial = x.type.shape[-n:]
    if any(isinstance(d, str) for d in spatial):
        return _resize_scale(ctx, x, out, "nearest", "exact" in ctx.loc.op)
    if "exact" in ctx.loc.op or n != 2 or x.type.rank != 4 or any(
            o % i or (s is not None and s != o // i) for i, o, s in zip(spatial, out, scales)):
        from .nn_extra import resize  # one constant index per output position and axis

        return resize(ctx, x, out, "nearest-exact" if "exact" in ctx.loc.op else "nearest", scales=scales)
    return ctx.emit("upsample", [x], size=out, mode="nearest")


@lowering(aten.upsample_bilinear2d.vec, aten.upsample_bilinear2d.default, aten.upsample_bicubic2d.vec)
def lower_upsample_bilinear(ctx, x, output_size, align_corners, scale_factors=None, *args):
    mode = "bicubic" if "bicubic" in ctx.loc.op else "bilinear"
    out = list(ctx.out_type.shape[-2:])
    scales = _tuple(scale_factors, 2) if scale_factors is not None else None
    if ctx.loc.op.endswith(".default"):  # (self, output_size, align_corners, scales_h=None, scales_w=None)
        scales = ([scale_factors] + list(args) + [None, None])[:2]
    from .nn_extra import keras_resize_matches, resize

    if any(isinstance(d, str) for d in x.type.shape[-2:]):
        return _resize_scale(ctx, x, out, mode, bool(align_corners))
    if mode == "bicubic" or x.type.rank != 4 or not keras_resize_matches(x.type.shape[-2:], out, scales, align_corners):
        return resize(ctx, x, out, mode, bool(align_corners), scales)  # torch's coordinates and cubic kernel
    return ctx.emit("upsample", [x], size=out, mode=mode, align_corners=bool(align_corners))


def _resize_scale(ctx, x, out, mode: str, unsupported_flag: bool):
    """Upsampling of a run-time spatial size: integer factors only (``resize_scale``)."""
    from .symbolic_shape import integer_ratio

    n = len(out)
    scale = [integer_ratio(o, i) for o, i in zip(out, x.type.shape[-n:])]
    if None in scale or unsupported_flag or mode == "bicubic" or x.type.rank != n + 2 or n != 2:
        raise ctx.fail(f"{mode} resizing of a run-time size {list(x.type.shape[-n:])} to {out} is supported for "
                       "2-d nearest and bilinear (align_corners=False) upsampling by integer factors only")
    return ctx.emit("resize_scale", [x], scale=scale, mode=mode)


@lowering(aten._softmax.default, aten.softmax.int)
def lower_softmax(ctx, x, dim, half_to_float=None):
    if x.type.rank == 0:
        return ctx.reshape(lower_softmax(ctx, ctx.reshape(x, [1]), 0), [])
    return ctx.emit("softmax", [ctx.cast(x, ctx.out_dtype)], axis=norm_axis(dim, x.type.rank))


@lowering(aten._log_softmax.default, aten.log_softmax.int)
def lower_log_softmax(ctx, x, dim, half_to_float=None):
    if x.type.rank == 0:
        return ctx.reshape(lower_log_softmax(ctx, ctx.reshape(x, [1]), 0), [])
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
