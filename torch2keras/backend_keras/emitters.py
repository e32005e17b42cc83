"""Emitters: one per IR op (or a table for the ops that need no per-op code)."""

from __future__ import annotations

import math

import keras
import numpy as np

from ..ir import EmissionError, Node, Value
from ..ir.layouts import physical_permute, transpose_is_reshape
from ..ir.ops import BINARY, COMPARE, UNARY
from ..passes.fold_channel_shuffle import shuffle_groups
from .emit import EmitContext, emitter, keras_dtype
from .layers import TorchOp

# ---------------------------------------------------------------------------- elementwise


def _elementwise(ctx: EmitContext, node: Node, *inputs: Value):
    params = dict(node.attrs)
    if node.op == "cast":
        params = {"dtype": keras_dtype(node.attrs["dtype"])}
    return ctx.op(node, node.op, list(inputs), **params)


emitter(*UNARY, *BINARY, *COMPARE, "where", "logical_not", "isnan", "isinf", "gelu", "clamp", "leaky_relu",
        "elu", "softplus", "cast")(_elementwise)


@emitter("relu")
def emit_relu(ctx, node, x):
    return ctx.layer(node, keras.layers.ReLU(name=ctx.name(node)), ctx.tensor(x))


# ---------------------------------------------------------------------------- layout and shape


def reshape(ctx, node, x, shape, suffix=""):
    t = ctx.tensor(x) if isinstance(x, Value) else x
    if any(isinstance(d, str) for d in shape):  # symbolic dims: read off the input at run time
        from .emit_dynamic import resolve_dims

        source = x.type.physical_shape if isinstance(x, Value) else tuple(t.shape)
        return _reshape_dims(ctx, node, t, resolve_dims(shape, source, where=node.loc), suffix)
    shape = tuple(int(d) for d in shape)
    if tuple(t.shape) == shape:
        return t
    if shape[:1] == tuple(t.shape[:1]):
        return ctx.layer(node, keras.layers.Reshape(shape[1:], name=ctx.name(node, suffix)), t)
    from .layers import TorchOp

    return ctx.layer(node, TorchOp("reshape", {"shape": list(shape)}, name=ctx.name(node, suffix)), t)


def _reshape_dims(ctx, node, t, dims, suffix=""):
    """Reshape to ``dims`` (ints, ``-1``, ``["in", k]`` read off ``t``'s run-time shape)."""
    if len(dims) == len(t.shape) and all(d == ["in", k] or (isinstance(d, int) and d >= 0 and d == t.shape[k])
                                         for k, d in enumerate(dims)):
        return t  # the same shape
    if dims[:1] == [["in", 0]] and all(isinstance(d, int) for d in dims[1:]):
        return ctx.layer(node, keras.layers.Reshape(tuple(dims[1:]), name=ctx.name(node, suffix)), t)
    from .layers import TorchOp

    return ctx.layer(node, TorchOp("reshape_dims", {"dims": dims}, name=ctx.name(node, suffix)), t)


def transpose(ctx, node, x, perm, suffix=""):
    t = ctx.tensor(x) if isinstance(x, Value) else x
    perm = [int(p) for p in perm]
    if perm == sorted(perm):
        return t
    shape = tuple(t.shape)
    if transpose_is_reshape(shape, perm):
        if any(d is None for d in shape):  # run-time sizes: each target axis is an input axis
            return _reshape_dims(ctx, node, t, [shape[p] if shape[p] is not None else ["in", p] for p in perm],
                                 suffix)
        return reshape(ctx, node, t, [shape[p] for p in perm], suffix)
    if perm[0] == 0:
        return ctx.layer(node, keras.layers.Permute([p for p in perm[1:]], name=ctx.name(node, suffix)), t)
    from .layers import TorchOp

    return ctx.layer(node, TorchOp("transpose", {"perm": perm}, name=ctx.name(node, suffix)), t)


