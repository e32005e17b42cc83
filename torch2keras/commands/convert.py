"""``torch2keras convert``: build the model, run it once on the example, compile, write every output, report.

Runs after ``preflight`` accepted the arguments. Mistakes that need the model (a factory that
fails, weights for another model, inputs ``forward`` rejects) are found before TensorFlow is
imported and end as a ``UsageError``; a failed conversion is a ``ConversionFailed`` whose
message is one readable paragraph (the exception stays chained for ``--debug``).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Optional

import attrs
import torch
import torch.utils._pytree as pytree

from .. import loader
from ..checks import check_model
from ..frontend_torch.capture import SpecializationWarning, flat_output_names, offending_line
from ..frontend_torch.source import call_site
from ..frontend_torch.state import BufferSnapshot
from ..ir import Torch2KerasError, UnsupportedOpError
from . import examples
from .console import Progress, Quiet
from .exits import OK, OUT_OF_TOLERANCE, ConversionFailed, UsageError
from .preflight import DIRECT_VARIANTS, Plan

if TYPE_CHECKING:
    from ..api import CompileResult
    from ..report import Report

__all__ = ["run", "tflite_files"]


def run(args: argparse.Namespace, plan: Plan) -> int:
    """The whole conversion; returns the exit code (0 or 3) or raises ``UsageError`` / ``ConversionFailed``."""
    shown: list[str] = []
    with Quiet(verbose=args.verbose) as quiet:
        progress = Progress(quiet.stream)
        quiet.on_warning = lambda message, ours: _warn(progress, message, ours, shown)
        try:
            result, written = _convert(args, plan, progress)
        except (UsageError, ConversionFailed):
            raise
        except Exception as e:  # noqa: BLE001 - any other failure becomes one paragraph
            raise ConversionFailed(failure_paragraph(progress.stage, e)) from e
        finally:
            progress.close()
    return _finish(result, written, plan, args, shown)


def _warn(progress: Progress, message: Warning, ours: bool, shown: list[str]) -> None:
    text = message.short() if isinstance(message, SpecializationWarning) else str(message).strip()
    shown.append(str(message))
    progress.note(f"warning: {text}" if ours else f"warning ({type(message).__name__}): {text}")


def _convert(args: argparse.Namespace, plan: Plan, progress: Progress) -> tuple["CompileResult", list[dict]]:
    model, factory = _build_model(plan, progress)
    progress("preparing the example inputs")
    example = examples.make_example(model, plan, args.seed)
    for note in example.notes:
        progress.note(note, style="dim")
    output_names = _trial_run(model, example, progress)
    input_layouts, output_layouts = examples.layouts(plan, example.names, output_names)
    dynamic = examples.dynamic_shapes(plan, example)
    calibration = examples.samples_for(plan.calibration, example, "--calibration") if plan.calibration else None
    holdout = examples.samples_for(plan.holdout, example, "--holdout") if plan.holdout else None
    progress("loading TensorFlow and Keras")
    from .. import api  # TensorFlow: imported once the model is known to build and run

    try:
        with _factory_site(factory):
            result = api.compile(model, example.args, kwargs=example.kwargs, dynamic_shapes=dynamic,
                                 input_layouts=input_layouts, output_layouts=output_layouts, dump_ir=args.dump_ir,
                                 dump_weights=args.dump_weights, progress=progress, atol=plan.atol, rtol=plan.rtol,
                                 on_mismatch="ignore", draw=args.draw)
        written = _write_outputs(result, plan, args, calibration, holdout, progress)
    except UnsupportedOpError as e:
        drawn = f"\nwrote {args.draw} (the captured graph, calls without a lowering in red)" if args.draw else ""
        raise ConversionFailed(f"{progress.stage} failed: {e}{drawn}") from e
    except Torch2KerasError as e:
        raise ConversionFailed(f"{progress.stage} failed: {e}") from e
    return result, written


def _factory_site(factory):
    """Calls of library code only (an nn.Sequential, a torchvision model) are located at the
    model factory: the user's code."""
    try:
        factory = inspect.unwrap(factory)  # the loader's tolerant wrapper: the user's own function
        file, (lines, line) = inspect.getsourcefile(factory), inspect.getsourcelines(factory)
    except (OSError, TypeError):
        return contextlib.nullcontext()
    return call_site(file, line, lines[0].strip()) if file else contextlib.nullcontext()


