"""``torch2keras.compile``: capture -> lower -> passes -> emit -> validate, and the result object."""

from __future__ import annotations

import logging
import os
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
from .ir import Graph, NumericalMismatchError
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
                 example_inputs: list[np.ndarray], reference_outputs: Optional[list[np.ndarray]]):
        self.keras_model = keras_model
        self.ir = ir
        self.report = report
        self.input_names = input_names
        self.output_names = output_names
        self._example_inputs = example_inputs  # PyTorch layout
        self._reference = reference_outputs

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

    def run_tflite(self, path: str, torch_inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One call of a new interpreter (a stateful model starts from its initial state)."""
        outs = exporters.run_tflite(path, self.keras_inputs(torch_inputs))
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
        """Write a ``.keras`` file (loads with ``safe_mode=True`` after ``import torch2keras``)."""
        with keras_state.initial_state(self.keras_model):
            return exporters.save_keras(self.keras_model, path)

    def export_saved_model(self, directory: str) -> str:
        with keras_state.initial_state(self.keras_model):
            return exporters.export_saved_model(self.keras_model, directory, self.input_names, self.output_names)

    def export_tflite(self, path: str, validate: bool = True) -> str:
        """Write a ``.tflite`` file; record its op counts (and its error vs PyTorch) in the report."""
        start = time.perf_counter()
        with keras_state.initial_state(self.keras_model):
            exporters.export_tflite(self.keras_model, path, self.input_names, self.output_names,
                                    resource_variables=bool(self.state_names))
        counts = exporters.tflite_op_counts(path)
        info = {"path": str(path), "ops": sum(counts.values()), "transposes": counts.get("TRANSPOSE", 0),
                "op_counts": counts, "max_abs_error": None,
                "signature": exporters.tflite_signature_shapes(path)}  # -1: a run-time size
        if validate and self._reference is not None:
            outs = self.run_tflite(path, self._example_inputs)
            info["max_abs_error"] = max(float(np.max(np.abs(o.astype(np.float64) - r))) if o.size else 0.0
                                        for o, r in zip(outs, self._reference))
        self.report.tflite = info
        self.report.timings["export_tflite"] = time.perf_counter() - start
        return str(path)

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
    result = CompileResult(keras_model, graph, report, graph.input_names, graph.output_names, example, reference)
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
