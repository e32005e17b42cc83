"""The stages of ``torch2keras.compile``, each a function of what the previous ones made.

    check_arguments     the model, inputs and layouts are refused before any work if wrong
    reference_outputs   PyTorch's own outputs on the example (the model left as it was), checked
    capture_model       torch.export (or the tracing fallback) -> ``Captured``
    lower               ``frontend_torch.lower``: Captured -> IR graph
    build_pipeline      the pass list (default, custom, or with extra passes)
    run_passes          the pass manager, with IR dumps (``ir.storage.IRDumper``)
    emit_model          ``backend_keras.emit_model``: IR -> Keras model
    make_result         the ``CompileResult`` and its report (``result.py``)
    check_outputs       outputs vs PyTorch, then every converted value (``validate.py``)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree

from . import checks, converters
from .frontend_torch import capture
from .frontend_torch.capture import Captured
from .frontend_torch.state import BufferSnapshot
from .ir import Graph
from .ir.storage import IRDumper
from .memory import PeakRSS, current_rss
from .passes import AssignLayout, Pass, PassManager, default_pipeline, get_pass
from .report import OutputCheck
from .validate import validate_values

if TYPE_CHECKING:  # the checks fill in a result; result.py builds it (and imports the Keras backend)
    from .result import CompileResult

__all__ = ["Stages", "build_pipeline", "capture_model", "check_arguments", "check_outputs", "inference_mode",
           "reference_outputs", "run_passes"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class Stages:
    """Runs named stages, announcing each to ``progress``, timing it (``timings``: seconds) and
    measuring the process's peak resident memory during it (``memory``: bytes; ``memory_start``:
    the resident memory as it began). A stage running longer than ``heartbeat`` seconds is
    reported again every ``heartbeat`` seconds (from a thread of its own) as ``"<stage>:
    <seconds> s, <GB> GB resident"`` and what the stage said of its progress with ``detail``."""

    def __init__(self, progress: Optional[Progress], heartbeat: float = 10.0) -> None:
        self.say = progress or (lambda msg: None)
        self.timings: dict[str, float] = {}
        self.memory: dict[str, int] = {}
        self.memory_start: dict[str, int] = {}
        self._heartbeat = heartbeat if progress is not None else None
        self._detail = ""

    def __call__(self, stage: str, fn: Callable, *args, **kwargs):
        self.say(f"{stage}...")
        self._detail = ""
        start, span = time.perf_counter(), PeakRSS()
        try:
            with span, _Heartbeat(self, stage, start):
                return fn(*args, **kwargs)
        finally:  # (a stage that raises is measured too: a mismatch's result carries the record)
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start
            self.memory[stage] = max(self.memory.get(stage, 0), span.peak)
            self.memory_start.setdefault(stage, span.start)

    def detail(self, text: str) -> None:
        """What the running stage has done so far (e.g. ``"1.2 of 4.4 GB"``), shown with its
        next heartbeat."""
        self._detail = text


class _Heartbeat:
    """While a stage runs: its seconds, resident memory and ``Stages.detail`` every few seconds."""

    def __init__(self, stages: Stages, stage: str, start: float) -> None:
        self.stages, self.stage, self.start = stages, stage, start
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "_Heartbeat":
        if self.stages._heartbeat is not None:
            self._thread = threading.Thread(target=self._beat, name="torch2keras-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.stages._heartbeat):
            detail = self.stages._detail
            self.stages.say(f"{self.stage}: {time.perf_counter() - self.start:.0f} s, "
                            f"{current_rss() / 1e9:.1f} GB resident" + (f", {detail}" if detail else ""))


def flatten(x: Any) -> list:
    return list(pytree.tree_flatten(x)[0])


def _clone(x: Any) -> Any:
    return pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, x)


