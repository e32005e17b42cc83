"""Delegate readiness of a ``.tflite`` file: will it run whole on XNNPACK (CPU), the GPU
delegate and the Edge TPU, and if not, what to change.

Checks, read from the file itself (``tflite/file.py``):

* static shapes: a tensor whose shape signature holds -1 has a dimension known only at run
  time; the GPU delegate and the Edge TPU need every shape fixed, XNNPACK re-plans on resize;
* XNNPACK: *measured* -- LiteRT applies its XNNPACK delegate by default, so the interpreter
  here tells which ops it takes; the others run on LiteRT's reference kernels;
* GPU delegate: ops outside its op list (``GPU_OPS``), tensors of rank 5 or more, and runtime
  tensors that are not float (int8/uint8 allowed in quantized files);
* Edge TPU: the file must be fully int8 quantized, ops outside its op list (``EDGETPU_OPS``),
  one subgraph only (loops become WHILE subgraphs), at most 3 dimensions larger than 1
  (innermost);
* int64 tensors: no delegate has int64 kernels.

Each finding names the TFLite op, the torch source lines it came from (through the Keras
layer names in the TFLite tensor names and ``CompileResult.layer_nodes``) and a fix. The op
lists are data: what each delegate's own documentation / source accepts; an op in the list may
still be refused for its parameters (the delegate then logs why at run time).
"""

from __future__ import annotations

import collections
from typing import Optional

import attrs

from ..ir.ops import SCHEMAS
from .file import read_tflite
from .runtime import xnnpack_delegated_ops
from .sources import SourceMap

__all__ = ["EDGETPU_OPS", "GPU_OPS", "DelegateReport", "Finding", "analyze"]

# The LiteRT GPU delegate's ops: the builtin codes for which
# google-ai-edge/LiteRT tflite/delegates/gpu/common/model_builder.cc (NewOperationParser) has a
# parser. QUANTIZE/DEQUANTIZE are taken in quantized models (and fp16 weight DEQUANTIZE is folded).
GPU_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST", "CONCATENATION", "CONV_2D", "COS", "CUMSUM",
    "DENSIFY", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE", "DIV", "EQUAL", "ELU", "EXP", "FLOOR",
    "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER", "GELU", "GREATER", "GREATER_EQUAL", "HARD_SWISH",
    "LESS", "LESS_EQUAL", "LOGISTIC", "LOG", "LOGICAL_AND", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM",
    "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "ONE_HOT", "PACK", "PAD", "PADV2", "POW", "REDUCE_MAX", "REDUCE_MIN",
    "REDUCE_PROD", "QUANTIZE", "RELU", "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "RESHAPE",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SELECT", "SELECT_V2", "SIGN", "SIN", "SLICE", "SOFTMAX",
    "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB", "SUM",
    "TANH", "TILE", "TRANSPOSE", "TRANSPOSE_CONV", "UNPACK",
})

# The Edge TPU's ops: Coral's table "Supported operations" in
# https://coral.ai/docs/edgetpu/models-intro/#supported-operations (compiler 16 / runtime 14),
# in TFLite builtin names. Several have limits there (no batch-axis reductions/pads, Softmax on
# 1-D inputs of <= 16000 elements, strided slices with stride 1, ...).
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS", "FULLY_CONNECTED",
    "L2_NORMALIZATION", "LOGISTIC", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
    "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX",
    "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH",
    "TRANSPOSE", "TRANSPOSE_CONV",
})

# what to change, per target and op (the default: the op runs on the CPU and splits the delegated graph)
# what to change per delegate target when TFLite ops stay on the CPU: the op schemas' delegate
# notes (``ir/ops``), plus the notes on ops no IR op makes (quantization's own)
_FILE_NOTES = {"EdgeTPU": {"DEQUANTIZE": "float parts stay on the CPU: int8 I/O (io_dtype='int8') and full int8 "
                                         "quantization"}}


def _op_fixes() -> dict[str, dict[str, str]]:
    fixes: dict[str, dict[str, str]] = {"all": {}, "XNNPACK": {}, "GPU": {}, "EdgeTPU": {}}
    for s in SCHEMAS.values():
        for target, notes in s.delegate_notes.items():
            fixes.setdefault(target, {}).update(notes)
    for target, notes in _FILE_NOTES.items():
        fixes[target].update(notes)
    return fixes


OP_FIXES = _op_fixes()
_DEFAULT_FIX = {
    "XNNPACK": "",  # correct on LiteRT's built-in kernel, only slower: nothing has to change
    "GPU": "runs on the CPU and splits the GPU graph (a CPU/GPU round trip); replace it with ops the GPU delegate has",
    "EdgeTPU": "runs on the CPU; the Edge TPU compiler maps the ops before the first unsupported one",
}


def _fix(target: str, op: str) -> str:
    return OP_FIXES[target].get(op) or OP_FIXES["all"].get(op) or _DEFAULT_FIX[target]


