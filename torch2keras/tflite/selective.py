"""Selective int8 quantization: layers kept in float32 in a calibrated int8 file, chosen by name
(``keep_float``) or from the per-layer check until the file agrees with the float model
(``target_agreement``).

The model is calibrated once (``convert.calibrate_saved_model``); each candidate file quantizes
that calibration with some ops left float (``convert.quantize_calibrated``: a DEQUANTIZE before
such an op, a QUANTIZE after), so trying another set of float layers costs no new calibration.

Agreement is top-1: over the held-out inputs, the share of rows (every output's last axis)
whose largest element is at the same index in the int8 file as in the float32 file of the same
model (a classifier's predicted class). With ``target_agreement`` and an all-int8 file below it,
the per-layer check (``quantize.layer_errors`` on the same held-out inputs) ranks the layers by
how much error int8 adds there (``rel_error - input_rel_error``; the layers whose error jumps
first); they are kept float one at a time, in that order, until the agreement reaches the
target or no layer is left to keep. The result (``SelectiveQuantization``, in
``report.quantization_selection``) states the trade: agreement, file size and LiteRT latency of
the all-int8 file, of the chosen one and of the float32 file.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from typing import Callable, Iterable, Optional, Sequence

import attrs
import numpy as np

from .file import read_tflite
from .runtime import dequantize_array, interpreter, latency_medians, latency_rounds, quantized_feed
from .sources import SourceMap

__all__ = ["SelectiveQuantization", "float_ops", "ranked_layers", "resolve_keep_float", "select_float_layers",
           "top1_agreement"]

MAX_STEPS = 24  # files tried at most (each one quantization of the calibrated model and a check)


@attrs.define
class SelectiveQuantization:
    """The trade of a selective int8 file against the all-int8 and float32 files."""

    target: Optional[float]  # the top-1 agreement asked for (None: keep_float given alone)
    samples: int  # held-out inputs the agreement was measured on
    kept_float: list[str]  # Keras layer names (IR value names) of the ops kept in float32
    tensors: list[str]  # the TFLite tensor names those ops write
    agreement: float  # top-1 agreement of the written file with the float32 file
    agreement_int8: float  # of the file with every op int8
    bytes: int
    bytes_int8: int
    bytes_float: int
    latency_ms: dict = attrs.field(factory=dict)  # "float32" / "int8" / "selective": LiteRT medians
    steps: list[dict] = attrs.field(factory=list)  # each file tried: kept layers, agreement, bytes
    float_ops: int = 0  # ops of the written file computing in float32 (besides QUANTIZE / DEQUANTIZE)

    @property
    def reached(self) -> bool:
        return self.target is None or self.agreement >= self.target

    def summary(self) -> str:
        lat = self.latency_ms
        lines = [f"  selective int8: top-1 agreement with float {self.agreement:.2%} on {self.samples} held-out "
                 f"input(s) (all int8: {self.agreement_int8:.2%}"
                 + (f", target {self.target:.2%}" + ("" if self.reached else ", NOT reached") if self.target else "")
                 + f"); {len(self.kept_float)} layer(s) kept float32 ({self.float_ops} float op(s))"
                 + (": " + ", ".join(self.kept_float[:8]) + (" ..." if len(self.kept_float) > 8 else "")
                    if self.kept_float else ""),
                 f"  size {self.bytes / 1e3:.0f} KB (all int8 {self.bytes_int8 / 1e3:.0f} KB, float32 "
                 f"{self.bytes_float / 1e3:.0f} KB)"
                 + (f"; LiteRT latency {lat['selective']:.3f} ms (all int8 {lat['int8']:.3f} ms, float32 "
                    f"{lat['float32']:.3f} ms)" if {"selective", "int8", "float32"} <= set(lat) else "")]
        return "\n".join(lines)


def _module_path(node) -> str:
    loc = getattr(node, "loc", None)
    return str(getattr(loc, "module_path", "") or "") if loc is not None else ""


def resolve_keep_float(names: Sequence[str], float_path: str, layer_nodes: dict,
                       output_nodes: Optional[dict] = None) -> dict[str, list[str]]:
    """TFLite tensor name -> the layers it computes, for the tensors of ``float_path`` whose ops
    compute one of ``names``: Keras layer names (the IR value names the per-layer report lists),
    torch module paths (``"features.3"``, globs such as ``"layer4.*"``) or TFLite tensor names.
    A name matching no op is a ValueError listing names that exist."""
    info = read_tflite(float_path)
    sources = SourceMap(info, layer_nodes, output_nodes)
    nodes = {**layer_nodes, **(output_nodes or {})}
    found: dict[str, list[str]] = {}
    matched: set[str] = set()
    available: list[str] = []
    for op in info.main_ops():
        for t in op.outputs:
            tensor = info.tensor(t)
            layers, _, _ = sources.tensor(t)
            layers = [n for n in layers if n in nodes]
            available += [n for n in layers if n not in available]
            for name in names:
                hit = name == tensor.name or name in layers or any(
                    fnmatch.fnmatchcase(_module_path(nodes[n]), name) for n in layers)
                if hit:
                    matched.add(name)
                    found.setdefault(tensor.name, list(layers))
    missing = [n for n in names if n not in matched]
    if missing:
        raise ValueError(f"keep_float: {', '.join(map(repr, missing))} name(s) no op of the int8 file; give Keras "
                         f"layer names as the per-layer check lists them (report.quantization.table()), torch module "
                         f"paths or TFLite tensor names; layers here: {', '.join(available[:12])}"
                         + (" ..." if len(available) > 12 else ""))
    return found


def _outputs(path: str, feeds: Iterable[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """Per feed, the file's outputs (dequantized when integer), in signature order."""
    interp = interpreter(path, delegates=False)
    runner = interp.get_signature_runner("serving_default")
    details = runner.get_output_details()
    results = []
    for feed in feeds:
        out = runner(**quantized_feed(runner.get_input_details(), feed))
        results.append([dequantize_array(np.asarray(out[name]), details[name]) for name in sorted(details)])
    return results