# ----------------------------------------------------------------------------- before TensorFlow


def _build_model(plan: Plan, progress: Progress) -> tuple[torch.nn.Module, Any]:
    progress(f"loading the model ({plan.spec.text})")
    try:
        factory = loader.load_factory(plan.spec)
    except Exception as e:  # noqa: BLE001 - the user's module failed to import
        raise UsageError(_import_failure(plan.spec.source, e)) from e
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001 - the user's factory failed
        message = loader.missing_kernel_message(e)
        raise UsageError(message or f"building the model with {plan.spec.text}() failed: {_one_line(e)}{_where(e)}") \
            from e
    try:
        check_model(model)
    except TypeError as e:
        raise UsageError(f"{plan.spec.text}() returned no model: {e}") from None
    if plan.weights:
        progress(f"loading the weights ({plan.weights})")
        try:
            loader.load_weights(model, plan.weights)
        except loader.WeightsError as e:
            raise UsageError(str(e)) from None
    return model.eval(), factory


def _import_failure(source: str, e: Exception) -> str:
    if isinstance(e, ModuleNotFoundError) and e.name:
        return (f"importing {source} failed: it imports {e.name!r}, which is not installed here "
                f"(pip install {e.name.split('.')[0]})")
    if isinstance(e, SyntaxError):
        return f"{e.filename}:{e.lineno}: syntax error: {e.msg}"
    if isinstance(e, (AttributeError, TypeError)) and not e.__traceback__.tb_next:
        return str(e)
    return f"importing {source} failed: {_one_line(e)}{_where(e)}"


def _trial_run(model: torch.nn.Module, example: examples.Example, progress: Progress) -> list[str]:
    """Run the model once on the example (state put back); its flat output names."""
    progress("running the PyTorch model")
    snapshot = BufferSnapshot(model)
    try:
        with torch.no_grad():
            out = model(*_clone(example.args), **_clone(example.kwargs))
    except Exception as e:  # noqa: BLE001 - the model rejects the example
        message = loader.missing_kernel_message(e)
        if message:
            raise ConversionFailed(message) from e
        raise UsageError(f"the model fails on the example input ({example.describe()}): {_one_line(e)}{_where(e)}; "
                         "check --input-shape / --input-dtype, or give real inputs with --inputs FILE.npz") from e
    finally:
        snapshot.restore()
    return flat_output_names(out)


def _clone(x: Any) -> Any:
    """A copy of every tensor in ``x`` (the model's in-place ops must not change the example)."""
    return pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, x)


# ----------------------------------------------------------------------------- writing


def tflite_files(path: str, variants: list[Optional[str]]) -> list[tuple[str, Optional[str]]]:
    """(file, quantize) per variant: ``path`` itself for one variant (or the float32 one), else
    the variant's name appended to the stem (``m.tflite`` -> ``m_fp16.tflite``)."""
    if len(variants) == 1:
        return [(path, variants[0])]
    stem, ext = os.path.splitext(path)
    return [(path if v is None else f"{stem}_{v}{ext}", v) for v in variants]


def _weight_variant(args: argparse.Namespace, variant: Optional[str]) -> tuple[Any, str]:
    """(quantize, backend) of a ``--quantize`` variant: int4 weights, and int8 weights with
    ``--keep-float`` or ``--min-quantized-elements``, are written by the direct writer."""
    from ..backend_tflite.weight_quantization import DEFAULT_MIN_ELEMENTS, WeightQuantization

    options = args.keep_float is not None or args.min_quantized_elements is not None
    if variant not in DIRECT_VARIANTS and not (variant == "dynamic_int8" and options):
        return variant, "converter"
    minimum = DEFAULT_MIN_ELEMENTS if args.min_quantized_elements is None else args.min_quantized_elements
    return WeightQuantization(variant, keep_float=args.keep_float or (), min_elements=minimum), "direct"


