"""Emitters for the ops added for full Core ATen coverage (indexing, scatter, math, ...)."""

from __future__ import annotations

from ..ir import Node, Value
from ..ir.ops.elementwise import BINARY_WITHOUT_REFERENCE, UNARY_WITHOUT_REFERENCE
from .emit import EmitContext, emitter

__all__ = ["emit_conv_dynamic"]


@emitter(*UNARY_WITHOUT_REFERENCE, *BINARY_WITHOUT_REFERENCE, "signbit", "polygamma", "scatter_flat", "grid_sample")
def emit_plain(ctx: EmitContext, node: Node, *inputs: Value):
    """Ops whose attributes need no translation (elementwise, or in PyTorch order)."""
    return ctx.op(node, node.op, list(inputs), **node.attrs)


@emitter("sort", "cumulative_extreme")
def emit_two_results(ctx: EmitContext, node: Node, x: Value):
    attrs = dict(node.attrs, axis=x.type.physical_axis(node.attrs["axis"]))
    return ctx.op(node, node.op, [x], num_outputs=2, **attrs)


@emitter("cumulative")
def emit_cumulative(ctx: EmitContext, node: Node, x: Value):
    return ctx.op(node, "cumulative", [x], axis=x.type.physical_axis(node.attrs["axis"]), kind=node.attrs["kind"])


def emit_conv_dynamic(ctx: EmitContext, node: Node, x: Value, w: Value, b: Value | None = None):
    """A convolution whose weights are not constants (computed by the model, or model inputs), or
    one no Keras layer expresses (grouped transposed): ``conv_dynamic`` over ``keras.ops.conv``."""
    a = node.attrs
    n = x.type.rank - 2
    return ctx.op(node, "conv_dynamic", [x, w] + ([b] if b is not None else []), stride=list(a["stride"]),
                  padding=list(a["padding"]), dilation=list(a["dilation"]), groups=a["groups"],
                  transposed=a["transposed"], output_padding=list(a["output_padding"] or [0] * n))
