"""Kernels of the quantization family: affine ``quantize`` and ``dequantize``, per tensor or along a
stored axis, as ``ir/ops/quantization.py`` defines them."""

from __future__ import annotations

from typing import Optional, Sequence

from keras import ops

from .registry import register

__all__: list[str] = []


def _along(x, values: Sequence[float], axis: Optional[int], dtype: str):
    """``values`` shaped to broadcast against ``x`` along stored ``axis`` (a scalar without one)."""
    array = ops.convert_to_tensor(list(values), dtype=dtype)
    if axis is None:
        return ops.reshape(array, ())
    shape = [1] * len(x.shape)
    shape[axis] = len(values)
    return ops.reshape(array, shape)


def _quantize(x, scale, zero_point, axis, qmin, qmax, dtype):
    inverse = [1.0 / s for s in scale]
    q = ops.round(ops.cast(x, "float32") * _along(x, inverse, axis, "float32")) + _along(x, zero_point, axis, "float32")
    return ops.cast(ops.clip(q, qmin, qmax), dtype)


def _dequantize(q, scale, zero_point, axis):
    shifted = ops.cast(q, "float32") - _along(q, zero_point, axis, "float32")
    return shifted * _along(q, scale, axis, "float32")


register({"quantize": _quantize, "dequantize": _dequantize})
