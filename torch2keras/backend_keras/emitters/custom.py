"""Emitters of the custom family: a ``custom`` node calls a user converter (``torch2keras.converter``)
on Keras tensors.

The converter sees its tensors in the layout it declared (``node.attrs["layout"]``) and returns
its results in that layout; this emitter transposes whatever the layout pass stored differently,
on the way in and on the way out, so a converter is correct under any layout assignment (the
pass only decides how many transposes that costs). No torch import here: the call object in
``graph.meta["custom_calls"]`` does the torch-side work (``converters.Call``).
"""

from __future__ import annotations

from typing import Optional

import keras

from ...ir import EmissionError, Node, Value
from ...ir.types import Layout, channels_last, full
from ..layers import TorchOp
from .context import EmitContext, emitter

__all__ = ["emit_custom", "declared_layout"]


def declared_layout(kind: str, rank: int, reference: Optional[Layout], reference_rank: int) -> Optional[Layout]:
    """How a tensor of ``rank`` is stored for a converter declaring ``kind``; ``reference`` is the
    layout the IR gave the node's first result (what ``"any"`` follows)."""
    if kind == "channels_last":
        return channels_last(rank)
    if kind == "any" and rank == reference_rank:
        return reference
    return None


def _relayout(ctx: EmitContext, node: Node, t, src: Optional[Layout], dst: Optional[Layout], suffix: str):
    rank = len(t.shape)
    p, q = full(src, rank), full(dst, rank)
    perm = [p.index(a) for a in q]
    if perm == sorted(perm):
        return t
    if perm[0] == 0:
        layer = keras.layers.Permute(perm[1:], name=ctx.name(node, suffix))
    else:
        layer = TorchOp("transpose", {"perm": perm}, name=ctx.name(node, suffix))
    return ctx.layer(node, layer, t)


def _adopt(ctx: EmitContext, node: Node, inputs: list, outputs: list) -> None:
    """Rename the operations the converter created (between ``inputs`` and ``outputs``) to
    ``<node name>_<their name>``: Keras auto-names (``conv2d``, ``multiply``) would collide with
    the names the other emitters give, and a functional model needs unique names."""
    adopted = ctx.__dict__.setdefault("_adopted_ops", set())
    stop = {id(t) for t in inputs}
    prefix = ctx.name(node)
    stack = [t for t in outputs if hasattr(t, "_keras_history")]
    while stack:
        t = stack.pop()
        if id(t) in stop:
            continue
        operation, node_index, _ = t._keras_history
        if id(operation) in adopted:
            continue
        adopted.add(id(operation))
        name = ctx.unique_name(f"{prefix}_{operation.name}")
        operation.name = name
        ctx.layer_nodes[name] = node
        inbound = operation._inbound_nodes[node_index]
        stack.extend(x for x in keras.tree.flatten(inbound.input_tensors) if hasattr(x, "_keras_history"))


@emitter("custom")
def emit_custom(ctx: EmitContext, node: Node, *inputs: Value):
    key = (node.attrs.get("params") or {}).get("call")
    call = ctx.graph.meta.get("custom_calls", {}).get(key)
    if call is None:
        raise EmissionError(f"custom node {node.attrs['converter']} has no live call {key!r} in graph.meta "
                            f"['custom_calls'] ({node.loc})")
    kind = node.attrs["layout"]
    first = node.outputs[0].type if node.outputs else None
    ref, ref_rank = (first.layout, first.rank) if first is not None else (None, -1)
    tensors = []
    for i, v in enumerate(inputs):
        want = declared_layout(kind, v.type.rank, ref, ref_rank)
        tensors.append(_relayout(ctx, node, ctx.tensor(v), v.type.layout, want, f"_in{i}"))
    try:
        results = call.convert(tensors)
    except Exception as e:  # noqa: BLE001 - the user's code: say whose and where
        raise EmissionError(f"converter {node.attrs['converter']} failed: {type(e).__name__}: {e}\n"
                            f"  at {node.loc}") from e
    _adopt(ctx, node, tensors, results)
    for t in results:
        if getattr(t, "_sparse", False) and not any(getattr(x, "sparse", False) for x in tensors):
            # keras.ops.multiply(2.0, x) marks its symbolic result sparse (Keras 3.15: a Python
            # scalar counts as sparse); the value is dense, and later ops must see it as such
            t._sparse = False
    if len(results) != len(node.outputs):
        raise EmissionError(f"converter {node.attrs['converter']} returned {len(results)} tensor(s), the torch "
                            f"call returns {len(node.outputs)} ({node.loc})")
    outs = []
    for i, (t, v) in enumerate(zip(results, node.outputs)):
        produced = declared_layout(kind, v.type.rank, ref, ref_rank)
        want_shape = tuple(v.type.replace(layout=produced).physical_shape)
        if not hasattr(t, "shape") or tuple(t.shape) != want_shape:
            raise EmissionError(f"converter {node.attrs['converter']} result {i} has shape "
                                f"{tuple(getattr(t, 'shape', ()))}, expected {want_shape} (layout {kind!r}) "
                                f"({node.loc})")
        outs.append(_relayout(ctx, node, t, produced, v.type.layout, f"_out{i}"))
    return tuple(outs)
