"""Lowerings of PyTorch's ``quantized_decomposed`` ops (what PT2E's ``convert_pt2e`` leaves around
the float ops of a quantized model) to the IR's ``quantize`` and ``dequantize``.

Scales and zero points must be known when the model is converted: python numbers, or constant
tensors (the per-channel parameters of weights). The integer range (``quant_min``,
``quant_max``) and dtype are kept as given.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401 - defines torch.ops.quantized_decomposed

from ...ir import Value
from ..registry import LoweringContext, lowering, torch_dtype

__all__: list[str] = []


def _decomposed(name: str, *overloads: str) -> list:
    """``quantized_decomposed.<name>.<overload>`` for the overloads this torch defines (none
    without the library that registers them)."""
    try:
        packet = getattr(torch.ops.quantized_decomposed, name)
    except (AttributeError, RuntimeError):
        return []
    return [getattr(packet, o) for o in overloads if o in packet.overloads()]


def _numbers(ctx: LoweringContext, x: Any, what: str) -> list:
    """A scale or zero point as a list: a python number, or a constant tensor's entries (None:
    zero)."""
    if x is None:
        return [0]
    if isinstance(x, Value):
        array = ctx.graph.constant_value(x)
        if array is None:
            raise ctx.fail(f"the {what} of a quantization op is computed by the model; only constant "
                           f"quantization parameters (PT2E's convert_pt2e) can be converted")
        return np.asarray(array).reshape(-1).tolist()
    if isinstance(x, torch.Tensor):
        return x.detach().reshape(-1).tolist()
    return [x]


def _params(ctx: LoweringContext, scale: Any, zero_point: Any, axis: Optional[int], qmin: int, qmax: int) -> dict:
    scales = [float(s) for s in _numbers(ctx, scale, "scale")]
    zeros = [int(z) for z in _numbers(ctx, zero_point, "zero point")]
    if zero_point is None:
        zeros = zeros * len(scales)
    if axis is None and (len(scales) != 1 or len(zeros) != 1):
        raise ctx.fail(f"per-tensor quantization with {len(scales)} scales and {len(zeros)} zero points")
    return {"scale": scales, "zero_point": zeros, "axis": axis, "qmin": int(qmin), "qmax": int(qmax)}


@lowering(*_decomposed("quantize_per_tensor", "default", "tensor", "tensor2"), emits=("quantize",))
def lower_quantize_per_tensor(ctx, x, scale, zero_point, quant_min, quant_max, dtype):
    return ctx.emit("quantize", [x], **_params(ctx, scale, zero_point, None, quant_min, quant_max),
                    dtype=torch_dtype(dtype))


@lowering(*_decomposed("dequantize_per_tensor", "default", "tensor", "tensor2"), emits=("dequantize",))
def lower_dequantize_per_tensor(ctx, q, scale, zero_point, quant_min, quant_max, dtype, *, out_dtype=None):
    if out_dtype not in (None, torch.float32):
        raise ctx.fail(f"dequantization to {out_dtype} is not supported (float32 only)")
    return ctx.emit("dequantize", [q], **_params(ctx, scale, zero_point, None, quant_min, quant_max))


@lowering(*_decomposed("quantize_per_channel", "default"), emits=("quantize",))
def lower_quantize_per_channel(ctx, x, scales, zero_points, axis, quant_min, quant_max, dtype):
    return ctx.emit("quantize", [x], **_params(ctx, scales, zero_points, int(axis), quant_min, quant_max),
                    dtype=torch_dtype(dtype))


@lowering(*_decomposed("dequantize_per_channel", "default"), emits=("dequantize",))
def lower_dequantize_per_channel(ctx, q, scales, zero_points, axis, quant_min, quant_max, dtype, *, out_dtype=None):
    if out_dtype not in (None, torch.float32):
        raise ctx.fail(f"dequantization to {out_dtype} is not supported (float32 only)")
    return ctx.emit("dequantize", [q], **_params(ctx, scales, zero_points, int(axis), quant_min, quant_max))
