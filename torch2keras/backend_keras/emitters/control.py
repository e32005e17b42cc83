"""Emitters of the control family: control-flow nodes (``cond``, ``while_loop``, ``scan``, ``map``).

Each region becomes a functional Keras sub-model built like the model itself (``ctx.build_model``
is ``emit_model``: every emitter works inside regions), and the node one ``ControlFlow`` layer
holding them (``backend_keras/control_flow.py``).
Every tensor is in its stored layout: a region's inputs and outputs are stored exactly as the node's
operands and results they stand for (the verifier checks it), so each sub-model is built on the
same physical shapes its node passes, and nothing is transposed here. ``scan`` and ``map`` keep
axis 0 of their scanned inputs and stacked results physically first, so the layer's row slicing
and stacking along stored axis 0 is along logical axis 0.
"""

from __future__ import annotations

from ...ir import Node, Value
from ..control_flow import ControlFlow
from .context import EmitContext, emitter, keras_dtype

__all__ = ["emit_control_flow"]


@emitter(*ControlFlow.KINDS)
def emit_control_flow(ctx: EmitContext, node: Node, *inputs: Value):
    name = ctx.name(node)
    regions = {region_name: ctx.build_model(graph, f"{name}_{region_name}")
               for region_name, graph in node.regions.items()}
    specs = [[list(v.type.physical_shape), keras_dtype(v.type.dtype)] for v in node.outputs]
    counts = {k: v for k, v in node.attrs.items() if k not in regions}
    layer = ControlFlow(node.op, regions, specs, name=name, **counts)
    out = ctx.layer(node, layer, [ctx.tensor(v) for v in inputs])
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)
