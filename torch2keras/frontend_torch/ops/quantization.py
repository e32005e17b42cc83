"""Lowerings of PyTorch's ``quantized_decomposed`` ops (what PT2E's ``convert_pt2e`` leaves around
the float ops of a quantized model) to the IR's ``quantize`` and ``dequantize``.

Scales and zero points known when the model is converted (python numbers, or constant tensors:
the per-channel parameters of weights) give ``quantize`` / ``dequantize``. The integer range
(``quant_min``, ``quant_max``) and dtype are kept as given. Dynamic quantization (PT2E with
``is_dynamic=True``: ``choose_qparams`` picks a scale and zero point from each activation at run
time) is lowered to the float arithmetic torch computes: min / max of the tensor, the scale and
zero point, then ``clamp(round(x / scale) + zero_point)`` cast to the integers and back.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401 - defines torch.ops.quantized_decomposed

from ...ir import Value
from ..registry import LoweringContext, lowering, torch_dtype
from .common import binary

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


_ARITHMETIC = ("reduce", "minimum", "maximum", "sub", "div", "mul", "add", "round", "clamp", "cast", "reshape")


def _computed(ctx: LoweringContext, scale: Any) -> bool:
    """Whether a scale is computed by the model (dynamic quantization)."""
    return isinstance(scale, Value) and ctx.graph.constant_value(scale) is None


@lowering(*_decomposed("choose_qparams", "tensor"), emits=_ARITHMETIC)
def lower_choose_qparams(ctx, x, quant_min, quant_max, eps, dtype):
    """torch's affine parameters of ``x``: scale = (max(x, 0) - min(x, 0)) / (qmax - qmin), at
    least ``eps``; zero point = clamp(qmin - round(min(x, 0) / scale), qmin, qmax) (both float32
    scalars of shape [1])."""
    low = binary(ctx, "minimum", ctx.emit("reduce", [x], kind="min", axes=None, keepdim=False), 0.0, "f32")
    high = binary(ctx, "maximum", ctx.emit("reduce", [x], kind="max", axes=None, keepdim=False), 0.0, "f32")
    scale = binary(ctx, "div", binary(ctx, "sub", high, low, "f32"), float(quant_max - quant_min), "f32")
    scale = binary(ctx, "maximum", scale, float(eps), "f32")
    zero = binary(ctx, "sub", float(quant_min), ctx.emit("round", [binary(ctx, "div", low, scale, "f32")]), "f32")
    zero = ctx.emit("clamp", [zero], min=float(quant_min), max=float(quant_max))
    one = [1]  # (torch's float64 and int64: cast back to float32 by their readers, see _float32)
    return (ctx.cast(ctx.emit("reshape", [scale], shape=one), "f64"),
            ctx.cast(ctx.emit("reshape", [zero], shape=one), "i64"))


def _float32(ctx: LoweringContext, v: Value) -> Value:
    """A computed scale or zero point as float32 (the float32 value ``choose_qparams`` cast, so
    that no float64 is left once the cast is unread)."""
    if v.producer.op == "cast" and v.producer.inputs[0].type.dtype == "f32":
        return v.producer.inputs[0]
    return ctx.cast(v, "f32")


@lowering(*_decomposed("quantize_per_tensor", "default", "tensor", "tensor2"), emits=("quantize",) + _ARITHMETIC)
def lower_quantize_per_tensor(ctx, x, scale, zero_point, quant_min, quant_max, dtype):
    if _computed(ctx, scale):  # dynamic: torch's arithmetic
        scale, zero_point = _float32(ctx, scale), _float32(ctx, zero_point)
        q = binary(ctx, "add", ctx.emit("round", [binary(ctx, "div", x, scale, "f32")]), zero_point, "f32")
        q = ctx.emit("clamp", [q], min=float(quant_min), max=float(quant_max))
        return ctx.cast(q, torch_dtype(dtype))
    return ctx.emit("quantize", [x], **_params(ctx, scale, zero_point, None, quant_min, quant_max),
                    dtype=torch_dtype(dtype))


@lowering(*_decomposed("dequantize_per_tensor", "default", "tensor", "tensor2"), emits=("dequantize",) + _ARITHMETIC)
def lower_dequantize_per_tensor(ctx, q, scale, zero_point, quant_min, quant_max, dtype, *, out_dtype=None):
    if out_dtype not in (None, torch.float32):
        raise ctx.fail(f"dequantization to {out_dtype} is not supported (float32 only)")
    if _computed(ctx, scale):  # dynamic: torch's arithmetic
        shifted = binary(ctx, "sub", ctx.cast(q, "f32"), _float32(ctx, zero_point), "f32")
        return binary(ctx, "mul", shifted, _float32(ctx, scale), "f32")
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