def inference_mode(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in inference mode. A graph module exported by ``torch.export`` (a PT2E-quantized
    model) refuses ``eval()`` or returns nothing from it: it is converted as it was exported."""
    try:
        model.eval()
    except NotImplementedError:
        pass
    return model


def check_arguments(model: Any, args: tuple, kwargs: dict, input_layouts: Any, on_mismatch: str) -> None:
    """Refuse what cannot be converted before any work: a non-model, inputs ``forward`` does not
    take, unknown layouts or layout keys, an unknown mismatch policy."""
    checks.check_model(model)
    if on_mismatch not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_mismatch must be 'warn', 'raise' or 'ignore', got {on_mismatch!r}")
    checks.check_inputs(model, args, kwargs)
    checks.check_layouts(model, args, kwargs, input_layouts)


def reference_outputs(model: torch.nn.Module, args: tuple, kwargs: dict, output_layouts: Any) -> list[np.ndarray]:
    """PyTorch's outputs on clones of the inputs (in-place ops may change them), after checking
    that they are tensors the converted model can return, in layouts that fit them; buffers that
    ``forward()`` changes are put back, so the converted model starts from today's state."""
    buffers = BufferSnapshot(model)
    try:
        with torch.no_grad():
            try:
                out = model(*_clone(args), **_clone(kwargs))
            except Exception as e:  # noqa: BLE001 - re-raised naming the inputs
                raise checks.call_error(model, args, e) from e
        checks.check_outputs(out)
        checks.check_output_layouts(out, output_layouts)
        return [t.detach().cpu().numpy() for t in flatten(out) if isinstance(t, torch.Tensor)]
    finally:
        buffers.restore()


def capture_model(model: torch.nn.Module, args: tuple, kwargs: dict,
                  dynamic_shapes: Any) -> tuple[Captured, converters.Session]:
    """The model as a pure ATen-level graph, with registered converters applied; the converter
    session must be kept alive while the graph is lowered and checked (its calls live there)."""
    buffers = BufferSnapshot(model)
    try:
        with converters.intercepted(model) as session:
            return capture(model, _clone(args), _clone(kwargs), dynamic_shapes=dynamic_shapes), session
    finally:
        buffers.restore()


def build_pipeline(passes: Optional[Sequence["str | Pass"]], extra_passes: Sequence["str | Pass"],
                   input_layouts: Any, output_layouts: Any, optimize_layout: bool) -> list[Pass]:
    """The passes to run: the default pipeline (with ``extra_passes`` right after batch-norm
    folding), or ``passes`` whose layout pass still gets the requested I/O layouts."""
    if passes is None:
        pipeline = default_pipeline(input_layouts, output_layouts, optimize_layout)
        if not extra_passes:
            return pipeline
        at = next(i for i, p in enumerate(pipeline) if p.name == "fold_batchnorm") + 1
        return pipeline[:at] + [get_pass(p) for p in extra_passes] + pipeline[at:]
    return [AssignLayout(input_layouts=input_layouts, output_layouts=output_layouts)
            if get_pass(p).name == AssignLayout.name else get_pass(p) for p in passes]


def run_passes(graph: Graph, pipeline: list[Pass], verify: bool, dump: Optional[IRDumper]) -> PassManager:
    """Run ``pipeline`` on ``graph`` (verifying after each pass), writing the IR after each one
    with ``dump`` if given."""
    def hook(index, p, g):
        if dump is not None:
            dump(f"{index:02d}_{p.name}", g)

    manager = PassManager(pipeline, verify=verify, hook=hook)
    manager.run(graph)
    return manager


def check_outputs(result: "CompileResult", atol: float, rtol: float) -> None:
    """Run the Keras model on the example and compare each output with PyTorch's."""
    outs = result.run_keras(result.example_inputs)
    result.reset_state()  # a stateful model: every validation run is a first call
    for out_name, o, r in zip(result.output_names, outs, result.reference):
        ref_max = float(np.max(np.abs(r))) if r.size else 0.0
        err = float(np.max(np.abs(o.astype(np.float64) - r))) if r.size else 0.0
        if r.dtype == np.bool_:
            err = float(np.sum(o != r))
        result.report.outputs.append(OutputCheck(out_name, tuple(r.shape), err, ref_max, atol + rtol * ref_max))


def check_values(result: "CompileResult", captured: Captured, emit_ctx, args: tuple, kwargs: dict, atol: float,
                 rtol: float) -> None:
    """Fill ``report.nodes`` / ``report.first_mismatch``; a failure here is a report warning, not
    a failed conversion (the outputs were checked already)."""
    tensors = [t for t in flatten((args, kwargs)) if isinstance(t, torch.Tensor)]
    try:
        result.report.nodes, result.report.first_mismatch = validate_values(
            result.ir, captured, result.keras_model, emit_ctx, tensors, result.keras_inputs(result.example_inputs),
            atol, rtol)
    except Exception as e:  # noqa: BLE001
        log.warning("comparing intermediate values failed", exc_info=True)
        result.report.warnings.append(f"intermediate values not compared: {type(e).__name__}: {e}")
    finally:
        result.reset_state()
