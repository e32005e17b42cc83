"""Emitters of the pool family: Keras's pooling and upsampling layers (channels-last), with the
padding and divisor fixes that give PyTorch's results; ``depth_to_space``/``space_to_depth``,
resizes to other sizes and ``grid_sample`` as kernels."""

from __future__ import annotations

import keras
import numpy as np

from ...ir import EmissionError, Node, Value
from ..layers import TorchOp
from .context import EmitContext, emitter
from .nn import pad_spatial

__all__: list[str] = []


def _ceil_extra(size, k, s, p, d, out):
    """Extra end padding so that a 'valid' pool yields ``out`` windows (ceil_mode)."""
    eff = d * (k - 1) + 1
    need = (out - 1) * s + eff
    return max(need - (size + 2 * p), 0)


def _pool_pads(node: Node) -> list:
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


def _lower_bound(v: Value) -> float:
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
def emit_max_pool(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    n = len(a["kernel"])
    if a.get("dilation") and any(d != 1 for d in a["dilation"]):
        raise EmissionError(f"dilated max pooling is not supported yet ({node.loc})")
    # pad with a bound of the input (0 after a ReLU): as exact as -inf (every window holds an
    # element of the input) and it keeps int8 calibration ranges finite
    t = pad_spatial(ctx, node, ctx.tensor(x), _pool_pads(node), n, value=_lower_bound(x))
    return _valid_pool(ctx, node, x, t, "max")


def _valid_pool(ctx: EmitContext, node: Node, x: Value, t, kind: str):
    """A VALID pool of the (padded) channels-last ``t``: Keras's pooling layer, or for 3-d pools of
    static sizes the ``pool_3d`` kernel (two 2-d pools: TFLite has no 3-d pool builtin)."""
    a = node.attrs
    n = len(a["kernel"])
    if n == 3 and not any(isinstance(d, str) for d in x.type.shape[1:]):
        return ctx.op_on(node, "pool_3d", [t], kind=kind, kernel=list(a["kernel"]), stride=list(a["stride"]))
    cls = _WINDOWED[kind, n]
    return ctx.layer(node, cls(pool_size=tuple(a["kernel"]), strides=tuple(a["stride"]), padding="valid",
                               name=ctx.name(node)), t)


@emitter("avg_pool")
def emit_avg_pool(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    n = len(a["kernel"])
    pads = _pool_pads(node)
    t = pad_spatial(ctx, node, ctx.tensor(x), pads, n)
    out = _valid_pool(ctx, node, x, t, "avg")
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
    layer = TorchOp("mul", consts=[[1, list(factor.shape), "float32"]], name=ctx.name(node, "_divisor"))
    y = layer(out)
    layer.set_weights([factor])
    return y


def _avg_pool_divisor_dynamic(ctx: EmitContext, node: Node, out, pads: list):
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


def _window_sums(a: np.ndarray, kernel, stride) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(a, tuple(kernel))
    index = tuple(slice(None, None, s) for s in stride)
    return windows[index].sum(axis=tuple(range(-len(kernel), 0)))


_GLOBAL = {("avg", 1): keras.layers.GlobalAveragePooling1D, ("avg", 2): keras.layers.GlobalAveragePooling2D,
           ("avg", 3): keras.layers.GlobalAveragePooling3D, ("max", 1): keras.layers.GlobalMaxPooling1D,
           ("max", 2): keras.layers.GlobalMaxPooling2D, ("max", 3): keras.layers.GlobalMaxPooling3D}
_WINDOWED = {("avg", 1): keras.layers.AveragePooling1D, ("avg", 2): keras.layers.AveragePooling2D,
             ("avg", 3): keras.layers.AveragePooling3D, ("max", 1): keras.layers.MaxPooling1D,
             ("max", 2): keras.layers.MaxPooling2D, ("max", 3): keras.layers.MaxPooling3D}


def _adaptive(ctx: EmitContext, node: Node, x: Value, kind: str):
    out = node.attrs["output_size"]
    n = len(out)
    spatial = x.type.shape[2:]
    if all(o == 1 for o in out):
        return ctx.layer(node, _GLOBAL[kind, n](keepdims=True, name=ctx.name(node)), ctx.tensor(x))
    if all(s % o == 0 for s, o in zip(spatial, out)):
        k = [s // o for s, o in zip(spatial, out)]
        if n == 3:  # (TFLite has no 3-d pool builtin: two 2-d pools)
            return ctx.op_on(node, "pool_3d", [ctx.tensor(x)], kind=kind, kernel=k, stride=k)
        return ctx.layer(node, _WINDOWED[kind, n](pool_size=tuple(k), strides=tuple(k), name=ctx.name(node)),
                         ctx.tensor(x))
    raise EmissionError(f"adaptive pooling from {tuple(spatial)} to {tuple(out)} (not a divisor) is not supported yet"
                        f" ({node.loc})")


@emitter("adaptive_avg_pool")
def emit_adaptive_avg_pool(ctx: EmitContext, node: Node, x: Value):
    return _adaptive(ctx, node, x, "avg")


@emitter("adaptive_max_pool")
def emit_adaptive_max_pool(ctx: EmitContext, node: Node, x: Value):
    return _adaptive(ctx, node, x, "max")


@emitter("upsample")
def emit_upsample(ctx: EmitContext, node: Node, x: Value):
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
def emit_depth_to_space(ctx: EmitContext, node: Node, x: Value):
    return ctx.op(node, node.op, [x], block=node.attrs["block"])


@emitter("grid_sample")
def emit_grid_sample(ctx: EmitContext, node: Node, x: Value, grid: Value):
    """In PyTorch's layout and terms (the layout rule keeps both inputs so): attributes as they are."""
    return ctx.op(node, "grid_sample", [x, grid], **node.attrs)
