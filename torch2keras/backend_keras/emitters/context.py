"""The emitter registry and the state one model's emission shares (``EmitContext``).

An emitter is ``fn(ctx, node, *inputs) -> Keras tensor(s)``: it receives the node and the IR
values of its inputs (``ctx.tensor(v)`` is the Keras tensor of one, in its stored layout) and
returns the Keras tensors of the node's results, in their stored layouts. The family modules of
this package register theirs with ``@emitter("op", ...)``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

import keras
import numpy as np

from ...ir import EmissionError, Graph, Node, Value
from ...ir.types import DTYPES
from ..kops import KOPS
from ..layers import ConstantOutput, TorchOp

__all__ = ["EMITTERS", "EmitContext", "ModelBuilder", "emitter", "keras_dtype"]

EMITTERS: dict[str, Callable] = {}

# builds the functional Keras model of a graph (a region's, for control flow) with the given name
ModelBuilder = Callable[[Graph, str], keras.Model]


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
    """Keras tensors of emitted values, constants in physical form, and unique layer names.

    ``build_model`` builds the sub-models of control-flow regions (``emit.emit_model``).
    """

    def __init__(self, graph: Graph, build_model: ModelBuilder) -> None:
        self.graph = graph
        self.build_model = build_model
        self.tensors: dict[int, Any] = {}
        self._names: set[str] = set()
        self.layer_nodes: dict[str, Node] = {}
        self.any_input = None
        self.state_layer = None  # the model's ModelState layer, if it has state (emitters/state.py)
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

    def reserve_name(self, name: str) -> None:
        """Mark ``name`` as taken (an input's, which keeps the user's name)."""
        self._names.add(name)

    def is_taken(self, name: str) -> bool:
        return name in self._names

    def is_const(self, v: Value) -> bool:
        return v.producer.op == "constant"

    def const(self, v: Value) -> np.ndarray:
        """The constant's array as stored: logical value transposed to its layout."""
        value = np.asarray(v.producer.value, dtype=DTYPES[v.type.dtype])
        if v.type.layout is not None:
            value = np.transpose(value, v.type.layout)
        return np.ascontiguousarray(value).reshape(value.shape)  # (ascontiguousarray makes 0-d arrays 1-d)

    def tensor(self, v: Value):
        """The Keras tensor of ``v``; a constant is emitted on its first use as a tensor (most
        constants never are: ``op`` stores them as weights of the layers that read them)."""
        if v.id in self.tensors:
            return self.tensors[v.id]
        if self.is_const(v):
            self.tensors[v.id] = EMITTERS["constant"](self, v.producer)
            return self.tensors[v.id]
        raise EmissionError(f"value {v} was not emitted")

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

    def _all_constant(self, node: Node, fn: str, inputs: list[Value], params: dict):
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
