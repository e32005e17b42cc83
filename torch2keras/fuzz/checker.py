"""Check one random model end to end and classify the outcome.

The model is compiled on its example inputs, then run on NEW random inputs (another seed, and
another batch size where the batch is dynamic) in Keras, in TFLite (LiteRT) and after saving
and reloading the ``.keras`` file; each is compared with PyTorch on those inputs. The TFLite file
is written by ``export_tflite(backend=...)``: ``"auto"`` by default (the direct writer, TensorFlow's
converter where the direct writer refuses the model); the outcome records which one wrote it and,
for a fallback, the direct writer's refusal.

Statuses (worst first):

* ``silent_wrong``: an output differs from PyTorch beyond tolerance while ``compile``'s report
  said every output was within it;
* ``untyped_exception``: an exception that is not a ``Torch2KerasError`` (a bug);
* ``flagged_mismatch``: an output differs, and the report said so;
* ``typed_error``: the compiler refused on purpose (a ``Torch2KerasError`` subclass);
* ``misreported``: every output within tolerance, yet the report names a first mismatch;
* ``ok``;
* ``crash``: the checking process died or hung (set by the runner, never here).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import traceback
import warnings
from typing import Optional

import attrs
import numpy as np
import torch

from .generator import CHECK_SEED_OFFSET
from .model import ModelSpec, as_numpy, build_model, make_inputs
from .replay import reloaded_outputs

__all__ = ["ATOL", "RTOL", "STATUSES", "TARGETS", "TFLITE_BACKENDS", "Outcome", "check", "classify_exception",
           "compare", "normalize", "headline", "root_cause", "same_failure"]

ATOL = 1e-4
RTOL = 1e-4
STATUSES = ("silent_wrong", "untyped_exception", "crash", "flagged_mismatch", "typed_error", "misreported", "ok")
TARGETS = ("keras", "tflite", "reloaded")
TFLITE_BACKENDS = ("auto", "converter", "direct")  # export_tflite's backends


@attrs.define
class Outcome:
    """The classified result of checking one model."""

    status: str
    stage: str = ""  # compile | keras | export_tflite | tflite | save | reloaded | process
    error_type: str = ""  # the exception's class (``module.Class`` for untyped ones)
    message: str = ""  # the exception's text (cut), or what differs
    where: str = ""  # innermost torch2keras frame of an untyped exception, or the first mismatch's op
    errors: dict = attrs.field(factory=dict)  # target -> max abs error vs PyTorch (inf: shape/NaN differ)
    seconds: float = 0.0
    tflite_backend: str = ""  # who wrote the .tflite file: direct | converter ("" : none was written)
    direct_refusal: str = ""  # backend "auto" fell back on the converter: the direct writer's refusal

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "misreported")

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Outcome":
        return cls(**d)


def classify_exception(e: BaseException, stage: str) -> Outcome:
    """A typed error (``Torch2KerasError`` subclass) or an untyped exception, with where it rose."""
    from torch2keras.ir import Torch2KerasError

    typed = isinstance(e, Torch2KerasError)
    name = type(e).__name__ if typed else f"{type(e).__module__}.{type(e).__name__}"
    ops = sorted({str(op[0] if isinstance(op, tuple) else op) for op in getattr(e, "ops", ())})
    where = ", ".join(ops) if typed else _innermost_frame(e)
    return Outcome("typed_error" if typed else "untyped_exception", stage=stage, error_type=name,
                   message=str(e)[:4000], where=where)


def _innermost_frame(e: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f"{os.sep}torch2keras{os.sep}" in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename.rsplit(os.sep + 'torch2keras' + os.sep, 1)[-1]}:{f.lineno} ({f.name})"


def compare(got: np.ndarray, want: np.ndarray) -> tuple[float, str]:
    """(max abs error, what differs or "") of one output against PyTorch's; the error is inf
    when shapes, dtypes, NaN or infinity positions differ."""
    got = np.asarray(got)
    if got.shape != want.shape:
        return math.inf, f"shape {got.shape} != PyTorch's {want.shape}"
    if got.dtype != want.dtype:
        return math.inf, f"dtype {got.dtype} != PyTorch's {want.dtype}"
    if want.size == 0:
        return 0.0, ""
    if want.dtype.kind in "biu":
        bad = int(np.sum(got != want))
        return (0.0, "") if not bad else (float(np.max(np.abs(got.astype(np.float64) - want))),
                                          f"{bad} of {want.size} elements differ")
    g, w = got.astype(np.float64), want.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(w)):
        return math.inf, "NaN positions differ"
    finite = np.isfinite(w)
    if not np.array_equal(g[~finite & ~np.isnan(w)], w[~finite & ~np.isnan(w)]) or not np.isfinite(g[finite]).all():
        return math.inf, "infinities differ"
    if not finite.any():
        return 0.0, ""
    err = float(np.max(np.abs(g[finite] - w[finite])))
    tol = ATOL + RTOL * float(np.max(np.abs(w[finite])))
    return err, "" if err <= tol else f"max |err| {err:.3g} > tolerance {tol:.3g}"


def check(spec: ModelSpec, workdir: Optional[str] = None, tflite_backend: str = "auto") -> Outcome:
    """Compile ``spec``'s model, run it on new inputs in Keras, TFLite (the file written by
    ``export_tflite(backend=tflite_backend)``) and reloaded from ``.keras``, and classify the outcome."""
    if tflite_backend not in TFLITE_BACKENDS:
        raise ValueError(f"tflite_backend must be one of {TFLITE_BACKENDS}, got {tflite_backend!r}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = _check(spec, tmp, tflite_backend)
    refusal = _direct_refusal(caught) if tflite_backend == "auto" else ""
    if outcome.stage == "export_tflite":  # the file was not written: who refused it
        outcome.tflite_backend = tflite_backend if tflite_backend != "auto" else "converter" if refusal else "direct"
    if outcome.tflite_backend == "converter":
        outcome.direct_refusal = refusal
    outcome.seconds = round(time.perf_counter() - start, 3)
    return outcome


def _direct_refusal(caught: list) -> str:
    """The first line of the direct writer's refusal among the warnings ``backend="auto"`` gave."""
    for w in caught:
        text = str(w.message)
        if "writing the file with the TFLite converter instead" in text:
            return text.strip().splitlines()[0][:300]
    return ""


