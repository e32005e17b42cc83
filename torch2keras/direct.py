"""``torch2keras.to_tflite``: a PyTorch model straight to a ``.tflite`` file, without Keras or
TensorFlow -- capture, lower, the default passes, and the direct TFLite writer
(``backend_tflite``); optionally the file run in LiteRT against PyTorch's outputs.

This is ``compile(...).export_tflite(backend="direct")`` without building the Keras model (and
without importing TensorFlow): the fastest and leanest way to a float32 or fp16 ``.tflite``.
Use ``compile`` for Keras models, SavedModels, the converter's integer quantization or a model
the direct backend refuses (its error names the op and the source line). A model quantized in
PyTorch with PT2E (``convert_pt2e``) becomes an int8 file with PyTorch's own scales and zero
points (docs/quantized_models.md).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import attrs
import numpy as np
import torch
import torch.utils._pytree as pytree

from .backend_tflite import write_tflite
from .backend_tflite.dynamic_batch import batch_symbol, other_batch
from .backend_tflite.weight_quantization import WeightQuantization, resolve_quantize
from .frontend_torch import lower
from .ir import Graph, NumericalMismatchError
from .ir.compare import output_errors
from .ir.types import invert
from .passes.dce import DeadCodeElimination
from .passes.recurrent import AUTO_UNROLL_BYTES, LSTM_FORMS, check_lstm_form, direct_unroll_passes
from .passes.quantized import (AnnotateQuantized, DynamicRangeLinear, FoldFlattenIntoQuantizedLinear, MoveDataOntoIntegers,
                               one_step_effect)
from .passes.signed_activations import SignedActivations
from .stages import (Stages, build_pipeline, capture_model, check_arguments, flatten, inference_mode,
                     reference_outputs, run_passes)
from .tflite.runtime import run_tflite

__all__ = ["AUTO_UNROLL_BYTES", "DirectResult", "LSTM_FORMS", "to_tflite"]


@attrs.define
class DirectResult:
    """What ``to_tflite`` wrote: the file, its op counts, seconds per stage, the IR, the error
    of its outputs against PyTorch's (None without validation) and the process's peak resident
    memory per stage in bytes (``memory``; ``memory_start``: as the stage began)."""

    path: str
    bytes: int
    op_counts: dict[str, int]
    timings: dict[str, float]
    ir: Graph
    max_abs_error: Optional[float] = None
    memory: dict[str, int] = attrs.field(factory=dict)
    memory_start: dict[str, int] = attrs.field(factory=dict)


def to_tflite(model: torch.nn.Module, inputs: Any, path: str, *, kwargs: Optional[dict] = None,
              dynamic_shapes: Any = None, input_layouts: Any = None, output_layouts: Any = None,
              quantize: "Optional[str | WeightQuantization]" = None,
              integer_io: bool = False, validate: bool = True, atol: float = 1e-4, rtol: float = 1e-4,
              name: Optional[str] = None, progress: Optional[Callable[[str], None]] = None,
              lstm: str = "auto") -> DirectResult:
    """Write ``model`` called on ``inputs`` to ``path`` (see the module docstring).

    dynamic_shapes: as for ``compile``; the direct backend writes one run-time size, the batch
    (the leading axis of every value holding it: ``{"x": {0: "batch"}}``), and refuses others
    (``DirectExportError``). With validation such a file is also run at the example's batch + 2
    (rows repeated from the example's, float ones moved by about 1%) against PyTorch.
    input_layouts / output_layouts: as for ``compile`` (``"channels_last"`` stores images NHWC).
    quantize: None (float32), ``"fp16"`` (float16 weights), a weight quantization mode --
    ``"dynamic_int8"``, ``"dynamic_int4"``, ``"dynamic_int4_b32"`` (``_b64``, ``_b128``): int8 /
    int4 weights, float activations -- or a ``WeightQuantization`` (a mode, the layers kept
    float, the smallest weight quantized; docs/generative.md). integer_io: a PT2E-quantized
    model takes and returns its int8 integers (no QUANTIZE / DEQUANTIZE at the boundary; the
    file's I/O tensors carry the scales). validate: run the file in LiteRT
    on ``inputs`` and raise ``NumericalMismatchError`` where an output differs from PyTorch's by
    more than ``atol + rtol * max|reference|`` (an output dequantized from integers: or one
    quantization step; with a weight quantization mode: ``rtol`` at least its ``check_rtol``).
    progress: called with each stage's name as it starts (``"reference..."`` with validation,
    ``"capture..."``, ``"lower..."``, ``"passes..."``, ``"write..."``) and every 10 s of a long
    stage with its time, resident memory and progress (``"write: 12 s, 9.1 GB resident, 1.20 of
    4.40 GB of weights written"``).
    lstm: how an ``nn.LSTM`` is written (``passes/unroll_lstm.py``, docs/recurrent.md):
    ``"fused"``, one UNIDIRECTIONAL_SEQUENCE_LSTM per layer and direction (the fewest ops; LiteRT's
    own kernel); ``"unroll"``, up to 64 steps as FULLY_CONNECTED and elementwise ops, which every
    delegate takes; ``"auto"`` (default), unrolled where that is the faster file on XNNPACK as
    measured -- at most 1.5 MB of weights read over all steps (e.g. 2 layers of 32 units over 10
    steps: about twice as fast) -- fused otherwise (``passes/recurrent.py``; the same option of
    ``compile(...).export_tflite(backend="direct")`` writes the same file).
    """
    check_lstm_form(lstm)
    fp16, weights = resolve_quantize(quantize, "to_tflite")
    if weights is not None:
        rtol = max(rtol, weights.check_rtol)
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    kwargs = dict(kwargs or {})
    check_arguments(model, args, kwargs, input_layouts, "raise")
    model = inference_mode(model)
    run = Stages(progress)
    reference = run("reference", reference_outputs, model, args, kwargs, output_layouts) if validate else None
    captured, session = run("capture", capture_model, model, args, kwargs, dynamic_shapes)
    graph = run("lower", lower, captured, name or type(model).__name__)
    del session
    extra = (SignedActivations(), MoveDataOntoIntegers(), *direct_unroll_passes(lstm))
    pipeline = build_pipeline(None, extra, input_layouts, output_layouts, True)
    integer = [DynamicRangeLinear(), DeadCodeElimination(), FoldFlattenIntoQuantizedLinear(), AnnotateQuantized()]
    run("passes", run_passes, graph, pipeline + integer, True, None)
    written = run("write", write_tflite, graph, path, fp16=fp16, integer_io=integer_io, weights=weights,
                  progress=lambda done, total: run.detail(f"{done / 1e9:.2f} of {total / 1e9:.2f} GB of weights written"))
    result = DirectResult(written.path, written.bytes, written.op_counts, {**run.timings, **written.timings}, graph,
                          memory=dict(run.memory), memory_start=dict(run.memory_start))
    if reference is not None:
        _check(result, graph, args, kwargs, reference, atol, rtol)
        if batch_symbol(graph) is not None:
            _check_other_batch(result, model, graph, args, kwargs, output_layouts, atol, rtol)
    return result


def _check_other_batch(result: DirectResult, model: torch.nn.Module, graph: Graph, args: tuple, kwargs: dict,
                       output_layouts: Any, atol: float, rtol: float) -> None:
    """A file with a run-time batch run at another batch size (``dynamic_batch.other_batch``)
    against PyTorch's outputs there."""
    leaves, spec = pytree.tree_flatten((args, kwargs))
    tensors = [k for k, t in enumerate(leaves) if isinstance(t, torch.Tensor)]
    size, arrays = other_batch(graph, [leaves[k].detach().cpu().numpy() for k in tensors])
    for k, x in zip(tensors, arrays):
        leaves[k] = torch.from_numpy(np.ascontiguousarray(x)).to(leaves[k].device)
    other_args, other_kwargs = pytree.tree_unflatten(leaves, spec)
    reference = reference_outputs(model, other_args, other_kwargs, output_layouts)
    _check(result, graph, other_args, other_kwargs, reference, atol, rtol, at=f" at batch {size}")


def _check(result: DirectResult, graph: Graph, args: tuple, kwargs: dict, reference: list[np.ndarray],
           atol: float, rtol: float, at: str = "") -> None:
    """The file run in LiteRT on the example inputs (or others: ``at`` says which) against
    PyTorch's outputs; ``result.max_abs_error``: the largest error of all checks."""
    feed = {}
    tensors = [t for t in flatten((args, kwargs)) if isinstance(t, torch.Tensor)]
    for name, v, x in zip(graph.input_names, graph.inputs, tensors):
        x = x.detach().cpu().numpy()
        feed[name] = np.transpose(x, v.type.layout) if v.type.layout else x
    outs = run_tflite(result.path, feed)
    worst, bad = 0.0, []
    for name, v, ref in zip(graph.output_names, graph.outputs, reference):
        got = np.asarray(outs[name])
        got = np.transpose(got, invert(v.type.layout)) if v.type.layout else got
        err, _, ref_max = output_errors(got, ref)  # (NaN where torch has NaN agrees; NaN elsewhere: inf)
        worst = max(worst, err)
        step = one_step_effect(graph, v) * (1 + 1e-5)  # (0 for an output not computed from integers)
        if err > max(atol + rtol * ref_max, step):
            bad.append(f"{name}: max |err| {err:.3g}")
    result.max_abs_error = max(worst, result.max_abs_error or 0.0)
    if bad:
        raise NumericalMismatchError(f"{result.path} differs from PyTorch{at}: {'; '.join(bad)}", result)
