"""``torch2keras.compile``: the public entry point, a sequence of named stages (``stages.py``)."""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import torch

from .frontend_torch import lower
from .draw import draw_graph
from .ir import NumericalMismatchError, UnsupportedOpError
from .ir.layouts import count_transposes
from .ir.storage import IRDumper
from .passes import Pass
from .result import CompileResult, make_result
from .stages import (Progress, Stages, build_pipeline, capture_model, check_arguments, check_outputs, check_values,
                     flatten, inference_mode, reference_outputs, run_passes)
from .backend_keras import emit_model

__all__ = ["CompileResult", "compile", "count_transposes"]


def compile(  # noqa: A001 - the public verb
    model: torch.nn.Module,
    inputs: Any,
    *,
    kwargs: Optional[dict] = None,
    dynamic_shapes: Any = None,
    input_layouts: Any = None,
    output_layouts: Any = None,
    dump_ir: Optional[str] = None,
    dump_weights: bool = False,
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
    draw: Optional[str] = None,
) -> CompileResult:
    """Convert ``model`` called on ``inputs`` (a tensor or a tuple of them) to Keras.

    dynamic_shapes: which input dims may change size: per input name (or a list in input order)
    ``{axis: "name"}`` (or ``None`` for an unnamed dim), a shape tuple with ``None`` at the
    dynamic axes, or torch.export's ``Dim`` specs (see ``frontend_torch/dynamic.py``). The
    converted model then takes other sizes there; ``None`` (default) keeps every size static.
    input_layouts / output_layouts: ``None`` keeps PyTorch's layout; ``"channels_last"`` (for all,
    or per name in a dict, or per position in a list) stores that input/output channels-last.
    dump_ir: a directory; the IR text is written there after lowering and after every pass
    (``NN_stage.txt``, which ``torch2keras opt`` and ``ir.load_ir`` read back).
    dump_weights: with dump_ir, also write each stage's large constants (``NN_stage.txt.npz``;
    a stage that leaves them alone gets a hard link), so that passes run on the files can
    compute with them.
    passes: the pass pipeline (names or Pass objects); default ``passes.default_pipeline()``.
    extra_passes: passes run right after the default pipeline's batch-norm folding.
    optimize_layout: False keeps all but channel-aware ops in PyTorch's order (a baseline).
    validate: True compares the outputs and every converted value that has a torch counterpart
    with PyTorch (``report.nodes``, ``report.first_mismatch``); "outputs" only the outputs;
    False nothing. on_mismatch: what an output above tolerance does: "warn", "raise" (a
    ``NumericalMismatchError`` whose ``.result`` is this result) or "ignore".
    Registered converters (``torch2keras.converter``) apply to the modules, functions and ops
    they target.
    draw: a ``.html`` or ``.svg`` path: the picture of the converted graph (``CompileResult.draw``)
    is written there, before a mismatch is raised; if ops have no lowering, the captured graph with
    those calls in red is, before the ``UnsupportedOpError`` propagates.
    """
    if dump_weights and not dump_ir:
        raise ValueError("dump_weights=True needs dump_ir (the directory the weights files go to)")
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    kwargs = dict(kwargs or {})
    check_arguments(model, args, kwargs, input_layouts, on_mismatch)
    name = name or type(model).__name__
    model = inference_mode(model)
    run = Stages(progress)
    reference = reference_outputs(model, args, kwargs, output_layouts)
    reference = reference if validate else None
    captured, session = run("capture", capture_model, model, args, kwargs, dynamic_shapes)
    graph = run("lower", _lower, captured, name, draw)
    dump = IRDumper(dump_ir, weights=dump_weights) if dump_ir else None
    if dump is not None:
        dump("00_lowered", graph)
    pipeline = build_pipeline(passes, extra_passes, input_layouts, output_layouts, optimize_layout)
    manager = run("passes", run_passes, graph, pipeline, verify, dump)
    keras_model, emit_ctx = run("emit", emit_model, graph, name)
    example = [t.detach().cpu().numpy().copy() for t in flatten((args, kwargs)) if isinstance(t, torch.Tensor)]
    result = make_result(graph, keras_model, emit_ctx, captured, name, run.timings, example, reference, atol, rtol,
                         passes=manager.records)
    result.report.memory = run.memory  # (the stages still to run add theirs)
    if validate:
        run("validate", _validate, result, captured, emit_ctx, args, kwargs, validate, atol, rtol)
    if draw:
        run(f"drawing {draw}", result.draw, draw)
    if validate:
        _on_mismatch(result, on_mismatch)
    del session  # converted calls stay alive until here: lowering and validation run them
    return result


def _lower(captured, name: str, draw: Optional[str]):
    """Lower the capture; when ops have no lowering, draw the captured graph first (``draw``)."""
    try:
        return lower(captured, name)
    except UnsupportedOpError as err:
        if draw and err.view is not None:
            draw_graph(err.view, draw)
        raise


def _validate(result: CompileResult, captured, emit_ctx, args: tuple, kwargs: dict, validate: "bool | str",
              atol: float, rtol: float) -> None:
    check_outputs(result, atol, rtol)
    if validate != "outputs":
        check_values(result, captured, emit_ctx, args, kwargs, atol, rtol)


def _on_mismatch(result: CompileResult, policy: str) -> None:
    """What an output above tolerance does: nothing, a warning, or a ``NumericalMismatchError``."""
    if result.report.ok or policy == "ignore":
        return
    bad = [o.name for o in result.report.outputs if not o.ok]
    message = f"converted model differs from PyTorch on {bad}:\n{result.report.summary()}"
    if policy == "raise":
        raise NumericalMismatchError(message, result)
    warnings.warn(message, stacklevel=3)
