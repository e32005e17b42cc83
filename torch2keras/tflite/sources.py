"""Where a TFLite tensor or op comes from in the user's PyTorch model.

The converter names each tensor after the TensorFlow ops fused into it, and those carry the
Keras layer names, which are IR value names (``CompileResult.layer_nodes``: layer name -> IR
node, whose ``loc`` is the torch module path and file:line). Model outputs are renamed by the
converter (``StatefulPartitionedCall:0``): they are found through the signature's output names
(``output_nodes``: output name -> IR node), also across a final QUANTIZE/DEQUANTIZE.
"""

from __future__ import annotations

from typing import Optional

import functools

from ..ir.ops import SCHEMAS
from .file import TFLiteFile, layer_names_in

__all__ = ["SourceMap", "anchors", "locate"]


@functools.lru_cache(maxsize=None)
def anchors(tflite_op: str) -> frozenset[str]:
    """The IR ops a TFLite op is built around (each op schema's ``tflite`` facet): in a fused op,
    the layer of such an op names it; its other layers are fused activations, pads, ..."""
    return frozenset(name for name, s in SCHEMAS.items() if tflite_op in s.tflite)


def locate(tensor_name: str, layer_nodes: dict, tflite_op: str = "") -> tuple[list[str], str, str]:
    """(Keras layers, IR op, source) of a TFLite tensor name; for a fused op the layer of its
    main IR op (the conv of conv + relu) gives op and source."""
    layers = [n for n in layer_names_in(tensor_name, layer_nodes) if n in layer_nodes]
    around = anchors(tflite_op)
    layers = sorted(layers, key=lambda n: layer_nodes[n].op not in around)  # stable: the anchor first
    if not layers:
        return [], "", ""
    node = layer_nodes[layers[0]]
    return layers, node.op, node.loc.short() if node.loc is not None else ""


class SourceMap:
    """Tensor / op of one ``.tflite`` file -> Keras layers, IR op and torch source."""

    def __init__(self, info: TFLiteFile, layer_nodes: Optional[dict] = None,
                 output_nodes: Optional[dict] = None) -> None:
        self.info = info
        self.layer_nodes = dict(layer_nodes or {})
        self.output_nodes = dict(output_nodes or {})
        self._producer = {t: op for op in info.main_ops() for t in op.outputs}
        self._consumers: dict[int, list] = {}
        for op in info.main_ops():
            for t in op.inputs:
                self._consumers.setdefault(t, []).append(op)
        signature = info.signatures.get("serving_default", {})
        self._outputs = {index: name for name, index in signature.get("outputs", {}).items()}  # tensor -> name
        self._inputs = {index: name for name, index in signature.get("inputs", {}).items()}

    def tensor(self, index: int, subgraph: int = 0) -> tuple[list[str], str, str]:
        t = self.info.tensor(index, subgraph)
        op = self._producer.get(index) if subgraph == 0 else None
        found = locate(t.name, self.layer_nodes, op.name if op else "")
        if found[0] or subgraph != 0:
            return found
        if op is not None and op.name == "QUANTIZE" and op.inputs[0] in self._inputs:  # a float input, quantized
            name = self._inputs[op.inputs[0]]
            return [name], "input", f"input '{name}'"
        if index in self._inputs:
            return [self._inputs[index]], "input", f"input '{self._inputs[index]}'"
        if op is not None and op.name in ("QUANTIZE", "DEQUANTIZE") and index not in self._outputs:
            return self.tensor(op.inputs[0])  # a requantization: where its input comes from
        name = self._outputs.get(index)
        if name is None:  # a tensor a final (DE)QUANTIZE turns into an output
            after = [c for c in self._consumers.get(index, []) if c.name in ("QUANTIZE", "DEQUANTIZE")]
            if len(after) == 1 and len(self._consumers[index]) == 1:
                name = self._outputs.get(after[0].outputs[0])
        node = self.output_nodes.get(name) if name else None
        if node is None:
            return found
        return [name], node.op, node.loc.short() if node.loc is not None else ""

    def source(self, index: int, subgraph: int = 0) -> str:
        return self.tensor(index, subgraph)[2]

    def ops(self, op_indices) -> list[str]:
        """The torch source lines of ops (indices into ``info.ops``), without repeats."""
        where: list[str] = []
        for i in op_indices:
            op = self.info.ops[i]
            for t in op.outputs:
                s = self.source(t, op.subgraph)
                if s and s not in where:
                    where.append(s)
        return where
