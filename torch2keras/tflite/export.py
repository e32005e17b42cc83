"""The ``.tflite`` export of a compiled model, step by step: convert, read the file back, check its
outputs against PyTorch, check an int8 file layer by layer, and judge delegate readiness.

Everything lands in the compile report: ``report.tflite`` (path, size, op counts, error vs
PyTorch, signature), ``report.quantization`` and ``report.delegates``. A converter refusal
becomes an ``ExportError`` that names the TensorFlow ops, the torch source of each and the fix.
"""

from __future__ import annotations

import collections
import copy
import os
import tempfile
import time
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from ..backend_keras import state as keras_state
from ..ir import ExportError, Graph
from ..passes import PassManager
from ..passes.quantized import integer_passes_after_layout, is_quantized
from ..passes.recurrent import AFTER_UNROLL, RECURRENT_OPS, check_lstm_form, direct_unroll_passes
from .convert import ConverterFailure, NonBuiltinOps, check_options, keras_to_tflite, warn_flex
from .delegates import analyze
from .file import TFLiteFile, read_tflite
from .quantize import layer_errors
from .runtime import tflite_signature_shapes
from .sources import SourceMap, locate

__all__ = ["Exportable", "check_quantization", "export_tflite"]


class Exportable(Protocol):
    """What the export needs of a compiled model (``CompileResult`` is one): the Keras model and
    IR, I/O names, PyTorch's reference on the example inputs, the layer -> IR node maps, a way to
    run a .tflite file, and the report the export fills in."""

    ir: Any
    keras_model: Any
    input_names: list[str]
    output_names: list[str]
    example_inputs: list[np.ndarray]
    reference: Optional[list[np.ndarray]]
    layer_nodes: dict
    report: Any

    @property
    def output_nodes(self) -> dict: ...

    @property
    def state_names(self) -> list[str]: ...

    def feeds(self, samples: Any) -> Callable: ...

    def run_tflite(self, path: str, torch_inputs: Sequence[np.ndarray], delegates: bool = True) -> list[np.ndarray]: ...


def export_tflite(result: Exportable, path: str, validate: bool = True, quantize: Optional[str] = None,
                  calibration: Any = None, io_dtype: str = "int8", holdout: Any = None, allow_flex: bool = False,
                  int8_fallback: bool = False, delegates: bool = True,
                  progress: Optional[Callable[[str], None]] = None, backend: str = "converter",
                  keep_float: Optional[Sequence[str]] = None, target_agreement: Optional[float] = None,
                  lstm: str = "auto") -> str:
    """Write ``path`` (through TensorFlow's converter unless ``backend`` says otherwise) and record
    it in ``result.report`` (see ``CompileResult.export_tflite`` for the options)."""
    say = progress or (lambda message: None)
    start = time.perf_counter()
    _check_lstm(lstm, backend)
    _check_quantize(quantize, io_dtype, calibration is not None, backend)
    selective = _check_selective(quantize, keep_float, target_agreement, backend)
    if calibration is not None and quantize != "int8":
        raise ValueError(f'calibration data is used by quantize="int8" only (got quantize={quantize!r})')
    if backend != "converter" and _export_direct(result, path, backend, quantize, validate, delegates, say, lstm):
        result.report.timings["export_tflite"] = time.perf_counter() - start
        return str(path)
    check_int8 = quantize == "int8" and validate
    representative = result.feeds(calibration) if calibration is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        float_path = os.path.join(tmp, "float.tflite") if check_int8 or selective else None
        calibrated_path = os.path.join(tmp, "calibrated.tflite") if selective else None
        _convert(result, path, dict(quantize=quantize, representative=representative, io_dtype=io_dtype,
                                    allow_flex=allow_flex, int8_fallback=int8_fallback, float_path=float_path,
                                    progress=say, keep_float=[] if selective else None,
                                    calibrated_path=calibrated_path))
        if selective:
            say("selective int8: layers kept float")
            result.report.quantization_selection = _select(result, path, float_path, calibrated_path, io_dtype,
                                                           holdout, keep_float or [], target_agreement)
        info = read_tflite(path)
        if info.flex_ops:
            warn_flex(info.flex_ops, _where_ops(result, info, set(info.flex_ops), flex=True))
        record = _file_record(path, info, quantize, io_dtype)
        if validate and result.reference is not None and not info.flex_ops:
            say(f"checking {os.path.basename(str(path))} with LiteRT")
            record["max_abs_error"] = _max_error(result, path)
        if check_int8:
            record["float_bytes"] = os.path.getsize(float_path)
            say("int8 per-layer check")
            result.report.quantization = layer_errors(float_path, path, result.feeds(holdout)(), result.layer_nodes,
                                                      result.output_nodes, io_dtype=io_dtype)
    if delegates:
        say("delegate readiness")
        result.report.delegates = analyze(path, result.layer_nodes, result.output_nodes)
    result.report.tflite = record
    result.report.timings["export_tflite"] = time.perf_counter() - start
    return str(path)


