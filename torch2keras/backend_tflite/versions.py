"""The version of each builtin op the writer emits, from its operands and options.

An op's version names the kernel features it needs (a grouped convolution, ``keep_num_dims``,
a 5-d transpose, ...); a runtime older than the version refuses the model, a newer one accepts
it. These are the rules of TensorFlow Lite's op versioning for the float, integer and bool
kernels this backend writes (int8 quantized kernels: at least the version that has them; the
dynamic-range kernels of int8 / int4 weights with float inputs, ``weight_quantization.py``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import attrs

from .schema import fb

__all__ = ["OpSignature", "op_version"]

_T = fb.TensorType


@attrs.frozen
class OpSignature:
    """What the version rules look at: operand types and ranks (None: an omitted input)."""

    inputs: tuple[Optional[tuple[int, tuple[int, ...]]], ...]  # (tensor type, shape) per input
    outputs: tuple[tuple[int, tuple[int, ...]], ...]
    options: Any = None

    def type(self, k: int) -> Optional[int]:
        return self.inputs[k][0] if k < len(self.inputs) and self.inputs[k] is not None else None

    def rank(self, k: int) -> int:
        return len(self.inputs[k][1]) if k < len(self.inputs) and self.inputs[k] is not None else 0

    @property
    def broadcasts(self) -> bool:
        shapes = [i[1] for i in self.inputs[:2] if i is not None]
        return len(shapes) == 2 and shapes[0] != shapes[1]

    @property
    def max_rank(self) -> int:
        return max((len(i[1]) for i in self.inputs if i is not None), default=0)


def _conv_2d(s: OpSignature) -> int:
    return 6 if s.inputs[0][1][-1] != s.inputs[1][1][-1] else 1  # grouped convolution


def _depthwise(s: OpSignature) -> int:
    o = s.options
    return 2 if o is not None and (o.dilationWFactor != 1 or o.dilationHFactor != 1) else 1


def _fully_connected(s: OpSignature) -> int:
    hybrid = s.type(0) == _T.FLOAT32 and s.type(1) == _T.INT8  # float input, int8 filter: dynamic range
    if hybrid and s.inputs[1][1][0] > 1:  # (the writer's int8 filters have one scale per output channel)
        return 12
    if len(s.inputs) == 2 or s.inputs[2] is None:
        return 6
    if s.options is not None and s.options.keepNumDims:
        return 5
    return (9 if s.options is not None and s.options.asymmetricQuantizeInputs else 3) if hybrid else 1


def _transpose(s: OpSignature) -> int:
    rank = s.rank(0)
    return 6 if rank > 5 else 4 if rank > 4 else 3 if s.type(0) == _T.BOOL else 2 if s.type(0) == _T.INT8 else 1


def _transpose_conv(s: OpSignature) -> int:
    if s.options is not None and s.options.fusedActivationFunction:
        return 4
    return 3 if len(s.inputs) == 4 and s.inputs[3] is not None else 1


def _strided_slice(s: OpSignature) -> int:
    o = s.options
    if o is not None and o.offset:
        return 8
    if o is not None and (o.ellipsisMask or o.newAxisMask):
        return 6
    return 4 if s.rank(0) > 4 else 3 if s.type(0) == _T.BOOL else 2 if s.type(0) == _T.INT8 else 1


def _cast(s: OpSignature) -> int:
    types = {s.type(0), s.outputs[0][0]}
    if types & {_T.FLOAT64, _T.FLOAT16}:
        return 5
    if _T.UINT16 in types:
        return 4
    return 3 if _T.INT8 in types else 2 if _T.UINT32 in types else 1


def _resize_nearest(s: OpSignature) -> int:
    o = s.options
    return 3 if o is not None and (o.halfPixelCenters or o.alignCorners) else 1


_RULES: dict[str, Callable[[OpSignature], int]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "TRANSPOSE": _transpose,
    "TRANSPOSE_CONV": _transpose_conv,
    "STRIDED_SLICE": _strided_slice,
    "CAST": _cast,
    "RESIZE_NEAREST_NEIGHBOR": _resize_nearest,
    "RESIZE_BILINEAR": lambda s: 3 if s.options is not None and s.options.halfPixelCenters else 1,
    "GATHER": lambda s: 7 if s.type(0) == _T.INT4 else 3 if s.type(0) == _T.BOOL else 2 if s.type(0) == _T.INT8 else 1,
    "SIGN": lambda s: 2 if s.type(0) == _T.INT32 else 1,
    "MUL": lambda s: 5 if s.type(0) == _T.INT64 else 1,
    "ADD": lambda s: 4 if s.type(0) == _T.INT64 else 1,
    "SUB": lambda s: 4 if s.type(0) == _T.INT64 else 3 if s.broadcasts and s.max_rank > 4 else 1,
    "DIV": lambda s: 2 if s.broadcasts and s.max_rank > 4 else 1,
    "MAXIMUM": lambda s: 3 if s.broadcasts and s.max_rank > 4 else 1,
    "MINIMUM": lambda s: 3 if s.broadcasts and s.max_rank > 4 else 1,
    "SPLIT": lambda s: 3 if s.type(1) == _T.INT32 else 2 if s.type(1) == _T.INT8 else 1,
    "SLICE": lambda s: 5 if s.rank(0) > 4 else 1,
    "DEQUANTIZE": lambda s: 6 if s.type(0) == _T.INT4 else 3 if s.type(0) in (_T.FLOAT16, _T.INT16) else 1,
    # an int4 table, or an int8 one with a scale per row (the writer's, for more than one row)
    "EMBEDDING_LOOKUP": lambda s: 4 if s.type(1) == _T.INT4 or (s.type(1) == _T.INT8 and s.inputs[1][1][0] > 1)
    else 1,
    "FLOOR_DIV": lambda s: 2 if s.type(0) == _T.FLOAT32 else 1,
    "ABS": lambda s: 5 if s.type(0) == _T.INT32 else 1,
    "REVERSE_V2": lambda s: 2 if s.type(0) == _T.BOOL else 1,
    "PAD": lambda s: 4 if s.rank(0) > 4 else 1,
    "PADV2": lambda s: 4 if s.rank(0) > 4 else 1,
    "SELECT": lambda s: 3 if 5 in (s.rank(0), s.rank(1), s.rank(2)) else 1,
    "BROADCAST_TO": lambda s: 2,
    "FILL": lambda s: 2 if s.type(1) == _T.BOOL else 1,
    "RANGE": lambda s: 2 if s.type(0) == _T.INT64 else 1,
    "WHERE": lambda s: 1 if s.type(0) == _T.BOOL else 2,
    "ARG_MAX": lambda s: 3 if s.type(0) == _T.BOOL else 1,
    "ARG_MIN": lambda s: 3 if s.type(0) == _T.BOOL else 1,
}


# the least version of a builtin's int8 kernel (input 0, or QUANTIZE's result, is int8)
_INT8 = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "ADD": 2, "MAX_POOL_2D": 2,
         "AVERAGE_POOL_2D": 2, "CONCATENATION": 2, "MUL": 2, "QUANTIZE": 2, "DEQUANTIZE": 2, "MEAN": 2, "PAD": 2}


def op_version(op: str, inputs: Sequence, outputs: Sequence, options: Any = None) -> int:
    """The least version of builtin ``op`` that runs these operands and options."""
    rule = _RULES.get(op)
    signature = OpSignature(tuple(inputs), tuple(outputs), options)
    version = rule(signature) if rule else 1
    int8 = signature.type(0) == _T.INT8 or (op == "QUANTIZE" and outputs and outputs[0][0] == _T.INT8)
    return max(version, _INT8.get(op, 1)) if int8 else version
