"""Emitters of the attention family: scaled dot-product attention as one ``sdpa`` kernel."""

from __future__ import annotations

from typing import Optional

from ...ir import Node, Value
from .context import EmitContext, emitter

__all__: list[str] = []


@emitter("sdpa")
def emit_sdpa(ctx: EmitContext, node: Node, q: Value, k: Value, v: Value, mask: Optional[Value] = None):
    inputs = [q, k, v] + ([mask] if mask is not None else [])
    return ctx.op(node, "sdpa", inputs, scale=node.attrs["scale"], is_causal=node.attrs["is_causal"])
