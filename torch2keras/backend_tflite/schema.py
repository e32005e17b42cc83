"""The TFLite flatbuffer schema as this backend uses it: the generated module that ships with
LiteRT (``ai_edge_litert.schema_py_generated``), IR dtypes as TFLite tensor types, and builtin
op codes and option unions looked up by name."""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from ai_edge_litert import schema_py_generated as fb
except ImportError as e:  # pragma: no cover - ai-edge-litert is a declared dependency of TFLite export
    raise ImportError("the direct TFLite backend needs the flatbuffer schema of ai-edge-litert: "
                      "pip install ai-edge-litert") from e

__all__ = ["OPTIONS_UNION", "builtin_code", "fb", "numpy_of_tflite", "options_type", "tflite_type"]

# IR dtype -> TFLite TensorType (bf16 is stored widened to float32 by the IR, see ir/types.py)
_TFLITE_TYPES = {
    "f16": fb.TensorType.FLOAT16, "bf16": fb.TensorType.FLOAT32, "f32": fb.TensorType.FLOAT32,
    "f64": fb.TensorType.FLOAT64, "i8": fb.TensorType.INT8, "u8": fb.TensorType.UINT8,
    "i16": fb.TensorType.INT16, "i32": fb.TensorType.INT32, "i64": fb.TensorType.INT64,
    "bool": fb.TensorType.BOOL, "resource": fb.TensorType.RESOURCE,  # (a variable's handle)
}
_NUMPY = {fb.TensorType.FLOAT16: np.float16, fb.TensorType.FLOAT32: np.float32, fb.TensorType.FLOAT64: np.float64,
          fb.TensorType.INT8: np.int8, fb.TensorType.UINT8: np.uint8, fb.TensorType.INT16: np.int16,
          fb.TensorType.INT32: np.int32, fb.TensorType.INT64: np.int64, fb.TensorType.BOOL: np.bool_}
_FROM_NUMPY = {np.dtype(v): k for k, v in _NUMPY.items()}


def tflite_type(dtype: "str | np.dtype") -> int:
    """A TFLite ``TensorType`` from an IR dtype name (``"f32"``) or a numpy dtype."""
    if isinstance(dtype, str) and dtype in _TFLITE_TYPES:
        return _TFLITE_TYPES[dtype]
    try:
        return _FROM_NUMPY[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise ValueError(f"no TFLite tensor type for dtype {dtype!r}") from None


def numpy_of_tflite(tensor_type: int) -> np.dtype:
    return np.dtype(_NUMPY[tensor_type])


def builtin_code(name: str) -> int:
    """``BuiltinOperator.<name>`` (``"CONV_2D"`` -> 3)."""
    try:
        return getattr(fb.BuiltinOperator, name)
    except AttributeError:
        raise ValueError(f"unknown TFLite builtin op {name!r}") from None


OPTIONS_UNION = {name: value for name, value in vars(fb.BuiltinOptions).items() if not name.startswith("_")}


def options_type(options: Any) -> int:
    """The ``BuiltinOptions`` union tag of an options object (``Conv2DOptionsT`` -> Conv2DOptions)."""
    name = type(options).__name__
    if not name.endswith("T") or name[:-1] not in OPTIONS_UNION:
        raise ValueError(f"{name} is not a builtin options table of the TFLite schema")
    return OPTIONS_UNION[name[:-1]]
