"""Emitters of the quantization family: ``quantize`` and ``dequantize`` as ``TorchOp`` kernels, the
per-channel axis mapped to where the value stores it."""

from __future__ import annotations

from ...ir import Node, Value
from .context import EmitContext, emitter, keras_dtype

__all__ = ["emit_quantization"]


@emitter("quantize", "dequantize")
def emit_quantization(ctx: EmitContext, node: Node, x: Value):
    axis = node.attrs["axis"]
    params = {"scale": list(node.attrs["scale"]), "zero_point": list(node.attrs["zero_point"]),
              "axis": None if axis is None else x.type.physical_axis(axis)}
    if node.op == "quantize":
        params.update(qmin=node.attrs["qmin"], qmax=node.attrs["qmax"], dtype=keras_dtype(node.attrs["dtype"]))
    return ctx.op(node, node.op, [x], **params)
