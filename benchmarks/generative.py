"""A SmolLM-135M-shaped Llama as prefill/decode ``.tflite`` files: ``generative.export_tflite``
against Google's litert-torch (its re-authored SmolLM, ``litert_torch.generative.examples.smollm``).

The model: Hugging Face ``LlamaForCausalLM`` of SmolLM-135M's shape (hidden 576, 30 layers, 9
heads over 3 key/value heads, intermediate 1536, vocabulary 49152, tied embeddings), random
seeded float32 weights. litert-torch converts the SAME weights (the state dict is saved and
loaded by its own loader) in a separate environment (``--peer-python``, default
``.peers-venv/bin/python``, which ``make .peers-venv/bin/python`` creates: litert-torch 0.10.0
with torch 2.13, ai-edge-litert 2.3 and TensorFlow, ``benchmarks/peers-constraints.txt``), one
conversion per process (``benchmarks/litert_torch_convert.py``). Per variant (float32,
dynamic int8, int4 per channel (ours only), int4 in blocks of 32):

- conversion seconds and peak resident memory (ours: ``result.memory``, validation off as
  litert-torch has none; litert-torch: the subprocess's ``ru_maxrss``), the file's bytes;
- in LiteRT with XNNPACK (``--threads``, 2), in one process, the files interleaved round by
  round: a prefill call's latency (``--prefill-len`` tokens) and decode tokens/s (``--decode-steps``
  steps feeding the cache back), medians over ``--rounds``;
- the ops of each decode signature (``decode_ops``).

Checks: our float32 file generates PyTorch's greedy tokens, and litert-torch's float32 decode
gives our file's logits (the same weights). Also a file with prefill buckets (``--buckets``)
against the single-prefill file: its size and a short prompt's prefill.

    python benchmarks/generative.py [--tiny] [--rounds 9] [--out benchmarks/results/generative.json]

Writes the JSON and prints a markdown table (``--tiny``: a small Llama, for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
from torch2keras.tflite.runtime import interpreter  # noqa: E402

SHAPES = {
    "smollm-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                        num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True,
                        max_position_embeddings=2048, rope_theta=10000.0),
    "tiny": dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                 max_position_embeddings=256, rope_theta=10000.0),
}
# variant -> (our quantize=, litert-torch's --quantize or None)
VARIANTS = {"float32": (None, "none"), "dynamic_int8": ("dynamic_int8", "dynamic_int8"),
            "dynamic_int4": ("dynamic_int4", None), "dynamic_int4_b32": ("dynamic_int4_b32", "dynamic_int4_block32")}
PEER_PYTHON = os.environ.get("PEER_PYTHON", os.path.join(os.path.dirname(HERE), ".peers-venv", "bin", "python"))


def random_llama(shape: dict, seed: int = 0) -> torch.nn.Module:
    """A ``LlamaForCausalLM`` of ``shape`` with seeded random float32 weights."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(**{k: v for k, v in shape.items() if k != "rope_theta"},
                                      rope_parameters={"rope_type": "default", "rope_theta": shape["rope_theta"]})
    return transformers.LlamaForCausalLM(config).eval()


def convert_ours(model: torch.nn.Module, path: str, max_context: int, prefill_len, quantize: Optional[str]) -> dict:
    start = time.perf_counter()
    exported = generative.export_tflite(model, path, max_context=max_context, prefill_len=prefill_len,
                                        quantize=quantize, validate=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss": max(exported.result.memory.values()), "bytes": exported.result.bytes,
            "memory": exported.result.memory, "path": path}


def convert_peer(python: str, weights: str, shape: dict, path: str, max_context: int, prefill: list[int],
                 quantize: str) -> dict:
    """litert-torch's conversion in its own process: its result, or ``{"error": why}``."""
    command = [python, os.path.join(HERE, "litert_torch_convert.py"), weights, path, "--config", json.dumps(shape),
               "--max-context", str(max_context), "--quantize", quantize]
    for n in prefill:
        command += ["--prefill", str(n)]
    if not os.path.exists(python):
        return {"error": f"{python} not found (a venv with litert-torch==0.10.0)"}
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def save_weights(model: torch.nn.Module, path: str) -> str:
    """The model's state dict without the tied ``lm_head`` (litert-torch ties it itself)."""
    torch.save({k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}, path)
    return path


