"""Emitters of the shape family: relayouts, reshapes, permutes, broadcasts, slices, concatenation
and padding, in physical terms.

``reshape`` and ``transpose`` are the helpers other families use to move stored tensors: a Keras
``Reshape`` / ``Permute`` when the batch axis stays, a ``TorchOp`` otherwise, nothing when the
shape or order is already right (a transpose that keeps the non-1 axes in order is a reshape).
"""

from __future__ import annotations

from typing import Sequence, Union

import keras

from ...ir import EmissionError, Node, Value
from ...ir.layouts import physical_permute, transpose_is_reshape
from ..layers import TorchOp
from .context import EmitContext, emitter
from .dynamic import resolve_dims

__all__ = ["reshape", "transpose"]


def reshape(ctx: EmitContext, node: Node, x: Union[Value, keras.KerasTensor], shape: Sequence, suffix: str = ""):
    """``x`` (an IR value or a Keras tensor) reshaped to ``shape`` (symbolic dims read at run time)."""
    t = ctx.tensor(x) if isinstance(x, Value) else x
    if any(isinstance(d, str) for d in shape):  # symbolic dims: read off the input at run time
        source = x.type.physical_shape if isinstance(x, Value) else tuple(t.shape)
        return _reshape_dims(ctx, node, t, resolve_dims(shape, source, where=node.loc), suffix)
    shape = tuple(int(d) for d in shape)
    if tuple(t.shape) == shape:
        return t
    if shape[:1] == tuple(t.shape[:1]):
        return ctx.layer(node, keras.layers.Reshape(shape[1:], name=ctx.name(node, suffix)), t)
    return ctx.layer(node, TorchOp("reshape", {"shape": list(shape)}, name=ctx.name(node, suffix)), t)


def _reshape_dims(ctx: EmitContext, node: Node, t, dims: list, suffix: str = ""):
    """Reshape to ``dims`` (ints, ``-1``, ``["in", k]`` read off ``t``'s run-time shape)."""
    if len(dims) == len(t.shape) and all(d == ["in", k] or (isinstance(d, int) and d >= 0 and d == t.shape[k])
                                         for k, d in enumerate(dims)):
        return t  # the same shape
    if dims[:1] == [["in", 0]] and all(isinstance(d, int) for d in dims[1:]):
        return ctx.layer(node, keras.layers.Reshape(tuple(dims[1:]), name=ctx.name(node, suffix)), t)
    return ctx.layer(node, TorchOp("reshape_dims", {"dims": dims}, name=ctx.name(node, suffix)), t)


def transpose(ctx: EmitContext, node: Node, x: Union[Value, keras.KerasTensor], perm: Sequence[int],
              suffix: str = ""):
    """``x`` (an IR value or a Keras tensor) with its stored axes permuted by ``perm``."""
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
    return ctx.layer(node, TorchOp("transpose", {"perm": perm}, name=ctx.name(node, suffix)), t)


@emitter("relayout")
def emit_relayout(ctx: EmitContext, node: Node, x: Value):
    return transpose(ctx, node, x, node.attrs["perm"])


@emitter("reshape")
def emit_reshape(ctx: EmitContext, node: Node, x: Value):
    # the layout pass only leaves reshapes that are plain physical reshapes
    return reshape(ctx, node, x, node.output.type.physical_shape)


@emitter("permute")
def emit_permute(ctx: EmitContext, node: Node, x: Value):
    perm = physical_permute(x.type.perm, node.attrs["perm"], node.output.type.perm)
    out = transpose(ctx, node, x, perm)
    want = node.output.type.physical_shape
    if x.type.is_static:
        if tuple(out.shape) != tuple(want):  # a free permute: the same bytes
            out = reshape(ctx, node, out, want)
        return out
    moved = [x.type.physical_shape[p] for p in perm]  # out's dims, by their IR names
    if tuple(moved) != tuple(want):
        out = _reshape_dims(ctx, node, out, resolve_dims(want, moved, where=node.loc))
    return out


@emitter("expand")
def emit_expand(ctx: EmitContext, node: Node, x: Value):
    shape = list(node.output.type.physical_shape)
    if not node.output.type.is_static:  # the symbolic sizes are x's own (see ops/symbolic_shape.py)
        source = [None] * (len(shape) - x.type.rank) + list(x.type.physical_shape)
        dims = resolve_dims(shape, source, allow_rest=False, where=node.loc)
        dims = [["in", d[1] - (len(shape) - x.type.rank)] if isinstance(d, list) else d for d in dims]
        return ctx.op(node, "broadcast_dims", [x], dims=dims)
    return ctx.op(node, "expand", [x], shape=shape)


@emitter("tile")
def emit_tile(ctx: EmitContext, node: Node, x: Value):
    out = node.output.type
    if out.is_static:
        reps = [o // i for o, i in zip(out.shape, (1,) * (out.rank - x.type.rank) + tuple(x.type.shape))]
    else:
        reps = [1] * (out.rank - len(node.attrs["reps"])) + list(node.attrs["reps"])
    if x.type.rank < out.rank:
        x_t = reshape(ctx, node, x, (1,) * (out.rank - x.type.rank) + tuple(x.type.shape), "_rank")
        return ctx.layer(node, TorchOp("tile", {"reps": reps}, name=ctx.name(node)), x_t)
    return ctx.op(node, "tile", [x], reps=reps)


@emitter("flip")
def emit_flip(ctx: EmitContext, node: Node, x: Value):
    return ctx.op(node, "flip", [x], axes=[x.type.physical_axis(a) for a in node.attrs["axes"]])


@emitter("slice")
def emit_slice(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    return ctx.op(node, "slice", [x], axis=x.type.physical_axis(a["axis"]), start=a["start"], end=a["end"],
                  step=a["step"])


@emitter("slice_scatter")
def emit_slice_scatter(ctx: EmitContext, node: Node, x: Value, src: Value):
    a = node.attrs
    return ctx.op(node, "slice_scatter", [x, src], axis=x.type.physical_axis(a["axis"]), start=a["start"],
                  end=a["end"], step=a["step"])


@emitter("concat")
def emit_concat(ctx: EmitContext, node: Node, *xs: Value):
    return ctx.op(node, "concat", list(xs), axis=xs[0].type.physical_axis(node.attrs["axis"]))


@emitter("pad")
def emit_pad(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    mode = {"constant": "constant", "reflect": "reflect", "replicate": None}[a["mode"]]
    if mode is None:
        raise EmissionError(f"pad mode {a['mode']!r} is not supported by the Keras backend ({node.loc})")
    pads = [[a["pads"][2 * axis], a["pads"][2 * axis + 1]] for axis in x.type.perm]
    return ctx.op(node, "pad", [x], pads=pads, mode=mode, value=a["value"])