@attrs.define
class Finding:
    target: str  # "all", "XNNPACK", "GPU", "EdgeTPU"
    problem: str
    op: str = ""  # TFLite op or tensor dtype
    count: int = 0
    where: list[str] = attrs.field(factory=list)  # torch source locations
    fix: str = ""

    def line(self) -> str:
        what = f"{self.op} x{self.count}: " if self.op else ""
        where = f" [{'; '.join(self.where[:3])}{' ...' if len(self.where) > 3 else ''}]" if self.where else ""
        return f"{what}{self.problem}{where}" + (f" -> {self.fix}" if self.fix else "")


@attrs.define
class DelegateReport:
    path: str
    ops: int
    static_shapes: bool
    dynamic_tensors: list[str] = attrs.field(factory=list)  # "name [-1,3,224,224]"
    int64_tensors: list[str] = attrs.field(factory=list)
    targets: dict = attrs.field(factory=dict)  # name -> {"ops": n, "supported": k, "ready": bool, "measured": bool}
    findings: list[Finding] = attrs.field(factory=list)

    def unsupported_ops(self, target: str) -> set[str]:
        return {f.op for f in self.findings if f.target == target and f.problem.startswith("outside")}

    def summary(self) -> str:
        lines = [f"  delegate readiness of {self.path} ({self.ops} ops):"]
        if self.static_shapes:
            lines.append("    static shapes: yes")
        else:
            shown = ", ".join(self.dynamic_tensors[:3]) + (" ..." if len(self.dynamic_tensors) > 3 else "")
            lines.append(f"    static shapes: NO, {len(self.dynamic_tensors)} tensor(s) with run-time dimensions "
                         f"({shown}) -> {_DYNAMIC_FIX}")
        if self.int64_tensors:
            lines.append(f"    int64 tensors: {len(self.int64_tensors)} ({', '.join(self.int64_tensors[:3])}) -> "
                         f"{_INT64_FIX}")
        for target, t in self.targets.items():
            how = "measured here" if t.get("measured") else "from its op list"
            state = "ready" if t["ready"] else "NOT ready"
            lines.append(f"    {target}: {state}, {t['supported']}/{t['ops']} ops ({how})")
            for f in self.findings:
                if f.target == target:
                    lines.append(f"      - {f.line()}")
        return "\n".join(lines)


_DYNAMIC_FIX = ("convert with a fixed-size example (static shapes), or resize the inputs to fixed sizes "
                "(interpreter.resize_tensor_input) before applying the delegate")
_INT64_FIX = ("no delegate has int64 kernels: int64 comes from torch's default integer dtype (argmax, arange, "
              "indices); cast to int32 in the model (.int()) or move the integer part to the host")


def analyze(path: str, layer_nodes: Optional[dict] = None, output_nodes: Optional[dict] = None) -> DelegateReport:
    """The readiness report of ``path``; ``layer_nodes`` / ``output_nodes`` (``CompileResult``'s)
    locate the findings in the torch source."""
    a = _Analysis(path, layer_nodes, output_nodes)
    a.xnnpack()
    a.gpu()
    a.edgetpu()
    return DelegateReport(str(path), len(a.main), not a.dynamic, a.dynamic, a.int64, a.targets, a.findings)