class SignatureTimer:
    """One file's prefill (of ``prefill_len`` tokens) and decode signatures in LiteRT, fed by
    name: ``tokens``, ``input_pos`` (the start, or one position per token), ``last_index`` (ours)
    and the ``kv_cache_*`` tensors (zeros, then what the previous call returned)."""

    def __init__(self, path: str, prefill_len: int, threads: int) -> None:
        self.interpreter = interpreter(path, delegates=True, num_threads=threads)
        keys = self.interpreter.get_signature_list()
        name = f"prefill_{prefill_len}" if f"prefill_{prefill_len}" in keys else "prefill"
        self.prefill = self.interpreter.get_signature_runner(name)
        self.decode = self.interpreter.get_signature_runner("decode")
        self.prefill_len = prefill_len
        details = self.decode.get_input_details()
        self.caches = {n: (tuple(d["shape"]), d["dtype"]) for n, d in details.items() if n.startswith("kv_cache_")}

    def feed(self, runner, tokens: np.ndarray, start: int, cache: dict) -> dict:
        details = runner.get_input_details()
        padded = np.zeros(int(details["tokens"]["shape"][1]), np.int64)
        padded[:len(tokens)] = tokens
        feed = {"tokens": padded.astype(details["tokens"]["dtype"])[None, :]}
        positions = int(details["input_pos"]["shape"][0])
        feed["input_pos"] = (np.arange(start, start + positions) if positions > 1 else np.asarray([start])).astype(
            details["input_pos"]["dtype"])
        if "last_index" in details:
            feed["last_index"] = np.asarray([len(tokens) - 1], details["last_index"]["dtype"])
        return {**feed, **cache}

    def empty_cache(self) -> dict:
        return {n: np.zeros(shape, dtype) for n, (shape, dtype) in self.caches.items()}

    def run_prefill(self, tokens: np.ndarray, cache: dict) -> tuple[float, dict]:
        start = time.perf_counter()
        out = self.prefill(**self.feed(self.prefill, tokens, 0, cache))
        return time.perf_counter() - start, {n: out[n] for n in self.caches}

    def run_decode(self, token: int, position: int, cache: dict) -> tuple[float, dict, np.ndarray]:
        start = time.perf_counter()
        out = self.decode(**self.feed(self.decode, np.asarray([token]), position, cache))
        return time.perf_counter() - start, {n: out[n] for n in self.caches}, out["logits"].reshape(-1)

    def round(self, tokens: np.ndarray, decode_steps: int) -> tuple[float, float]:
        """One prefill of ``tokens`` then ``decode_steps`` decode calls: (prefill seconds, decode tokens/s)."""
        prefill_seconds, cache = self.run_prefill(tokens, self.empty_cache())
        total, token = 0.0, int(tokens[-1])
        for step in range(decode_steps):
            seconds, cache, logits = self.run_decode(token, len(tokens) + step, cache)
            total += seconds
            token = int(np.argmax(logits))
        return prefill_seconds, decode_steps / total


def interleaved(timers: dict[str, SignatureTimer], tokens: np.ndarray, rounds: int, decode_steps: int) -> dict:
    """Each timer's medians over ``rounds`` rounds, the timers taking turns within a round (a
    warm-up round first)."""
    samples = {name: ([], []) for name in timers}
    for r in range(rounds + 1):
        for name, timer in timers.items():
            prefill_seconds, tokens_per_second = timer.round(tokens, decode_steps)
            if r:
                samples[name][0].append(prefill_seconds)
                samples[name][1].append(tokens_per_second)
    return {name: {"prefill_ms": 1e3 * float(np.median(p)), "decode_tokens_per_s": float(np.median(d)),
                   "prefill_ms_all": [1e3 * x for x in p], "decode_tokens_per_s_all": d}
            for name, (p, d) in samples.items()}


