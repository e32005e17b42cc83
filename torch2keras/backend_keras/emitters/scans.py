"""Emitters of the scans family: cumulative ops, ``sort`` and ``topk`` along a physical axis."""

from __future__ import annotations

from ...ir import EmissionError, Node, Value
from .context import EmitContext, emitter

__all__: list[str] = []


@emitter("cumsum")
def emit_cumsum(ctx: EmitContext, node: Node, x: Value):
    return ctx.op(node, "cumsum", [x], axis=x.type.physical_axis(node.attrs["axis"]))


@emitter("cumulative")
def emit_cumulative(ctx: EmitContext, node: Node, x: Value):
    return ctx.op(node, "cumulative", [x], axis=x.type.physical_axis(node.attrs["axis"]), kind=node.attrs["kind"])


@emitter("sort", "cumulative_extreme")
def emit_two_results(ctx: EmitContext, node: Node, x: Value):
    attrs = dict(node.attrs, axis=x.type.physical_axis(node.attrs["axis"]))
    return ctx.op(node, node.op, [x], num_outputs=2, **attrs)


@emitter("topk")
def emit_topk(ctx: EmitContext, node: Node, x: Value):
    a = node.attrs
    if a["axis"] % x.type.rank != x.type.rank - 1:
        raise EmissionError(f"topk along a non-last axis is not supported yet ({node.loc})")
    return ctx.op(node, "topk", [x], num_outputs=2, k=a["k"], largest=a["largest"])
