"""Emitters of the scans along an axis: ``cumsum`` (CUMSUM) and ``topk`` (TOPK_V2, which works on
the last stored axis only; the smallest k as the largest of the negated values).
"""

from __future__ import annotations

import numpy as np

from ...ir import Node
from ..context import Context, DirectExportError, emitter
from ..schema import fb

__all__: list[str] = []


@emitter("cumsum")
def emit_cumsum(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    out = ctx.result(node)
    ctx.op("CUMSUM", [ctx.tensor(x), ctx.ints(x.type.physical_axis(node.attrs["axis"]), "axis")], [out],
           fb.CumsumOptionsT())
    return out


@emitter("topk")
def emit_topk(ctx: Context, node: Node) -> tuple[int, int]:
    x, a = node.inputs[0], node.attrs
    if x.type.physical_axis(a["axis"]) != x.type.rank - 1:
        raise DirectExportError(node, "along another axis than the last stored one is not supported")
    tensor = ctx.tensor(x)
    if not a["largest"]:
        tensor = _negated(ctx, tensor)
    values = ctx.result(node, 0) if a["largest"] else \
        ctx.temp(node.outputs[0].type.physical_shape, ctx.dtype(tensor), "values")
    shape = list(node.outputs[1].type.physical_shape)
    indices = ctx.temp(shape, np.int32, "indices")
    ctx.op("TOPK_V2", [tensor, ctx.ints(a["k"], "k")], [values, indices])
    if not a["largest"]:
        out = ctx.result(node, 0)
        ctx.op("NEG", [values], [out])
        values = out
    index_out = ctx.result(node, 1)
    options = fb.CastOptionsT()
    options.inDataType, options.outDataType = fb.TensorType.INT32, fb.TensorType.INT64
    ctx.op("CAST", [indices], [index_out], options)
    return values, index_out


def _negated(ctx: Context, x: int) -> int:
    out = ctx.temp(ctx.shape(x), ctx.dtype(x), "neg")
    ctx.op("NEG", [x], [out])
    return out
