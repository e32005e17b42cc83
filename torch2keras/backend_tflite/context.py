"""The state the op emitters share while one IR graph is written: the TFLite tensor of each IR
value (stored in its physical layout), constants, new tensors and ops, and the fusion plan.

Emitters (``emitter(*ops)``) take ``(ctx, node)`` and return the TFLite tensor index of each of
the node's results (an int, or a tuple for several), in the physical layout the IR gives them
(``TensorType.physical_shape``); returning an input's tensor makes the result an alias of it
(a reshape that changes nothing, an identity).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..ir import ExportError, Graph, Node, Value
from ..ir.evaluate import evaluate
from ..ir.types import DTYPES
from .builder import ModelBuilder, Stacked, SubgraphBuilder
from .plan import Plan
from .schema import fb, numpy_of_tflite
from .weight_quantization import QuantizedWeight, WeightQuantization, quantized_tensor

__all__ = ["EMITTERS", "Context", "DirectExportError", "emitter"]

Emitter = Callable[["Context", Node], Any]
EMITTERS: dict[str, Emitter] = {}

_ACTIVATIONS = {None: fb.ActivationFunctionType.NONE, "RELU": fb.ActivationFunctionType.RELU,
                "RELU6": fb.ActivationFunctionType.RELU6, "RELU_N1_TO_1": fb.ActivationFunctionType.RELU_N1_TO_1}
FP16_MIN_ELEMENTS = 16  # float weights at least this large are stored as float16 in an fp16 file


def emitter(*ops: str) -> Callable[[Emitter], Emitter]:
    """Register the decorated function as the direct TFLite emitter of IR ops ``ops``."""

    def register(fn: Emitter) -> Emitter:
        for op in ops:
            EMITTERS[op] = fn
        return fn

    return register


class DirectExportError(ExportError):
    """The direct TFLite writer cannot express a node; ``ops`` lists (IR op, torch op, source)
    so that the caller can name it or fall back to the converter path."""

    def __init__(self, node: Node, why: str) -> None:
        loc = node.loc
        torch_op = loc.op if loc is not None and loc.op else "?"
        where = str(loc) if loc is not None else "(source unknown)"
        super().__init__(f"direct TFLite export: IR op {node.op!r} (from {torch_op}) {why}\n  at {where}\n"
                         f"use export_tflite(..., backend=\"converter\") for this model",
                         [(node.op, torch_op, loc.short() if loc is not None else "")])
        self.node = node


def _memory(array: Optional[np.ndarray]) -> tuple:
    """Where ``array``'s elements lie (equal for two views of one parameter's memory)."""
    if array is None:
        return (None,)
    return array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_./;:-]", "_", text) or "t"


class Context:
    """IR value -> TFLite tensor, plus the helpers emitters use to add tensors and ops."""

    def __init__(self, graph: Graph, model: ModelBuilder, subgraph: SubgraphBuilder, plan: Plan,
                 fp16: bool = False, weights: Optional[WeightQuantization] = None) -> None:
        self.graph = graph
        self.model = model
        self.sub = subgraph
        self.plan = plan
        self.fp16 = fp16
        self.weights = weights  # int8 / int4 weights of the layers it quantizes (weight_quantization.py)
        self._quantized: dict[tuple[int, bool], int] = {}  # (weight value id, transposed) -> its integer tensor
        self.tensors: dict[int, int] = {}  # IR value id -> tensor index
        self._dequantized: dict[int, int] = {}  # float16 weight tensor -> its DEQUANTIZE result
        self.node: Optional[Node] = None  # the node being emitted (names its new tensors)
        self.scopes: dict[int, str] = {}  # node id -> the unique name its tensors start with
        self.tensor_nodes: dict[str, Node] = {}  # that name -> the node (locates tensors in the source)
        self.last_ops: list[tuple] = []  # ops written after every node's (``op_last``)
        # the writer's subgraph helpers (``writer.Subgraphs``: regions of control-flow ops), set by the writer
        self.subgraphs: Any = None

    # ------------------------------------------------------------------ IR values

    def is_const(self, v: Value) -> bool:
        """A constant, or a dequantized integer constant (a quantized model's weights, for a layer
        written in float)."""
        p = v.producer
        return p.op == "constant" or (p.op == "dequantize" and p.inputs[0].producer.op == "constant")

    def const(self, v: Value) -> np.ndarray:
        """A constant's array as stored: its logical value transposed to its layout."""
        p = v.producer
        if p.op == "dequantize":
            value = evaluate("dequantize", [p.inputs[0].producer.value], p.attrs)[0]
        else:
            value = p.value
        value = np.asarray(value, dtype=DTYPES[v.type.dtype])
        if v.type.layout is not None:
            value = np.transpose(value, v.type.layout)
        return value

    def tensor(self, v: Value) -> int:
        """The tensor holding IR value ``v`` (a constant becomes a tensor on first use)."""
        if v.id not in self.tensors:
            if not self.is_const(v):
                raise DirectExportError(v.producer, "was read before it was written")
            self.tensors[v.id] = self.constant(self.const(v), v.name_hint, weight=True)
        return self.tensors[v.id]

    def quantizes(self, v: Value, node: Node) -> bool:
        """Whether the weight mode quantizes 2-d constant weight ``v`` of ``node`` (not where
        there is no mode, nor for a kept-float or small layer)."""
        mode = self.weights
        if mode is None or not self.is_const(v) or v.type.rank != 2 or v.type.dtype not in ("f32", "bf16", "f16"):
            return False
        module = node.loc.module_path if node.loc is not None else ""
        return mode.quantizes(module, int(np.prod(v.type.shape)))

    def quantized_weight(self, v: Value, node: Node, transposed: bool = False) -> Optional[int]:
        """The integer tensor of 2-d constant weight ``v`` (``transposed``: of its transpose) that
        ``node`` reads row by row -- a linear layer's [out, in] filter, an embedding table -- or
        None where it stays float (``quantizes``). Quantized here, one weight at a time."""
        mode = self.weights
        if not self.quantizes(v, node):
            return None
        key = (v.id, transposed)
        if key not in self._quantized:
            self._quantized[key] = quantized_tensor(self.sub, self._quantize(v, transposed, mode),
                                                    _name(v.name_hint + ("/transposed" if transposed else "")))
        return self._quantized[key]

    def _quantize(self, v: Value, transposed: bool, mode: WeightQuantization) -> QuantizedWeight:
        """``v``'s weight quantized, once per model: signatures reading the same parameter array
        (a language model's prefill and decode) share the integers."""
        source = v.producer.value if v.producer.op == "constant" and v.type.layout is None else None
        source = source if isinstance(source, np.ndarray) else None
        key = ("quantized", *_memory(source), transposed, mode.mode)
        if source is not None and key in self.model.derived:
            return self.model.derived[key][1]
        array = self.const(v).astype(np.float32)
        q = mode.quantize(np.ascontiguousarray(array.T) if transposed else array)
        if source is not None:
            self.model.derived[key] = (source, q)
        return q

    def linear_filter(self, v: Value, node: Node, transposed: bool = False) -> Optional[int]:
        """A linear layer's filter from ``quantized_weight``: the integers (dynamic modes), or
        their DEQUANTIZE to float32 (``weight_only_*`` modes); None where it stays float."""
        return self._as_filter(self.quantized_weight(v, node, transposed))

    def stacked_linear_filter(self, weights: Sequence[Value], nodes: Sequence[Node]) -> int:
        """The filter of linear layers ``nodes`` run as one: their [out_i, in] constant weights
        stacked by rows, in order. Quantized where the first is (the caller stacks layers the
        mode treats alike): the scales are per row or per block of a row, so the stacked integers
        are the stacked weight's. Float: written from the parameters themselves (``Stacked``)."""
        name = _name(";".join(w.name_hint for w in weights))
        if self.quantizes(weights[0], nodes[0]):
            sources = [np.asarray(w.producer.value) for w in weights]
            key = ("quantized stack", *(_memory(a) for a in sources), self.weights.mode)
            if key not in self.model.derived:
                stacked = np.concatenate([self.const(w).astype(np.float32) for w in weights])
                self.model.derived[key] = (sources, self.weights.quantize(stacked))
            return self._as_filter(quantized_tensor(self.sub, self.model.derived[key][1], name))
        arrays = [self.const(w) for w in weights]
        if self.fp16:
            return self.constant(np.concatenate(arrays), name, weight=True)
        return self.sub.constant(Stacked(arrays), name)

    def _as_filter(self, integers: Optional[int]) -> Optional[int]:
        """A quantized filter as a FULLY_CONNECTED reads it: the integers, or (``weight_only_*``
        modes) their DEQUANTIZE to float32."""
        if integers is None or not self.weights.float_activations:
            return integers
        if integers not in self._dequantized:
            out = self.sub.tensor(self.sub.shape(integers), np.float32, f"{self.sub.tensors[integers].name}/dequantize")
            self.sub.operator("DEQUANTIZE", [integers], [out])
            self._dequantized[integers] = out
        return self._dequantized[integers]

    # ------------------------------------------------------------------ new tensors

    def scope(self, node: Node) -> str:
        """The unique name of ``node``'s tensors (its value name, numbered on repeats): a result
        is named ``scope``, other tensors written for it ``scope/what``."""
        if node.id not in self.scopes:
            base = _name(node.outputs[0].name_hint if node.outputs else node.op)
            name, k = base, 1
            while name in self.tensor_nodes:
                name, k = f"{base}.{k}", k + 1
            self.scopes[node.id] = name
            self.tensor_nodes[name] = node
        return self.scopes[node.id]

    def result(self, node: Node, k: int = 0) -> int:
        """A new tensor for result ``k`` of ``node``, in its physical layout."""
        v = node.outputs[k]
        return self.sub.tensor(_static(v), v.type.dtype, self.scope(node) + ("" if k == 0 else f"/result{k}"))

    def temp(self, shape: Sequence[int], dtype: Any, suffix: str) -> int:
        """A new intermediate tensor of the node being emitted."""
        return self.sub.tensor([int(d) for d in shape], dtype, self.local_name(suffix))

    def constant(self, array: np.ndarray, name: str, weight: bool = False) -> int:
        """A constant tensor; ``weight``: in an fp16 file a large float32 array is stored as
        float16 and read through a DEQUANTIZE to float32."""
        array = np.asarray(array)
        if weight and self.fp16 and array.dtype == np.float32 and array.size >= FP16_MIN_ELEMENTS:
            half = self.sub.constant(array.astype(np.float16), _name(name))
            if half not in self._dequantized:
                out = self.sub.tensor(array.shape, np.float32, _name(f"{name}/dequantize"))
                self.sub.operator("DEQUANTIZE", [half], [out])
                self._dequantized[half] = out
            return self._dequantized[half]
        return self.sub.constant(array, _name(name))

    def ints(self, values: Sequence[int] | int, suffix: str) -> int:
        """An int32 constant (a vector, or a scalar for an int)."""
        return self.constant(np.asarray(values, np.int32), self.local_name(suffix))

    def scalar(self, value: float, dtype: Any, suffix: str) -> int:
        return self.constant(np.asarray(value, dtype), self.local_name(suffix))

    def local_name(self, suffix: str) -> str:
        return _name(f"{self.scope(self.node)}/{suffix}" if self.node is not None else suffix)

    # ------------------------------------------------------------------ ops

    def op(self, op: str, inputs: Sequence[int], outputs: Sequence[int], options: Any = None) -> None:
        self.sub.operator(op, inputs, outputs, options)

    def op_last(self, op: str, inputs: Sequence[int], outputs: Sequence[int], options: Any = None) -> None:
        """An op written after the ops of every node (``write_last_ops``): a variable's
        assignment, after each read of it."""
        self.last_ops.append((op, list(inputs), list(outputs), options))

    def write_last_ops(self) -> None:
        for op in self.last_ops:
            self.sub.operator(*op)
        self.last_ops.clear()

    def shape(self, tensor: int) -> tuple[int, ...]:
        return self.sub.shape(tensor)

    def dtype(self, tensor: int) -> np.dtype:
        return numpy_of_tflite(self.sub.type(tensor))

    def activation(self, node: Node) -> int:
        """The ``ActivationFunctionType`` fused into ``node`` by the plan (NONE if none)."""
        return _ACTIVATIONS[self.plan.activation.get(node.id)]

    def reshape(self, tensor: int, shape: Sequence[int], suffix: str = "reshape",
                out: Optional[int] = None) -> int:
        """``tensor`` reshaped (itself when the shape is already ``shape``)."""
        shape = [int(d) for d in shape]
        if out is None and list(self.shape(tensor)) == shape:
            return tensor
        out = self.temp(shape, self.dtype(tensor), suffix) if out is None else out
        self.op("RESHAPE", [tensor, self.ints(shape, "shape")], [out], _reshape_options(shape))
        return out

    def transpose(self, tensor: int, perm: Sequence[int], suffix: str = "transpose",
                  out: Optional[int] = None) -> int:
        """``tensor`` transposed by ``perm`` (numpy semantics); a reshape when only 1-sized axes
        move, itself when nothing moves."""
        perm = [int(p) for p in perm]
        shape = self.shape(tensor)
        moved = [shape[p] for p in perm]
        if perm == sorted(perm) and out is None:
            return tensor
        kept = [p for p in perm if shape[p] != 1]
        if kept == sorted(kept):
            return self.reshape(tensor, moved, suffix, out)
        out = self.temp(moved, self.dtype(tensor), suffix) if out is None else out
        self.op("TRANSPOSE", [tensor, self.ints(perm, "perm")], [out], fb.TransposeOptionsT())
        return out

    def cast(self, tensor: int, dtype: Any, suffix: str = "cast") -> int:
        if self.dtype(tensor) == np.dtype(dtype):
            return tensor
        out = self.temp(self.shape(tensor), dtype, suffix)
        options = fb.CastOptionsT()
        options.inDataType, options.outDataType = self.sub.type(tensor), self.sub.tensors[out].type
        self.op("CAST", [tensor], [out], options)
        return out


def _reshape_options(shape: Sequence[int]) -> Any:
    options = fb.ReshapeOptionsT()
    options.newShape = [int(d) for d in shape]
    return options


def _static(v: Value) -> list[int]:
    shape = v.type.physical_shape
    if any(isinstance(d, str) for d in shape):
        raise DirectExportError(v.producer, f"has a run-time size ({v.type}); the direct backend writes static "
                                            f"shapes only")
    return [int(d) for d in shape]
