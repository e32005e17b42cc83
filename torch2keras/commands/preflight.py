"""Check ``torch2keras convert``'s arguments and files before torch or TensorFlow is imported.

Everything that can be known from the command line, the file system, ``.npz`` headers and the
model's source (``model_spec``) is checked here, in well under two seconds, so that a typo is
one ``error:`` line and exit 2, never a traceback after the model zoo has loaded. What needs the
model (forward's argument names, the shapes it accepts, a state_dict's keys) is checked right
after the model is built, still before the conversion (``commands/examples.py``, ``loader``).

Also the argparse ``type=`` parsers of the options (shapes, dtypes, layouts, quantize lists).
"""

from __future__ import annotations

import argparse
import os
import zipfile
from typing import TYPE_CHECKING, Optional, Sequence

import attrs

from .. import model_spec
from ..io_checks import check_writable
from .exits import UsageError

if TYPE_CHECKING:  # numpy is imported only to read .npz files: the common checks stay fast
    import numpy as np

__all__ = ["DIRECT_VARIANTS", "DTYPES", "Output", "Plan", "QUANTIZE", "check", "dtype_spec", "dynamic_spec", "fraction", "layout_spec", "quantize_list",
           "read_arrays", "shape", "split_samples"]

# dtype names (and their aliases) -> numpy/torch name
DTYPES = {"float32": "float32", "float": "float32", "float16": "float16", "half": "float16", "bfloat16": "bfloat16",
          "float64": "float64", "double": "float64", "int64": "int64", "long": "int64", "int32": "int32",
          "int": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool"}
# --quantize variants -> export_tflite(quantize=...); None is the float32 file
QUANTIZE = {"float32": None, "none": None, "fp16": "fp16", "dynamic_int8": "dynamic_int8", "int8": "int8",
            # the direct writer's weight quantization (backend_tflite.weight_quantization.MODES)
            **{m: m for m in ("dynamic_int4", "dynamic_int4_b32", "dynamic_int4_b64", "dynamic_int4_b128",
                              "weight_only_int8", "weight_only_int4")}}
# variants written by the direct writer only (dynamic_int8 too, with --keep-float or --min-quantized-elements)
DIRECT_VARIANTS = ("dynamic_int4", "dynamic_int4_b32", "dynamic_int4_b64", "dynamic_int4_b128", "weight_only_int8",
                   "weight_only_int4")
_OUTPUT_KINDS = {".keras": "keras", ".h5": "h5", ".tflite": "tflite"}
_FORMATS = ".keras, .h5, .tflite, or a folder name (SavedModel; end it with / if it holds a dot)"


# ----------------------------------------------------------------------------- argparse types


def shape(text: str) -> tuple[int, ...]:
    """``1,3,224,224`` (or ``1x3x224x224``) -> (1, 3, 224, 224)."""
    parts = text.replace("x", ",").split(",")
    try:
        dims = tuple(int(d) for d in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected sizes separated by commas, e.g. 1,3,224,224") from None
    if any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be positive, e.g. 1,3,224,224")
    return dims


def dtype_spec(text: str) -> tuple[Optional[str], str]:
    """``[INPUT=]DTYPE`` -> (input name or position, or None for all inputs; numpy dtype name)."""
    key, _, name = text.rpartition("=")
    if name not in DTYPES:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown dtype {name!r}; use one of "
                                         f"{', '.join(sorted(set(DTYPES.values())))}")
    return key or None, DTYPES[name]


def layout_spec(text: str) -> tuple[str, str]:
    """``NAME=channels_last`` (or ``channels_first``) -> (name, layout)."""
    name, eq, layout = text.partition("=")
    if not eq or not name or layout not in ("channels_last", "channels_first"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected INPUT_OR_OUTPUT=channels_last (or =channels_first), "
                                         "e.g. x=channels_last")
    return name, layout


def fraction(text: str) -> float:
    """argparse type of --target-agreement: a number in (0, 1) (a lower confidence bound never shows 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction such as 0.99") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: must be above 0 and below 1 (e.g. 0.99)")
    return value


def quantize_list(text: str) -> list[Optional[str]]:
    """``fp16,dynamic_int8`` -> ["fp16", "dynamic_int8"] (``float32`` -> None: the float file)."""
    variants = []
    for part in text.split(","):
        if part.strip() not in QUANTIZE:
            raise argparse.ArgumentTypeError(f"{part!r}: choose among {', '.join(QUANTIZE)} "
                                             "(several separated by commas: one file each)")
        variant = QUANTIZE[part.strip()]
        if variant not in variants:
            variants.append(variant)
    return variants


def dynamic_spec(text: str) -> tuple[Optional[str], dict[int, Optional[str]]]:
    """``[INPUT:]AXIS[=NAME],...`` -> (input name or None for the first input, {axis: dim name})."""
    name, _, axes = text.rpartition(":")
    dims: dict[int, Optional[str]] = {}
    try:
        for part in axes.split(","):
            axis, _, dim = part.partition("=")
            dims[int(axis)] = dim.strip() or None
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. x:0=batch,2=height,3=width") from None
    bad = [d for d in dims.values() if d is not None and not d.isidentifier()]
    if bad or any(a < 0 for a in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: axes are non-negative ints and dim names identifiers, "
                                         "e.g. x:0=batch,2=height")
    return name or None, dims


# ----------------------------------------------------------------------------- the checked plan


@attrs.frozen
class Output:
    path: str
    kind: str  # "keras" | "h5" | "tflite" | "saved_model"


@attrs.define
class Plan:
    """The checked arguments of one ``convert`` run."""

    spec: model_spec.FactorySpec
    outputs: list[Output]
    variants: list[Optional[str]]  # TFLite quantize variants (None: float32)
    shapes: list[tuple[int, ...]]  # --input-shape (empty with --inputs)
    dtypes: list[tuple[Optional[str], str]]
    samples: Optional[dict[str, np.ndarray]]  # --inputs
    calibration: Optional[dict[str, np.ndarray]]
    holdout: Optional[dict[str, np.ndarray]]
    atol: float
    rtol: float
    layouts: list[tuple[str, str]]
    channels_last: bool
    dynamic: list[tuple[Optional[str], dict]]
    weights: Optional[str]


def check(args: argparse.Namespace) -> Plan:
    """The arguments checked (``UsageError`` naming the fix at the first problem) -> a ``Plan``."""
    spec = _check_model(args.model)
    outputs = _check_outputs(args.output)
    variants = _check_quantize(args, outputs)
    samples = read_arrays(args.inputs, "--inputs") if args.inputs else None
    shapes = _check_inputs(args, samples)
    known = _known_shapes(shapes, samples)
    calibration = _check_samples(args.calibration, "--calibration", known) if args.calibration else None
    holdout = _check_samples(args.holdout, "--holdout", known) if args.holdout else None
    _check_dynamic(args.dynamic or [], shapes)
    _check_file(args.weights, "--weights")
    _check_folder(args.report_json, "--report-json")
    if args.dump_weights and not args.dump_ir:
        raise UsageError("--dump-weights goes with --dump-ir DIR (the folder the weights files go to)")
    atol, rtol = tolerances(args.atol, args.rtol)
    return Plan(spec=spec, outputs=outputs, variants=variants, shapes=shapes, dtypes=args.input_dtype or [],
                samples=samples, calibration=calibration, holdout=holdout, atol=atol, rtol=rtol,
                layouts=args.layout or [], channels_last=args.channels_last, dynamic=args.dynamic or [],
                weights=args.weights)


def tolerances(atol: Optional[float], rtol: Optional[float]) -> tuple[float, float]:
    """Exactly what the user gave: both unset -> 1e-4 each; one set -> the other 0."""
    for name, value in (("--atol", atol), ("--rtol", rtol)):
        if value is not None and not value >= 0:
            raise UsageError(f"{name} {value}: a tolerance is a non-negative number")
    if atol is None and rtol is None:
        return 1e-4, 1e-4
    return atol or 0.0, rtol or 0.0


def _check_model(text: str) -> model_spec.FactorySpec:
    try:
        spec = model_spec.parse(text)
        model_spec.check(spec)
    except model_spec.SpecError as e:
        raise UsageError(str(e)) from None
    return spec


def _check_outputs(paths: Sequence[str]) -> list[Output]:
    outputs = []
    for path in paths:
        stem, ext = os.path.splitext(path.rstrip("/" + os.sep))
        if path.endswith(("/", os.sep)) or (not ext and not os.path.isfile(path)):
            kind = "saved_model"
        elif ext.lower() == ".onnx":
            raise UsageError(f"-o {path}: torch2keras writes {_FORMATS}; for ONNX use torch.onnx.export")
        elif ext.lower() in _OUTPUT_KINDS:
            kind = _OUTPUT_KINDS[ext.lower()]
        else:
            raise UsageError(f"-o {path}: unknown output type {ext!r}; write {_FORMATS}")
        if kind == "saved_model" and os.path.isfile(path.rstrip("/")):
            raise UsageError(f"-o {path}: a SavedModel is a folder, and {path} is a file")
        if kind != "saved_model" and os.path.isdir(path):
            raise UsageError(f"-o {path}: is a folder; give a file name")
        parent = os.path.dirname(os.path.abspath(path.rstrip("/")))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise UsageError(f"-o {path}: {parent} is a file, not a folder")
        try:
            check_writable(path.rstrip("/"))
        except PermissionError as e:
            raise UsageError(f"-o {path}: {e}") from None
        outputs.append(Output(path, kind))
    normalized = [os.path.abspath(o.path.rstrip("/")) for o in outputs]
    twice = sorted({p for p in normalized if normalized.count(p) > 1})
    if twice:
        raise UsageError(f"-o {twice[0]} is given twice")
    return outputs


def _check_quantize(args: argparse.Namespace, outputs: list[Output]) -> list[Optional[str]]:
    variants = args.quantize or [None]
    wants = [v for v in variants if v is not None]
    if wants and not any(o.kind == "tflite" for o in outputs):
        raise UsageError("--quantize applies to .tflite outputs: add -o model.tflite")
    if "int8" in variants and not args.calibration:
        raise UsageError("--quantize int8 needs --calibration FILE.npz (representative inputs, ~100 samples)")
    if args.calibration and "int8" not in variants:
        raise UsageError("--calibration is used by --quantize int8 only: add --quantize int8 or drop it")
    if args.holdout and "int8" not in variants:
        raise UsageError("--holdout is used by --quantize int8 only (the per-layer check)")
    weight_modes = [v for v in variants if v == "dynamic_int8" or v in DIRECT_VARIANTS]
    if args.keep_float is not None and not weight_modes and "int8" not in variants:
        raise UsageError("--keep-float applies to weight quantization or int8: add --quantize dynamic_int8 (or "
                         "dynamic_int4, dynamic_int4_b32, ..., or int8 with --calibration)")
    if args.min_quantized_elements is not None and not weight_modes:
        raise UsageError("--min-quantized-elements applies to weight quantization: add --quantize dynamic_int8 (or "
                         "dynamic_int4, dynamic_int4_b32, ...)")
    if getattr(args, "target_agreement", None) is not None and "int8" not in variants:
        raise UsageError("--target-agreement chooses the layers kept float in a calibrated int8 file: add "
                         "--quantize int8 --calibration FILE.npz (and --holdout FILE.npz to measure it)")
    if args.min_quantized_elements is not None and args.min_quantized_elements < 0:
        raise UsageError(f"--min-quantized-elements {args.min_quantized_elements}: must be 0 or more")
    return variants


def _check_inputs(args: argparse.Namespace, samples: Optional[dict[str, np.ndarray]]) -> list[tuple[int, ...]]:
    shapes = list(args.input_shape or [])
    if samples is not None and (shapes or args.input_dtype):
        raise UsageError("--inputs gives the example inputs, their shapes and dtypes: drop --input-shape and "
                         "--input-dtype")
    if samples is None and not shapes:
        raise UsageError("give the example input: --input-shape 1,3,224,224 (random values; repeat for several "
                         "inputs) or --inputs sample.npz (real ones)")
    if samples is not None:
        _check_sample_keys(samples, args.inputs)
    unnamed = [d for key, d in (args.input_dtype or []) if key is None]
    if len(unnamed) > 1 and len(unnamed) != len(shapes):
        raise UsageError(f"--input-dtype without INPUT= was given {len(unnamed)} times for {len(shapes)} input(s): "
                         "give it once (all inputs), once per --input-shape, or as INPUT=DTYPE")
    for key, _ in args.input_dtype or []:
        if key is not None and key.isdigit() and int(key) >= len(shapes):
            raise UsageError(f"--input-dtype {key}=...: there are {len(shapes)} input(s) (positions 0..{len(shapes) - 1})")
    return shapes


def _check_sample_keys(samples: dict[str, np.ndarray], path: str) -> None:
    positional = [k for k in samples if _position(k) is not None]
    if positional and len(positional) != len(samples):
        raise UsageError(f"--inputs {path} mixes arr_N and named arrays ({', '.join(samples)}): name all by forward's "
                         "arguments, or save them positionally with np.savez(path, x0, x1)")
    if positional and sorted(_position(k) for k in positional) != list(range(len(positional))):
        raise UsageError(f"--inputs {path}: positional arrays must be arr_0..arr_{len(positional) - 1}, "
                         f"got {', '.join(samples)}")


def _position(key: str) -> Optional[int]:
    return int(key[4:]) if key.startswith("arr_") and key[4:].isdigit() else None


def _known_shapes(shapes: list[tuple[int, ...]], samples: Optional[dict[str, np.ndarray]]) -> dict:
    """Input shapes by position (ints) and, from a named --inputs file, by name."""
    if samples is None:
        return dict(enumerate(shapes))
    known: dict = {}
    for key, a in samples.items():
        position = _position(key)
        known[position if position is not None else key] = tuple(a.shape)
    return known


def _check_samples(path: str, option: str, known: dict) -> dict[str, np.ndarray]:
    arrays = read_arrays(path, option)
    if len(arrays) != len(known):
        raise UsageError(f"{option} {path} has {len(arrays)} array(s) ({', '.join(arrays)}), the model takes "
                         f"{len(known)} input(s): one array per input, of shape [samples, *input shape]")
    counts = set()
    for key, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise UsageError(f"{option} {path}: array {key!r} has dtype {a.dtype}; inputs are numbers")
        shape_ = _shape_for(key, known)
        if shape_ is None:  # named arrays, positional inputs: matched by name once forward is known
            if not any(_fits(a, s) for s in known.values()):
                wanted = " or ".join(_samples_form(s) for s in known.values())
                raise UsageError(f"{option} {path}: array {key!r} has shape {list(a.shape)}; expected {wanted}")
            continue
        try:
            counts.add(len(split_samples(a, shape_)))
        except ValueError:
            raise UsageError(f"{option} {path}: array {key!r} has shape {list(a.shape)}; expected "
                             f"{_samples_form(shape_)}") from None
    if len(counts) > 1:
        raise UsageError(f"{option} {path}: the arrays hold different numbers of samples {sorted(counts)}")
    return arrays


def _shape_for(key: str, known: dict) -> Optional[tuple[int, ...]]:
    """The input shape array ``key`` must match, None when only forward's names can tell."""
    position = _position(key)
    if position is not None:
        if position in known:
            return known[position]
        if any(isinstance(k, int) for k in known):
            raise UsageError(f"array {key!r}: the model takes {len(known)} input(s), arr_0..arr_{len(known) - 1}")
        return None  # named example inputs: their order is forward's, known once the model is built
    if key in known:
        return known[key]
    if len(known) == 1:
        return next(iter(known.values()))
    return None


def _samples_form(shape_: tuple[int, ...]) -> str:
    return f"[samples, {', '.join(map(str, shape_))}]"


def _fits(a: np.ndarray, shape_: tuple[int, ...]) -> bool:
    try:
        split_samples(a, shape_)
        return True
    except ValueError:
        return False


def split_samples(a: np.ndarray, shape_: Sequence[int]) -> list[np.ndarray]:
    """One input's calibration array -> its samples: ``[samples, *shape]``, or samples stacked
    along the batch axis (``[samples * batch, ...]``). ValueError when it is neither."""
    shape_ = tuple(shape_)
    if a.shape[1:] == shape_:
        return [a[j] for j in range(a.shape[0])]
    if shape_ and a.ndim == len(shape_) and a.shape[1:] == shape_[1:] and a.shape[0] % shape_[0] == 0:
        return [a[j:j + shape_[0]] for j in range(0, a.shape[0], shape_[0])]
    raise ValueError(f"shape {a.shape} is not [samples, {', '.join(map(str, shape_))}]")


def read_arrays(path: str, option: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (or one ``.npy``: ``arr_0``) file; ``UsageError`` when unreadable."""
    import numpy as np

    _check_file(path, option)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except AttributeError:  # a .npy file: np.load gave the array itself (no context manager)
        arrays = {"arr_0": np.load(path, allow_pickle=False)}
    except ValueError:  # numpy reads a file that is not .npy/.npz as a pickle, which allow_pickle=False refuses
        raise UsageError(f"{option} {path} is not a .npz/.npy file numpy reads, or holds Python objects: save "
                         "arrays with np.savez") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UsageError(f"{option} {path} is not a .npz/.npy file numpy reads ({e})") from None
    if not arrays:
        raise UsageError(f"{option} {path} holds no arrays")
    return arrays


def _check_dynamic(specs: list[tuple[Optional[str], dict]], shapes: list[tuple[int, ...]]) -> None:
    unnamed = [dims for name, dims in specs if name is None]
    if unnamed and (len(unnamed) > 1 or len(unnamed) != len(specs)):
        raise UsageError("--dynamic without an input name (AXIS=NAME,...) applies to the first input; name the "
                         "inputs (INPUT:AXIS=NAME,...) to give several")
    if unnamed and shapes:
        rank = len(shapes[0])
        bad = [a for a in unnamed[0] if a >= rank]
        if bad:
            raise UsageError(f"--dynamic axis {bad[0]}: the first input has {rank} axes (0..{rank - 1})")


def _check_file(path: Optional[str], option: str) -> None:
    if path is None:
        return
    if not os.path.exists(path):
        raise UsageError(f"{option} {path}: no such file")
    if not os.path.isfile(path):
        raise UsageError(f"{option} {path}: is a folder, not a file")
    if os.path.getsize(path) == 0:
        raise UsageError(f"{option} {path}: the file is empty")


def _check_folder(path: Optional[str], option: str) -> None:
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: no folder {folder}")
