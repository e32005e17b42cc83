"""Calibration data for full-integer TFLite files, and the per-layer quantization check.

Calibration samples (``CompileResult.export_tflite(quantize="int8", calibration=...)``):
an iterable -- or a callable returning one -- whose items are each one set of model inputs:

* a tuple/list of arrays (numpy or torch), one per model input, in PyTorch's layout, as given
  to ``compile`` (a lone array for a one-input model);
* a dict ``{input name: array}`` in the *exported* model's layout (what ``keras_model`` and the
  TFLite signature take, e.g. NHWC for ``input_layouts="channels_last"``).

Shapes must be the example's (the model's batch size included). ``load_npz`` reads the CLI's
``--calibration FILE.npz``: one array per input name (``np.savez(f, x=...)``; ``arr_0``, ``arr_1``
... by position also work) whose first axis counts samples, each sample of the example's shape
in PyTorch's layout (a stack along the batch axis also works when the model's batch is 1).

The per-layer check (``layer_errors``) runs the float and the int8 TFLite files on held-out
inputs with the LiteRT interpreter (``experimental_preserve_all_tensors``, no delegates) and
compares every quantized activation of the int8 file, dequantized, with the float file's
tensor of the same name (both files come from one SavedModel, so names match). Per tensor:
``rel_error`` = RMS(int8 - float) / RMS(float) over all held-out inputs. A layer's error
*jumps* when its ``rel_error`` is at least ``jump_factor`` times the largest ``rel_error`` among
its inputs and exceeds theirs by ``min_jump``: that is where int8 adds error, rather than
carrying it from upstream. TensorFlow's QuantizationDebugger would give per-op errors with
float inputs, but it runs only on TensorFlow's own interpreter; this check uses LiteRT, the
runtime the files are deployed with, and shows the error as it accumulates on device.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import attrs
import numpy as np

from .file import TFLiteTensor, dequantize, read_tflite
from .runtime import interpreter, quantized_feed
from .sources import SourceMap

__all__ = ["LayerError", "QuantizationReport", "calibration_feeds", "layer_errors", "load_npz"]


@attrs.define
class LayerError:
    """One quantized activation of the int8 file against the float file's."""

    tensor: str  # TFLite tensor name
    op: str  # the TFLite op writing it (fused ops included: CONV_2D with its ReLU)
    layers: list[str]  # the Keras layers (IR value names) fused into it, the result's first
    ir_op: str
    source: str  # "module 'layer1.0.conv1' (Conv2d), resnet.py:92"
    dtype: str
    scale: float
    zero_point: int
    rmse: float
    max_abs_error: float
    rms_reference: float
    rel_error: float  # rmse / rms_reference
    input_rel_error: float  # the largest rel_error among the op's (activation) inputs
    jump: bool = False

    @property
    def steps(self) -> float:
        """The RMS error in quantization steps of this tensor."""
        return self.rmse / self.scale if self.scale else float("nan")


@attrs.define
class QuantizationReport:
    path: str
    float_path: str
    samples: int  # held-out inputs compared
    io_dtype: str
    layers: list[LayerError] = attrs.field(factory=list)  # every quantized activation, in execution order
    unmatched: list[str] = attrs.field(factory=list)  # quantized tensors without a float counterpart
    output_rel_error: Optional[float] = None  # of the model outputs, int8 vs float file

    @property
    def jumps(self) -> list[LayerError]:
        return [e for e in self.layers if e.jump]

    def table(self, rows: Optional[list[LayerError]] = None) -> str:
        rows = self.layers if rows is None else rows
        lines = [f"  {'layer':<26} {'TFLite op':<18} {'source':<34} {'rel err':>8} {'in err':>8} {'steps':>6}"]
        for e in rows:
            lines.append(f"  {_cut(e.layers[0] if e.layers else e.tensor, 26):<26} {_cut(e.op, 18):<18} "
                         f"{_cut(e.source, 34):<34} {e.rel_error:>8.2%} {e.input_rel_error:>8.2%} "
                         f"{e.steps:>6.2f}" + ("  <- jump" if e.jump else ""))
        return "\n".join(lines)

    def summary(self) -> str:
        lines = [f"  int8 per-layer check ({self.samples} held-out input(s), {len(self.layers)} quantized tensors, "
                 f"I/O {self.io_dtype}): output rel err vs float "
                 + (f"{self.output_rel_error:.2%}" if self.output_rel_error is not None else "n/a")]
        jumps = sorted(self.jumps, key=lambda e: e.rel_error - e.input_rel_error, reverse=True)
        if jumps:
            lines.append(f"  where int8 adds error ({len(jumps)} layer(s) jump; report.quantization.table() lists all):")
            lines.append(self.table(jumps[:10]))
        elif self.layers:
            top = sorted(self.layers, key=lambda e: e.rel_error - e.input_rel_error, reverse=True)[:5]
            lines.append("  no layer's error jumps; the largest increases (report.quantization.table() lists all):")
            lines.append(self.table(top))
        if self.unmatched:
            lines.append(f"  {len(self.unmatched)} quantized tensor(s) have no float counterpart: "
                         + ", ".join(self.unmatched[:5]))
        return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ----------------------------------------------------------------------------- calibration data


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def calibration_feeds(samples: Any, input_names: Sequence[str], torch_shapes: Sequence[tuple],
                      to_model_layout: Callable[[list[np.ndarray]], dict[str, np.ndarray]],
                      model_shapes: Sequence[tuple]) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """The representative dataset for the converter: a callable yielding ``{name: float32 array}``
    in the exported layout, checked against the model's shapes (see the module docstring)."""

    def feeds() -> Iterator[dict[str, np.ndarray]]:
        source = samples() if callable(samples) else samples
        count = 0
        for k, sample in enumerate(source):
            count += 1
            yield _feed(sample, k, input_names, torch_shapes, to_model_layout, model_shapes)
        if count == 0:
            raise ValueError("the calibration data yielded no sample")

    return feeds


