"""Billion-parameter language models: memory and time of ``generative.export_tflite``, and
generation with the file in LiteRT against PyTorch.

A Llama of the chosen size (Hugging Face ``LlamaForCausalLM``, random seeded weights, float32;
``--size 1.1b`` is TinyLlama-1.1B's shape) is written as one ``.tflite`` file with prefill and
decode signatures over a static key/value cache. Reported: the process's peak resident memory
(RSS) and seconds per stage (``SignaturesResult.memory`` / ``.timings``), the file's size, the
ratio of the conversion's peak RSS to the float32 weights' bytes, and each signature's error
against PyTorch. Then the PyTorch model generates ``--new-tokens`` greedy tokens, is freed, and
the file generates them in LiteRT (``generative.generate``; LiteRT's own kernels reading the
mapped file, or with ``--xnnpack`` the XNNPACK delegate, which packs a copy of the weights per
signature): the tokens must match. Writes benchmarks/results/big_model.json (one entry per size and
quantization mode, earlier entries kept).

    python benchmarks/big_model.py [--size 0.5b|1.1b|3b] [--quantize fp16|dynamic_int8|dynamic_int4|dynamic_int4_b32]
                                   [--max-context 256] [--prefill-len 32] [--new-tokens 16] [--xnnpack]

``--quantize`` is passed to ``export_tflite`` as it is: a mode the writer does not know fails
with its own error. With a weight quantization mode PyTorch generates with the weights the file
computes with (each quantized weight replaced, in place, by its dequantized value). The 3B size needs about 28 GB (2.1 x its 13.7 GB of float32 weights: the
LiteRT check maps the file next to the model): on a smaller machine measure 0.5B and 1.1B and
extrapolate.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from compat import import_torchvision  # noqa: E402  (transformers imports torchvision)

import_torchvision()
import transformers  # noqa: E402

from torch2keras import generative  # noqa: E402
from torch2keras.backend_tflite.weight_quantization import resolve_quantize  # noqa: E402
from torch2keras.ir import NumericalMismatchError  # noqa: E402
from torch2keras.memory import PeakRSS, current_rss  # noqa: E402

GB = 1e9
SIZES = {  # LlamaConfig arguments; 1.1b: TinyLlama-1.1B, 3b: OpenLLaMA-3B
    "0.5b": dict(hidden_size=1536, intermediate_size=4096, num_hidden_layers=16, num_attention_heads=24,
                 num_key_value_heads=4),
    "1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                 num_key_value_heads=4),
    "3b": dict(hidden_size=3200, intermediate_size=8640, num_hidden_layers=26, num_attention_heads=32,
               num_key_value_heads=32),
}
GOAL_RATIO = 2.5  # peak RSS during conversion / float32 weight bytes


def build_model(size: str, seed: int = 0) -> torch.nn.Module:
    """A float32 Llama of ``size`` with random weights drawn from ``seed`` (linear and embedding
    weights N(0, 0.02), norms 1 + N(0, 0.1))."""
    config = transformers.LlamaConfig(vocab_size=32000, max_position_embeddings=2048, **SIZES[size])
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).to(torch.float32).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.normal_(0.0, 0.02, generator=generator)
    return model


def torch_greedy(model: torch.nn.Module, prompt: list[int], new_tokens: int) -> list[int]:
    """``new_tokens`` greedy tokens of PyTorch after ``prompt``."""
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, do_sample=False, min_new_tokens=new_tokens,
                             pad_token_id=0, eos_token_id=None)
    return [int(t) for t in out[0, len(prompt):]]


def dequantize_in_place(model: torch.nn.Module, quantize: Optional[str]) -> int:
    """With a weight quantization mode: each linear and embedding weight the file quantizes
    replaced, in place, by the values the file computes with (PyTorch then generates what the
    file should; no second copy of the model). The number of weights replaced."""
    _, mode = resolve_quantize(quantize)
    if mode is None:
        return 0
    replaced = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)) and \
                    mode.quantizes(f"model.{name}", module.weight.numel()):  # (the step's path: model.<name>)
                module.weight.copy_(torch.from_numpy(mode.quantize(module.weight.detach().numpy()).dequantized()))
                replaced += 1
    return replaced


def convert(model: torch.nn.Module, path: str, args: argparse.Namespace) -> dict:
    """Write the file; what the conversion measured."""
    atol = args.atol if args.atol is not None else 1e-3 if args.quantize is None else 5e-2
    started = time.perf_counter()
    try:
        export = generative.export_tflite(model, path, max_context=args.max_context, prefill_len=args.prefill_len,
                                          quantize=args.quantize, atol=atol, rtol=atol,
                                          progress=lambda message: print(f"  {message}", flush=True))
        result, mismatch = export.result, None
    except NumericalMismatchError as e:  # recorded: the generation below says how much it matters
        result, mismatch = e.result, str(e)[:2000]
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "bytes": result.bytes,
            "stages": {stage: {"seconds": round(result.timings[stage], 2),
                               "peak_rss_gb": round(result.memory[stage] / GB, 3),
                               "start_rss_gb": round(result.memory_start[stage] / GB, 3)} for stage in result.timings},
            "peak_rss_gb": round(max(result.memory.values()) / GB, 3),
            "atol": atol, "max_abs_errors": {k: float(v) for k, v in result.max_abs_errors.items()},
            "mismatch": mismatch}


def litert_greedy(path: str, prompt: list[int], new_tokens: int, xnnpack: bool) -> tuple[list[int], dict]:
    """The file's greedy tokens in LiteRT; its load and generation seconds and peak RSS."""
    with PeakRSS() as span:
        started = time.perf_counter()
        runner = generative.LiteRTCausalLM(path, delegates=xnnpack)
        loaded = time.perf_counter()
        ids = generative.generate(runner, prompt, new_tokens)
        done = time.perf_counter()
    return [int(t) for t in ids[len(prompt):]], {"xnnpack": xnnpack, "load_seconds": round(loaded - started, 1),
                                                "generate_seconds": round(done - loaded, 1),
                                                "start_rss_gb": round(span.start / GB, 3),
                                                "peak_rss_gb": round(span.peak / GB, 3)}


