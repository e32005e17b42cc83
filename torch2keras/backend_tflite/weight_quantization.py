"""Weight-only quantization of the direct writer: int8 or int4 weights, float activations.

Modes (``quantize=`` of ``to_tflite``, ``to_tflite_signatures``, ``generative.export_tflite`` and
``export_tflite(backend="direct")``; ``WeightQuantization`` adds the per-layer choices):

* ``"dynamic_int8"``: symmetric int8 weights, one scale per output channel (row of a
  FULLY_CONNECTED filter, row of an embedding table).
* ``"dynamic_int4"``: the same in int4 (two values a byte, low nibble first).
* ``"dynamic_int4_b32"`` / ``_b64`` / ``_b128``: int4 with one float16 scale per block of 32 / 64 /
  128 input features of each row (TFLite's ``BlockwiseQuantization``). A layer whose input
  size is not a multiple of the block size gets one scale per row.
* ``"weight_only_int8"`` / ``"weight_only_int4"``: the same integers per output channel, but a
  linear layer reads them through a DEQUANTIZE: float products on exactly the dequantized
  weights (what PyTorch computes with them; ai-edge-quantizer's ``weight_only_wi8_afp32``).
  The file is as small; LiteRT computes the float32 weights when it prepares the model (the
  memory of a float file while it runs) and the products run in float (no faster).

The encoding is the one LiteRT's kernels run and Google's ai-edge-quantizer writes
(``dynamic_wi8_afp32``, ``dynamic_wi4_afp32``, ``dynamic_wi4b32_afp32``): FULLY_CONNECTED reads
the integer filter and a float input, quantizing the input per call (dynamic range, "hybrid");
an embedding table is read by EMBEDDING_LOOKUP, which returns float rows. Blockwise int4
FULLY_CONNECTED needs a kernel that reads the block scales: LiteRT's XNNPACK delegate (its
default CPU path) and its optimized builtin kernels do; its reference kernels
(``OpResolverType.BUILTIN_REF``) ignore them and compute wrong numbers. Writing such a file
warns (``BlockwiseInt4Warning``, ``warn_if_blockwise``).

Each weight is quantized when its layer is written (``quantize_weight``), one tensor at a time:
the integer copy replaces the float one in the file.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from typing import Callable, Optional, Sequence, Union

import attrs
import numpy as np

from .schema import fb

__all__ = ["BLOCK_SIZES", "BLOCKWISE_INT4_RUNTIMES", "BlockwiseInt4Warning", "DEFAULT_MIN_ELEMENTS", "MODES",
           "QuantizedWeight", "WeightQuantization", "blockwise_tensor_names", "quantize_weight", "resolve_quantize",
           "warn_if_blockwise"]

BLOCK_SIZES = (32, 64, 128)
MODES = ("dynamic_int8", "dynamic_int4", *(f"dynamic_int4_b{b}" for b in BLOCK_SIZES), "weight_only_int8",
         "weight_only_int4")
DEFAULT_MIN_ELEMENTS = 1024  # smaller weights stay float32 (as TensorFlow's dynamic-range converter does)
_MODE = re.compile(r"(?:dynamic|weight_only)_int(8|4)(?:_b(\d+))?")

KeepFloat = Union[Sequence[str], Callable[[str], bool]]
BLOCKWISE_INT4_RUNTIMES = (
    "int4 weights in blocks (of FULLY_CONNECTED, EMBEDDING_LOOKUP) need kernels that read the block scales: "
    "LiteRT's XNNPACK delegate (its default CPU path) and its optimized builtin kernels do; LiteRT's reference "
    "kernels (OpResolverType.BUILTIN_REF) ignore them and compute wrong numbers, as may other runtimes. Run the "
    "file with XNNPACK, or write it with quantize=\"dynamic_int4\" (one scale per output channel) where XNNPACK "
    "is not there")


class BlockwiseInt4Warning(UserWarning):
    """A file was written with blockwise int4 weights (``BLOCKWISE_INT4_RUNTIMES``)."""


def _check_mode(_: object, __: object, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown weight quantization mode {mode!r}; the modes are {', '.join(MODES)}")


def _keep_float(value: KeepFloat) -> KeepFloat:
    if callable(value):
        return value
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen
class WeightQuantization:
    """A weight quantization mode (``MODES``) and which layers it leaves in float32.

    keep_float: torch module paths (``"lm_head"``, ``"model.embed_tokens"``, globs such as
    ``"*.mlp.down_proj"``; a pattern matches a run of whole path components, so ``"lm_head"``
    also matches ``"model.lm_head"`` in a wrapper), or a predicate taking the module path.
    min_elements: weights with fewer elements stay float32.
    """

    mode: str = attrs.field(validator=_check_mode)
    keep_float: KeepFloat = attrs.field(default=(), converter=_keep_float)
    min_elements: int = DEFAULT_MIN_ELEMENTS

    @property
    def check_rtol(self) -> float:
        """The relative error (of the largest reference value) a file of this mode is allowed
        against the float PyTorch model when it is validated: the weights' rounding plus the
        activations' per-call quantization, with room; a wrong scale or an unsupported kernel
        is far beyond it."""
        return 0.05 if self.bits == 8 else 0.25

    @property
    def float_activations(self) -> bool:
        """``weight_only_*``: a linear layer reads its weights DEQUANTIZEd to float32 (float
        products, as PyTorch computes with the dequantized weights; LiteRT holds the float32
        weights it computes when it prepares the model), not the integers with its input
        quantized per call (``dynamic_*``)."""
        return self.mode.startswith("weight_only")

    @property
    def bits(self) -> int:
        return int(_MODE.fullmatch(self.mode).group(1))

    @property
    def block_size(self) -> int:
        """Input features per scale; 0: one scale per output channel."""
        block = _MODE.fullmatch(self.mode).group(2)
        return int(block) if block else 0

    def kept_float(self, module_path: str) -> bool:
        """Whether the layer of torch module ``module_path`` stays float32 (``keep_float``)."""
        if callable(self.keep_float):
            return bool(self.keep_float(module_path))
        return any(_matches(pattern, module_path) for pattern in self.keep_float)

    def quantizes(self, module_path: str, elements: int) -> bool:
        """Whether a weight of ``elements`` values read by module ``module_path`` is quantized."""
        return elements >= self.min_elements and not self.kept_float(module_path)

    def quantize(self, weight: np.ndarray) -> "QuantizedWeight":
        """A 2-d weight [rows, columns] quantized as the file stores it (blockwise only where the
        block size divides the columns, else one scale per row)."""
        block = self.block_size if self.block_size and np.shape(weight)[1] % self.block_size == 0 else 0
        return quantize_weight(weight, self.bits, block)


def _matches(pattern: str, path: str) -> bool:
    """``pattern`` (a glob) matches a run of whole dotted components of ``path``."""
    return any(fnmatch.fnmatchcase(path, p) for p in (pattern, f"*.{pattern}", f"{pattern}.*", f"*.{pattern}.*"))


def resolve_quantize(quantize: Union[None, str, WeightQuantization], api: str = "to_tflite"
                     ) -> tuple[bool, Optional[WeightQuantization]]:
    """(fp16, weight quantization) of a ``quantize=`` argument of the direct writer's entry
    points; a ``ValueError`` names the modes for anything else."""
    if quantize is None:
        return False, None
    if isinstance(quantize, WeightQuantization):
        return False, quantize
    if quantize == "fp16":
        return True, None
    if quantize in MODES:
        return False, WeightQuantization(quantize)
    if quantize == "int8":
        raise ValueError(f'{api}: quantize="int8" is full integer quantization (activations too, from calibration '
                         f'data), which the TFLite converter writes: torch2keras.compile(...).export_tflite('
                         f'quantize="int8", calibration=...); for int8 weights with float activations use '
                         f'quantize="dynamic_int8"')
    raise ValueError(f"{api}: unknown quantize={quantize!r}; the direct writer writes None (float32), \"fp16\", "
                     f"{', '.join(repr(m) for m in MODES)} or a torch2keras.WeightQuantization")


@attrs.frozen
class QuantizedWeight:
    """A 2-d weight [rows, columns] as integers and scales: real = values * scale, ``scale``
    one float32 per row ([rows]) or one float16 per block of ``block_size`` columns
    ([rows, columns / block_size])."""

    values: np.ndarray  # int8 (int4 values are in [-8, 7], one a byte until ``stored``)
    scale: np.ndarray
    bits: int
    block_size: int = 0

    def stored(self) -> np.ndarray:
        """The bytes of the file's buffer: int8 as is, int4 two a byte (low nibble first)."""
        if self.bits == 8:
            return self.values
        flat = self.values.reshape(-1).astype(np.uint8) & 0x0F
        if flat.size % 2:
            flat = np.append(flat, np.uint8(0))
        return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)

    def dequantized(self) -> np.ndarray:
        """The float32 weight the file computes with."""
        scale = self.scale.astype(np.float32)
        if not self.block_size:
            return self.values.astype(np.float32) * scale[:, None]
        rows, columns = self.values.shape
        blocks = self.values.reshape(rows, columns // self.block_size, self.block_size).astype(np.float32)
        return (blocks * scale[:, :, None]).reshape(rows, columns)


def quantize_weight(weight: np.ndarray, bits: int, block_size: int = 0) -> QuantizedWeight:
    """Symmetric quantization of a 2-d ``weight`` per row (``block_size`` 0) or per block of
    ``block_size`` columns of each row (scales rounded to float16 first, as the file stores
    them); a row of zeros gets scale 1. ``block_size`` must divide the columns."""
    weight = np.asarray(weight, np.float32)
    if weight.ndim != 2:
        raise ValueError(f"quantize_weight takes a 2-d weight, got shape {weight.shape}")
    top = 2 ** (bits - 1) - 1
    rows, columns = weight.shape
    if block_size:
        if columns % block_size:
            raise ValueError(f"block size {block_size} does not divide the {columns} columns of the weight")
        blocks = weight.reshape(rows, columns // block_size, block_size)
        scale = (np.abs(blocks).max(axis=2) / top).astype(np.float16)
        scale[scale == 0] = 1
        values = np.round(blocks / scale.astype(np.float32)[:, :, None]).reshape(rows, columns)
    else:
        scale = (np.abs(weight).max(axis=1) / top).astype(np.float32)
        scale[scale == 0] = 1
        values = np.round(weight / scale[:, None])
    return QuantizedWeight(np.clip(values, -top - 1, top).astype(np.int8), scale, bits, block_size)


def quantized_tensor(sub, q: QuantizedWeight, name: str) -> int:
    """A constant tensor of ``sub`` (a ``SubgraphBuilder``) holding ``q``: INT8 or INT4 with one
    scale per row (quantized dimension 0), or INT4 with a ``BlockwiseQuantization`` naming a
    float16 tensor of the blocks' scales (as ai-edge-quantizer writes them)."""
    params = fb.QuantizationParametersT()
    if q.block_size:
        details = fb.BlockwiseQuantizationT()
        details.scales = sub.constant(np.ascontiguousarray(q.scale), f"{name}_scales")
        details.zeroPoints = -1
        details.blockSize = q.block_size
        params.detailsType, params.details = fb.QuantizationDetails.BlockwiseQuantization, details
    else:
        params.scale = np.asarray(q.scale, np.float32)
        params.zeroPoint = np.zeros(q.scale.size, np.int64)
        params.quantizedDimension = 0
    index = sub.tensor(q.values.shape, np.int8, name, buffer=sub.model.buffer(q.stored()))
    tensor = sub.tensors[index]
    tensor.type = fb.TensorType.INT8 if q.bits == 8 else fb.TensorType.INT4
    tensor.quantization = params
    return index


def blockwise_tensor_names(subgraphs) -> list[str]:
    """Names of the tensors with ``BlockwiseQuantization`` in ``subgraphs`` (the ``SubgraphT``-like
    objects of a model being written or read: ``.tensors`` with ``.quantization`` and ``.name``)."""
    names = []
    for sub in subgraphs:
        for t in sub.tensors:
            q = t.quantization
            if q is not None and q.detailsType == fb.QuantizationDetails.BlockwiseQuantization:
                names.append(t.name.decode() if isinstance(t.name, bytes) else str(t.name))
    return names


def warn_if_blockwise(subgraphs, path: str) -> None:
    """A ``BlockwiseInt4Warning`` when the file at ``path`` holds blockwise int4 weights."""
    names = blockwise_tensor_names(subgraphs)
    if names:
        warnings.warn(f"{path}: {len(names)} weights in int4 blocks ({names[0]}, ...): {BLOCKWISE_INT4_RUNTIMES}",
                      BlockwiseInt4Warning, stacklevel=2)
