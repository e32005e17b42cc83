"""``torch2keras.compile``: capture -> lower -> passes -> emit -> validate, and the result object."""

from __future__ import annotations

import collections
import logging
import os
import tempfile
import time
import warnings
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree

from . import converters
from .backend_keras import emit_model
from .backend_keras import export as exporters
from .backend_keras import state as keras_state
from .frontend_torch import capture, lower
from .frontend_torch.state import BufferSnapshot
from .ir import ExportError, Graph, NumericalMismatchError
from .ir.types import invert
from .passes import AssignLayout, Pass, PassManager, default_pipeline, get_pass
from .report import OutputCheck, Report

__all__ = ["CompileResult", "compile", "count_transposes"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def count_transposes(graph: Graph) -> int:
    """Physical transposes the graph performs: relayouts and permutes that move a non-1 axis
    (inside control-flow regions too)."""
    count = 0
    for _, node in graph.walk():
        if node.op == "relayout":
            perm, shape = node.attrs["perm"], node.inputs[0].type.physical_shape
        elif node.op == "permute":
            src, dst = node.inputs[0].type, node.output.type
            logical = node.attrs["perm"]
            # physical effect: out physical k holds logical dst.perm[k] = src logical logical[dst.perm[k]]
            perm = [src.perm.index(logical[a]) for a in dst.perm]
            shape = src.physical_shape
        else:
            continue
        kept = [p for p in perm if shape[p] != 1]
        if kept != sorted(kept):
            count += 1
    return count


class CompileResult:
    """What ``compile`` returns: the Keras model, the IR, the report and the exporters."""

    def __init__(self, keras_model, ir: Graph, report: Report, input_names: list[str], output_names: list[str],
                 example_inputs: list[np.ndarray], reference_outputs: Optional[list[np.ndarray]],
                 layer_nodes: Optional[dict] = None):
        self.keras_model = keras_model
        self.ir = ir
        self.report = report
        self.input_names = input_names
        self.output_names = output_names
        self._example_inputs = example_inputs  # PyTorch layout
        self._reference = reference_outputs
        self.layer_nodes = dict(layer_nodes or {})  # Keras layer name -> the IR node it was emitted for

    # -- layouts at the model boundary
    def keras_inputs(self, torch_inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Arrays in PyTorch layout -> the Keras/TFLite model's inputs (in their stored layout)."""
        out = {}
        for name, v, x in zip(self.input_names, self.ir.inputs, torch_inputs):
            x = np.asarray(x)
            out[name] = np.transpose(x, v.type.layout) if v.type.layout else x
        return out

    def torch_outputs(self, outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The Keras/TFLite model's outputs -> arrays in PyTorch layout."""
        res = []
        for v, y in zip(self.ir.outputs, outputs):
            y = np.asarray(y)
            res.append(np.transpose(y, invert(v.type.layout)) if v.type.layout else y)
        return res

    def run_keras(self, torch_inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        outs = self.keras_model(self.keras_inputs(torch_inputs), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return self.torch_outputs([np.asarray(o) for o in outs])

    def run_tflite(self, path: str, torch_inputs: Sequence[np.ndarray], delegates: bool = True) -> list[np.ndarray]:
        """Run a ``.tflite`` file written by ``export_tflite`` on inputs in PyTorch's layout;
        outputs in PyTorch's layout (quantized I/O is (de)quantized on the way). One call of a new
        interpreter: a stateful model starts from its initial state."""
        outs = exporters.run_tflite(path, self.keras_inputs(torch_inputs), delegates=delegates)
        return self.torch_outputs([outs[n] for n in self.output_names])

    def tflite_session(self, path: str) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
        """A function running the ``.tflite`` file on arrays in PyTorch layout, with one
        interpreter for all its calls: a stateful model's state carries over between them."""
        runner = exporters.tflite_runner(path)

        def run(torch_inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
            outs = runner(**self.keras_inputs(torch_inputs))
            return self.torch_outputs([np.asarray(outs[n]) for n in self.output_names])

        return run

    # -- state: buffers forward() mutates (README "In-place ops and state")
    @property
    def state_names(self) -> list[str]:
        """Qualified names of the buffers the model updates on every call (empty: stateless)."""
        return [layer_name for layer in keras_state.state_layers(self.keras_model) for layer_name in layer.names]

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The Keras model's current state, by buffer name, in PyTorch's layout."""
        return keras_state.get_state(self.keras_model)

    def reset_state(self) -> None:
        """Put the Keras model's state back to the buffers' values when ``compile`` was called."""
        keras_state.reset_state(self.keras_model)

    # -- exporters (a stateful model is written with its initial state, whatever calls came before)
    def save(self, path: str) -> str:
        """Write a ``.keras`` file (or legacy HDF5 ``.h5``); ``torch2keras.load_model`` loads either,
        without torch (``.keras`` with ``safe_mode=True``)."""
        with keras_state.initial_state(self.keras_model):
            return exporters.save_keras(self.keras_model, path)

    def export_saved_model(self, directory: str) -> str:
        with keras_state.initial_state(self.keras_model):
            return exporters.export_saved_model(self.keras_model, directory, self.input_names, self.output_names)

    def export_tflite(self, path: str, validate: bool = True, quantize: Optional[str] = None,
                      calibration: Any = None, io_dtype: str = "int8", holdout: Any = None,
                      allow_flex: bool = False, int8_fallback: bool = False, delegates: bool = True,
                      backend: str = "converter") -> str:
        """Write a ``.tflite`` file (by default through the TensorFlow converter), builtin ops only (unless
        ``allow_flex``); record in the report its size, op counts, error vs PyTorch
        (``validate``) and the delegate-readiness analysis (``report.delegates``).

        backend: ``"converter"``, ``"direct"`` (the IR written op by op by ``backend_tflite``:
        no TensorFlow, float32 or ``"fp16"``; an op it cannot write raises an ``ExportError``
        naming it) or ``"auto"`` (direct, the converter where direct refuses the model).

        quantize: None (float32), ``"fp16"`` (float16 weights), ``"dynamic_int8"`` (int8
        weights, dynamic-range kernels) or ``"int8"`` (full integer, needs ``calibration``).
        calibration: representative inputs for ``"int8"`` -- an iterable (or a callable returning
        one) of samples, each a tuple of arrays in PyTorch's layout or a dict {input name: array}
        in the exported layout (``torch2keras.quantize``); ~100 samples is typical.
        io_dtype: the int8 file's input/output type, ``"int8"``, ``"uint8"`` or ``"float32"``.
        holdout: held-out inputs (same forms) for the per-layer int8 check
        (``report.quantization``); default: the example inputs given to ``compile``.
        allow_flex: keep TensorFlow ops without a TFLite builtin as Flex ops (with a warning
        naming them); otherwise such ops are an ``ExportError`` naming them and their source.
        int8_fallback: let ops without an int8 kernel stay float in an ``"int8"`` file.
        """
        from . import quantize as quant
        from .backend_keras.tflite_convert import NonBuiltinOps, check_options, warn_flex
        from .backend_keras.tflite_file import read_tflite

        start = time.perf_counter()
        check_options(quantize, io_dtype, calibration is not None)
        if calibration is not None and quantize != "int8":
            raise ValueError(f'calibration data is used by quantize="int8" only (got quantize={quantize!r})')
        if backend != "converter" and self._export_direct(path, backend, quantize, validate, delegates, start):
            return str(path)
        check = quantize == "int8" and validate
        representative = self._feeds(calibration) if calibration is not None else None
        with tempfile.TemporaryDirectory() as tmp:
            float_path = os.path.join(tmp, "float.tflite") if check else None
            try:
                with keras_state.initial_state(self.keras_model):
                    exporters.export_tflite(self.keras_model, path, self.input_names, self.output_names,
                                            quantize=quantize,
                                            representative=representative,
                                            io_dtype=io_dtype, allow_flex=allow_flex, int8_fallback=int8_fallback,
                                            float_path=float_path, resource_variables=bool(self.state_names))
            except NonBuiltinOps as e:
                raise self._export_error(e) from None
            info = read_tflite(path)
            if info.flex_ops:
                warn_flex(info.flex_ops, self._where_ops(info, set(info.flex_ops), flex=True))
            counts = info.op_counts()
            main = collections.Counter(op.name for op in info.main_ops())
            record = {"path": str(path), "bytes": info.size, "quantize": quantize,
                      "io_dtype": io_dtype if quantize == "int8" else "float32", "ops": sum(main.values()),
                      "transposes": main.get("TRANSPOSE", 0), "op_counts": dict(sorted(main.items())),
                      "all_op_counts": counts, "flex_ops": info.flex_ops, "max_abs_error": None,
                      "signature": exporters.tflite_signature_shapes(path)}  # -1: a run-time size
            if validate and self._reference is not None and not info.flex_ops:
                try:
                    outs = self.run_tflite(path, self._example_inputs)
                except RuntimeError as e:  # a delegate that fails to prepare: check the plain kernels
                    self.report.warnings.append(f"LiteRT's default delegate failed on {path}: "
                                                f"{str(e).strip().splitlines()[0]}; checked without delegates")
                    outs = self.run_tflite(path, self._example_inputs, delegates=False)
                record["max_abs_error"] = max(float(np.max(np.abs(o.astype(np.float64) - r))) if o.size else 0.0
                                              for o, r in zip(outs, self._reference))
            if check:
                record["float_bytes"] = os.path.getsize(float_path)
                self.report.quantization = quant.layer_errors(float_path, path, self._feeds(holdout)(),
                                                              self.layer_nodes, self.output_nodes, io_dtype=io_dtype)
        if delegates:
            from .delegates import analyze

            self.report.delegates = analyze(path, self.layer_nodes, self.output_nodes)
        self.report.tflite = record
        self.report.timings["export_tflite"] = time.perf_counter() - start
        return str(path)

    def _export_direct(self, path: str, backend: str, quantize: Optional[str], validate: bool, delegates: bool,
                       start: float) -> bool:
        """``export_tflite`` by the direct backend; False where the converter writes the file."""
        from .backend_tflite.export import export_direct

        run = lambda p, d: self.run_tflite(p, self._example_inputs, delegates=d)  # noqa: E731
        done = export_direct(self.ir, path, backend, quantize, run if validate else None, self._reference)
        if done is None:
            return False
        self.report.tflite, self.report.timings["export_tflite"] = done.record, time.perf_counter() - start
        self.report.warnings.extend(done.warnings)
        if delegates:
            from .delegates import analyze

            self.report.delegates = analyze(path, done.tensor_nodes, self.output_nodes)
        return True

    @property
    def output_nodes(self) -> dict:
        """Output name -> the IR node computing it."""
        return {n: v.producer for n, v in zip(self.output_names, self.ir.outputs)}

    def _export_error(self, e) -> ExportError:
        from .tflite_sources import locate

        lines, ops = [], []
        for op, scopes in e.ops.items():
            where = {locate(scope, self.layer_nodes)[2] for scope in scopes} - {""}
            where = where or self._keras_op_sources(op)
            where = sorted(where) or sorted(scopes) or ["(location unknown)"]
            ops.append((op, where))
            lines.append(f"  - {op}: " + "; ".join(where))
        replace = "replace them in the model (e.g. a converter with keras.ops that TFLite has kernels for)"
        hint = {"no int8 kernel": "pass int8_fallback=True to keep them in float, or quantize with \"dynamic_int8\"",
                "no TFLite builtin kernel": "pass allow_flex=True to keep them as Flex ops (the app then links the "
                                            "Flex delegate), or " + replace}.get(e.reason, replace)
        return ExportError(f"TFLite export: {len(ops)} TensorFlow op(s) have {e.reason}:\n" + "\n".join(lines)
                           + f"\n{hint}", ops)

    def _keras_op_sources(self, tf_op: str) -> set[str]:
        """Sources of the Keras ops of class ``tf_op`` (keras.ops.erf is class Erf, TF op Erf):
        how ops a converter called are found, their TF names carrying no layer name."""
        return {self.layer_nodes[k.name].loc.short() for k in self.keras_model.operations
                if type(k).__name__.lower() == tf_op.lower() and k.name in self.layer_nodes
                and self.layer_nodes[k.name].loc is not None}

    def _where_ops(self, info, names: set, flex: bool = False) -> str:
        from .tflite_sources import SourceMap

        chosen = [k for k, op in enumerate(info.main_ops())
                  if (op.name[len("Flex"):] if flex and op.name.startswith("Flex") else op.name) in names]
        where = SourceMap(info, self.layer_nodes, self.output_nodes).ops(chosen)
        if not where:
            where = sorted(set().union(*[self._keras_op_sources(n) for n in names]))
        return f" (at {'; '.join(where)})" if where else ""

    def check_quantization(self, path: str, holdout: Any = None) -> "Any":
        """The per-layer check of an int8 ``.tflite`` file written by ``export_tflite``, on
        ``holdout`` inputs (default: the example inputs); also stored in ``report.quantization``."""
        from . import quantize as quant
        from .backend_keras.tflite_file import read_tflite

        info = read_tflite(path)
        inputs = list(info.signatures.get("serving_default", {}).get("inputs", {}).values())
        io = info.tensor(inputs[0]).dtype if inputs else "float32"
        with tempfile.TemporaryDirectory() as tmp:
            float_path = exporters.export_tflite(self.keras_model, os.path.join(tmp, "float.tflite"), self.input_names,
                                                 self.output_names)
            self.report.quantization = quant.layer_errors(float_path, path, self._feeds(holdout)(), self.layer_nodes,
                                                          self.output_nodes, io_dtype=io)
        return self.report.quantization

    def _feeds(self, samples: Any) -> Callable:
        """Calibration or held-out samples (``torch2keras.quantize``'s forms) as a callable giving
        the exported model's feeds; ``None``: the example inputs given to ``compile``."""
        from . import quantize as quant

        if samples is None:
            samples = [tuple(self._example_inputs)]
        return quant.calibration_feeds(samples, self.input_names, [tuple(x.shape) for x in self._example_inputs],
                                       self.keras_inputs, [tuple(t.shape) for t in self.keras_model.inputs])

    # -- inspection
    def draw(self, path: str, **options) -> str:
        """Write the IR as a picture: ``.svg`` or a self-contained ``.html`` page (see ``draw.py``),
        with layouts, inserted transposes and each value coloured by its error vs PyTorch."""
        from .draw import draw_graph

        return draw_graph(self.ir, path, checks=self.report.nodes, title=self.report.model, **options)

    def __repr__(self) -> str:
        return f"<CompileResult {self.report.model}: {len(self.keras_model.layers)} layers, max |err| " \
               f"{self.report.max_abs_error}>"


def _flatten(x: Any) -> list:
    return [v for v in pytree.tree_flatten(x)[0]]


def _clone(x: Any) -> Any:
    return pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, x)


def compile(  # noqa: A001 - the public verb
    model: torch.nn.Module,
    inputs: Any,
    *,
    kwargs: Optional[dict] = None,
    dynamic_shapes: Any = None,
    input_layouts: Any = None,
    output_layouts: Any = None,
    dump_ir: Optional[str] = None,
    validate: "bool | str" = True,
    on_mismatch: str = "warn",
    atol: float = 1e-4,
    rtol: float = 1e-4,
    passes: Optional[Sequence["str | Pass"]] = None,
    extra_passes: Sequence["str | Pass"] = (),
    name: Optional[str] = None,
    optimize_layout: bool = True,
    progress: Optional[Progress] = None,
    verify: bool = True,
) -> CompileResult:
    """Convert ``model`` called on ``inputs`` (a tensor or a tuple of them) to Keras.

    dynamic_shapes: which input dims may change size: per input name (or a list in input order)
    ``{axis: "name"}`` (or ``None`` for an unnamed dim), a shape tuple with ``None`` at the
    dynamic axes, or torch.export's ``Dim`` specs (see ``frontend_torch/dynamic.py``). The
    converted model then takes other sizes there; ``None`` (default) keeps every size static.
    input_layouts / output_layouts: ``None`` keeps PyTorch's layout; ``"channels_last"`` (for all,
    or per name in a dict, or per position in a list) stores that input/output channels-last.
    dump_ir: a directory; the IR text is written there after lowering and after every pass.
    passes: the pass pipeline (names or Pass objects); default ``passes.default_pipeline()``.
    extra_passes: passes run right after the default pipeline's batch-norm folding.
    optimize_layout: False keeps all but channel-aware ops in PyTorch's order (a baseline).
    validate: True compares the outputs and every converted value that has a torch counterpart
    with PyTorch (``report.nodes``, ``report.first_mismatch``); "outputs" only the outputs;
    False nothing. on_mismatch: what an output above tolerance does: "warn", "raise" (a
    ``NumericalMismatchError`` whose ``.result`` is this result) or "ignore".
    Registered converters (``torch2keras.converter``) apply to the modules, functions and ops
    they target.
    """
    if on_mismatch not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_mismatch must be 'warn', 'raise' or 'ignore', got {on_mismatch!r}")
    say = progress or (lambda msg: None)
    name = name or type(model).__name__
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    kwargs = dict(kwargs or {})
    model = model.eval()
    timings: dict[str, float] = {}

    def timed(stage, fn, *a, **kw):
        say(f"{stage}...")
        start = time.perf_counter()
        out = fn(*a, **kw)
        timings[stage] = time.perf_counter() - start
        return out

    # reference run first, on clones of the inputs (the model's in-place ops may change them);
    # buffers forward() changes are put back, so the converted model starts from today's state
    reference = None
    buffers = BufferSnapshot(model)
    try:
        if validate:
            with torch.no_grad():
                reference = [t.detach().cpu().numpy() for t in _flatten(model(*_clone(args), **_clone(kwargs)))
                             if isinstance(t, torch.Tensor)]
            buffers.restore()
        with converters.intercepted(model) as session:  # noqa: F841 - keeps converted calls alive until the end
            captured = timed("capture", capture, model, _clone(args), _clone(kwargs),
                             dynamic_shapes=dynamic_shapes)
    finally:
        buffers.restore()
    graph = timed("lower", lower, captured, name)
    if dump_ir:
        os.makedirs(dump_ir, exist_ok=True)
        _write(dump_ir, "00_lowered", graph)

    pipeline = list(passes) if passes is not None else _with_extra(default_pipeline(input_layouts, output_layouts, optimize_layout),
                                                                    extra_passes)
    if passes is not None:  # the layout pass of a custom pipeline still gets the requested I/O layouts
        pipeline = [AssignLayout(input_layouts=input_layouts, output_layouts=output_layouts)
                    if get_pass(p).name == AssignLayout.name else get_pass(p) for p in pipeline]

    def hook(index, p, g):
        if dump_ir:
            _write(dump_ir, f"{index:02d}_{p.name}", g)

    manager = PassManager(pipeline, verify=verify, hook=hook)
    timed("passes", manager.run, graph)
    keras_model, emit_ctx = timed("emit", emit_model, graph, name)

    report = Report(model=name, capture_method=captured.method, ir_op_counts=graph.op_counts(),
                    transposes=count_transposes(graph), keras_layers=len(keras_model.layers),
                    timings=timings, warnings=list(captured.warnings))
    example = [t.detach().cpu().numpy().copy() for t in _flatten((args, kwargs)) if isinstance(t, torch.Tensor)]
    result = CompileResult(keras_model, graph, report, graph.input_names, graph.output_names, example, reference,
                           emit_ctx.layer_nodes)
    if validate:
        say("validate...")
        start = time.perf_counter()
        outs = result.run_keras(example)
        result.reset_state()  # a stateful model: every validation run is a first call
        for out_name, o, r in zip(graph.output_names, outs, reference):
            ref_max = float(np.max(np.abs(r))) if r.size else 0.0
            err = float(np.max(np.abs(o.astype(np.float64) - r))) if r.size else 0.0
            if r.dtype == np.bool_:
                err = float(np.sum(o != r))
            report.outputs.append(OutputCheck(out_name, tuple(r.shape), err, ref_max, atol + rtol * ref_max))
        if validate != "outputs":
            _validate_values(result, captured, emit_ctx, args, kwargs, atol, rtol)
        timings["validate"] = time.perf_counter() - start
        result.reset_state()
        if not report.ok and on_mismatch != "ignore":
            bad = [o.name for o in report.outputs if not o.ok]
            message = f"converted model differs from PyTorch on {bad}:\n{report.summary()}"
            if on_mismatch == "raise":
                raise NumericalMismatchError(message, result)
            warnings.warn(message, stacklevel=2)
    return result


def _validate_values(result: CompileResult, captured, emit_ctx, args, kwargs, atol: float, rtol: float) -> None:
    """Fill ``report.nodes`` / ``report.first_mismatch``; a failure here is a report warning, not
    a failed conversion (the outputs were checked already)."""
    from .validate import validate_values

    tensors = [t for t in _flatten((args, kwargs)) if isinstance(t, torch.Tensor)]
    try:
        result.report.nodes, result.report.first_mismatch = validate_values(
            result.ir, captured, result.keras_model, emit_ctx, tensors, result.keras_inputs(result._example_inputs),
            atol, rtol)
    except Exception as e:  # noqa: BLE001
        log.warning("comparing intermediate values failed", exc_info=True)
        result.report.warnings.append(f"intermediate values not compared: {type(e).__name__}: {e}")


def _with_extra(pipeline: list[Pass], extra: Sequence["str | Pass"]) -> list[Pass]:
    if not extra:
        return pipeline
    at = next(i for i, p in enumerate(pipeline) if p.name == "fold_batchnorm") + 1
    return pipeline[:at] + [get_pass(p) for p in extra] + pipeline[at:]


def _write(directory: str, stem: str, graph: Graph) -> None:
    with open(os.path.join(directory, f"{stem}.txt"), "w") as f:
        f.write(str(graph))