class _Analysis:
    """One file's findings, target by target."""

    def __init__(self, path: str, layer_nodes: Optional[dict], output_nodes: Optional[dict]) -> None:
        self.path = path
        self.info = info = read_tflite(path)
        self.sources = SourceMap(info, layer_nodes, output_nodes)
        self.main = [op for op in info.ops if op.subgraph == 0]
        runtime = [(s, t) for s, tensors in enumerate(info.tensors) for t in tensors if not t.constant]
        self.quantized = any(t.dtype in ("int8", "uint8") and t.quantized for _, t in runtime)
        self.dynamic = [self._where_tensor(s, t) for s, t in runtime if t.dynamic]
        self.int64 = [self._where_tensor(s, t) for s, t in runtime if t.dtype == "int64"]
        self.findings: list[Finding] = []
        self.targets: dict = {}

    def _where_tensor(self, s: int, t) -> str:
        source = self.sources.source(t.index, s)
        return f"{_short(t.name)} {list(t.shape_signature)}" + (f" ({source})" if source else "")

    def _flag(self, target: str, indices, why: str, fix) -> None:
        """One finding per op name among ``main[indices]``: how many, where, and ``fix(name)``."""
        for name, idx in _group(self.main, indices).items():
            self.findings.append(Finding(target, why, name, len(idx), self.sources.ops(idx), fix(name)))

    def _tensors(self, op, outputs_only: bool = False):
        return [self.info.tensor(t) for t in (op.outputs if outputs_only else (*op.inputs, *op.outputs)) if t >= 0]

    def xnnpack(self) -> None:
        """Measured: which ops LiteRT's default XNNPACK delegate takes here."""
        main, info = self.main, self.info
        taken, why = xnnpack_delegated_ops(self.path)
        if taken is None:
            self.targets["XNNPACK"] = {"ops": len(main), "supported": 0, "ready": False, "measured": False}
            self.findings.append(Finding(
                "XNNPACK", f"LiteRT here cannot load the file with its default delegates: {why}",
                fix="see the Flex/custom ops above" if info.flex_ops or info.custom_ops else
                "run without delegates (slow), and report the failing op"))
            return
        left = [k for k, op in enumerate(main) if k not in taken]
        self._flag("XNNPACK", left, "not taken by XNNPACK: runs on LiteRT's built-in kernel (slower; XNNPACK's graph "
                   "is split around it)", lambda name: _fix("XNNPACK", name))
        self.targets["XNNPACK"] = {"ops": len(main), "supported": len(main) - len(left),
                                   "ready": not left and not self.dynamic, "measured": True}

    def gpu(self) -> None:
        """From the GPU delegate's op list: ops, ranks, tensor types."""
        main = self.main
        allowed = {"float32", "float16"} | ({"int8", "uint8"} if self.quantized else set())
        outside = [k for k, op in enumerate(main) if op.custom or op.name not in GPU_OPS]
        self._flag("GPU", outside, "outside the GPU delegate's op list", lambda name: _fix("GPU", name))
        bad = set(outside)
        rank5 = [k for k, op in enumerate(main) if k not in bad and any(len(t.shape) >= 5 for t in self._tensors(op))]
        self._flag("GPU", rank5, "has a tensor of rank >= 5 (the GPU delegate takes up to 4-D)",
                   lambda name: "keep activations 4-D or less (merge axes with reshapes)")
        bad.update(rank5)

        def off_type(op):
            outs = {id(t) for t in self._tensors(op, outputs_only=True)}
            return sorted({t.dtype for t in self._tensors(op) if not t.constant and t.dtype not in allowed
                           and not (t.dtype == "bool" and id(t) in outs)})

        typed = [k for k, op in enumerate(main) if k not in bad and op.name not in ("CAST", "QUANTIZE", "DEQUANTIZE")
                 and off_type(op)]
        for name, idx in _group(main, typed).items():
            kinds = sorted({d for i in idx for d in off_type(main[i])})
            self.findings.append(Finding("GPU", f"computes on {'/'.join(kinds)} tensors (the GPU delegate takes "
                                         "float)", name, len(idx), self.sources.ops(idx),
                                         "keep integer work (indices, masks) out of the model body, or in float"))
        bad.update(typed)
        self.targets["GPU"] = {"ops": len(main), "supported": len(main) - len(bad), "measured": False,
                               "ready": not bad and not self.dynamic and not self.int64}

    def edgetpu(self) -> None:
        """From the Edge TPU's op list: fully int8, its ops, shapes, one subgraph."""
        main, info = self.main, self.info
        float_ops = [k for k, op in enumerate(main) if op.name not in ("QUANTIZE", "DEQUANTIZE")
                     and any(not t.constant and t.dtype in ("float32", "float16") for t in self._tensors(op))]
        if float_ops:
            self.findings.append(Finding("EdgeTPU", f"{len(float_ops)} op(s) compute in float: the Edge TPU runs only "
                                         "fully int8-quantized models", "", len(float_ops), [],
                                         "export_tflite(..., quantize='int8', calibration=...)"))
        outside = [k for k, op in enumerate(main) if op.custom or op.name not in EDGETPU_OPS]
        self._flag("EdgeTPU", outside, "outside the Edge TPU's op list", lambda name: _fix("EdgeTPU", name))
        bad = set(outside)
        wide = [k for k, op in enumerate(main) if k not in bad and any(
            len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]) for t in self._tensors(op, outputs_only=True))]
        self._flag("EdgeTPU", wide, "has an output with more than 3 dimensions larger than 1",
                   lambda name: "batch 1 and at most 3 non-1 dimensions (innermost)")
        bad.update(wide)
        if info.num_subgraphs > 1:
            self.findings.append(Finding("EdgeTPU", f"{info.num_subgraphs} subgraphs (loops / conditionals): the Edge "
                                         "TPU compiler maps one subgraph", "", info.num_subgraphs - 1, [],
                                         OP_FIXES["all"]["WHILE"]))
        self.targets["EdgeTPU"] = {"ops": len(main), "supported": len(main) - len(bad | set(float_ops)),
                                   "measured": False, "ready": not bad and not float_ops and not self.dynamic
                                   and not self.int64 and info.num_subgraphs == 1}


def _group(ops, indices) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i in indices:
        groups[ops[i].name].append(i)
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def _short(name: str) -> str:
    first = name.split(";")[0]
    return first if len(first) <= 60 else "…" + first[-59:]
