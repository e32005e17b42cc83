"""``CompileResult.export_tflite(backend="direct" | "auto")``: which path writes the file, the direct
write itself, its check against PyTorch's outputs and the report's ``tflite`` record.

Backends: ``"converter"`` (Keras model -> TensorFlow's converter), ``"direct"`` (this package;
an IR op it cannot write is a ``DirectExportError`` naming the op and source line), ``"auto"``
(direct, and the converter where the direct backend refuses the model, with a warning). The
direct backend writes float32, ``quantize="fp16"`` and the weight quantization modes
(``weight_quantization.py``: ``"dynamic_int8"``, ``"dynamic_int4"``, ``"dynamic_int4_b32"``, ...,
or a ``WeightQuantization``); full integer ``"int8"`` always goes to the converter (a warning
says so), and so does ``"dynamic_int8"`` with ``backend="converter"``.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Sequence

import attrs
import numpy as np

from ..ir import Graph, Node, NumericalMismatchError
from ..ir.compare import output_errors
from .context import DirectExportError
from .dynamic_batch import batch_symbol
from .weight_quantization import MODES, WeightQuantization, resolve_quantize
from .writer import WriteResult, write_tflite

__all__ = ["BACKENDS", "DIRECT_QUANTIZE", "DirectExport", "batch_mismatch", "direct_only", "export_direct",
           "resolve_backend"]

BACKENDS = ("converter", "direct", "auto")
DIRECT_QUANTIZE = (None, "fp16", *MODES)

# run(path, delegates) -> the file's outputs on the example inputs, in PyTorch's layout
Runner = Callable[[str, bool], Sequence[np.ndarray]]
# run_batch(path) -> (batch size, the file's outputs, the reference outputs) on inputs of another
# batch size than the example's (``dynamic_batch.other_batch``)
BatchRunner = Callable[[str], tuple[int, Sequence[np.ndarray], Sequence[np.ndarray]]]


@attrs.define
class DirectExport:
    """A file the direct backend wrote: the report's record and the writer's result."""

    record: dict
    written: WriteResult
    warnings: list[str] = attrs.field(factory=list)

    @property
    def tensor_nodes(self) -> dict[str, Node]:
        return self.written.tensor_nodes


def direct_only(quantize: Any) -> bool:
    """Whether only the direct backend writes files of this quantization mode (int4 weights,
    layers kept float: a ``WeightQuantization``)."""
    return isinstance(quantize, WeightQuantization) or (quantize in MODES and quantize != "dynamic_int8")


def resolve_backend(backend: str, quantize: Any) -> str:
    """``"direct"`` or ``"converter"``: who writes a file of this quantization mode."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "converter":
        if direct_only(quantize):
            raise ValueError(f"quantize={quantize!r} is written by the direct TFLite backend only: "
                             f"export_tflite(..., backend=\"direct\")")
        return "converter"
    if not (quantize in DIRECT_QUANTIZE or isinstance(quantize, WeightQuantization)):
        warnings.warn(f"quantize={quantize!r} is written by the TFLite converter: the direct backend writes float32, "
                      f"quantize=\"fp16\" and weight quantization ({', '.join(MODES)}) files", stacklevel=3)
        return "converter"
    return "direct"


def export_direct(graph: Graph, path: str, backend: str = "direct", quantize: Any = None,
                  run: Optional[Runner] = None, reference: Optional[Sequence[np.ndarray]] = None,
                  run_batch: Optional[BatchRunner] = None) -> Optional[DirectExport]:
    """Write ``graph`` to ``path`` with the direct backend, or None where the converter must
    (integer quantization; with ``backend="auto"``, a model the direct backend refuses).

    run / reference: the file is run on the example inputs and compared with PyTorch's outputs
    (``record["max_abs_error"]``); None skips the check. run_batch: a file with a run-time batch
    is also run at another batch size; outputs off its reference by more than
    ``BATCH_ATOL + BATCH_RTOL * max|reference|`` (or 4 times the error on the example) are a
    ``NumericalMismatchError`` (``backend="auto"``: a warning, and the converter writes the file).
    """
    if resolve_backend(backend, quantize) == "converter":
        return None
    try:
        fp16, weights = resolve_quantize(quantize, "export_tflite")
        written = write_tflite(graph, path, fp16=fp16, weights=weights)
    except DirectExportError as e:
        if backend != "auto":
            raise
        warnings.warn(f"{e}\nwriting the file with the TFLite converter instead", stacklevel=3)
        return None
    result = DirectExport(_record(graph, written, quantize.mode if isinstance(quantize, WeightQuantization)
                                  else quantize), written)
    if run is not None and reference is not None:
        result.record["max_abs_error"] = _max_error(run, path, reference, result.warnings)
        if run_batch is not None and batch_symbol(graph) is not None:
            mismatch = batch_mismatch(*run_batch(path), result.record["max_abs_error"])
            if mismatch is not None:
                message = f"{path}, written with a run-time batch, {mismatch}"
                if backend != "auto":
                    raise NumericalMismatchError(message + "\nuse export_tflite(..., backend=\"converter\") for this "
                                                           "model")
                warnings.warn(f"{message}\nwriting the file with the TFLite converter instead", stacklevel=3)
                return None
    return result


BATCH_ATOL = BATCH_RTOL = 1e-4


def batch_mismatch(size: int, outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                   example_error: float = 0.0) -> Optional[str]:
    """How a file's outputs at batch ``size`` differ from the reference's beyond the tolerance
    (``export_direct``), else None."""
    bad = []
    for k, (o, r) in enumerate(zip(outputs, reference)):
        o, r = np.asarray(o, np.float64), np.asarray(r, np.float64)
        if o.shape != r.shape:
            bad.append(f"output {k} has shape {list(o.shape)}, not {list(r.shape)}")
            continue
        err, _, ref_max = output_errors(o, r)
        limit = max(BATCH_ATOL + BATCH_RTOL * ref_max, 4 * example_error)
        if err > limit:
            bad.append(f"output {k} max |err| {err:.3g} > {limit:.3g}")
    return f"differs from the reference at batch {size}: {'; '.join(bad)}" if bad else None


def _record(graph: Graph, written: WriteResult, quantize: Optional[str]) -> dict:
    counts = written.op_counts
    signature = {name: [d if isinstance(d, int) else -1 for d in v.type.physical_shape] for name, v in
                 [*zip(graph.input_names, graph.inputs), *zip(graph.output_names, graph.outputs)]}
    return {"path": written.path, "bytes": written.bytes, "quantize": quantize, "io_dtype": "float32",
            "ops": sum(counts.values()), "transposes": counts.get("TRANSPOSE", 0), "op_counts": dict(counts),
            "all_op_counts": dict(counts), "flex_ops": [], "max_abs_error": None, "signature": signature,
            "backend": "direct", "timings": dict(written.timings)}


def _max_error(run: Runner, path: str, reference: Sequence[np.ndarray], notes: list[str]) -> float:
    try:
        outs = run(path, True)
    except RuntimeError as e:  # a delegate that fails to prepare: check the plain kernels
        notes.append(f"LiteRT's default delegate failed on {path}: {str(e).strip().splitlines()[0]}; "
                     f"checked without delegates")
        outs = run(path, False)
    return max((float(np.max(np.abs(np.asarray(o, np.float64) - r))) if np.size(o) else 0.0
                for o, r in zip(outs, reference)), default=0.0)
