"""Emit a Keras functional model from a layout-annotated IR graph.

Every node goes to the emitter of its op (``emitters/``, one module per op family), which
receives the node and the Keras tensors of its inputs, in their stored layouts, and returns the
Keras tensors of its results; their shapes are checked against the IR's physical shapes.
"""

from __future__ import annotations

import re

import keras

from ..ir import EmissionError, Graph
from .emitters import EMITTERS, EmitContext
from .emitters.state import attach_state_updates
from .layers import TorchOp

__all__ = ["emit_model"]


def emit_model(graph: Graph, name: str = "model") -> tuple[keras.Model, EmitContext]:
    """The Keras model computing ``graph`` (inputs and outputs in their stored layouts) and the
    context that built it (``layer_nodes``: which IR node each layer was emitted for)."""
    ctx = EmitContext(graph, build_model=lambda region, region_name: emit_model(region, region_name)[0])
    inputs = [EMITTERS["input"](ctx, v.producer) for v in graph.inputs]
    for v, t in zip(graph.inputs, inputs):
        ctx.tensors[v.id] = t
    ctx.any_input = inputs[0] if inputs else None
    for node in graph.topo_order():
        if node.op in ("input", "constant"):  # inputs are emitted; constants when first used as tensors
            continue
        fn = EMITTERS.get(node.op)
        if fn is None:
            raise EmissionError(f"no Keras emitter for IR op {node.op!r} ({node.loc})")
        try:
            result = fn(ctx, node, *node.inputs)
        except EmissionError:
            raise
        except Exception as e:  # noqa: BLE001
            raise EmissionError(f"emitting {node.op} failed: {type(e).__name__}: {e}\n  at {node.loc}") from e
        results = result if isinstance(result, (tuple, list)) else (result,)
        for v, t in zip(node.outputs, results):
            want = tuple(v.type.physical_shape)
            if not _shape_matches(tuple(t.shape), want):
                raise EmissionError(f"emitting {node.op} gave shape {tuple(t.shape)}, expected {want} at {node.loc}")
            ctx.tensors[v.id] = t
    outputs = _outputs(ctx, graph, inputs)
    model = keras.Model(inputs=inputs, outputs=outputs if len(outputs) != 1 else outputs[0], name=_model_name(name))
    model.output_names_ = list({n: t for n, t in zip(graph.output_names, outputs)})
    return model, ctx


def _outputs(ctx: EmitContext, graph: Graph, inputs: list) -> list:
    """The Keras tensors of the graph's outputs, each a distinct tensor (an input or a repeated
    output passes through an ``identity``), through the state's write call when there is state."""
    outputs: list = []
    for v in graph.outputs:
        t = ctx.tensor(v)
        if any(t is i for i in inputs) or any(t is o for o in outputs):
            t = TorchOp("identity", name=ctx.name(v.producer, "_out"))(t)
        outputs.append(t)
    return attach_state_updates(ctx, outputs)


def _shape_matches(got: tuple, want: tuple) -> bool:
    """A Keras shape against the IR's: equal ints; ``None`` (not known when the graph is built)
    and symbolic dims match anything."""
    return len(got) == len(want) and all(g is None or isinstance(w, str) or g == w for g, w in zip(got, want))


def _model_name(name: str) -> str:
    """A Keras root scope name: letters, digits, ``._/>-`` and ``_`` after a letter or digit."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name).lstrip("_")
    return cleaned or "model"