def _check(spec: ModelSpec, tmp: str, tflite_backend: str) -> Outcome:
    import torch2keras

    model = build_model(spec)
    example = make_inputs(spec, spec.seed)
    try:
        result = torch2keras.compile(model, example, input_layouts=spec.input_layouts(),
                                     output_layouts=spec.output_layout_list(), dynamic_shapes=spec.dynamic_shapes(),
                                     on_mismatch="ignore", name=f"fuzz_{spec.seed}")
    except Exception as e:  # noqa: BLE001 - classified
        return classify_exception(e, "compile")
    feed = _new_inputs(spec, _run_time_batch(result))
    with torch.no_grad():
        out = model(*feed)
    reference = as_numpy(out if isinstance(out, tuple) else (out,))
    arrays = as_numpy(feed)
    errors: dict = {}
    mismatches: list[str] = []
    written = {"backend": ""}
    for target, run in _targets(result, tmp, tflite_backend, written):
        try:
            outs = run(arrays)
        except _StageError as e:
            return attrs.evolve(classify_exception(e.error, e.stage), errors=errors, tflite_backend=written["backend"])
        except Exception as e:  # noqa: BLE001
            return attrs.evolve(classify_exception(e, target), errors=errors, tflite_backend=written["backend"])
        diffs = [compare(g, w) for g, w in zip(outs, reference)]
        errors[target] = max((d[0] for d in diffs), default=0.0)
        mismatches += [f"{target} output {k} ({spec.outputs[k]}): {what}" for k, (_, what) in enumerate(diffs) if what]
        if len(outs) != len(reference):
            mismatches.append(f"{target}: {len(outs)} outputs, PyTorch has {len(reference)}")
    return attrs.evolve(_verdict(result.report, errors, mismatches), tflite_backend=written["backend"])


def _verdict(report, errors: dict, mismatches: list[str]) -> Outcome:
    first = report.first_mismatch
    where = f"{first.torch_op} ({first.op})" if first is not None else ""
    if mismatches:
        return Outcome("flagged_mismatch" if not report.ok else "silent_wrong", stage=mismatches[0].split(" ")[0],
                       message="; ".join(mismatches)[:4000], where=where, errors=errors)
    if not report.ok:
        bad = [o.name for o in report.outputs if not o.ok]
        return Outcome("flagged_mismatch", stage="compile", message=f"report flags outputs {bad} on the example "
                       f"inputs; new inputs within tolerance", where=where, errors=errors)
    if first is not None:
        return Outcome("misreported", stage="compile", message=f"every output within tolerance, yet the report names "
                       f"a first mismatch: {first.torch_op} max |err| {first.max_abs_error:.3g} > "
                       f"{first.tolerance:.3g}", where=where, errors=errors)
    return Outcome("ok", errors=errors)


class _StageError(Exception):
    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(str(error))
        self.stage, self.error = stage, error


def _run_time_batch(result) -> set[str]:
    """The inputs whose batch the compiled model takes at any size (torch.export specialises a
    requested dynamic batch the model's code fixes -- unbind along it, ... -- and compile's report
    says so: those keep their size)."""
    return {name for name, v in zip(result.input_names, result.ir.inputs)
            if v.type.rank and isinstance(v.type.shape[0], str)}