def signature_op_counts(path: str, key: str) -> dict[str, int]:
    """How many ops of each kind signature ``key``'s subgraph holds."""
    import collections

    from ai_edge_litert import schema_py_generated as schema

    from torch2keras.tflite.file import read_tflite

    with open(path, "rb") as f:
        model = schema.Model.GetRootAs(f.read(), 0)
    index = next(model.SignatureDefs(k).SubgraphIndex() for k in range(model.SignatureDefsLength())
                 if model.SignatureDefs(k).SignatureKey().decode() == key)
    return dict(sorted(collections.Counter(op.name for op in read_tflite(path).ops if op.subgraph == index).items()))


def same_decode_logits(ours: SignatureTimer, peer: SignatureTimer, tokens: np.ndarray) -> float:
    """The largest difference of the two files' decode logits after the same prompt, relative
    to the largest logit (the same weights: rounding only)."""
    logits = []
    for timer in (ours, peer):
        _, cache = timer.run_prefill(tokens, timer.empty_cache())
        logits.append(timer.run_decode(int(tokens[-1]), len(tokens), cache)[2])
    return float(np.max(np.abs(logits[0] - logits[1])) / np.max(np.abs(logits[0])))


def greedy_matches_pytorch(model: torch.nn.Module, path: str, prompt: np.ndarray, new: int) -> bool:
    with torch.no_grad():
        reference = model.generate(torch.as_tensor(prompt)[None], attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                   max_new_tokens=new, do_sample=False, pad_token_id=0)[0].numpy()
    return bool(np.array_equal(generative.generate(path, prompt, new), reference))


def markdown(results: dict) -> str:
    rows = ["| variant | converter | conversion (s) | peak RSS (GB) | file (MB) | prefill (ms) | decode (tokens/s) |",
            "|---|---|---|---|---|---|---|"]
    for name, entry in results["files"].items():
        speed = results["speed"].get(name, {})
        conversion = entry.get("conversion", {})
        if "error" in conversion:
            rows.append(f"| {entry['variant']} | {entry['converter']} | failed: {conversion['error']} | | | | |")
            continue
        rows.append(f"| {entry['variant']} | {entry['converter']} | {conversion['seconds']:.0f} | "
                    f"{conversion['peak_rss'] / 1e9:.2f} | {conversion['bytes'] / 1e6:.1f} | "
                    f"{speed.get('prefill_ms', float('nan')):.0f} | {speed.get('decode_tokens_per_s', float('nan')):.1f} |")
    return "\n".join(rows)


def convert_all(args: argparse.Namespace, model: torch.nn.Module, folder: str) -> dict:
    """Every variant by both converters (litert-torch where it has the mode), and our bucket file."""
    shape, weights = SHAPES[args.shape], save_weights(model, os.path.join(folder, "weights.pt"))
    files = {}
    for variant in args.variants:
        ours_mode, peer_mode = VARIANTS[variant]
        path = os.path.join(folder, f"ours_{variant}.tflite")
        files[f"torch2keras {variant}"] = {"variant": variant, "converter": "torch2keras", "path": path,
                                           "conversion": convert_ours(model, path, args.max_context,
                                                                      args.prefill_len, ours_mode)}
        print(f"torch2keras {variant}: {files[f'torch2keras {variant}']['conversion']['seconds']:.0f} s", flush=True)
        earlier = _earlier_peer(args.reuse_peer, variant)
        if earlier is not None:
            files[f"litert-torch {variant}"] = earlier
        elif peer_mode and not args.no_peer:
            path = os.path.join(folder, f"litert_torch_{variant}.tflite")
            files[f"litert-torch {variant}"] = {"variant": variant, "converter": "litert-torch", "path": path,
                                                "conversion": convert_peer(args.peer_python, weights, shape, path,
                                                                           args.max_context, [args.prefill_len],
                                                                           peer_mode)}
            print(f"litert-torch {variant}: {files[f'litert-torch {variant}']['conversion']}", flush=True)
    return files


