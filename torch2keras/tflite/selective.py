"""Selective int8 quantization: layers kept in float32 in a calibrated int8 file, chosen by name
(``keep_float``) or from the per-layer check until the file's agreement with the float model is
shown, at 95% confidence, to reach ``target_agreement`` (``reached_target``).

The model is calibrated once (``convert.calibrate_saved_model``); each candidate file quantizes
that calibration with some ops left float (``convert.quantize_calibrated``: a DEQUANTIZE before
such an op, a QUANTIZE after), so trying another set of float layers costs no new calibration.

Agreement is top-1: over the held-out inputs, the share of rows (every output's last axis)
whose largest element is at the same index in the int8 file as in the float32 file of the same
model (a classifier's predicted class).

The rule. ``k`` of ``n`` held-out rows agreeing estimate the agreement on unseen inputs of the
same distribution; ``k / n`` itself carries no further than the rows counted (2 disagreements
in 300 rows, 99.33%, are compatible with a true agreement of 98.1%). The target counts as reached
when the one-sided 95% lower confidence bound of the agreement reaches it: the Wilson score
bound (``agreement_lower_bound``)

    (p + z^2/2n - z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2/n),   p = k / n,  z = 1.645,

the smallest true agreement a one-sided score test at level 5% does not reject (it stays in
[0, 1] and keeps its coverage for ``p`` near 1, where the normal-approximation interval
collapses to a width of 0). Invariant: a file that reaches the target has
``agreement_lower_bound(k, n) >= target``. Consequences: with every row agreeing the bound is
``n / (n + z^2)``, so a target ``t`` needs at least ``z^2 t / (1 - t)`` rows (268 for 0.99,
2703 for 0.999; ``rows_needed``) -- fewer is a ValueError before any layer is tried, and
target 1 is never shown; 300 rows show 0.99 only when all 300 agree, 1000 rows with at most 4
disagreements. The bound speaks for inputs drawn like the held-out ones (the rows of one input
are counted as independent).

With ``target_agreement`` and an all-int8 file below the target, the per-layer check
(``quantize.layer_errors`` on the same held-out inputs) ranks the layers by how much error int8
adds there (``rel_error - input_rel_error``; the layers whose error jumps first); the first 1,
2, 4, ... of them (the last try: all) are kept float until the bound reaches the target, then
bisection between the last count that fell short and the first that reached finds fewer
(``search_prefix``: at most ``MAX_STEPS`` files, about 2 log2(layers)). With every layer float
the file computes as the float file does, so the target is reached unless the quantized input
alone disagrees; short of it, the file kept is the try that agreed most. The result (``SelectiveQuantization``, in ``report.quantization_selection``) states the
trade: agreement and its bound, file size and LiteRT latency of the all-int8 file, of the
chosen one and of the float32 file.
"""

from __future__ import annotations

import fnmatch
import math
import os
import shutil
from statistics import NormalDist
from typing import Callable, Iterable, Optional, Sequence

import attrs
import numpy as np

from .file import read_tflite
from .runtime import dequantize_array, interpreter, latency_medians, latency_rounds, quantized_feed
from .sources import SourceMap

__all__ = ["CONFIDENCE", "SelectiveQuantization", "agreement_lower_bound", "float_ops", "ranked_layers",
           "reached_target", "resolve_keep_float", "rows_needed", "search_prefix", "select_float_layers",
           "top1_agreement"]

MAX_STEPS = 24  # files tried at most (each one quantization of the calibrated model and a check)
CONFIDENCE = 0.95  # one-sided confidence of the agreement's lower bound (module docstring)