def _check_selective(quantize: Any, keep_float: Any, target: Any, backend: str) -> bool:
    """Whether layers are kept float in a calibrated int8 file (``keep_float`` / ``target_agreement``)."""
    if keep_float is None and target is None:
        return False
    option = "keep_float" if keep_float is not None else "target_agreement"
    if quantize != "int8" or backend != "converter":
        raise ValueError(f'{option} keeps layers float in a calibrated int8 file: quantize="int8" (the TF converter '
                         f'path), not quantize={quantize!r} with backend={backend!r}')
    if isinstance(keep_float, str) or (keep_float is not None and not all(isinstance(n, str) for n in keep_float)):
        raise ValueError(f"keep_float takes a list of layer names (strings), got {keep_float!r}")
    if target is not None and not (isinstance(target, (int, float)) and 0.0 < target < 1.0):
        raise ValueError(f"target_agreement is a share of held-out inputs, in (0, 1) (its lower confidence bound "
                         f"never shows 1), got {target!r}")
    return True


def _select(result: Exportable, path: str, float_path: str, calibrated_path: str, io_dtype: str, holdout: Any,
            keep_float: Sequence[str], target: Optional[float]):
    """The selective int8 file at ``path`` (``selective.py``), its trade recorded."""
    from . import selective
    from .convert import quantize_calibrated

    with open(calibrated_path, "rb") as f:
        calibrated = f.read()
    feeds = list(result.feeds(holdout)())
    keep = selective.resolve_keep_float(keep_float, float_path, result.layer_nodes, result.output_nodes)

    def ranking(int8_path: str) -> list:
        report = layer_errors(float_path, int8_path, feeds, result.layer_nodes, result.output_nodes, io_dtype=io_dtype)
        return selective.ranked_layers(report, int8_path, float_path)

    choice = selective.select_float_layers(path, float_path, lambda kept: quantize_calibrated(calibrated, io_dtype,
                                                                                                 kept),
                                           feeds, result.layer_nodes, keep, target, ranking)
    if not choice.reached:
        result.report.warnings.append(f"selective int8: top-1 agreement {choice.agreement:.2%} on {choice.rows} "
                                      f"held-out row(s), at least {choice.agreement_bound:.2%} at "
                                      f"{choice.confidence:.0%} confidence, < target {target:.2%} with "
                                      f"{len(choice.kept_float)} layer(s) kept float32; pass more held-out inputs, "
                                      f"more calibration data, or a lower target")
    return choice


def _check_quantize(quantize: Any, io_dtype: str, calibrated: bool, backend: str) -> None:
    """The converter's options, or a weight quantization only the direct backend writes."""
    from ..backend_tflite.export import direct_only

    if not direct_only(quantize):
        check_options(quantize, io_dtype, calibrated)
    elif backend == "converter":
        raise ValueError(f"quantize={quantize!r} is written by the direct TFLite backend only: "
                         f"export_tflite(..., backend=\"direct\")")


def _check_lstm(lstm: str, backend: str) -> None:
    """``lstm`` chooses the LSTM form of a direct file; the converter writes the Keras model as compiled."""
    check_lstm_form(lstm)
    if backend == "converter" and lstm != "auto":
        raise ValueError(f"lstm={lstm!r} chooses how the direct backend writes an LSTM (backend=\"direct\"); the "
                         f"converter writes the Keras model as compiled (compile(..., extra_passes=[\"unroll_lstm\"]) "
                         f"unrolls it there)")