def _earlier_peer(results_path: Optional[str], variant: str) -> Optional[dict]:
    """litert-torch's entry for ``variant`` in an earlier run's results whose file still exists
    (``--reuse-peer``: its conversion is not repeated), else None."""
    if not results_path:
        return None
    with open(results_path) as f:
        entry = json.load(f)["files"].get(f"litert-torch {variant}")
    if entry is None or not os.path.exists(entry["path"]):
        return None
    return {**entry, "reused_from": results_path}


def bucket_entry(args: argparse.Namespace, model: torch.nn.Module, folder: str, single: dict) -> dict:
    """Our float32 file with ``args.buckets`` prefill lengths against the single-prefill one."""
    path = os.path.join(folder, "ours_float32_buckets.tflite")
    conversion = convert_ours(model, path, args.max_context, tuple(args.buckets), None)
    short = np.arange(1, min(args.buckets) + 1) % SHAPES[args.shape]["vocab_size"]
    timers = {"single": SignatureTimer(single["path"], args.prefill_len, args.threads),
              "bucket": SignatureTimer(path, min(args.buckets), args.threads)}
    speed = interleaved(timers, short, args.rounds, decode_steps=1)
    return {"buckets": args.buckets, "bytes": conversion["bytes"], "single_bytes": single["conversion"]["bytes"],
            "growth_per_extra_signature": (conversion["bytes"] / single["conversion"]["bytes"] - 1)
            / (len(args.buckets) - 1),
            "conversion_seconds": conversion["seconds"],
            f"prompt_of_{len(short)}_prefill_ms": {"single": speed["single"]["prefill_ms"],
                                                    "bucket": speed["bucket"]["prefill_ms"]}}


def run(args: argparse.Namespace) -> dict:
    model = random_llama(SHAPES[args.shape])
    folder = tempfile.mkdtemp(prefix="generative_bench_")
    files = convert_all(args, model, folder)
    ok = {name: e for name, e in files.items() if "error" not in e["conversion"]}
    prompt = (np.arange(args.prefill_len) * 7919 + 11) % SHAPES[args.shape]["vocab_size"]
    checks = {"float32 greedy tokens equal PyTorch's": greedy_matches_pytorch(
        model, files["torch2keras float32"]["path"], prompt[:16], 8)}
    timers = {name: SignatureTimer(e["path"], args.prefill_len, args.threads) for name, e in ok.items()}
    if "litert-torch float32" in timers:
        checks["litert-torch float32 decode logits vs ours (max rel. diff)"] = same_decode_logits(
            timers["torch2keras float32"], timers["litert-torch float32"], prompt)
    speed = interleaved(timers, prompt, args.rounds, args.decode_steps)
    del timers
    for name, e in ok.items():
        e["decode_ops"] = signature_op_counts(e["path"], "decode")
        e["decode_op_total"] = sum(e["decode_ops"].values())
    buckets = bucket_entry(args, model, folder, files["torch2keras float32"]) if args.buckets else None
    return {"shape": SHAPES[args.shape], "max_context": args.max_context, "prefill_len": args.prefill_len,
            "threads": args.threads, "rounds": args.rounds, "decode_steps": args.decode_steps, "files": files,
            "speed": speed, "checks": checks, "buckets": buckets, "torch": torch.__version__,
            "weights": "the same random seeded weights in both files", "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", dest="shape", action="store_const", const="tiny", default="smollm-135m")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-context", type=int, default=1024)
    parser.add_argument("--prefill-len", type=int, default=128)
    parser.add_argument("--buckets", type=int, nargs="*", default=[32, 128])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--peer-python", default=PEER_PYTHON)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--reuse-peer", metavar="RESULTS.json",
                        help="litert-torch's files and conversion records from an earlier run (same shape and weights)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "generative.json"))
    args = parser.parse_args()
    results = run(args)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(markdown(results))
    print(json.dumps({"checks": results["checks"], "buckets": results["buckets"]}, indent=1))


if __name__ == "__main__":
    main()
