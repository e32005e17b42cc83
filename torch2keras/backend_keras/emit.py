"""Emit a Keras functional model from a layout-annotated IR graph.

Every node goes to the emitter of its op (``emitters/``, one module per op family), which
receives the node and the Keras tensors of its inputs, in their stored layouts, and returns the
Keras tensors of its results; their shapes are checked against the IR's physical shapes.

The model speaks the graph's names: its inputs are named after the graph's inputs (forward's
arguments); it returns a dict keyed by the output names when forward returned a dict
(``graph.meta["outputs_are_dict"]``), else a list (one output: a tensor); and the layer that
computes each output takes that output's name (where it computes more -- several results, the
state's write -- a named ``identity`` follows it, which adds no op to the exported graphs).
"""

from __future__ import annotations

import re
from typing import Any, Optional

import keras

from ..ir import EmissionError, Graph
from .emitters import EMITTERS, EmitContext
from .emitters.state import attach_state_updates
from .layers import TorchOp
from .state import ModelState

__all__ = ["emit_model"]


def emit_model(graph: Graph, name: str = "model") -> tuple[keras.Model, EmitContext]:
    """The Keras model computing ``graph`` (inputs and outputs in their stored layouts) and the
    context that built it (``layer_nodes``: which IR node each layer was emitted for)."""
    ctx = EmitContext(graph, build_model=lambda region, region_name: emit_model(region, region_name)[0])
    inputs = [EMITTERS["input"](ctx, v.producer) for v in graph.inputs]
    for v, t in zip(graph.inputs, inputs):
        ctx.tensors[v.id] = t
    ctx.any_input = inputs[0] if inputs else None
    output_layer_names = _claim_output_names(ctx, graph.output_names)
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
    outputs = _name_output_layers(ctx, output_layer_names, outputs)
    model = keras.Model(inputs=inputs, outputs=_output_structure(graph, outputs), name=_model_name(name))
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


def _claim_output_names(ctx: EmitContext, names: list[str]) -> list[Optional[str]]:
    """For each output, the layer name it will give its producing layer, reserved before any
    layer is named (so no other layer takes it); None where the name is not free (an input's, or
    a repeated one)."""
    claimed: list[Optional[str]] = []
    for name in names:
        layer_name = re.sub(r"[^A-Za-z0-9_]", "_", str(name)).lstrip("_")
        if not layer_name or ctx.is_taken(layer_name):
            claimed.append(None)
            continue
        ctx.reserve_name(layer_name)
        claimed.append(layer_name)
    return claimed


def _name_output_layers(ctx: EmitContext, layer_names: list[Optional[str]], outputs: list) -> list:
    """``outputs``, each computed by a layer of the output's claimed name: the layer computing it
    is renamed (``layer_nodes`` follows) where it is called once and returns that tensor alone;
    past a layer computing more (several results, the state's write call) comes a named
    ``identity``, which returns its input itself (no op in the exported graphs)."""
    named = []
    for layer_name, t in zip(layer_names, outputs):
        if layer_name is None:
            named.append(t)
            continue
        layer = _sole_producer(t)
        if layer is None:
            named.append(TorchOp("identity", name=layer_name)(t))
            continue
        if layer.name in ctx.layer_nodes:
            ctx.layer_nodes[layer_name] = ctx.layer_nodes.pop(layer.name)
        layer.name = layer_name
        named.append(t)
    return named


def _sole_producer(t: Any) -> Optional[keras.Operation]:
    """The layer that computes ``t`` and nothing else, if there is one."""
    history = getattr(t, "_keras_history", None)
    if history is None:
        return None
    layer = history[0]
    if isinstance(layer, (keras.layers.InputLayer, ModelState)) or len(layer._inbound_nodes) != 1:
        return None
    return layer if len(keras.tree.flatten(layer._inbound_nodes[0].output_tensors)) == 1 else None


def _output_structure(graph: Graph, outputs: list) -> Any:
    """What the model returns: a dict by output name when forward returned a dict, else the
    list of outputs (one output: the tensor itself)."""
    names = graph.output_names
    if graph.meta.get("outputs_are_dict") and len(set(names)) == len(names) == len(outputs):
        return dict(zip(names, outputs))
    return outputs if len(outputs) != 1 else outputs[0]


def _shape_matches(got: tuple, want: tuple) -> bool:
    """A Keras shape against the IR's: equal ints; ``None`` (not known when the graph is built)
    and symbolic dims match anything."""
    return len(got) == len(want) and all(g is None or isinstance(w, str) or g == w for g, w in zip(got, want))


def _model_name(name: str) -> str:
    """A Keras root scope name: letters, digits, ``._/>-`` and ``_`` after a letter or digit."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name).lstrip("_")
    return cleaned or "model"
