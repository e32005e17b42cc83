"""Decode speed of a ``cache="state"`` file against the argument-cache file of the same model:
``generative.export_tflite(..., cache="state")`` keeps the key/value cache in variables of the
file (each signature reads it with ``READ_VARIABLE`` and assigns it whole with
``ASSIGN_VARIABLE``), the default file takes and returns it at every call.

The model: a Llama of SmolLM-135M's shape (``benchmarks/generative.py``'s, random seeded float32
weights) with ``--layers`` layers (``--tiny``: its tiny shape). Both files are timed in one
process, LiteRT with XNNPACK (``--threads``), taking turns round by round: one prefill of
``--prefill-len`` tokens, then ``--decode-steps`` decode steps (the argument file's caches fed
back from Python, as ``LiteRTCausalLM`` does; the state file's stay inside the interpreter);
medians over ``--rounds``. Also: file sizes, decode op counts, and that the state file
generates PyTorch's greedy tokens.

    python benchmarks/state_cache.py [--tiny] [--layers 6] [--rounds 5] [--out benchmarks/results/state_cache.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generative as bench  # noqa: E402  (benchmarks/generative.py: the model, the timer)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from torch2keras import generative  # noqa: E402

CACHES = ("arguments", "state")


def run(args: argparse.Namespace) -> dict:
    shape = dict(bench.SHAPES[args.shape])
    if args.layers:
        shape["num_hidden_layers"] = args.layers
    model = bench.random_llama(shape)
    folder = tempfile.mkdtemp(prefix="state_cache_bench_")
    files = {}
    for cache in CACHES:
        path = os.path.join(folder, f"{cache}.tflite")
        exported = generative.export_tflite(model, path, max_context=args.max_context, prefill_len=args.prefill_len,
                                            cache=cache, validate=False)
        files[cache] = {"path": path, "bytes": exported.result.bytes,
                        "decode_ops": bench.signature_op_counts(path, "decode")}
        print(f"{cache}: {exported.result.bytes / 1e6:.1f} MB", flush=True)
    prompt = (np.arange(args.prefill_len) * 7919 + 11) % shape["vocab_size"]
    checks = {"state file's greedy tokens equal PyTorch's": bench.greedy_matches_pytorch(
        model, files["state"]["path"], prompt[:16], 8)}
    timers = {cache: bench.SignatureTimer(files[cache]["path"], args.prefill_len, args.threads) for cache in CACHES}
    speed = bench.interleaved(timers, prompt, args.rounds, args.decode_steps)
    ratio = speed["state"]["decode_tokens_per_s"] / speed["arguments"]["decode_tokens_per_s"]
    return {"shape": shape, "max_context": args.max_context, "prefill_len": args.prefill_len, "threads": args.threads,
            "rounds": args.rounds, "decode_steps": args.decode_steps, "files": files, "speed": speed,
            "state_decode_speed_vs_arguments": ratio,
            "state_bytes_vs_arguments": files["state"]["bytes"] / files["arguments"]["bytes"], "checks": checks,
            "torch": torch.__version__, "load_average": os.getloadavg()}


def markdown(results: dict) -> str:
    rows = ["| cache | file (MB) | decode ops | prefill (ms) | decode (tokens/s) |", "|---|---|---|---|---|"]
    for cache in CACHES:
        entry, speed = results["files"][cache], results["speed"][cache]
        rows.append(f"| {cache} | {entry['bytes'] / 1e6:.2f} | {sum(entry['decode_ops'].values())} | "
                    f"{speed['prefill_ms']:.1f} | {speed['decode_tokens_per_s']:.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", dest="shape", action="store_const", const="tiny", default="smollm-135m")
    parser.add_argument("--layers", type=int, default=6, help="decoder layers (0: the shape's own)")
    parser.add_argument("--max-context", type=int, default=1024)
    parser.add_argument("--prefill-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "state_cache.json"))
    args = parser.parse_args()
    results = run(args)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(markdown(results))
    print(json.dumps({"checks": results["checks"], "state decode speed / arguments":
                      results["state_decode_speed_vs_arguments"]}, indent=1))


if __name__ == "__main__":
    main()
