"""Affine quantization: ``quantize`` (float -> integers) and ``dequantize`` (integers -> float),
per tensor or per channel, as PyTorch's ``quantized_decomposed`` ops compute them (what
PT2E's ``convert_pt2e`` leaves around the float ops of a quantized model).

``scale`` and ``zero_point`` hold one entry per tensor (``axis`` None) or one per index of
logical axis ``axis``. ``quantize``: ``clamp(round(x * (1 / scale)) + zero_point, qmin, qmax)``
(round half to even) in the integer ``dtype``; ``dequantize``: ``(q - zero_point) * scale`` in
float32. Both are elementwise (layout rule ``agnostic``): a backend maps ``axis`` through the
value's layout (``TensorType.physical_axis``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..types import TensorType, dtype_to_numpy
from .schema import define

__all__ = ["QUANTIZED_DTYPES", "dequantize_reference", "quantize_reference"]

FAMILY = "quantization"
QUANTIZED_DTYPES = ("i8", "u8", "i16", "i32")


def _along(values: Sequence[float], axis: Optional[int], rank: int, dtype: str) -> np.ndarray:
    """``values`` shaped to broadcast along logical ``axis`` (a scalar without an axis)."""
    array = np.asarray(values, dtype=dtype)
    if axis is None:
        return array.reshape(())
    shape = [1] * rank
    shape[axis % rank] = array.size
    return array.reshape(shape)


def quantize_reference(x: np.ndarray, scale: Sequence[float], zero_point: Sequence[int], axis: Optional[int],
                       qmin: int, qmax: int, dtype: str) -> np.ndarray:
    inverse = (1.0 / _along(scale, axis, x.ndim, "float64")).astype(np.float32)
    q = np.round(np.asarray(x, np.float32) * inverse) + _along(zero_point, axis, x.ndim, "float32")
    return np.clip(q, qmin, qmax).astype(dtype_to_numpy(dtype))


def dequantize_reference(q: np.ndarray, scale: Sequence[float], zero_point: Sequence[int], axis: Optional[int],
                         qmin: int, qmax: int) -> np.ndarray:
    shifted = np.asarray(q, np.float32) - _along(zero_point, axis, q.ndim, "float32")
    return (shifted * _along(scale, axis, q.ndim, "float32")).astype(np.float32)


def _quantized(types: Sequence[TensorType], a: dict) -> list[TensorType]:
    return [TensorType(types[0].shape, a["dtype"])]


def _float(types: Sequence[TensorType], a: dict) -> list[TensorType]:
    return [TensorType(types[0].shape, "f32")]


_PARAMS = {"scale": ("floats",), "zero_point": ("ints",), "axis": ("int", None), "qmin": ("int",), "qmax": ("int",)}

define("quantize", FAMILY, ["x"], _quantized, "agnostic", {**_PARAMS, "dtype": ("dtype",)},
       reference=quantize_reference, tflite=("QUANTIZE",),
       doc="float -> integers: clamp(round(x / scale) + zero_point, qmin, qmax), per tensor or along axis")
define("dequantize", FAMILY, ["q"], _float, "agnostic", _PARAMS, reference=dequantize_reference,
       tflite=("DEQUANTIZE",), doc="integers -> float32: (q - zero_point) * scale, per tensor or along axis")