def _write_outputs(result: "CompileResult", plan: Plan, args: argparse.Namespace, calibration: Optional[list],
                   holdout: Optional[list], progress: Progress) -> list[dict]:
    written = []
    for out in plan.outputs:
        if out.kind != "tflite":
            progress(f"writing {out.path}")
            (result.save if out.kind in ("keras", "h5") else result.export_saved_model)(out.path)
            written.append({"path": out.path, "kind": out.kind})
            continue
        for path, variant in tflite_files(out.path, plan.variants):
            progress(f"writing {path}")
            int8 = variant == "int8"
            quantize, backend = _weight_variant(args, variant)
            selection = dict(keep_float=args.keep_float, target_agreement=args.target_agreement) if int8 else {}
            result.export_tflite(path, quantize=quantize, calibration=calibration if int8 else None,
                                 io_dtype=args.io_dtype if int8 else "int8", holdout=holdout if int8 else None,
                                 allow_flex=args.allow_flex, progress=progress, backend=backend, **selection)
            written.append({"kind": "tflite", **result.report.tflite})
    if args.draw:  # (compile drew it)
        written.append({"path": args.draw, "kind": "drawing"})
    return written


# ----------------------------------------------------------------------------- the outcome


def _finish(result: "CompileResult", written: list[dict], plan: Plan, args: argparse.Namespace, shown: list[str]) -> int:
    report = result.report
    attrs.evolve(report, warnings=[w for w in report.warnings if w not in shown]).print()
    if sum(w["kind"] == "tflite" for w in written) > 1:
        print(_tflite_table(written))
    for w in written:
        print(f"wrote {w['path']}")
    problems = _problems(report, written, plan, args)
    if args.report_json:
        data = report.to_dict() | {"tflite_files": [w for w in written if w["kind"] == "tflite"],
                                   "exit_code": OUT_OF_TOLERANCE if problems else OK, "problems": problems}
        with open(args.report_json, "w") as f:
            json.dump(data, f, indent=2, default=str)
    for problem in problems:
        print(f"torch2keras: {problem}", file=sys.stderr)
    return OUT_OF_TOLERANCE if problems else OK


def _problems(report: "Report", written: list[dict], plan: Plan, args: argparse.Namespace) -> list[str]:
    """Why the run ends with exit code 3 (empty: it does not)."""
    problems = [f"output {o.name!r} differs from PyTorch by {o.max_abs_error:.3e}, above the tolerance "
                f"{o.tolerance:.3e} (atol {plan.atol:g} + rtol {plan.rtol:g} * max |ref| {o.max_abs_reference:.3e})"
                for o in report.outputs if not o.ok]
    tolerance = max((o.tolerance for o in report.outputs), default=plan.atol)
    for w in written:
        err = w.get("max_abs_error")
        if w["kind"] == "tflite" and w.get("quantize") is None and err is not None and err > tolerance:
            problems.append(f"{w['path']} differs from PyTorch by {err:.3e}, above the tolerance {tolerance:.3e}")
    if args.strict and report.capture_method == "trace":
        problems.append("--strict: code was specialised to the example (see the warning above); the converted "
                        "model may be wrong for other inputs")
    return problems


def _tflite_table(written: list[dict]) -> str:
    lines = [f"  {'TFLite file':<40} {'kind':<16} {'MB':>7} {'ops':>5} {'max |err|':>10}"]
    for w in written:
        if w["kind"] == "tflite":
            err = w.get("max_abs_error")
            lines.append(f"  {w['path']:<40} {w.get('quantize') or 'float32':<16} {w['bytes'] / 1e6:>7.2f} "
                         f"{w['ops']:>5} {err if err is None else format(err, '.3e'):>10}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- failure text


def failure_paragraph(stage: Optional[str], e: BaseException) -> str:
    """One paragraph for an unexpected failure: the stage, the exception's first line, the
    user's line where the traceback passes through it."""
    message = loader.missing_kernel_message(e)
    if message:
        return message
    what = f"{stage} failed" if stage else "the conversion failed"
    return f"{what}: {_one_line(e)}{_where(e)} (--debug shows the traceback, --verbose the libraries' logs)"


def _one_line(e: BaseException) -> str:
    first = next((t.strip() for t in str(e).splitlines() if t.strip()), "")
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _where(e: BaseException) -> str:
    file, line, code = offending_line(e) if isinstance(e, Exception) else ("", 0, "")
    if not file:
        return ""
    shown = os.path.relpath(file) if os.path.abspath(file).startswith(os.getcwd()) else file
    return f" (at {shown}:{line}" + (f": {code})" if code else ")")