def _export_direct(result: Exportable, path: str, backend: str, quantize: Optional[str], validate: bool,
                   delegates: bool, say: Callable[[str], None], lstm: str = "auto") -> bool:
    """The file written by the direct backend (``backend_tflite``) and recorded; False where the
    converter must write it (integer quantization, or a model ``backend="auto"`` falls back on)."""
    from ..backend_tflite.dynamic_batch import other_batch
    from ..backend_tflite.export import export_direct

    def run(p: str, use_delegates: bool):
        return result.run_tflite(p, result.example_inputs, delegates=use_delegates)

    def run_batch(p: str):
        """The file at another batch size, against the Keras model (checked against PyTorch
        on the example; no PyTorch model is kept) in its initial state."""
        size, inputs = other_batch(result.ir, result.example_inputs)
        say(f"checking {os.path.basename(str(p))} at batch {size}")
        try:
            outs = result.run_tflite(p, inputs)
        except RuntimeError:  # a delegate that fails to prepare: the plain kernels
            outs = result.run_tflite(p, inputs, delegates=False)
        with keras_state.initial_state(result.keras_model):
            return size, outs, result.run_keras(inputs)

    say(f"writing {os.path.basename(str(path))} directly")
    done = export_direct(_direct_ready(result.ir, lstm), path, backend, quantize, run if validate else None,
                         result.reference, run_batch if validate else None)
    if done is None:
        return False
    result.report.tflite = done.record
    result.report.warnings.extend(done.warnings)
    if delegates:
        say("delegate readiness")
        result.report.delegates = analyze(path, done.tensor_nodes, result.output_nodes)
    return True


def _direct_ready(graph: Graph, lstm: str = "auto") -> Graph:
    """What the direct backend writes: ``graph``, or a copy with the recurrent layers unrolled
    where ``lstm`` and the measured limits say (as ``to_tflite`` does, ``passes/recurrent.py``)
    and prepared for an integer file (``_integer_ready``). The compiled IR stays as the Keras
    model computes it."""
    check_lstm_form(lstm)
    if graph.nodes_by_op(*RECURRENT_OPS):
        copied = copy.deepcopy(graph)
        before = len(copied.nodes_by_op(*RECURRENT_OPS))
        PassManager(list(direct_unroll_passes(lstm)), verify=True).run(copied)
        if len(copied.nodes_by_op(*RECURRENT_OPS)) < before:  # something unrolled: tidied as in to_tflite's pipeline
            PassManager(list(AFTER_UNROLL), verify=True).run(copied)
            graph = copied
    return _integer_ready(graph)


def _integer_ready(graph: Graph) -> Graph:
    """``graph``, or for a quantized model (PT2E) a copy prepared for an integer file (the
    compiled IR stays as the Keras model computes it: quantization arithmetic in float)."""
    if not is_quantized(graph):
        return graph
    integer = copy.deepcopy(graph)
    PassManager(integer_passes_after_layout(), verify=True).run(integer)
    return integer


def check_quantization(result: Exportable, path: str, holdout: Any = None):
    """The per-layer check of an int8 ``.tflite`` file on ``holdout`` inputs (default: the example
    inputs), against a float conversion of the same model; stored in ``report.quantization``."""
    info = read_tflite(path)
    inputs = list(info.signatures.get("serving_default", {}).get("inputs", {}).values())
    io = info.tensor(inputs[0]).dtype if inputs else "float32"
    with tempfile.TemporaryDirectory() as tmp:
        float_path = keras_to_tflite(result.keras_model, os.path.join(tmp, "float.tflite"), result.input_names,
                                     result.output_names)
        result.report.quantization = layer_errors(float_path, path, result.feeds(holdout)(), result.layer_nodes,
                                                  result.output_nodes, io_dtype=io)
    return result.report.quantization


def _convert(result: Exportable, path: str, options: dict) -> None:
    """Run the converter on the model in its initial state; a refusal names the ops' sources."""
    try:
        with keras_state.initial_state(result.keras_model):
            keras_to_tflite(result.keras_model, path, result.input_names, result.output_names,
                            resource_variables=bool(result.state_names), **options)
    except NonBuiltinOps as e:
        raise _export_error(result, e) from None
    except ConverterFailure as e:
        raise _failure_error(result, e) from None


