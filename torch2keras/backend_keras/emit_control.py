"""The emitter of control-flow nodes (``cond``, ``while_loop``, ``scan``, ``map``).

Each region becomes a functional Keras sub-model built by ``emit_model`` (so every emitter works
inside regions), and the node one ``ControlFlow`` layer holding them (``control_flow.py``).
Region inputs and outputs are in PyTorch's order (the layout pass pins them), as are the node's
operands and results (the op is ``fixed``), so nothing is transposed here.
"""

from __future__ import annotations

from ..ir import Node, Value
from .control_flow import ControlFlow
from .emit import EmitContext, emitter, keras_dtype

__all__ = ["emit_control_flow"]


@emitter(*ControlFlow.KINDS)
def emit_control_flow(ctx: EmitContext, node: Node, *inputs: Value):
    from .emit import emit_model

    name = ctx.name(node)
    regions = {region_name: emit_model(graph, f"{name}_{region_name}")[0]
               for region_name, graph in node.regions.items()}
    specs = [[list(v.type.physical_shape), keras_dtype(v.type.dtype)] for v in node.outputs]
    counts = {k: v for k, v in node.attrs.items() if k not in regions}
    layer = ControlFlow(node.op, regions, specs, name=name, **counts)
    out = ctx.layer(node, layer, [ctx.tensor(v) for v in inputs])
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)
