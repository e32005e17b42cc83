"""Delegate readiness of a ``.tflite`` file: will it run whole on XNNPACK (CPU), the GPU
delegate and the Edge TPU, and if not, what to change.

Checks, read from the file itself (``backend_keras.tflite_file``):

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

from .backend_keras.tflite_file import read_tflite, xnnpack_delegated_ops
from .tflite_sources import SourceMap

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
OP_FIXES = {
    "all": {
        "WHILE": "a loop (GRU/LSTM layer or a scan) stays on the CPU; for short fixed sequences unroll it",
        "ARG_MAX": "take the argmax on the host from the model's scores (return the logits instead)",
        "ARG_MIN": "take the argmin on the host from the model's output",
        "TOPK_V2": "sort / take the top-k on the host from the model's output",
        "GATHER_ND": "replace advanced indexing with slices, or do it on the host",
        "CAST": "avoid integer/bool round trips inside the model (e.g. masks as float multiplications)",
        "GELU": "use nn.GELU(approximate='tanh') or another activation the target has",
    },
    "EdgeTPU": {
        "HARD_SWISH": "use ReLU / ReLU6 activations (hardswish has no Edge TPU kernel)",
        "BATCH_MATMUL": "only FULLY_CONNECTED with constant weights maps; activation x activation matmuls "
                        "(attention) stay on the CPU",
        "GATHER": "replace the gather with a slice or a one-hot matmul when the indices are fixed",
        "DEQUANTIZE": "float parts stay on the CPU: int8 I/O (io_dtype='int8') and full int8 quantization",
            },
    "XNNPACK": {},
    "GPU": {},
}
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
    info = read_tflite(path)
    sources = SourceMap(info, layer_nodes, output_nodes)
    main = [op for op in info.ops if op.subgraph == 0]
    runtime = [(s, t) for s, tensors in enumerate(info.tensors) for t in tensors if not t.constant]
    quantized = any(t.dtype in ("int8", "uint8") and t.quantized for _, t in runtime)

    def where_tensor(s: int, t) -> str:
        source = sources.source(t.index, s)
        return f"{_short(t.name)} {list(t.shape_signature)}" + (f" ({source})" if source else "")

    dynamic = [where_tensor(s, t) for s, t in runtime if t.dynamic]
    int64 = [where_tensor(s, t) for s, t in runtime if t.dtype == "int64"]
    findings: list[Finding] = []
    targets: dict = {}

    def flag(target: str, indices, why: str, fix) -> None:
        """One finding per op name among ``main[indices]``: how many, where, and ``fix(name)``."""
        for name, idx in _group(main, indices).items():
            findings.append(Finding(target, why, name, len(idx), sources.ops(idx), fix(name)))

    # XNNPACK: measured
    taken, why = xnnpack_delegated_ops(path)
    if taken is None:
        targets["XNNPACK"] = {"ops": len(main), "supported": 0, "ready": False, "measured": False}
        findings.append(Finding("XNNPACK", f"LiteRT here cannot load the file with its default delegates: {why}",
                                fix="see the Flex/custom ops above" if info.flex_ops or info.custom_ops else
                                "run without delegates (slow), and report the failing op"))
    else:
        left = [k for k, op in enumerate(main) if k not in taken]
        flag("XNNPACK", left, "not taken by XNNPACK: runs on LiteRT's built-in kernel (slower; XNNPACK's graph "
             "is split around it)", lambda name: _fix("XNNPACK", name))
        targets["XNNPACK"] = {"ops": len(main), "supported": len(main) - len(left), "ready": not left and not dynamic,
                              "measured": True}

    # GPU
    allowed_types = {"float32", "float16"} | ({"int8", "uint8"} if quantized else set())
    gpu_bad: set[int] = set()
    outside = [k for k, op in enumerate(main) if op.custom or op.name not in GPU_OPS]
    flag("GPU", outside, "outside the GPU delegate's op list", lambda name: _fix("GPU", name))
    gpu_bad.update(outside)
    rank5 = [k for k, op in enumerate(main) if k not in gpu_bad
             and any(len(info.tensor(t).shape) >= 5 for t in (*op.inputs, *op.outputs) if t >= 0)]
    flag("GPU", rank5, "has a tensor of rank >= 5 (the GPU delegate takes up to 4-D)",
         lambda name: "keep activations 4-D or less (merge axes with reshapes)")
    gpu_bad.update(rank5)
    typed = [k for k, op in enumerate(main) if k not in gpu_bad and op.name not in ("CAST", "QUANTIZE", "DEQUANTIZE")
             and any(not info.tensor(t).constant and info.tensor(t).dtype not in allowed_types
                     and not (info.tensor(t).dtype == "bool" and t in op.outputs)
                     for t in (*op.inputs, *op.outputs) if t >= 0)]
    for name, idx in _group(main, typed).items():
        kinds = sorted({info.tensor(t).dtype for i in idx for t in (*main[i].inputs, *main[i].outputs)
                        if t >= 0 and not info.tensor(t).constant and info.tensor(t).dtype not in allowed_types})
        findings.append(Finding("GPU", f"computes on {'/'.join(kinds)} tensors (the GPU delegate takes float)", name,
                                len(idx), sources.ops(idx),
                                "keep integer work (indices, masks) out of the model body, or in float"))
    gpu_bad.update(typed)
    targets["GPU"] = {"ops": len(main), "supported": len(main) - len(gpu_bad), "measured": False,
                      "ready": not gpu_bad and not dynamic and not int64}

    # Edge TPU
    tpu_bad: set[int] = set()
    float_ops = [k for k, op in enumerate(main) if op.name not in ("QUANTIZE", "DEQUANTIZE")
                 and any(not info.tensor(t).constant and info.tensor(t).dtype in ("float32", "float16")
                         for t in (*op.inputs, *op.outputs) if t >= 0)]
    if float_ops:
        findings.append(Finding("EdgeTPU", f"{len(float_ops)} op(s) compute in float: the Edge TPU runs only fully "
                                "int8-quantized models", "", len(float_ops), [],
                                "export_tflite(..., quantize='int8', calibration=...)"))
    outside = [k for k, op in enumerate(main) if op.custom or op.name not in EDGETPU_OPS]
    flag("EdgeTPU", outside, "outside the Edge TPU's op list", lambda name: _fix("EdgeTPU", name))
    tpu_bad.update(outside)
    wide = [k for k, op in enumerate(main) if k not in tpu_bad
            and any(len(info.tensor(t).shape) > 3 and any(d > 1 for d in info.tensor(t).shape[:-3])
                    for t in op.outputs if t >= 0)]
    flag("EdgeTPU", wide, "has an output with more than 3 dimensions larger than 1",
         lambda name: "batch 1 and at most 3 non-1 dimensions (innermost)")
    tpu_bad.update(wide)
    if info.num_subgraphs > 1:
        findings.append(Finding("EdgeTPU", f"{info.num_subgraphs} subgraphs (loops / conditionals): the Edge TPU "
                                "compiler maps one subgraph", "", info.num_subgraphs - 1, [],
                                OP_FIXES["all"]["WHILE"]))
    targets["EdgeTPU"] = {"ops": len(main), "supported": len(main) - len(tpu_bad | set(float_ops)),
                          "measured": False, "ready": not tpu_bad and not float_ops and not dynamic and not int64
                          and info.num_subgraphs == 1}
    return DelegateReport(str(path), len(main), not dynamic, dynamic, int64, targets, findings)


def _group(ops, indices) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i in indices:
        groups[ops[i].name].append(i)
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def _short(name: str) -> str:
    first = name.split(";")[0]
    return first if len(first) <= 60 else "…" + first[-59:]