def measure(args: argparse.Namespace, path: str) -> dict:
    baseline = current_rss()
    with PeakRSS() as built_span:
        started = time.perf_counter()
        model = build_model(args.size)
        build_seconds = time.perf_counter() - started
    weights = sum(p.numel() * 4 for p in model.parameters())
    print(f"{args.size}: {weights / 4 / 1e9:.2f} B parameters, {weights / GB:.2f} GB float32, built in "
          f"{build_seconds:.0f} s ({current_rss() / GB:.1f} GB resident)", flush=True)
    prompt = [int(t) for t in np.random.default_rng(0).integers(1, 32000, args.prompt_len)]
    converted = convert(model, path, args)
    dequantized = dequantize_in_place(model, args.quantize)  # (after writing: the file's weights)
    expected = torch_greedy(model, prompt, args.new_tokens)
    del model
    gc.collect()
    got, run = litert_greedy(path, prompt, args.new_tokens, args.xnnpack)
    matched = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), len(expected))
    return {"size": args.size, "quantize": args.quantize, "parameters": weights // 4, "float32_weight_gb": round(weights / GB, 3),
            "max_context": args.max_context, "prefill_len": args.prefill_len,
            "load_average_1min": round(os.getloadavg()[0], 1),  # (others' work on the machine slows every stage)
            "baseline_rss_gb": round(baseline / GB, 3), "model_build": {"seconds": round(build_seconds, 1),
                                                                         "peak_rss_gb": round(built_span.peak / GB, 3)},
            "conversion": converted, "file_gb": round(converted["bytes"] / GB, 3),
            "peak_rss_over_weights": round(converted["peak_rss_gb"] * GB / weights, 2), "goal_ratio": GOAL_RATIO,
            "generation": {"prompt_len": len(prompt), "new_tokens": args.new_tokens,
                           "torch_weights": f"dequantized ({dequantized} layers)" if dequantized else "float32",
                           "torch": expected, "litert": got,
                           "matching_prefix": matched, "match": got == expected, **run}}


def report(r: dict) -> str:
    c = r["conversion"]
    lines = [f"{r['size']} ({r['parameters'] / 1e9:.2f} B parameters, {r['float32_weight_gb']:.2f} GB float32), "
             f"quantize={r['quantize']}: {c['seconds']:.0f} s, file {r['file_gb']:.2f} GB, peak RSS "
             f"{c['peak_rss_gb']:.2f} GB = {r['peak_rss_over_weights']:.2f} x the weights (goal <= {GOAL_RATIO})",
             f"  {'stage':<20}{'seconds':>9}{'peak RSS GB':>13}{'at start GB':>13}"]
    for stage, s in c["stages"].items():
        lines.append(f"  {stage:<20}{s['seconds']:>9.1f}{s['peak_rss_gb']:>13.2f}{s['start_rss_gb']:>13.2f}")
    g = r["generation"]
    lines.append(f"  errors vs PyTorch: {c['max_abs_errors']} ({'above' if c['mismatch'] else 'within'} "
                 f"atol = rtol = {c['atol']})")
    lines.append(f"  generation: {g['new_tokens']} greedy tokens {'match' if g['match'] else 'differ'} "
                 f"(first {g['matching_prefix']} equal); LiteRT load {g['load_seconds']} s, generate "
                 f"{g['generate_seconds']} s{' (XNNPACK)' if g['xnnpack'] else ''}, RSS {g['start_rss_gb']:.2f} GB before, peak {g['peak_rss_gb']:.2f} GB")
    return "\n".join(lines)


def save(result: dict, out: str) -> None:
    """Add ``result`` to ``out`` (keyed by size and quantization, other entries kept)."""
    data = {}
    if os.path.exists(out):
        with open(out) as f:
            data = json.load(f)
    data.setdefault("goal", {"peak_rss_over_float32_weights": GOAL_RATIO, "conversion_seconds": 600})
    data.setdefault("results", {})[f"{result['size']}/{result['quantize'] or 'float32'}"] = result
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(data, f, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="1.1b")
    parser.add_argument("--quantize", default=None, help="passed to export_tflite (fp16; int8/int4 where supported)")
    parser.add_argument("--max-context", type=int, default=256)
    parser.add_argument("--prefill-len", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--atol", type=float, default=None,
                        help="the signatures' check against PyTorch, also rtol (default 1e-3 float32, 5e-2 quantized)")
    parser.add_argument("--xnnpack", action="store_true",
                        help="generate with LiteRT's XNNPACK delegate (faster prefill, ~3x the file in memory)")
    parser.add_argument("--dir", default=None, help="where the .tflite is written (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the .tflite file")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "big_model.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(args.dir if args.keep and args.dir else tmp, f"llama_{args.size}.tflite")
        result = measure(args, path)
    print(report(result))
    save(result, args.out)


if __name__ == "__main__":
    main()
