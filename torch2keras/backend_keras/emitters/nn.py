"""Emitters of the nn family: ``linear`` as ``Dense``, convolutions as Keras's convolution layers
(channels-last, torch's weights transposed to Keras's), ``matmul``; convolutions no layer can
hold (weights computed by the model, integers, grouped transposed) run the ``conv_dynamic`` kernel.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np

from ...ir import Node, Value
from ..layers import TorchOp
from .context import EmitContext, emitter

__all__ = ["emit_conv_dynamic", "pad_spatial"]


def pad_spatial(ctx: EmitContext, node: Node, t, pads: Sequence[int], n: int, value: float = 0.0):
    """Channels-last ``t`` padded by ``pads`` (before/after per spatial axis) with ``value``: a
    Keras ``ZeroPadding`` layer for zeros; nothing when every pad is 0."""
    pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(n)]
    if not any(p for pair in pairs for p in pair):
        return t
    if value == 0.0:
        cls = {1: keras.layers.ZeroPadding1D, 2: keras.layers.ZeroPadding2D, 3: keras.layers.ZeroPadding3D}[n]
        return ctx.layer(node, cls(pairs[0] if n == 1 else tuple(pairs), name=ctx.name(node, "_pad")), t)
    full = [[0, 0]] + [list(p) for p in pairs] + [[0, 0]]
    return ctx.layer(node, TorchOp("pad", {"pads": full, "mode": "constant", "value": value},
                                   name=ctx.name(node, "_pad")), t)


@emitter("matmul")
def emit_matmul(ctx: EmitContext, node: Node, x: Value, y: Value):
    return ctx.op(node, "matmul", [x, y])


@emitter("linear")
def emit_linear(ctx: EmitContext, node: Node, x: Value, w: Value, b: Optional[Value] = None):
    if not ctx.is_const(w) or (b is not None and not ctx.is_const(b)):
        wt = ctx.op(node, "transpose", [w], "_wt", perm=[1, 0])
        out = ctx.layer(node, TorchOp("matmul", {}, name=ctx.name(node)), [ctx.tensor(x), wt])
        return out if b is None else ctx.layer(node, TorchOp("add", {}, name=ctx.name(node, "_b")),
                                               [out, ctx.tensor(b)])
    weight = ctx.const(w)
    weights = [weight.T] + ([ctx.const(b)] if b is not None else [])
    layer = keras.layers.Dense(weight.shape[0], use_bias=b is not None, name=ctx.name(node))
    if x.type.rank == 1:  # Dense takes rank >= 2: a row of one, and back
        row = ctx.op_on(node, "reshape", [ctx.tensor(x)], "_row", shape=[1, weight.shape[1]])
        out = ctx.layer(node, layer, row, weights)
        return ctx.op_on(node, "reshape", [out], "_vector", shape=[weight.shape[0]])
    return ctx.layer(node, layer, ctx.tensor(x), weights)


@emitter("conv")
def emit_conv(ctx: EmitContext, node: Node, x: Value, w: Value, b: Optional[Value] = None):
    a = node.attrs
    n = x.type.rank - 2
    # a dilated 3-d kernel is spread with zeros (TensorFlow writes a dilated Conv3D between
    # SpaceToBatchND / BatchToSpaceND, which TFLite has no 5-d kernels for)
    spread = n == 3 and not a["transposed"] and max(a["dilation"]) > 1
    if not ctx.is_const(w) or (b is not None and not ctx.is_const(b)) or x.type.dtype not in ("f16", "f32", "f64") \
            or (not a["transposed"] and not spread and max(a["stride"]) > 1 and max(a["dilation"]) > 1):
        return emit_conv_dynamic(ctx, node, x, w, b)  # weights computed by the model (or integers): keras.ops
    weight = ctx.const(w)
    bias = [ctx.const(b)] if b is not None else []
    if a["transposed"]:
        return _conv_transpose(ctx, node, x, weight, bias, n)
    t = pad_spatial(ctx, node, ctx.tensor(x), a["padding"], n)
    in_ch = x.type.shape[1]
    weight, dilation = (_spread_kernel(weight, a["dilation"]), [1] * n) if spread else (weight, a["dilation"])
    out_ch = weight.shape[0]
    groups = a["groups"]
    kernel = weight.shape[2:]
    common = dict(strides=tuple(a["stride"]), padding="valid", dilation_rate=tuple(dilation),
                  use_bias=bool(bias), name=ctx.name(node))
    spatial_axes = tuple(range(2, 2 + n))
    if groups == in_ch and groups > 1 and n in (1, 2):
        mult = out_ch // in_ch
        # torch [in*mult, 1, *k] -> keras [*k, in, mult]
        kern = weight.reshape(in_ch, mult, *kernel).transpose(*[i + 2 for i in range(n)], 0, 1)
        cls = keras.layers.DepthwiseConv1D if n == 1 else keras.layers.DepthwiseConv2D
        layer = cls(kernel_size=tuple(kernel), depth_multiplier=mult, **common)
        return ctx.layer(node, layer, t, [kern] + bias)
    if n == 3 and groups > 1:  # (TFLite's CONV_3D has no groups: one block-diagonal kernel)
        weight, groups = _ungrouped(weight, groups), 1
    cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[n]
    kern = weight.transpose(*spatial_axes, 1, 0)  # [O, I/g, *k] -> [*k, I/g, O]
    layer = cls(filters=out_ch, kernel_size=tuple(kernel), groups=groups, **common)
    return ctx.layer(node, layer, t, [kern] + bias)


def _conv_transpose(ctx: EmitContext, node: Node, x: Value, weight: np.ndarray, bias: list, n: int):
    """A Keras ConvNDTranspose given its exact output size: an output padding Keras refuses (not
    below the stride; torch takes it below the dilation too) becomes zero input positions appended
    per axis (their outputs hold the bias only, as torch's), then torch's padding and the surplus
    are cropped. A dilated kernel is spread with zeros between its taps."""
    a = node.attrs
    if a["groups"] != 1:
        return emit_conv_dynamic(ctx, node, x, *node.inputs[1:])  # no Keras layer: keras.ops.conv per group
    strides, output_padding = tuple(a["stride"]), tuple(a["output_padding"] or [0] * n)
    given = [op if op < s else 0 for op, s in zip(output_padding, strides)]  # what Keras takes
    appended = [0 if op < s else -(-op // s) for op, s in zip(output_padding, strides)]
    surplus = [z * s - op if z else 0 for z, s, op in zip(appended, strides, output_padding)]
    t = pad_spatial(ctx, node, ctx.tensor(x), [p for z in appended for p in (0, z)], n)
    cls = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose, 3: keras.layers.Conv3DTranspose}[n]
    weight = _spread_kernel(weight, a["dilation"])
    kern = weight.transpose(*range(2, 2 + n), 1, 0)  # torch [I, O, *k] -> keras [*k, O, I]
    # an explicit output padding (zeros included) makes Keras's size (in - 1) * stride + kernel
    # + output padding, torch's before its padding; without it Keras pads to in * stride
    layer = cls(filters=weight.shape[1], kernel_size=tuple(weight.shape[2:]), strides=strides, padding="valid",
                output_padding=tuple(given), use_bias=bool(bias), name=ctx.name(node))
    t = ctx.layer(node, layer, t, [kern] + bias)
    pads = a["padding"]
    crop = [(pads[2 * i], pads[2 * i + 1] + surplus[i]) for i in range(n)]
    if any(c for pair in crop for c in pair):
        ccls = {1: keras.layers.Cropping1D, 2: keras.layers.Cropping2D, 3: keras.layers.Cropping3D}[n]
        t = ctx.layer(node, ccls(crop[0] if n == 1 else tuple(crop), name=ctx.name(node, "_crop")), t)
    return t


def _spread_kernel(weight: np.ndarray, dilation: Sequence[int]) -> np.ndarray:
    """A torch kernel ([O, I/g, *k], or a transposed convolution's [I, O, *k]) with ``dilation -
    1`` zeros between its taps: the same products, with no dilation (TensorFlow's dilated
    transposed convolution has no TFLite builtin: the converter keeps it as Conv2DBackpropInput)."""
    if all(d == 1 for d in dilation):
        return weight
    k = weight.shape[2:]
    spread = np.zeros((*weight.shape[:2], *[d * (s - 1) + 1 for d, s in zip(dilation, k)]), weight.dtype)
    spread[(slice(None), slice(None), *[slice(None, None, d) for d in dilation])] = weight
    return spread


def _ungrouped(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped convolution's kernel [O, I/g, *k] as the full [O, I, *k] one with zeros between
    groups: the same products (and g times the multiplications)."""
    out_ch, per_group = weight.shape[:2]
    full = np.zeros((out_ch, per_group * groups, *weight.shape[2:]), weight.dtype)
    rows = out_ch // groups
    for g in range(groups):
        full[g * rows:(g + 1) * rows, g * per_group:(g + 1) * per_group] = weight[g * rows:(g + 1) * rows]
    return full


def emit_conv_dynamic(ctx: EmitContext, node: Node, x: Value, w: Value, b: Optional[Value] = None):
    """A convolution whose weights are not constants (computed by the model, or model inputs), or
    one no Keras layer expresses (grouped transposed): ``conv_dynamic`` over ``keras.ops.conv``."""
    a = node.attrs
    n = x.type.rank - 2
    return ctx.op(node, "conv_dynamic", [x, w] + ([b] if b is not None else []), stride=list(a["stride"]),
                  padding=list(a["padding"]), dilation=list(a["dilation"]), groups=a["groups"],
                  transposed=a["transposed"], output_padding=list(a["output_padding"] or [0] * n))
