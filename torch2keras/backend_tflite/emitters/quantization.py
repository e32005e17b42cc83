"""Emitters of the quantization family: ``quantize`` as QUANTIZE (float -> integers; of a
dequantization, integers requantized to other parameters) and ``dequantize`` as DEQUANTIZE, their integer tensors
carrying the parameters. A quantize or dequantize that an int8 layer absorbs is not written
here (``backend_tflite/quantized.py``)."""

from __future__ import annotations

import numpy as np

from ...ir import Node
from ..context import Context, DirectExportError, emitter
from ..quantized import quantization_of

__all__ = ["emit_dequantize", "emit_quantize"]


@emitter("quantize")
def emit_quantize(ctx: Context, node: Node) -> int:
    if node.attrs["axis"] is not None:
        raise DirectExportError(node, "per-channel quantization of computed values has no TFLite builtin "
                                      "(weights quantized per channel are written as int8 layers)")
    v = node.output
    out = ctx.sub.tensor([int(d) for d in v.type.physical_shape], v.type.dtype, ctx.scope(node),
                         quantization=quantization_of(node, v))
    x = node.inputs[0]
    if x.producer.op == "dequantize" and x.producer.attrs["axis"] is None:  # integers requantized
        x = x.producer.inputs[0]
    ctx.op("QUANTIZE", [ctx.tensor(x)], [out])
    return out


@emitter("dequantize")
def emit_dequantize(ctx: Context, node: Node) -> int:
    q = node.inputs[0]
    if ctx.is_const(q):  # integers stored as they are, read through a DEQUANTIZE
        tensor = ctx.sub.constant(np.ascontiguousarray(ctx.const(q)), ctx.local_name("integers"),
                                  quantization=quantization_of(node))
    else:
        tensor = ctx.tensor(q)
        if ctx.sub.tensors[tensor].quantization is None:
            ctx.sub.tensors[tensor].quantization = quantization_of(node).table()
    out = ctx.result(node)
    ctx.op("DEQUANTIZE", [tensor], [out])
    return out