@emitter("relayout")
def emit_relayout(ctx, node, x):
    return transpose(ctx, node, x, node.attrs["perm"])


@emitter("reshape")
def emit_reshape(ctx, node, x):
    # the layout pass only leaves reshapes that are plain physical reshapes
    return reshape(ctx, node, x, node.output.type.physical_shape)


@emitter("permute")
def emit_permute(ctx, node, x):
    perm = physical_permute(x.type.perm, node.attrs["perm"], node.output.type.perm)
    out = transpose(ctx, node, x, perm)
    want = node.output.type.physical_shape
    if x.type.is_static:
        if tuple(out.shape) != tuple(want):  # a free permute: the same bytes
            out = reshape(ctx, node, out, want)
        return out
    moved = [x.type.physical_shape[p] for p in perm]  # out's dims, by their IR names
    if tuple(moved) != tuple(want):
        from .emit_dynamic import resolve_dims

        out = _reshape_dims(ctx, node, out, resolve_dims(want, moved, where=node.loc))
    return out


@emitter("expand")
def emit_expand(ctx, node, x):
    shape = list(node.output.type.physical_shape)
    if not node.output.type.is_static:  # the symbolic sizes are x's own (see ops/symbolic_shape.py)
        from .emit_dynamic import resolve_dims

        source = [None] * (len(shape) - x.type.rank) + list(x.type.physical_shape)
        dims = resolve_dims(shape, source, allow_rest=False, where=node.loc)
        dims = [["in", d[1] - (len(shape) - x.type.rank)] if isinstance(d, list) else d for d in dims]
        return ctx.op(node, "broadcast_dims", [x], dims=dims)
    return ctx.op(node, "expand", [x], shape=shape)


