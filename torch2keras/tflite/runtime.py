"""Run ``.tflite`` files in LiteRT: interpreters, signature runners, quantized feeds, and which
ops LiteRT's default XNNPACK delegate takes."""

from __future__ import annotations

import gc
import statistics
import time
from typing import Optional

import numpy as np

from ..backend_tflite.weight_quantization import BLOCKWISE_INT4_RUNTIMES
from .file import blockwise_tensors

__all__ = ["dequantize_array", "interpreter", "latency_medians", "latency_rounds", "quantize_array", "quantized_feed", "run_tflite", "tflite_runner",
           "tflite_signature_shapes", "xnnpack_delegated_ops"]


def interpreter(path: str, delegates: bool = True, num_threads: Optional[int] = None,
                preserve_all_tensors: bool = False, reference_kernels: bool = False):
    """A LiteRT interpreter of ``path`` (with LiteRT's default XNNPACK delegate unless
    ``delegates=False``: then LiteRT's optimized builtin kernels; ``reference_kernels``: its
    simple reference kernels, no delegate; ``preserve_all_tensors`` keeps every intermediate
    tensor readable). The reference kernels ignore the scales of int4 weights quantized in
    blocks: a file holding such weights raises a ``ValueError`` there."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {"experimental_preserve_all_tensors": True} if preserve_all_tensors else {}
    if reference_kernels:
        blocks = blockwise_tensors(str(path))
        if blocks:
            raise ValueError(f"{path} holds {len(blocks)} weights in int4 blocks ({blocks[0]}, ...) that LiteRT's "
                             f"reference kernels compute wrong (they ignore the block scales): "
                             f"{BLOCKWISE_INT4_RUNTIMES}")
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    elif not delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if num_threads:
        kwargs["num_threads"] = num_threads
    return Interpreter(model_path=str(path), **kwargs)


def tflite_signature_shapes(path: str) -> dict[str, list[int]]:
    """The shape signature of every input and output of ``serving_default`` by name (-1 marks a
    run-time size; a model of static shapes has none)."""
    runner = interpreter(path, delegates=False).get_signature_runner("serving_default")
    details = {**runner.get_input_details(), **runner.get_output_details()}
    return {name: [int(d) for d in info["shape_signature"]] for name, info in details.items()}


def tflite_runner(path: str, delegates: bool = True, num_threads: Optional[int] = None):
    """The ``serving_default`` signature runner of a new LiteRT interpreter (a stateful model's
    state lives in the interpreter: it persists across the runner's calls)."""
    return interpreter(path, delegates=delegates, num_threads=num_threads).get_signature_runner("serving_default")


def run_tflite(path: str, inputs: dict[str, np.ndarray], num_threads: Optional[int] = None,
               delegates: bool = True) -> dict[str, np.ndarray]:
    """Run the ``serving_default`` signature with a new LiteRT interpreter (initial state; with its
    default XNNPACK delegate unless ``delegates=False``). Inputs of other sizes than the exported
    ones are resized to (dims -1 in the signature take any size). Float arrays fed to quantized
    (int8/uint8) inputs are quantized with the input's scale and zero point, and quantized outputs
    come back dequantized to float32."""
    runner = tflite_runner(path, delegates=delegates, num_threads=num_threads)
    outs = runner(**quantized_feed(runner.get_input_details(), inputs))
    details_out = runner.get_output_details()
    return {k: dequantize_array(np.asarray(v), details_out[k]) for k, v in outs.items()}


def quantized_feed(input_details: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``inputs`` for a signature runner: float arrays fed to a quantized (int8/uint8) input are
    quantized with its scale and zero point; the rest pass as they are."""
    feed = {}
    for name, x in inputs.items():
        x, d = np.asarray(x), input_details[name]
        quantized = np.dtype(d["dtype"]).kind in "iu" and x.dtype.kind == "f" and d["quantization"][0]
        feed[name] = quantize_array(x, d) if quantized else x
    return feed


def quantize_array(x: np.ndarray, detail: dict) -> np.ndarray:
    """Real values -> a quantized tensor's integers (round to nearest, saturate)."""
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(detail["dtype"])


def dequantize_array(q: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if q.dtype.kind not in "iu" or not scale:
        return q
    return ((q.astype(np.float64) - zero_point) * scale).astype(np.float32)


def xnnpack_delegated_ops(path: str) -> tuple[Optional[set[int]], str]:
    """(indices of the main graph's ops that LiteRT's default XNNPACK delegate takes, "") --
    measured by building an interpreter with default delegates -- or (None, why) when the
    file does not load here (Flex ops, a delegate that fails to prepare). An op belongs to a
    delegate partition when it lies between the DELEGATE node's input and output tensors."""
    try:
        interp = interpreter(path)
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        return None, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    details = interp._get_ops_details()
    plain = [d for d in details if d["op_name"] != "DELEGATE"]
    producer = {int(t): d["index"] for d in plain for t in d["outputs"]}
    by_index = {d["index"]: d for d in plain}
    taken: set[int] = set()
    for node in (d for d in details if d["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if t in boundary or t in seen or t not in producer:
                continue
            seen.add(t)
            op = producer[t]
            taken.add(op)
            stack.extend(int(x) for x in by_index[op]["inputs"] if x >= 0)
    return taken, ""


def latency_rounds(files: dict[str, str], rounds: int, runs: int, round_seconds: float = 0.0,
                   num_threads: int = 2) -> list[dict[str, float]]:
    """Per round, the median latency (ms) of each file's first signature over ``runs`` invocations
    (more for fast files: enough for ``round_seconds`` per file and round, at most 2000), with
    LiteRT's default delegate. Invocations interleave file by file (the order reversed every other
    invocation), so a change of load on the machine hits every file alike; every round loads the
    files afresh, the order of loading rotated (in one process the file loaded first ran a few
    percent slower than a copy of itself loaded next, whichever the file). Each row also holds
    ``"runs"``, the invocations per file."""
    names, result = list(files), []
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        runners = {}
        for k in order:
            interp = interpreter(files[k], num_threads=num_threads)
            runner = interp.get_signature_runner(next(iter(interp.get_signature_list())))
            feed = {n: np.random.default_rng(0).standard_normal(d["shape"]).astype(d["dtype"])
                    for n, d in runner.get_input_details().items()}
            runner(**feed)  # (warm-up)
            runners[k] = (runner, feed)
        if r == 0:
            start = time.perf_counter()
            for runner, feed in runners.values():
                runner(**feed)
            each = (time.perf_counter() - start) / len(runners)
            runs = max(runs, min(2000, int(round_seconds / max(each, 1e-6))))
        times: dict[str, list[float]] = {k: [] for k in names}
        for i in range(runs):
            for k in (order if i % 2 == 0 else order[::-1]):
                runner, feed = runners[k]
                start = time.perf_counter()
                runner(**feed)
                times[k].append((time.perf_counter() - start) * 1e3)
        result.append({k: statistics.median(times[k]) for k in names} | {"runs": runs})
        del runners
        gc.collect()
    return result


def latency_medians(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each file's median over the rounds of ``latency_rounds``."""
    return {k: statistics.median(row[k] for row in rows) for k in rows[0] if k != "runs"}
