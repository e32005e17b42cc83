"""Layout legality: what each layout class allows once layouts are assigned.

The verifier runs these checks on graphs whose ``meta["layouts_assigned"]`` is set (by the
layout pass); before that every value is in PyTorch's order and nothing is checked.
"""

from __future__ import annotations

from typing import Callable

from .graph import Node
from .layouts import reshape_is_free
from .types import channels_last, full

__all__ = ["check_layout", "layout_class"]


def layout_class(node: Node) -> str:
    """The node's layout class: its schema's, refined for ops whose attributes decide it."""
    kind = node.schema.layout
    if node.op == "index_select" and node.inputs[1].type.rank != 1:
        return "fixed"  # the index's axes replace the selected one
    if kind == "axis" and node.op not in ("reduce", "argreduce", "var") and node.inputs and node.outputs \
            and node.outputs[0].type.rank != node.inputs[0].type.rank:
        return "fixed"  # only reductions drop axes from a layout
    if kind == "custom":
        return {"channels_last": "channel", "torch": "fixed", "any": "agnostic"}[node.attrs["layout"]]
    return kind


def _ident(rank: int) -> tuple:
    return tuple(range(rank))


def check_layout(node: Node, fail: Callable[[str], None]) -> None:
    kind = layout_class(node)
    if kind in ("source", "relayout", "permute", "shape", "region", "state"):
        return  # regions: checked against their operands by the verifier; state: by check_state
    outs = [v.type.perm for v in node.outputs]
    if kind == "channel":
        x = node.inputs[0]
        if x.type.perm != full(channels_last(x.type.rank), x.type.rank):
            fail(f"channel-aware op reads {x.type}, not channels-last")
        if any(v.type.perm != full(channels_last(v.type.rank), v.type.rank) for v in node.outputs):
            fail("channel-aware op's result is not channels-last")
    elif kind == "fixed":
        for v in node.inputs:
            if v.producer.op != "constant" and v.type.perm != _ident(v.type.rank):
                fail(f"op needs PyTorch order but reads {v.type}")
        if any(p != _ident(len(p)) for p in outs):
            fail("op in PyTorch order has a result in another layout")
    elif kind == "agnostic":
        out = node.outputs[0].type
        for v in node.inputs:
            if v.type.rank == out.rank and not (v.type.is_static and v.type.numel == 1) and v.type.perm != out.perm:
                fail(f"elementwise op reads {v.type} but writes {out}")
            if v.type.rank < out.rank and not (v.type.is_static and v.type.numel == 1) and out.layout is not None:
                fail(f"elementwise op broadcasts a lower-rank {v.type} into a non-PyTorch layout")
    elif kind in ("axis", "last_axis"):
        x = node.inputs[0]
        for v in node.inputs[1:]:
            if kind == "axis" and v.type.rank == x.type.rank and v.type.perm != x.type.perm:
                fail(f"input {v.type} is stored unlike the first input {x.type}")
        if kind == "last_axis":
            k = node.attrs.get("num_axes", 1)
            r = x.type.rank
            if tuple(x.type.perm[r - k:]) != tuple(range(r - k, r)):
                fail(f"{node.op} reads {x.type}: its trailing axes are not physically last")
            if node.outputs[0].type.perm != x.type.perm:
                fail(f"{node.op} changes the layout")
    elif kind == "reshape":
        x, y = node.inputs[0].type, node.output.type
        if not reshape_is_free(x.shape, x.perm, y.shape, y.perm):
            fail(f"reshape {x} -> {y} is not a plain physical reshape")
