"""Emitters of the dynamic family (sizes and positions known only at run time): the ``dynamic_*``
IR ops, ``dim``, ``arange``, ``resize_scale``, and the resolution of symbolic dims in
reshape/broadcast targets.

A symbolic dim of a target shape that the input also has (same name) is read from the input's
run-time shape (``["in", k]``, ``k`` the input's physical axis); at most one other symbolic dim
is left to the reshape (``-1``). Everything static stays a Python int.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras

from ...ir import EmissionError, Node, Value
from .context import EmitContext, emitter, keras_dtype

__all__ = ["resolve_dims", "static_hint"]


def resolve_dims(target: Sequence, source: Sequence, *, allow_rest: bool = True, where: Any = "") -> list:
    """``target`` dims (ints, symbolic names) as ints, ``["in", k]`` (axis k of the input, whose
    dims are ``source``) and at most one ``-1`` (only with ``allow_rest``)."""
    available: dict[str, list[int]] = {}
    for k, d in enumerate(source):
        if isinstance(d, str):
            available.setdefault(d, []).append(k)
    dims: list = []
    rest = 0
    for d in target:
        if not isinstance(d, str):
            dims.append(int(d))
        elif available.get(d):
            dims.append(["in", available[d].pop(0)])
        else:
            dims.append(-1)
            rest += 1
    if rest > (1 if allow_rest else 0):
        raise EmissionError(f"cannot compute the target shape {list(target)} from the input's shape {list(source)} "
                            f"at run time{f' ({where})' if where else ''}")
    return dims


def static_hint(shape: Sequence) -> list:
    return [d if isinstance(d, int) else None for d in shape]


@emitter("dim")
def emit_dim(ctx: EmitContext, node: Node, x: Value):
    return ctx.op(node, "dim", [x], axis=x.type.physical_axis(node.attrs["axis"]))


@emitter("dynamic_reshape")
def emit_dynamic_reshape(ctx: EmitContext, node: Node, x: Value, sizes: Value):
    return ctx.op(node, "reshape_to", [x, sizes], static=static_hint(node.output.type.shape))


@emitter("dynamic_expand")
def emit_dynamic_expand(ctx: EmitContext, node: Node, x: Value, sizes: Value):
    return ctx.op(node, "broadcast_to", [x, sizes], static=static_hint(node.output.type.shape))


@emitter("dynamic_slice")
def emit_dynamic_slice(ctx: EmitContext, node: Node, x: Value, start: Value, end: Value):
    """x[start:end:step] along an axis of run-time size; constant bounds stay Python ints (a
    slice of constant bounds: no bound tensors for TensorFlow's converter to fold)."""
    a = node.attrs
    axis = x.type.physical_axis(a["axis"])
    if ctx.is_const(start) and ctx.is_const(end):
        return ctx.op(node, "slice", [x], axis=axis, start=int(ctx.const(start)), end=int(ctx.const(end)),
                      step=a["step"])
    return ctx.op(node, "slice_dynamic", [x, start, end], axis=axis, step=a["step"])


@emitter("dynamic_update_slice")
def emit_dynamic_update_slice(ctx: EmitContext, node: Node, x: Value, update: Value, start: Value):
    return ctx.op(node, "update_slice", [x, update, start], axis=x.type.physical_axis(node.attrs["axis"]))


@emitter("arange")
def emit_arange(ctx: EmitContext, node: Node, start: Value, end: Value, step: Value):
    return ctx.op(node, "arange", [start, end, step], dtype=keras_dtype(node.attrs["dtype"]))


@emitter("resize_scale")
def emit_resize_scale(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    if len(a["scale"]) != 2:
        raise EmissionError(f"resize_scale over {len(a['scale'])} axes is not supported ({node.loc})")
    layer = keras.layers.UpSampling2D(tuple(a["scale"]), interpolation=a["mode"], name=ctx.name(node))
    return ctx.layer(node, layer, ctx.tensor(x))
