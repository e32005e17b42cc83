"""Emit a Keras functional model from a layout-annotated IR graph.

Each IR op has an emitter (registry keyed by op name) that receives the node and the Keras
tensors of its inputs, in their stored layouts, and returns the Keras tensors of its results.
Built-in layers carry weights wherever one exists (convolutions, Dense, norms, pooling,
Embedding); everything else is a ``TorchOp`` over ``keras.ops``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

import keras
import numpy as np

from ..ir import EmissionError, Graph, Node, Value
from ..ir.types import DTYPES
from .layers import ConstantOutput, TorchOp

__all__ = ["EMITTERS", "EmitContext", "emit_model", "emitter"]

EMITTERS: dict[str, Callable] = {}


def emitter(*ops: str) -> Callable:
    """Register the decorated function as the emitter of IR ops ``ops``."""

    def register(fn: Callable) -> Callable:
        for op in ops:
            EMITTERS[op] = fn
        return fn

    return register


def keras_dtype(dtype: str) -> str:
    return DTYPES[dtype]


class EmitContext:
    """Keras tensors of emitted values, constants in physical form, and unique layer names."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.tensors: dict[int, Any] = {}
        self._names: set[str] = set()
        self.layer_nodes: dict[str, Node] = {}
        self.any_input = None
        self.state_layer = None  # the model's ModelState layer, if it has state (emit_state.py)
        self.state_updates: list = []  # (state name, Keras tensor of its new value)

    def name(self, node: Node, suffix: str = "") -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", node.outputs[0].name_hint if node.outputs else node.op) + suffix
        base = base.lstrip("_") or "v"  # TF scope names cannot start with "_" (export graphs have _to_copy, ...)
        return self.unique_name(base)

    def unique_name(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``, ... : a layer name not yet taken in this model."""
        name, k = base, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        return name

    def is_const(self, v: Value) -> bool:
        return v.producer.op == "constant"

    def const(self, v: Value) -> np.ndarray:
        """The constant's array as stored: logical value transposed to its layout."""
        value = np.asarray(v.producer.value, dtype=DTYPES[v.type.dtype])
        if v.type.layout is not None:
            value = np.transpose(value, v.type.layout)
        return np.ascontiguousarray(value).reshape(value.shape)  # (ascontiguousarray makes 0-d arrays 1-d)

    def tensor(self, v: Value):
        if v.id in self.tensors:
            return self.tensors[v.id]
        if self.is_const(v):
            return self.constant_tensor(v)
        raise EmissionError(f"value {v} was not emitted")

    def constant_tensor(self, v: Value):
        layer = ConstantOutput(self.const(v).shape, keras_dtype(v.type.dtype), name=self.name(v.producer))
        out = layer(self.any_input)
        layer.set_weights([self.const(v)])
        self.tensors[v.id] = out
        return out

    def op(self, node: Node, fn: str, inputs: list[Value], suffix: str = "", num_outputs: int = 1, **params):
        """Apply ``TorchOp(fn)``: constant inputs become stored weights, the rest are tensors."""
        consts, tensors, values = [], [], []
        for pos, v in enumerate(inputs):
            if self.is_const(v):
                array = self.const(v)
                consts.append([pos, list(array.shape), array.dtype.name])
                values.append(array)
            else:
                tensors.append(self.tensor(v))
        if not tensors:  # nothing folded it: compute it now and store the result
            return self._all_constant(node, fn, inputs, params)
        layer = TorchOp(fn, params=params, consts=consts, num_outputs=num_outputs, name=self.name(node, suffix))
        out = layer(tensors if len(tensors) > 1 else tensors[0])
        if values:
            layer.set_weights(values)
        self.layer_nodes[layer.name] = node
        return out

    def op_on(self, node: Node, fn: str, tensors: list, suffix: str = "", **params):
        """Apply ``TorchOp(fn)`` to already emitted Keras tensors."""
        layer = TorchOp(fn, params=params, name=self.name(node, suffix))
        out = layer(tensors if len(tensors) > 1 else tensors[0])
        self.layer_nodes[layer.name] = node
        return out

    def _all_constant(self, node, fn, inputs, params):
        from .kops import KOPS

        result = KOPS[fn](*[keras.ops.convert_to_tensor(self.const(v)) for v in inputs], **params)
        array = keras.ops.convert_to_numpy(result)
        layer = ConstantOutput(array.shape, array.dtype.name, name=self.name(node))
        out = layer(self.any_input)
        layer.set_weights([array])
        return out

    def layer(self, node: Node, layer: keras.layers.Layer, x, weights: Optional[list] = None):
        out = layer(x)
        if weights is not None:
            layer.set_weights(weights)
        self.layer_nodes[layer.name] = node
        return out


def emit_model(graph: Graph, name: str = "model") -> tuple[keras.Model, EmitContext]:
    from . import emit_control, emit_custom, emit_dynamic, emit_rnn, emitters, emitters_extra  # noqa: F401  (registers the emitters)
    from .emit_state import attach_state_updates

    ctx = EmitContext(graph)
    inputs = []
    for v in graph.inputs:
        # the full static shape, 0-d (a scalar input) included: keras.Input(shape=...) would add a
        # batch axis; None marks a run-time size
        shape = [None if isinstance(d, str) else d for d in v.type.physical_shape]
        t = keras.Input(batch_shape=tuple(shape), dtype=keras_dtype(v.type.dtype),
                        name=v.producer.attrs["name"])
        ctx._names.add(v.producer.attrs["name"])
        ctx.tensors[v.id] = t
        inputs.append(t)
    ctx.any_input = inputs[0] if inputs else None
    for node in graph.topo_order():
        if node.op in ("input", "constant"):
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
    outputs = []
    for out_name, v in zip(graph.output_names, graph.outputs):
        t = ctx.tensor(v)
        if any(t is i for i in inputs) or any(t is o for o in outputs):
            t = TorchOp("identity", name=ctx.name(v.producer, "_out"))(t)
        outputs.append(t)
    outputs = attach_state_updates(ctx, outputs)
    output_spec = {n: t for n, t in zip(graph.output_names, outputs)}
    model = keras.Model(inputs=inputs, outputs=outputs if len(outputs) != 1 else outputs[0], name=_model_name(name))
    model.output_names_ = list(output_spec)
    return model, ctx


def _shape_matches(got: tuple, want: tuple) -> bool:
    """A Keras shape against the IR's: equal ints; ``None`` (not known when the graph is built)
    and symbolic dims match anything."""
    return len(got) == len(want) and all(g is None or isinstance(w, str) or g == w for g, w in zip(got, want))


def _model_name(name: str) -> str:
    """A Keras root scope name: letters, digits, ``._/>-`` and ``_`` after a letter or digit."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name).lstrip("_")
    return cleaned or "model"