def agreement_lower_bound(agree: int, total: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided Wilson score lower bound, at ``confidence``, of a proportion observed as
    ``agree`` of ``total`` (0 for no observation); see the module docstring."""
    if not 0 <= agree <= total:
        raise ValueError(f"agreement of {agree} in {total} rows")
    if total == 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p, n = agree / total, total
    center = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (center - spread) / (1 + z * z / n))


def reached_target(agree: int, total: int, target: float, confidence: float = CONFIDENCE) -> bool:
    """Whether ``agree`` of ``total`` rows show an agreement of at least ``target`` (its lower
    bound reaches it)."""
    return agreement_lower_bound(agree, total, confidence) >= target


def rows_needed(target: float, confidence: float = CONFIDENCE) -> Optional[int]:
    """The fewest rows that, all agreeing, show ``target`` (None: no number does, target 1)."""
    if target >= 1.0:
        return None
    z = NormalDist().inv_cdf(confidence)
    n = max(1, math.floor(z * z * target / (1 - target)))
    while not reached_target(n, n, target, confidence):  # (the closed form's rounding)
        n += 1
    return n


@attrs.define
class SelectiveQuantization:
    """The trade of a selective int8 file against the all-int8 and float32 files."""

    target: Optional[float]  # the top-1 agreement asked for (None: keep_float given alone)
    samples: int  # held-out inputs the agreement was measured on
    kept_float: list[str]  # Keras layer names (IR value names) of the ops kept in float32
    tensors: list[str]  # the TFLite tensor names those ops write
    agreement: float  # top-1 agreement of the written file with the float32 file (on the held-out rows)
    agreement_int8: float  # of the file with every op int8
    bytes: int
    bytes_int8: int
    bytes_float: int
    latency_ms: dict = attrs.field(factory=dict)  # "float32" / "int8" / "selective": LiteRT medians
    steps: list[dict] = attrs.field(factory=list)  # each file tried: kept layers, agreement, bytes
    float_ops: int = 0  # ops of the written file computing in float32 (besides QUANTIZE / DEQUANTIZE)
    rows: int = 0  # output rows the agreement counts (samples x rows per input)
    agreement_bound: float = 0.0  # its one-sided lower confidence bound (agreement_lower_bound)
    agreement_bound_int8: float = 0.0  # of the all-int8 file's agreement
    confidence: float = CONFIDENCE

    @property
    def reached(self) -> bool:
        """The target is shown: the agreement's lower bound reaches it (the module docstring)."""
        return self.target is None or self.agreement_bound >= self.target

    def summary(self) -> str:
        lat = self.latency_ms
        lines = [f"  selective int8: top-1 agreement with float {self.agreement:.2%} on {self.samples} held-out "
                 f"input(s), at least {self.agreement_bound:.2%} at {self.confidence:.0%} confidence (all int8: "
                 f"{self.agreement_int8:.2%}, at least {self.agreement_bound_int8:.2%}"
                 + (f"; target {self.target:.2%}" + ("" if self.reached else ", NOT reached") if self.target else "")
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


def _classes(outputs: list[list[np.ndarray]]) -> np.ndarray:
    """Every output row's argmax (the last axis), all rows of all feeds in one vector."""
    rows = []
    for feed in outputs:
        for out in feed:
            if out.ndim == 0 or out.shape[-1] < 2:
                raise ValueError(f"target_agreement compares the predicted class (argmax over the last axis); an "
                                 f"output of shape {list(out.shape)} has no classes: keep layers float with "
                                 f"keep_float instead")
            rows.append(out.argmax(-1).reshape(-1))
    return np.concatenate(rows) if rows else np.zeros(0, np.int64)


def _agree(quant_path: str, float_classes: np.ndarray, feeds: list[dict[str, np.ndarray]]) -> int:
    """Rows whose argmax in ``quant_path`` is ``float_classes``'."""
    return int(np.sum(_classes(_outputs(quant_path, feeds)) == float_classes))


def top1_agreement(quant_path: str, float_path: str, feeds: list[dict[str, np.ndarray]]) -> float:
    """The share of output rows (last axis) whose argmax is the same in both files."""
    classes = _classes(_outputs(float_path, feeds))
    return _agree(quant_path, classes, feeds) / len(classes) if len(classes) else 1.0


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
    ``keep`` float and, with ``target``, the first layers of ``ranking()`` (the per-layer check's
    layers, ``ranked_layers``, given the all-int8 file's path; as many as ``search_prefix`` finds)
    until the top-1 agreement with ``float_path`` on ``feeds`` shows ``target`` (its lower
    confidence bound reaches it, see the module docstring). Fewer rows than any agreement could
    show the target with is a ValueError."""
    classes = _classes(_outputs(float_path, feeds))
    rows = len(classes)
    if target is not None and not reached_target(rows, rows, target):
        needed = rows_needed(target)
        raise ValueError(f"target_agreement={target} is shown at {CONFIDENCE:.0%} confidence (the agreement's lower "
                         f"bound) only by "
                         + (f"at least {needed} held-out output rows, all agreeing; the {len(feeds)} held-out "
                            f"input(s) give {rows}: pass more held-out inputs or a lower target" if needed else
                            "no finite number of held-out rows: give a target below 1 (e.g. 0.999)"))
    scratch = path + ".int8.tmp"
    _write(scratch, quantize([]))
    int8_agree = _agree(scratch, classes, feeds)
    int8_bytes = os.path.getsize(scratch)
    kept = dict(keep)
    steps = [_step([], int8_agree, rows, int8_bytes)]

    def attempt(candidate: dict[str, list[str]]) -> int:
        _write(path, quantize(list(candidate)))
        agree = _agree(path, classes, feeds)
        steps.append(_step(_layers(candidate), agree, rows, os.path.getsize(path)))
        return agree

    agree = attempt(kept) if kept else int8_agree
    if not kept:
        shutil.copyfile(scratch, path)
    if target is not None and not reached_target(agree, rows, target):
        ranked = [(tensor, layers) for tensor, layers in ranking(scratch) if tensor not in kept]
        tried: dict[int, int] = {}  # first layers of ranked kept float -> rows agreeing

        def reaches(count: int) -> bool:
            tried[count] = attempt({**keep, **dict(ranked[:count])})
            return reached_target(tried[count], rows, target)

        found = search_prefix(len(ranked), reaches, MAX_STEPS - len(steps) + 1)
        count = found if found is not None else max(tried, key=lambda n: (tried[n], -n), default=0)
        kept = {**keep, **dict(ranked[:count])}
        agree = tried.get(count, agree)
        if count and steps[-1]["kept_float"] != _layers(kept):  # (the file of the last try is another)
            _write(path, quantize(list(kept)))
    try:
        rounds = latency_rounds({"float32": float_path, "int8": scratch, "selective": path}, rounds=3,
                              runs=max(1, latency_runs // 3))
        latency = latency_medians(rounds)
    finally:
        os.remove(scratch)
    share = (lambda k: k / rows if rows else 1.0)
    return SelectiveQuantization(target=target, samples=len(feeds), kept_float=_layers(kept), tensors=list(kept),
                                 agreement=share(agree), agreement_int8=share(int8_agree),
                                 bytes=os.path.getsize(path), bytes_int8=int8_bytes,
                                 bytes_float=os.path.getsize(float_path), latency_ms=latency, steps=steps,
                                 float_ops=float_ops(path), rows=rows,
                                 agreement_bound=agreement_lower_bound(agree, rows),
                                 agreement_bound_int8=agreement_lower_bound(int8_agree, rows))


def _step(kept: list[str], agree: int, rows: int, size: int) -> dict:
    """One file tried: its kept layers, agreement (share, rows agreeing, lower bound) and size."""
    return {"kept_float": kept, "agreement": agree / rows if rows else 1.0, "agree": agree, "rows": rows,
            "agreement_bound": agreement_lower_bound(agree, rows), "bytes": size}


def search_prefix(total: int, reaches: Callable[[int], bool], budget: int = MAX_STEPS) -> Optional[int]:
    """A number of first ranked layers (1..``total``) whose file ``reaches`` the target, found in at
    most ``budget`` tries: 1, 2, 4, ... (``total`` the last) until one reaches, then bisection
    between the last count that fell short and the first that reached. None: no try reached.
    The agreement need not grow with every layer kept float (each one changes the rounding
    downstream), so the count found reaches, and the one below it that was tried does not; a
    smaller count elsewhere may reach too."""
    low, high, count = 0, None, 1
    while high is None and budget > 0 and count <= total:
        budget -= 1
        if reaches(count):
            high = count
        else:
            low = count
            count = total + 1 if count == total else min(2 * count, total)
    while high is not None and high - low > 1 and budget > 0:
        budget -= 1
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return high


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