def top1_agreement(quant_path: str, float_path: str, feeds: list[dict[str, np.ndarray]]) -> float:
    """The share of output rows (last axis) whose argmax is the same in both files."""
    same = total = 0
    for q_row, f_row in zip(_outputs(quant_path, feeds), _outputs(float_path, feeds)):
        for q, f in zip(q_row, f_row):
            if q.ndim == 0 or q.shape[-1] < 2:
                raise ValueError(f"target_agreement compares the predicted class (argmax over the last axis); an "
                                 f"output of shape {list(q.shape)} has no classes: keep layers float with "
                                 f"keep_float instead")
            same += int(np.sum(q.argmax(-1) == f.argmax(-1)))
            total += int(np.prod(q.shape[:-1]))
    return same / total if total else 1.0


def float_ops(path: str) -> int:
    """Ops of the file writing float32 other than QUANTIZE / DEQUANTIZE."""
    info = read_tflite(path)
    return sum(1 for op in info.main_ops() if op.name not in ("QUANTIZE", "DEQUANTIZE") and op.outputs
               and info.tensor(op.outputs[0]).dtype == "float32")


def select_float_layers(path: str, float_path: str, quantize: Callable[[Sequence[str]], bytes],
                        feeds: list[dict[str, np.ndarray]], layer_nodes: dict, keep: dict[str, list[str]],
                        target: Optional[float], ranking: Callable[[str], list], latency_runs: int = 30
                        ) -> SelectiveQuantization:
    """Write to ``path`` the file ``quantize(tensor names kept float)`` makes with the layers of
    ``keep`` float and, with ``target``, as many more as needed (in ``ranking()``'s order: the
    per-layer check's layers, ``ranked_layers``, given the all-int8 file's path) to reach a top-1
    agreement of ``target`` with ``float_path`` on ``feeds`` (see the module docstring)."""
    scratch = path + ".int8.tmp"
    _write(scratch, quantize([]))
    int8_agreement = top1_agreement(scratch, float_path, feeds)
    int8_bytes = os.path.getsize(scratch)
    kept = dict(keep)
    steps = [{"kept_float": [], "agreement": int8_agreement, "bytes": int8_bytes}]

    def attempt() -> float:
        _write(path, quantize(list(kept)))
        agreement = top1_agreement(path, float_path, feeds)
        steps.append({"kept_float": _layers(kept), "agreement": agreement, "bytes": os.path.getsize(path)})
        return agreement

    agreement = attempt() if kept else int8_agreement
    if not kept:
        shutil.copyfile(scratch, path)
    if target is not None and agreement < target:
        for tensor, layers in ranking(scratch):
            if tensor in kept or len(steps) > MAX_STEPS:
                continue
            kept[tensor] = layers
            agreement = attempt()
            if agreement >= target:
                break
    try:
        rows = latency_rounds({"float32": float_path, "int8": scratch, "selective": path}, rounds=3,
                              runs=max(1, latency_runs // 3))
        latency = latency_medians(rows)
    finally:
        os.remove(scratch)
    return SelectiveQuantization(target, len(feeds), _layers(kept), list(kept), agreement, int8_agreement,
                                 os.path.getsize(path), int8_bytes, os.path.getsize(float_path), latency, steps,
                                 float_ops(path))


def ranked_layers(report, quant_path: str, float_path: str) -> list[tuple[str, list[str]]]:
    """(float file's tensor name, layers) of the per-layer check's layers, where int8 adds the
    most error first (those whose error jumps before the rest). An op's result is named as in
    the float file (a final DEQUANTIZE's result for an output); QUANTIZE ops (the input's, a
    requantization) are no layer to keep float."""
    qfile, ffile = read_tflite(quant_path), read_tflite(float_path)
    float_names = {t.name for t in ffile.tensors[0]}
    by_name = {t.name: t.index for t in qfile.tensors[0]}
    dequantized = {op.inputs[0]: op.outputs[0] for op in qfile.main_ops() if op.name == "DEQUANTIZE"}
    ranked = []
    for e in sorted(report.layers, key=lambda e: (not e.jump, -(e.rel_error - e.input_rel_error))):
        if e.op == "QUANTIZE":
            continue
        name = e.tensor
        if name not in float_names and by_name.get(name) in dequantized:
            name = qfile.tensor(dequantized[by_name[name]]).name
        if name in float_names and all(name != r[0] for r in ranked):
            ranked.append((name, list(e.layers)))
    return ranked


def _layers(kept: dict[str, list[str]]) -> list[str]:
    names: list[str] = []
    for tensor, layers in kept.items():
        names += [n for n in (layers[:1] or [tensor]) if n not in names]
    return names


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