def _feed(sample: Any, k: int, names: Sequence[str], torch_shapes: Sequence[tuple],
          to_model_layout: Callable, model_shapes: Sequence[tuple]) -> dict[str, np.ndarray]:
    if isinstance(sample, dict):
        missing = [n for n in names if n not in sample]
        if missing:
            raise ValueError(f"calibration sample {k} lacks input(s) {missing} (has {sorted(sample)})")
        feed = {n: _as_array(sample[n]).astype(np.float32) for n in names}
        for n, shape in zip(names, model_shapes):
            if feed[n].shape != tuple(shape):
                raise ValueError(f"calibration sample {k}: input {n!r} has shape {feed[n].shape}; a dict sample is in "
                                 f"the exported model's layout, shape {tuple(shape)}")
        return feed
    arrays = [_as_array(x) for x in (sample if isinstance(sample, (tuple, list)) else (sample,))]
    if len(arrays) != len(names):
        raise ValueError(f"calibration sample {k} has {len(arrays)} array(s), the model takes {len(names)} "
                         f"({', '.join(names)})")
    for n, x, shape, model_shape in zip(names, arrays, torch_shapes, model_shapes):
        if x.shape != tuple(shape):
            hint = (" (that is the exported model's layout: give a dict {name: array} for it)"
                    if x.shape == tuple(model_shape) else "")
            raise ValueError(f"calibration sample {k}: input {n!r} has shape {x.shape}, expected PyTorch's "
                             f"{tuple(shape)}{hint}")
    return {n: v.astype(np.float32) for n, v in to_model_layout([a.astype(np.float32) for a in arrays]).items()}


def load_npz(path: str, input_names: Sequence[str], torch_shapes: Sequence[tuple]) -> list[tuple[np.ndarray, ...]]:
    """Samples (tuples in PyTorch layout) from an ``.npz`` file: see the module docstring."""
    data = np.load(path)
    per_input = []
    for i, (name, shape) in enumerate(zip(input_names, torch_shapes)):
        key = name if name in data.files else f"arr_{i}" if f"arr_{i}" in data.files else None
        if key is None:
            raise ValueError(f"{path} has no array {name!r} (nor arr_{i}); it has {data.files}")
        a = data[key]
        shape = tuple(shape)
        if a.shape[1:] == shape:
            samples = [a[j] for j in range(a.shape[0])]
        elif a.ndim == len(shape) and a.shape[1:] == shape[1:] and a.shape[0] % shape[0] == 0:
            samples = [a[j:j + shape[0]] for j in range(0, a.shape[0], shape[0])]
        else:
            dims = ", ".join(map(str, shape))
            raise ValueError(f"{path}: array {key!r} has shape {a.shape}; expected [samples, {dims}] (or samples "
                             f"stacked along the batch axis)")
        per_input.append(samples)
    counts = {len(s) for s in per_input}
    if len(counts) != 1:
        raise ValueError(f"{path}: the inputs have different sample counts {sorted(counts)}")
    return list(zip(*per_input))


# ----------------------------------------------------------------------------- per-layer check


def _interpreter(path: str):
    interp = interpreter(path, delegates=False, preserve_all_tensors=True)
    interp.allocate_tensors()
    return interp


def _run_all(interp, feed: dict[str, np.ndarray]) -> None:
    runner = interp.get_signature_runner("serving_default")
    runner(**quantized_feed(runner.get_input_details(), feed))


class _Stats:
    __slots__ = ("sq_err", "sq_ref", "max_err", "n")

    def __init__(self) -> None:
        self.sq_err = self.sq_ref = self.max_err = 0.0
        self.n = 0

    def add(self, got: np.ndarray, ref: np.ndarray) -> None:
        d = got - ref
        self.sq_err += float(np.sum(d * d))
        self.sq_ref += float(np.sum(ref * ref))
        self.max_err = max(self.max_err, float(np.max(np.abs(d))) if d.size else 0.0)
        self.n += d.size

    @property
    def rmse(self) -> float:
        return (self.sq_err / self.n) ** 0.5 if self.n else 0.0

    @property
    def rms_ref(self) -> float:
        return (self.sq_ref / self.n) ** 0.5 if self.n else 0.0

    @property
    def rel(self) -> float:
        return self.rmse / self.rms_ref if self.rms_ref > 0 else (0.0 if self.rmse == 0 else float("inf"))


