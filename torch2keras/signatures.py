"""``torch2keras.to_tflite_signatures``: several PyTorch models (or one model's several entry
points) in ONE ``.tflite`` file, a signature each, sharing their weights.

Each entry is converted as ``to_tflite`` converts a model (capture, lower, the default passes,
no Keras); the direct TFLite writer then writes every graph as a subgraph with its own
signature, storing each distinct constant once: modules that wrap the same weights (a language
model's prefill and decode steps) add their weights to the file once. Buffers a module's
``forward()`` mutates (state) become resource variables shared by every signature naming the
same buffer: calls of any signature on one interpreter follow the module's calls.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import attrs
import numpy as np
import torch

from .backend_tflite.weight_quantization import WeightQuantization, resolve_quantize
from .backend_tflite.writer import write_signatures
from .frontend_torch import lower
from .ir import Graph, NumericalMismatchError
from .ir.types import invert
from .stages import Stages, build_pipeline, capture_model, check_arguments, flatten, reference_outputs, run_passes
from .tflite.runtime import interpreter

__all__ = ["SignaturesResult", "to_tflite_signatures"]


@attrs.define
class SignaturesResult:
    """What ``to_tflite_signatures`` wrote: the file, its size, each signature's IR, seconds per
    stage (``"<key> reference"``, ``"<key> capture"``, ..., ``"write"``), the process's peak
    resident memory per stage in bytes (``memory``; ``memory_start``: as the stage began) and
    each signature's max abs error against PyTorch on its example inputs (empty without
    validation)."""

    path: str
    bytes: int
    graphs: dict[str, Graph]
    timings: dict[str, float]
    max_abs_errors: dict[str, float] = attrs.field(factory=dict)
    memory: dict[str, int] = attrs.field(factory=dict)
    memory_start: dict[str, int] = attrs.field(factory=dict)


def to_tflite_signatures(signatures: Mapping[str, tuple[torch.nn.Module, Any]], path: str, *,
                         quantize: "Optional[str | WeightQuantization]" = None, validate: bool = True, atol: float = 1e-4,
                         rtol: float = 1e-4, progress: Optional[Callable[[str], None]] = None,
                         metadata: Optional[Mapping[str, bytes]] = None) -> SignaturesResult:
    """Write ``{key: (model, inputs)}`` to ``path``: signature ``key`` computes ``model(*inputs)``
    (inputs: a tensor, or a tuple of tensors, dicts and lists of them; a dict's entries are named
    ``<argument>_<key>``), with static shapes.

    quantize: None (float32), ``"fp16"`` (float16 weights), a weight quantization mode
    (``"dynamic_int8"``, ``"dynamic_int4"``, ``"dynamic_int4_b32"``, ...) or a
    ``WeightQuantization``, as for ``to_tflite``. validate: run every signature in LiteRT on its
    example inputs and raise ``NumericalMismatchError`` where an output differs from PyTorch's by
    more than ``atol + rtol * max|reference|`` (weight quantization: ``rtol`` at least the
    mode's ``check_rtol``). metadata: entries of the file's ``Model.metadata`` (name -> bytes;
    ``torch2keras.tflite.file.read_metadata`` reads them back).
    """
    if not signatures:
        raise ValueError("to_tflite_signatures needs at least one signature: {key: (model, inputs)}")
    fp16, weights = resolve_quantize(quantize, "to_tflite_signatures")
    if weights is not None:
        rtol = max(rtol, weights.check_rtol)
    run = Stages(progress)
    graphs, checks = {}, {}
    for key, (model, inputs) in signatures.items():
        args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        graphs[key], checks[key] = _convert(run, key, model.eval(), args, validate)
    written = run("write", write_signatures, graphs, path, fp16=fp16, weights=weights, progress=_written(run),
                  metadata=metadata)
    result = SignaturesResult(written.path, written.bytes, graphs, run.timings, memory=run.memory,
                              memory_start=run.memory_start)
    if validate:
        run("validate", _check, result, checks, atol, rtol)
    return result


def _written(run: Stages) -> Callable[[int, int], None]:
    """The writer's progress as the write stage's detail."""
    return lambda done, total: run.detail(f"{done / 1e9:.2f} of {total / 1e9:.2f} GB of weights written")


def _convert(run: Stages, key: str, model: torch.nn.Module, args: tuple, validate: bool
             ) -> tuple[Graph, tuple[tuple, Optional[list[np.ndarray]]]]:
    """The IR of one signature after the default passes, and what its check needs."""
    check_arguments(model, args, {}, None, "raise")
    reference = run(f"{key} reference", reference_outputs, model, args, {}, None) if validate else None
    captured, session = run(f"{key} capture", capture_model, model, args, {}, None)
    graph = run(f"{key} lower", lower, captured, key)
    del session
    # states no call reads (a rope's rewritten inv_freq) go; the others are variables the
    # file's signatures share (by state name)
    run(f"{key} passes", run_passes, graph, build_pipeline(None, ("drop_unread_state",), None, None, True), True, None)
    return graph, (args, reference)


def _check(result: SignaturesResult, checks: dict, atol: float, rtol: float) -> None:
    """Each signature run in LiteRT on its example inputs against PyTorch's outputs, in an
    interpreter of its own (LiteRT computes an fp16 file's float32 weights for each signature it
    prepares: one signature's at a time)."""
    bad = []
    for key, graph in result.graphs.items():
        tflite = interpreter(result.path, delegates=False)
        args, reference = checks[key]
        tensors = [t for t in flatten((args, {})) if isinstance(t, torch.Tensor)]
        feed = {}
        for name, v, x in zip(graph.input_names, graph.inputs, tensors):
            x = x.detach().cpu().numpy()
            feed[name] = np.transpose(x, v.type.layout) if v.type.layout else x
        outs = tflite.get_signature_runner(key)(**feed)
        worst = 0.0
        for name, v, ref in zip(graph.output_names, graph.outputs, reference):
            got = np.asarray(outs[name])
            got = np.transpose(got, invert(v.type.layout)) if v.type.layout else got
            err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
            worst = max(worst, err)
            if err > atol + rtol * (float(np.max(np.abs(ref))) if ref.size else 0.0):
                bad.append(f"{key}.{name}: max |err| {err:.3g}")
        result.max_abs_errors[key] = worst
        del tflite, outs  # (before the next signature's interpreter is made)
    if bad:
        raise NumericalMismatchError(f"{result.path} differs from PyTorch: {'; '.join(bad)}", result)