def _new_inputs(spec: ModelSpec, run_time_batch: Optional[set] = None) -> tuple:
    """Inputs the model was not compiled on: another seed and, where the batch is dynamic (and
    the compiled model kept it so: ``run_time_batch``, default all), another batch size."""
    seed = spec.seed + CHECK_SEED_OFFSET
    dynamic = [i for i in spec.inputs if i.dynamic_batch and (run_time_batch is None or i.name in run_time_batch)]
    if not dynamic:
        return make_inputs(spec, seed)
    full, same = make_inputs(spec, seed, dynamic[0].shape[0] + 1), make_inputs(spec, seed)
    names = {i.name for i in dynamic}
    return tuple(f if i.name in names else s for i, f, s in zip(spec.inputs, full, same))


def _targets(result, tmp: str, tflite_backend: str, written: dict):
    """(target name, function running it on arrays in PyTorch layout) for Keras, TFLite and the
    reloaded ``.keras`` file; export/save failures surface as ``_StageError``; ``written["backend"]``
    gets the backend that wrote the ``.tflite`` file."""
    def keras_run(arrays):
        return result.run_keras(arrays)

    def tflite_run(arrays):
        path = os.path.join(tmp, "model.tflite")
        try:
            result.export_tflite(path, backend=tflite_backend)
        except Exception as e:  # noqa: BLE001
            raise _StageError("export_tflite", e) from e
        written["backend"] = (result.report.tflite or {}).get("backend", "converter")
        return result.run_tflite(path, arrays)

    def reloaded_run(arrays):
        path = os.path.join(tmp, "model.keras")
        try:
            result.save(path)
        except Exception as e:  # noqa: BLE001
            raise _StageError("save", e) from e
        return reloaded_outputs(result, path, arrays)

    return [("keras", keras_run), ("tflite", tflite_run), ("reloaded", reloaded_run)]


_NUMBER = re.compile(r"\b\d+\b")


def headline(text: str) -> str:
    """A message's first meaningful line: the first ``error:`` line of converter output, without
    its MLIR locations; else the first line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    line = errors[0].split("error:", 1)[1] if errors else (lines[0] if lines else "")
    return _drop_locations(line).lstrip(": ")


def normalize(text: str) -> str:
    """``headline(text)`` with numbers, shapes and generated names blurred, so that failures of
    one cause group together."""
    line = headline(text)
    line = re.sub(r"tensor<[^>]*>", "tensor<..>", line)
    line = re.sub(r"\([\d, ]*\)|\[[\d, ]*\]", "(..)", line)
    line = re.sub(r"%\w+|v\d+\b|fuzz_\d+|x\d+\b", "_", line)
    line = re.sub(r"'[^']*_\d+[^']*'", "'_'", line)
    return _NUMBER.sub("N", line).strip()[:160]


def _drop_locations(text: str) -> str:
    """``text`` without MLIR ``loc(...)`` annotations (nested parentheses included)."""
    while "loc(" in text:
        start = text.index("loc(")
        depth, end = 0, len(text)
        for k in range(start + 3, len(text)):
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            if depth == 0:
                end = k + 1
                break
        text = text[:start] + text[end:]
    return text


def root_cause(outcome: Outcome) -> str:
    """The group an outcome belongs to: status and stage (with the backend that wrote a TFLite
    file that failed), then the exception's type and first line (blurred), or for a numeric
    mismatch the op where the report saw it start."""
    head = f"{outcome.status} @ {outcome.stage}" if outcome.stage else outcome.status
    if outcome.stage in ("export_tflite", "tflite") and outcome.tflite_backend:
        head += f" ({outcome.tflite_backend})"
    if outcome.status in ("typed_error", "untyped_exception", "crash"):
        tail = f"{outcome.error_type.rsplit('.', 1)[-1]}: {normalize(outcome.message)}"
        if outcome.error_type.endswith("ExportError") and outcome.where:
            tail += f" [{outcome.where}]"
        return f"{head}: {tail}"
    if outcome.status in ("flagged_mismatch", "misreported") and outcome.where:
        return f"{head}: at {outcome.where}"
    return head


def same_failure(a: Outcome, b: Outcome) -> bool:
    """Whether ``b`` fails the way ``a`` does (the shrinker keeps a reduction only then)."""
    if a.status != b.status or a.stage != b.stage:
        return False
    if a.stage in ("export_tflite", "tflite") and a.tflite_backend != b.tflite_backend:
        return False
    if a.status in ("typed_error", "untyped_exception", "crash"):
        same_ops = a.where == b.where or not a.error_type.endswith("ExportError")
        return a.error_type == b.error_type and normalize(a.message) == normalize(b.message) and same_ops
    return True