@emitter("tile")
def emit_tile(ctx, node, x):
    out = node.output.type
    if out.is_static:
        reps = [o // i for o, i in zip(out.shape, (1,) * (out.rank - x.type.rank) + tuple(x.type.shape))]
    else:
        reps = [1] * (out.rank - len(node.attrs["reps"])) + list(node.attrs["reps"])
    if x.type.rank < out.rank:
        x_t = reshape(ctx, node, x, (1,) * (out.rank - x.type.rank) + tuple(x.type.shape), "_rank")
        return ctx.layer(node, _torch_op("tile", {"reps": reps}, ctx.name(node)), x_t)
    return ctx.op(node, "tile", [x], reps=reps)


def _torch_op(fn, params, name):
    from .layers import TorchOp

    return TorchOp(fn, params, name=name)


@emitter("matmul")
def emit_matmul(ctx, node, x, y):
    return ctx.op(node, "matmul", [x, y])


@emitter("gather")
def emit_gather(ctx, node, x, index):
    return ctx.op(node, "gather", [x, index], axis=_phys(x, node.attrs["axis"]))


@emitter("index_select")
def emit_index_select(ctx, node, x, index):
    groups = shuffle_groups(ctx.const(index)) if ctx.is_const(index) and index.type.rank == 1 else None
    if groups is not None and x.type.is_static:  # a channel shuffle: one transpose, not a gather
        axis = _phys(x, node.attrs["axis"])
        shape = list(x.type.physical_shape)
        view = reshape(ctx, node, x, shape[:axis] + [groups, shape[axis] // groups] + shape[axis + 1:], "_groups")
        perm = list(range(len(shape) + 1))
        perm[axis], perm[axis + 1] = axis + 1, axis
        return reshape(ctx, node, transpose(ctx, node, view, perm, "_shuffle"), shape, "_shuffled")
    return ctx.op(node, "take", [x, index], axis=_phys(x, node.attrs["axis"]))


@emitter("embedding")
def emit_embedding(ctx, node, w, index):
    if not ctx.is_const(w):
        return ctx.op(node, "take", [w, index], axis=0)
    table = ctx.const(w)
    layer = keras.layers.Embedding(table.shape[0], table.shape[1], name=ctx.name(node))
    return ctx.layer(node, layer, ctx.tensor(index), [table])


# ---------------------------------------------------------------------------- axis ops


def _phys(v: Value, axis: int) -> int:
    return v.type.physical_axis(axis)


@emitter("softmax", "log_softmax", "cumsum")
def emit_axis_op(ctx, node, x):
    return ctx.op(node, node.op, [x], axis=_phys(x, node.attrs["axis"]))


@emitter("flip")
def emit_flip(ctx, node, x):
    return ctx.op(node, "flip", [x], axes=[_phys(x, a) for a in node.attrs["axes"]])


def _phys_axes(x: Value, axes):
    return sorted(_phys(x, a) for a in (range(x.type.rank) if axes is None else axes))


@emitter("reduce")
def emit_reduce(ctx, node, x):
    a = node.attrs
    axes = _phys_axes(x, a["axes"])
    if a["kind"] == "mean" and a["keepdim"] and x.type.rank in (3, 4, 5) and x.type.layout is not None \
            and axes == list(range(1, x.type.rank - 1)):
        pool = {3: keras.layers.GlobalAveragePooling1D, 4: keras.layers.GlobalAveragePooling2D,
                5: keras.layers.GlobalAveragePooling3D}[x.type.rank]
        return ctx.layer(node, pool(keepdims=True, name=ctx.name(node)), ctx.tensor(x))
    return ctx.op(node, "reduce", [x], kind=a["kind"], axes=axes, keepdims=a["keepdim"])


@emitter("argreduce")
def emit_argreduce(ctx, node, x):
    a = node.attrs
    return ctx.op(node, "argreduce", [x], kind=a["kind"], axis=_phys(x, a["axes"][0]), keepdims=a["keepdim"])


@emitter("var")
def emit_var(ctx, node, x):
    a = node.attrs
    return ctx.op(node, "var", [x], axes=_phys_axes(x, a["axes"]), correction=a["correction"], keepdims=a["keepdim"])


@emitter("slice")
def emit_slice(ctx, node, x):
    a = node.attrs
    return ctx.op(node, "slice", [x], axis=_phys(x, a["axis"]), start=a["start"], end=a["end"], step=a["step"])


@emitter("slice_scatter")
def emit_slice_scatter(ctx, node, x, src):
    a = node.attrs
    return ctx.op(node, "slice_scatter", [x, src], axis=_phys(x, a["axis"]), start=a["start"], end=a["end"],
                  step=a["step"])


@emitter("concat")
def emit_concat(ctx, node, *xs):
    return ctx.op(node, "concat", list(xs), axis=_phys(xs[0], node.attrs["axis"]))


def _phys_pads(x: Value, pads):
    return [[pads[2 * a], pads[2 * a + 1]] for a in x.type.perm]


@emitter("pad")
def emit_pad(ctx, node, x):
    a = node.attrs
    mode = {"constant": "constant", "reflect": "reflect", "replicate": None}[a["mode"]]
    if mode is None:
        raise EmissionError(f"pad mode {a['mode']!r} is not supported by the Keras backend ({node.loc})")
    return ctx.op(node, "pad", [x], pads=_phys_pads(x, a["pads"]), mode=mode, value=a["value"])


@emitter("topk")
def emit_topk(ctx, node, x):
    a = node.attrs
    if a["axis"] % x.type.rank != x.type.rank - 1:
        raise EmissionError(f"topk along a non-last axis is not supported yet ({node.loc})")
    return ctx.op(node, "topk", [x], num_outputs=2, k=a["k"], largest=a["largest"])


# ---------------------------------------------------------------------------- dense layers


@emitter("linear")
def emit_linear(ctx, node, x, w, b=None):
    if not ctx.is_const(w) or (b is not None and not ctx.is_const(b)):
        wt = ctx.op(node, "transpose", [w], "_wt", perm=[1, 0])
        out = ctx.layer(node, _torch_op("matmul", {}, ctx.name(node)), [ctx.tensor(x), wt])
        return out if b is None else ctx.layer(node, _torch_op("add", {}, ctx.name(node, "_b")), [out, ctx.tensor(b)])
    weight = ctx.const(w)
    weights = [weight.T] + ([ctx.const(b)] if b is not None else [])
    layer = keras.layers.Dense(weight.shape[0], use_bias=b is not None, name=ctx.name(node))
    return ctx.layer(node, layer, ctx.tensor(x), weights)


@emitter("sdpa")
def emit_sdpa(ctx, node, q, k, v, mask=None):
    inputs = [q, k, v] + ([mask] if mask is not None else [])
    return ctx.op(node, "sdpa", inputs, scale=node.attrs["scale"], is_causal=node.attrs["is_causal"])


@emitter("layer_norm")
def emit_layer_norm(ctx, node, x, w=None, b=None):
    n = node.attrs["num_axes"]
    axes = list(range(x.type.rank - n, x.type.rank))
    affine = w is not None
    if affine and not ctx.is_const(w) or (b is not None and not ctx.is_const(b)):
        raise EmissionError(f"layer_norm with non-constant weights is not supported yet ({node.loc})")
    layer = keras.layers.LayerNormalization(axis=axes, epsilon=node.attrs["eps"], center=b is not None,
                                            scale=affine, name=ctx.name(node))
    weights = ([ctx.const(w)] if affine else []) + ([ctx.const(b)] if b is not None else [])
    return ctx.layer(node, layer, ctx.tensor(x), weights)


# ---------------------------------------------------------------------------- channels-last ops


def _spatial(node: Node) -> int:
    return node.inputs[0].type.rank - 2


def _pad_layer(ctx, node, t, pads, n, value=0.0):
    pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(n)]
    if not any(p for pair in pairs for p in pair):
        return t
    if value == 0.0:
        cls = {1: keras.layers.ZeroPadding1D, 2: keras.layers.ZeroPadding2D, 3: keras.layers.ZeroPadding3D}[n]
        return ctx.layer(node, cls(pairs[0] if n == 1 else tuple(pairs), name=ctx.name(node, "_pad")), t)
    full = [[0, 0]] + [list(p) for p in pairs] + [[0, 0]]
    return ctx.layer(node, _torch_op("pad", {"pads": full, "mode": "constant", "value": value},
                                     ctx.name(node, "_pad")), t)


@emitter("conv")
def emit_conv(ctx, node, x, w, b=None):
    a = node.attrs
    n = _spatial(node)
    if not ctx.is_const(w) or (b is not None and not ctx.is_const(b)) or x.type.dtype not in ("f16", "f32", "f64") \
            or (max(a["stride"]) > 1 and max(a["dilation"]) > 1):
        from .emitters_extra import emit_conv_dynamic  # weights computed by the model (or integers): keras.ops

        return emit_conv_dynamic(ctx, node, x, w, b)
    weight = ctx.const(w)
    bias = [ctx.const(b)] if b is not None else []
    if a["transposed"]:
        return _conv_transpose(ctx, node, x, weight, bias, n)
    t = _pad_layer(ctx, node, ctx.tensor(x), a["padding"], n)
    in_ch = x.type.shape[1]
    out_ch = weight.shape[0]
    groups = a["groups"]
    kernel = weight.shape[2:]
    common = dict(strides=tuple(a["stride"]), padding="valid", dilation_rate=tuple(a["dilation"]),
                  use_bias=bool(bias), name=ctx.name(node))
    spatial_axes = tuple(range(2, 2 + n))
    if groups == in_ch and groups > 1 and n in (1, 2):
        mult = out_ch // in_ch
        # torch [in*mult, 1, *k] -> keras [*k, in, mult]
        kern = weight.reshape(in_ch, mult, *kernel).transpose(*[i + 2 for i in range(n)], 0, 1)
        cls = keras.layers.DepthwiseConv1D if n == 1 else keras.layers.DepthwiseConv2D
        layer = cls(kernel_size=tuple(kernel), depth_multiplier=mult, **common)
        return ctx.layer(node, layer, t, [kern] + bias)
    cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[n]
    kern = weight.transpose(*spatial_axes, 1, 0)  # [O, I/g, *k] -> [*k, I/g, O]
    layer = cls(filters=out_ch, kernel_size=tuple(kernel), groups=groups, **common)
    return ctx.layer(node, layer, t, [kern] + bias)


def _conv_transpose(ctx, node, x, weight, bias, n):
    a = node.attrs
    if a["groups"] != 1:
        from .emitters_extra import emit_conv_dynamic  # no Keras layer: keras.ops.conv per group

        return emit_conv_dynamic(ctx, node, x, *node.inputs[1:])
    cls = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose, 3: keras.layers.Conv3DTranspose}[n]
    kern = weight.transpose(*range(2, 2 + n), 1, 0)  # torch [I, O, *k] -> keras [*k, O, I]
    layer = cls(filters=weight.shape[1], kernel_size=tuple(weight.shape[2:]), strides=tuple(a["stride"]),
                padding="valid", output_padding=tuple(a["output_padding"]) if any(a["output_padding"]) else None,
                dilation_rate=tuple(a["dilation"]), use_bias=bool(bias), name=ctx.name(node))
    t = ctx.layer(node, layer, ctx.tensor(x), [kern] + bias)
    pads = a["padding"]
    if any(pads):
        crop = [(pads[2 * i], pads[2 * i + 1]) for i in range(n)]
        ccls = {1: keras.layers.Cropping1D, 2: keras.layers.Cropping2D, 3: keras.layers.Cropping3D}[n]
        t = ctx.layer(node, ccls(crop[0] if n == 1 else tuple(crop), name=ctx.name(node, "_crop")), t)
    return t


@emitter("batch_norm")
def emit_batch_norm(ctx, node, x, mean, var, w=None, b=None):
    if not all(ctx.is_const(v) for v in node.inputs[1:]):
        raise EmissionError(f"batch_norm with non-constant statistics is not supported ({node.loc})")
    c = x.type.shape[1]
    gamma = ctx.const(w) if w is not None else np.ones(c, np.float32)
    beta = ctx.const(b) if b is not None else np.zeros(c, np.float32)
    layer = keras.layers.BatchNormalization(axis=-1, epsilon=node.attrs["eps"], name=ctx.name(node))
    return ctx.layer(node, layer, ctx.tensor(x), [gamma, beta, ctx.const(mean), ctx.const(var)])


@emitter("group_norm")
def emit_group_norm(ctx, node, x, w=None, b=None):
    c = x.type.shape[1]
    layer = keras.layers.GroupNormalization(groups=node.attrs["groups"], axis=-1, epsilon=node.attrs["eps"],
                                            name=ctx.name(node))
    gamma = ctx.const(w) if w is not None else np.ones(c, np.float32)
    beta = ctx.const(b) if b is not None else np.zeros(c, np.float32)
    return ctx.layer(node, layer, ctx.tensor(x), [gamma, beta])


def _ceil_extra(size, k, s, p, d, out):
    """Extra end padding so that a 'valid' pool yields ``out`` windows (ceil_mode)."""
    eff = d * (k - 1) + 1
    need = (out - 1) * s + eff
    return max(need - (size + 2 * p), 0)


def _pool_pads(node):
    a = node.attrs
    x, out = node.inputs[0].type, node.output.type
    n = len(a["kernel"])
    dil = a.get("dilation") or [1] * n
    pads = []
    for i in range(n):
        p = a["padding"][i]
        extra = _ceil_extra(x.shape[2 + i], a["kernel"][i], a["stride"][i], p, dil[i], out.shape[2 + i]) \
            if a["ceil_mode"] else 0  # (without ceil_mode every window fits: no extra padding)
        if isinstance(extra, str) or isinstance(x.shape[2 + i], str) and a["ceil_mode"]:
            raise EmissionError(f"ceil_mode pooling of a run-time size is not supported yet ({node.loc})")
        pads += [p, p + extra]
    return pads


_NON_NEGATIVE = {"relu": 0.0, "sigmoid": 0.0, "hardsigmoid": 0.0, "softmax": 0.0, "exp": 0.0, "abs": 0.0}


def _lower_bound(v) -> float:
    """A lower bound of every element of ``v`` known from the op computing it (-inf if none)."""
    node = v.producer
    if node.op in _NON_NEGATIVE:
        return _NON_NEGATIVE[node.op]
    if node.op == "clamp" and node.attrs.get("min") is not None:
        return float(node.attrs["min"])
    if node.op in ("max_pool", "relayout", "permute", "reshape") and node.inputs:
        return _lower_bound(node.inputs[0])
    return -np.inf


@emitter("max_pool")
def emit_max_pool(ctx, node, x):
    a = node.attrs
    n = len(a["kernel"])
    if a.get("dilation") and any(d != 1 for d in a["dilation"]):
        raise EmissionError(f"dilated max pooling is not supported yet ({node.loc})")
    # pad with a bound of the input (0 after a ReLU): as exact as -inf (every window holds an
    # element of the input) and it keeps int8 calibration ranges finite
    t = _pad_layer(ctx, node, ctx.tensor(x), _pool_pads(node), n, value=_lower_bound(x))
    cls = {1: keras.layers.MaxPooling1D, 2: keras.layers.MaxPooling2D, 3: keras.layers.MaxPooling3D}[n]
    return ctx.layer(node, cls(pool_size=tuple(a["kernel"]), strides=tuple(a["stride"]), padding="valid",
                               name=ctx.name(node)), t)


@emitter("avg_pool")
def emit_avg_pool(ctx, node, x):
    a = node.attrs
    n = len(a["kernel"])
    pads = _pool_pads(node)
    cls = {1: keras.layers.AveragePooling1D, 2: keras.layers.AveragePooling2D, 3: keras.layers.AveragePooling3D}[n]
    t = _pad_layer(ctx, node, ctx.tensor(x), pads, n)
    out = ctx.layer(node, cls(pool_size=tuple(a["kernel"]), strides=tuple(a["stride"]), padding="valid",
                              name=ctx.name(node)), t)
    # Keras divides by the full window; torch by the window's overlap with the input (and with
    # the symmetric padding when count_include_pad), or by divisor_override
    spatial = x.type.shape[2:]
    if any(isinstance(d, str) for d in spatial):
        return _avg_pool_divisor_dynamic(ctx, node, out, pads)
    real = np.ones(spatial, np.float32)
    inside = np.pad(real, [(pads[2 * i], pads[2 * i + 1]) for i in range(n)])
    with_pad = np.pad(np.pad(real, [(p, p) for p in a["padding"]], constant_values=1),
                      [(0, pads[2 * i + 1] - a["padding"][i]) for i in range(n)])
    window = float(np.prod(a["kernel"]))
    counts = _window_sums(with_pad if a["count_include_pad"] else inside, a["kernel"], a["stride"])
    divisor = np.full_like(counts, a["divisor_override"]) if a["divisor_override"] else counts
    factor = window / divisor
    if np.allclose(factor, 1.0):
        return out
    factor = factor.reshape(*factor.shape, 1).astype(np.float32)
    from .layers import TorchOp

    layer = TorchOp("mul", consts=[[1, list(factor.shape), "float32"]], name=ctx.name(node, "_divisor"))
    y = layer(out)
    layer.set_weights([factor])
    return y


def _avg_pool_divisor_dynamic(ctx, node, out, pads):
    """The divisor fix of an average pool over a run-time size: none where every window counts
    its whole kernel (no padding, or padding counted, and no ceil_mode), a constant factor for
    divisor_override; windows of varying overlap need static sizes."""
    a = node.attrs
    if any(pads) and not a["count_include_pad"]:
        raise EmissionError(f"average pooling of a run-time size with count_include_pad=False and padding is not "
                            f"supported yet ({node.loc})")
    if not a["divisor_override"]:
        return out
    factor = np.float32(float(np.prod(a["kernel"])) / a["divisor_override"])
    layer = TorchOp("mul", consts=[[1, [], "float32"]], name=ctx.name(node, "_divisor"))
    y = layer(out)
    layer.set_weights([factor])
    return y


def _window_sums(a, kernel, stride):
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(a, tuple(kernel))
    index = tuple(slice(None, None, s) for s in stride)
    return windows[index].sum(axis=tuple(range(-len(kernel), 0)))


def _adaptive(ctx, node, x, kind):
    out = node.attrs["output_size"]
    n = len(out)
    spatial = x.type.shape[2:]
    if all(o == 1 for o in out):
        if kind == "avg":
            cls = {1: keras.layers.GlobalAveragePooling1D, 2: keras.layers.GlobalAveragePooling2D,
                   3: keras.layers.GlobalAveragePooling3D}[n]
        else:
            cls = {1: keras.layers.GlobalMaxPooling1D, 2: keras.layers.GlobalMaxPooling2D,
                   3: keras.layers.GlobalMaxPooling3D}[n]
        return ctx.layer(node, cls(keepdims=True, name=ctx.name(node)), ctx.tensor(x))
    if all(s % o == 0 for s, o in zip(spatial, out)):
        k = tuple(s // o for s, o in zip(spatial, out))
        if kind == "avg":
            cls = {1: keras.layers.AveragePooling1D, 2: keras.layers.AveragePooling2D, 3: keras.layers.AveragePooling3D}[n]
        else:
            cls = {1: keras.layers.MaxPooling1D, 2: keras.layers.MaxPooling2D, 3: keras.layers.MaxPooling3D}[n]
        return ctx.layer(node, cls(pool_size=k, strides=k, name=ctx.name(node)), ctx.tensor(x))
    raise EmissionError(f"adaptive pooling from {tuple(spatial)} to {tuple(out)} (not a divisor) is not supported yet"
                        f" ({node.loc})")


@emitter("adaptive_avg_pool")
def emit_adaptive_avg_pool(ctx, node, x):
    return _adaptive(ctx, node, x, "avg")


@emitter("adaptive_max_pool")
def emit_adaptive_max_pool(ctx, node, x):
    return _adaptive(ctx, node, x, "max")


@emitter("upsample")
def emit_upsample(ctx, node, x):
    a = node.attrs
    spatial = x.type.shape[2:]
    size = a["size"]
    if a["align_corners"] and a["mode"] != "nearest":
        raise EmissionError(f"{a['mode']} resize with align_corners=True is not supported yet ({node.loc})")
    if a["mode"] == "nearest" and len(size) == 2 and all(o % i == 0 for o, i in zip(size, spatial)):
        factor = tuple(o // i for o, i in zip(size, spatial))
        return ctx.layer(node, keras.layers.UpSampling2D(factor, interpolation="nearest", name=ctx.name(node)),
                         ctx.tensor(x))
    if len(size) != 2 or a["mode"] == "nearest":
        raise EmissionError(f"{a['mode']} resize from {tuple(spatial)} to {tuple(size)} is not supported yet"
                            f" ({node.loc})")
    return ctx.op(node, "resize", [x], size=list(size), interpolation=a["mode"])


@emitter("depth_to_space", "space_to_depth")
def emit_depth_to_space(ctx, node, x):
    return ctx.op(node, node.op, [x], block=node.attrs["block"])