def _file_record(path: str, info: TFLiteFile, quantize: Optional[str], io_dtype: str) -> dict:
    main = collections.Counter(op.name for op in info.main_ops())
    return {"path": str(path), "bytes": info.size, "quantize": quantize,
            "io_dtype": io_dtype if quantize == "int8" else "float32", "ops": sum(main.values()),
            "transposes": main.get("TRANSPOSE", 0), "op_counts": dict(sorted(main.items())),
            "all_op_counts": info.op_counts(), "flex_ops": info.flex_ops, "max_abs_error": None,
            "signature": tflite_signature_shapes(path), "backend": "converter"}  # -1: a run-time size


def _max_error(result: Exportable, path: str) -> float:
    """The file's largest absolute error vs PyTorch on the example inputs."""
    try:
        outs = result.run_tflite(path, result.example_inputs)
    except RuntimeError as e:  # a delegate that fails to prepare: check the plain kernels
        result.report.warnings.append(f"LiteRT's default delegate failed on {path}: "
                                      f"{str(e).strip().splitlines()[0]}; checked without delegates")
        outs = result.run_tflite(path, result.example_inputs, delegates=False)
    return max(float(np.max(np.abs(o.astype(np.float64) - r))) if o.size else 0.0
               for o, r in zip(outs, result.reference))


def _export_error(result: Exportable, e: NonBuiltinOps) -> ExportError:
    lines, ops = [], []
    for op, scopes in e.ops.items():
        where = {locate(scope, result.layer_nodes)[2] for scope in scopes} - {""}
        where = where or _keras_op_sources(result, op)
        where = sorted(where) or sorted(scopes) or ["(location unknown)"]
        ops.append((op, where))
        lines.append(f"  - {op}: " + "; ".join(where))
    replace = "replace them in the model (e.g. a converter with keras.ops that TFLite has kernels for)"
    hint = {"no int8 kernel": "pass int8_fallback=True to keep them in float, or quantize with \"dynamic_int8\"",
            "no TFLite builtin kernel": "pass allow_flex=True to keep them as Flex ops (the app then links the "
                                        "Flex delegate), or " + replace}.get(e.reason, replace)
    return ExportError(f"TFLite export: {len(ops)} TensorFlow op(s) have {e.reason}:\n" + "\n".join(lines)
                       + f"\n{hint}", ops)


def _failure_error(result: Exportable, e: ConverterFailure) -> ExportError:
    """TensorFlow's converter failed on its own: the ops its error names, with their torch sources."""
    lines, ops = [], []
    for op, scopes in e.ops.items():
        where = {locate(scope, result.layer_nodes)[2] for scope in scopes} - {""}
        where = sorted(where or _keras_op_sources(result, op)) or sorted(scopes) or ["(location unknown)"]
        ops.append((op, where))
        lines.append(f"  - {op}: " + "; ".join(where))
    named = ", ".join(op for op, _ in ops) or "an op it does not name"
    return ExportError(f"TFLite export: TensorFlow's converter failed on {named}: {e.headline}\n"
                       + "".join(line + "\n" for line in lines)
                       + "write the file with export_tflite(..., backend=\"direct\"), which does not go through "
                         "TensorFlow, or report the model to torch2keras", ops)


def _keras_op_sources(result: Exportable, tf_op: str) -> set[str]:
    """Sources of the Keras ops of class ``tf_op`` (keras.ops.erf is class Erf, TF op Erf):
    how ops a converter called are found, their TF names carrying no layer name."""
    nodes = result.layer_nodes
    return {nodes[k.name].loc.short() for k in result.keras_model.operations
            if type(k).__name__.lower() == tf_op.lower() and k.name in nodes and nodes[k.name].loc is not None}


def _where_ops(result: Exportable, info: TFLiteFile, names: set, flex: bool = False) -> str:
    chosen = [k for k, op in enumerate(info.main_ops())
              if (op.name[len("Flex"):] if flex and op.name.startswith("Flex") else op.name) in names]
    where = SourceMap(info, result.layer_nodes, result.output_nodes).ops(chosen)
    if not where:
        where = sorted(set().union(*[_keras_op_sources(result, n) for n in names]))
    return f" (at {'; '.join(where)})" if where else ""