def layer_errors(float_path: str, quant_path: str, feeds: Iterable[dict[str, np.ndarray]],
                 layer_nodes: Optional[dict] = None, output_nodes: Optional[dict] = None, io_dtype: str = "",
                 jump_factor: float = 2.0, min_jump: float = 0.02) -> QuantizationReport:
    """Compare every quantized activation of ``quant_path`` with ``float_path``'s on ``feeds``
    (``{input name: float array}`` in the exported layout); see the module docstring.
    layer_nodes / output_nodes locate tensors in the torch source (``sources.py``)."""
    qfile, ffile = read_tflite(quant_path), read_tflite(float_path)
    pairs, carried, unmatched = _pair_tensors(qfile, ffile)
    stats, out_stats, samples = _measure(quant_path, float_path, pairs, feeds)
    sources = SourceMap(qfile, layer_nodes, output_nodes)
    layers = []
    for op in qfile.main_ops():
        for t in op.outputs:
            if t not in pairs or t in carried:
                continue
            q, _ = pairs[t]
            s = stats[t]
            in_rel = max((stats[i].rel for i in op.inputs if i in stats), default=0.0)
            names, ir_op, source = sources.tensor(t)
            jump = s.rel >= jump_factor * in_rel and s.rel - in_rel >= min_jump
            layers.append(LayerError(q.name, op.name, names, ir_op, source, q.dtype, float(q.scale),
                                     int(q.zero_point), s.rmse, s.max_err, s.rms_ref, s.rel, in_rel, jump))
    return QuantizationReport(str(quant_path), str(float_path), samples, io_dtype, layers, unmatched,
                              out_stats.rel if out_stats.n else None)


Pairs = dict[int, tuple[TFLiteTensor, TFLiteTensor]]


def _pair_tensors(qfile, ffile) -> tuple[Pairs, Pairs, list[str]]:
    """Quantized activations paired with their float twins (by tensor name), the float/input
    tensors that only carry upstream error, and the quantized tensors without a twin."""
    float_by_name = {t.name: t for t in ffile.tensors[0]}
    qtensors = qfile.tensors[0]
    producers = {t: op for op in qfile.main_ops() for t in op.outputs}
    dequantized_by = {op.inputs[0]: op for op in qfile.main_ops() if op.name == "DEQUANTIZE"}
    pairs: Pairs = {}
    unmatched = []
    for op in qfile.main_ops():
        for t in op.outputs:
            q = qtensors[t]
            if not q.quantized or q.constant:
                continue
            f = float_by_name.get(q.name)
            if f is None and op.name == "QUANTIZE":  # float input quantized: compare with the float input
                f = float_by_name.get(qtensors[op.inputs[0]].name)
            if f is None and dequantized_by.get(t) is not None:  # a float output: named after its DEQUANTIZE
                f = float_by_name.get(qtensors[dequantized_by[t].outputs[0]].name)
            if f is None or tuple(f.shape) != tuple(q.shape):
                unmatched.append(q.name)
                continue
            pairs[t] = (q, f)
    # model inputs that arrive quantized (int8/uint8 I/O) carry the input rounding error, and
    # float tensors of ops left in float carry upstream error: both count as inputs' errors
    carried: Pairs = {}
    for t in qtensors:
        f = float_by_name.get(t.name)
        if t.constant or t.index in pairs or f is None or tuple(f.shape) != tuple(t.shape):
            continue
        if (t.quantized and t.index not in producers) or t.dtype == f.dtype == "float32":
            carried[t.index] = (t, f)
    pairs.update(carried)
    return pairs, carried, unmatched


def _measure(quant_path: str, float_path: str, pairs: Pairs, feeds: Iterable[dict[str, np.ndarray]]):
    """Run both files on every feed: per paired tensor and over the outputs, the error statistics."""
    stats = {t: _Stats() for t in pairs}
    out_stats = _Stats()
    qi, fi = _interpreter(quant_path), _interpreter(float_path)
    q_out = qi.get_signature_runner("serving_default").get_output_details()
    f_out = fi.get_signature_runner("serving_default").get_output_details()
    samples = 0
    for feed in feeds:
        samples += 1
        _run_all(qi, feed)
        _run_all(fi, feed)
        for t, (q, f) in pairs.items():
            stats[t].add(dequantize(qi.get_tensor(q.index), q), fi.get_tensor(f.index).astype(np.float64))
        for name, d in q_out.items():
            got = qi.get_tensor(d["index"])
            scale, zp = d["quantization"]
            got = (got.astype(np.float64) - zp) * scale if got.dtype.kind in "iu" and scale else got.astype(np.float64)
            out_stats.add(got, fi.get_tensor(f_out[name]["index"]).astype(np.float64))
    if samples == 0:
        raise ValueError("the per-layer quantization check got no held-out input")
    return stats, out_stats, samples
