"""Language-model quality of weight quantization: perplexity of a tiny Llama, trained here on
Python standard-library source (bytes as tokens, no downloads), written by
``generative.export_tflite`` float32, fp16, int8 and int4 (per channel, in blocks, with layers
kept float) and run in LiteRT.

Per file: validation perplexity in LiteRT (every position's logits from the ``prefill``
signature, written with ``last_logits_only=False``, on fixed held-out windows), its ratio to
PyTorch's float perplexity on the same windows, PyTorch's perplexity with the very weights the
file computes with (dequantized), the file's size, decode tokens/s in LiteRT (2 threads, timed
round-robin over the files) and greedy-token agreement with PyTorch over new tokens of a few
prompts. The blockwise int4 file is also scored without XNNPACK (LiteRT's optimized builtin
kernels) and on LiteRT's reference kernels. Writes benchmarks/results/lm_quality.json and .md.

    PYTHONPATH=$PWD python benchmarks/lm_quality.py [--steps 600] [--retrain] [--windows 32]

Training takes about 20 minutes on 2 shared cores; the trained weights are cached (--cache-dir,
a temp folder by default), keyed by the model, the training settings and the corpus; --retrain
trains again.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from compat import import_torchvision  # noqa: E402

import_torchvision()  # transformers imports torchvision (tests/compat.py)

import transformers  # noqa: E402
from dequantized_weights import dequantized  # noqa: E402

from torch2keras import WeightQuantization, generative  # noqa: E402
from torch2keras.generative import LiteRTCausalLM  # noqa: E402

# pure-Python standard-library modules, read in this order until the corpus is large enough
CORPUS_MODULES = (
    "argparse", "ast", "calendar", "collections", "configparser", "csv", "dataclasses", "datetime", "difflib",
    "doctest", "enum", "fractions", "functools", "inspect", "ipaddress", "json.decoder", "json.encoder", "logging",
    "pathlib", "pickle", "pprint", "pydoc", "random", "shutil", "statistics", "string", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "tokenize", "typing", "unittest.case", "urllib.parse", "uuid", "zipfile",
    "email.message", "http.client", "http.server", "smtplib", "imaplib", "ftplib", "socket", "selectors", "optparse",
)
VOCAB = 256  # bytes

CONFIGS = {  # hidden and intermediate sizes multiples of 128: int4 blocks of 32, 64 and 128 all apply
    "default": dict(hidden=128, intermediate=512, layers=4, heads=4, kv_heads=2, context=128),
    "tiny": dict(hidden=128, intermediate=256, layers=2, heads=4, kv_heads=2, context=32),
}


def variants() -> dict:
    """File name -> ``quantize=`` of ``generative.export_tflite``."""
    return {
        "float32": None,
        "fp16": "fp16",
        "dynamic_int8": "dynamic_int8",
        "dynamic_int4": "dynamic_int4",
        "dynamic_int4 keep lm_head": WeightQuantization("dynamic_int4", keep_float=["lm_head"]),
        "dynamic_int4 keep lm_head+embed": WeightQuantization("dynamic_int4",
                                                              keep_float=["lm_head", "model.embed_tokens"]),
        "dynamic_int4_b32": "dynamic_int4_b32",
        "dynamic_int4_b128": "dynamic_int4_b128",
    }


# perplexity / float: int8 within 1 %, int4 in blocks within 5 % (per channel: held to the same 5 %)
GOALS = {"dynamic_int8": 1.01, "dynamic_int4": 1.05, "dynamic_int4_b32": 1.05, "dynamic_int4_b128": 1.05}


# ---------------------------------------------------------------------------- data

def corpus(target_bytes: int) -> tuple[np.ndarray, list[str]]:
    """The source files of ``CORPUS_MODULES`` concatenated (bytes), until ``target_bytes``."""
    parts, names, size = [], [], 0
    for name in CORPUS_MODULES:
        if size >= target_bytes:
            break
        with open(importlib.import_module(name).__file__, "rb") as f:
            parts.append(f.read())
        names.append(name)
        size += len(parts[-1])
    data = np.frombuffer(b"".join(parts)[:target_bytes], np.uint8).astype(np.int64)
    return data, names


def split(data: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(training bytes, held-out validation bytes: the corpus's last ``val_fraction``)."""
    cut = int(len(data) * (1 - val_fraction))
    return data[:cut], data[cut:]


def eval_windows(val: np.ndarray, n: int, length: int) -> np.ndarray:
    """``n`` windows of ``length + 1`` bytes at evenly spaced offsets of ``val``: ``length``
    inputs, each predicting the next byte."""
    starts = np.linspace(0, len(val) - length - 1, n).astype(np.int64)
    return np.stack([val[s:s + length + 1] for s in starts])


# ---------------------------------------------------------------------------- model

def build_model(cfg: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=cfg["hidden"], intermediate_size=cfg["intermediate"],
        num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"], num_key_value_heads=cfg["kv_heads"],
        max_position_embeddings=2 * cfg["context"], bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = None  # greedy generation runs its full length
    return model


def train(model: torch.nn.Module, data: np.ndarray, context: int, steps: int, batch: int, lr: float,
          seed: int = 0, max_seconds: Optional[float] = None, log_every: int = 25) -> dict:
    """AdamW on random windows of ``data`` (linear warm-up, cosine decay to a tenth); stops
    after ``steps`` or ``max_seconds``. The mean loss of the last tenth of the steps."""
    gen = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    model.train()
    losses, start = [], time.perf_counter()
    for step in range(steps):
        starts = gen.integers(0, len(data) - context, batch)
        x = torch.from_numpy(np.stack([data[s:s + context] for s in starts]))
        loss = model(input_ids=x, labels=x).loss  # transformers shifts the labels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"  step {step + 1}/{steps}: loss {np.mean(losses[-log_every:]):.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": len(losses), "batch": batch, "lr": lr, "seconds": time.perf_counter() - start,
            "train_loss": float(np.mean(tail))}


def trained_model(cfg: dict, train_data: np.ndarray, args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    """The model trained on ``train_data`` (from the cache unless ``args.retrain``)."""
    key = hashlib.sha256(json.dumps([cfg, args.steps, args.batch, args.lr, args.seed, args.max_train_seconds,
                                     transformers.__version__]).encode() + train_data.tobytes()).hexdigest()[:16]
    path = os.path.join(args.cache_dir, f"lm_quality_{key}.pt") if args.cache_dir else None
    model = build_model(cfg, args.seed)
    if path and os.path.exists(path) and not args.retrain:
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        print(f"trained weights from {path}")
        return model.eval(), {**json.loads(saved["training"]), "cached": True}
    training = train(model, train_data, cfg["context"], args.steps, args.batch, args.lr, args.seed,
                     args.max_train_seconds, args.log_every)
    if path:
        os.makedirs(args.cache_dir, exist_ok=True)
        torch.save({"state": model.state_dict(), "training": json.dumps(training)}, path)
    return model.eval(), {**training, "cached": False}


def same_weights(model: torch.nn.Module, quantize) -> torch.nn.Module:
    """PyTorch with the weights the file computes with: fp16-rounded (fp16), dequantized
    integers (a weight quantization mode), or the model itself (float32)."""
    if quantize is None:
        return model
    if quantize == "fp16":  # the writer stores float weights of 16 or more values as float16
        result = copy.deepcopy(model)
        with torch.no_grad():
            for p in result.parameters():
                if p.numel() >= 16:
                    p.copy_(p.half().float())
        return result
    mode = quantize if isinstance(quantize, WeightQuantization) else WeightQuantization(quantize)
    return dequantized(model, mode)


# ---------------------------------------------------------------------------- measurements

def nll_of_logits(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each target under its row of logits (float64)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=-1))
    return log_norm - np.take_along_axis(z, targets[..., None], axis=-1)[..., 0]


@torch.no_grad()
def torch_nll(model: torch.nn.Module, windows: np.ndarray, chunk: int = 8) -> float:
    """Mean next-byte NLL of PyTorch over ``windows``."""
    total = []
    for i in range(0, len(windows), chunk):
        w = torch.from_numpy(windows[i:i + chunk])
        logits = model(input_ids=w[:, :-1]).logits.numpy()
        total.append(nll_of_logits(logits, windows[i:i + chunk, 1:]))
    return float(np.concatenate(total).mean())


def prefill_runner(interpreter):
    """The ``prefill`` signature runner and its feed of empty caches at position 0."""
    run = interpreter.get_signature_runner("prefill")
    details = run.get_input_details()
    zeros = {name: np.zeros(d["shape"], d["dtype"]) for name, d in details.items() if name.startswith("kv_cache_")}
    return run, details, zeros


def litert_nll(interpreter, windows: np.ndarray) -> float:
    """Mean next-byte NLL in LiteRT: each window's bytes as one prefill from an empty cache
    (the file written with ``last_logits_only=False``: the logits of every position)."""
    run, details, zeros = prefill_runner(interpreter)
    total = []
    for w in windows:
        out = run(tokens=w[None, :-1].astype(details["tokens"]["dtype"]),
                  input_pos=np.zeros(1, details["input_pos"]["dtype"]), **zeros)
        total.append(nll_of_logits(out["logits"][0], w[1:]))
    return float(np.concatenate(total).mean())


@torch.no_grad()
def torch_greedy(model: torch.nn.Module, prompt: np.ndarray, new: int) -> np.ndarray:
    ids = torch.from_numpy(prompt)[None]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False,
                         pad_token_id=0)
    return out[0, len(prompt):].numpy()


def agreement(got: list[np.ndarray], expected: list[np.ndarray]) -> dict:
    """Position-wise agreement of generated tokens and the mean length of the common prefix."""
    same = [g == e for g, e in zip(got, expected)]
    prefix = [int(np.argmin(s)) if not s.all() else len(s) for s in same]
    return {"agreement": float(np.mean(np.concatenate(same))), "mean_common_prefix": float(np.mean(prefix))}


def decode_tokens_per_s(paths: dict[str, str], prompt: np.ndarray, rounds: int) -> dict[str, float]:
    """Decode tokens/s of each file (2 threads), one decode of each file in turn (a change of
    load hits all alike); a runner whose cache is full starts over from the prompt."""
    runners = {name: LiteRTCausalLM(path, num_threads=2) for name, path in paths.items()}
    tokens = {}
    for name, runner in runners.items():
        tokens[name] = int(np.argmax(runner.prefill(prompt)))
    times: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(rounds + 3):
        for name, runner in runners.items():
            if runner.position >= runner.max_context:
                runner.reset()
                tokens[name] = int(np.argmax(runner.prefill(prompt)))
            start = time.perf_counter()
            logits = runner.decode(tokens[name])
            if r >= 3:  # the first rounds warm up
                times[name].append(time.perf_counter() - start)
            tokens[name] = int(np.argmax(logits))
    return {name: 1.0 / statistics.median(t) for name, t in times.items()}


def kernel_check(path: str, windows: np.ndarray) -> dict:
    """Perplexity of one (blockwise int4) file on LiteRT's three CPU paths: the XNNPACK delegate
    (the default), the optimized builtin kernels (no delegate) and the reference kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    paths = {"xnnpack": OpResolverType.AUTO, "builtin_no_delegate": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
             "reference_kernels": OpResolverType.BUILTIN_REF}
    return {name: math.exp(litert_nll(Interpreter(model_path=path, experimental_op_resolver_type=kind), windows))
            for name, kind in paths.items()}


def score_variant(model: torch.nn.Module, quantize, path: str, windows: np.ndarray, prompts: list[np.ndarray],
                  new: int, float_tokens: list[np.ndarray]) -> dict:
    """One file's perplexity in LiteRT, PyTorch's with the same weights, and greedy agreement."""
    from ai_edge_litert.interpreter import Interpreter

    reference = same_weights(model, quantize)
    litert_ppl = math.exp(litert_nll(Interpreter(model_path=path, num_threads=2), windows))
    torch_ppl = math.exp(torch_nll(reference, windows))
    got = [generative.generate(path, p, new)[len(p):] for p in prompts]
    same_tokens = [torch_greedy(reference, p, new) for p in prompts]
    return {"bytes": os.path.getsize(path), "litert_ppl": litert_ppl, "torch_same_weights_ppl": torch_ppl,
            "litert_vs_same_weights": litert_ppl / torch_ppl,
            "greedy_vs_torch_float": agreement(got, float_tokens),
            "greedy_vs_torch_same_weights": agreement(got, same_tokens)}


def describe(quantize) -> str:
    if isinstance(quantize, WeightQuantization):
        return f"WeightQuantization({quantize.mode!r}, keep_float={list(quantize.keep_float)})"
    return repr(quantize)


def run_benchmark(args: argparse.Namespace, folder: str) -> dict:
    cfg = CONFIGS[args.config]
    context = cfg["context"]
    torch.set_num_threads(2)
    data, modules = corpus(args.corpus_bytes)
    train_data, val = split(data, args.val_fraction)
    print(f"corpus: {len(data)} bytes of {len(modules)} stdlib modules, {len(val)} held out", flush=True)
    model, training = trained_model(cfg, train_data, args)
    windows = eval_windows(val, args.windows, context)
    float_ppl = math.exp(torch_nll(model, windows))
    training["val_loss"] = math.log(float_ppl)
    print(f"trained: {training['steps']} steps, train loss {training['train_loss']:.3f}, "
          f"val loss {training['val_loss']:.3f} (perplexity {float_ppl:.3f})", flush=True)
    prompt_len = context // 2
    new = min(args.new_tokens, context - prompt_len)
    prompts = [w[:prompt_len] for w in eval_windows(val, args.prompts, prompt_len)]
    float_tokens = [torch_greedy(model, p, new) for p in prompts]
    rows, paths = {}, {}
    for name, quantize in variants().items():
        if args.variants and name not in args.variants:
            continue
        paths[name] = os.path.join(folder, name.replace(" ", "_").replace("+", "_") + ".tflite")
        start = time.perf_counter()
        generative.export_tflite(model, paths[name], max_context=context, prefill_len=context,
                                 last_logits_only=False, quantize=quantize, validate=False)
        export_s = time.perf_counter() - start
        rows[name] = {"quantize": describe(quantize), "export_s": export_s,
                      **score_variant(model, quantize, paths[name], windows, prompts, new, float_tokens)}
        rows[name]["ppl_ratio"] = rows[name]["litert_ppl"] / float_ppl
        print(f"  {name}: perplexity {rows[name]['litert_ppl']:.4f} ({rows[name]['ppl_ratio']:.4f}x float), "
              f"{rows[name]['bytes'] / 1e6:.2f} MB, export {export_s:.0f} s", flush=True)
    if args.decode_rounds:
        for name, tps in decode_tokens_per_s(paths, prompts[0], args.decode_rounds).items():
            rows[name]["decode_tokens_per_s"] = tps
    base = rows.get("float32", next(iter(rows.values())))["bytes"]
    for row in rows.values():
        row["size_ratio"] = row["bytes"] / base
    result = {
        "corpus": {"modules": modules, "bytes": int(len(data)), "validation_bytes": int(len(val)),
                   "sha256": hashlib.sha256(data.astype(np.uint8).tobytes()).hexdigest()},
        "model": {**cfg, "vocab": VOCAB, "parameters": sum(p.numel() for p in model.parameters())},
        "training": training,
        "evaluation": {"windows": int(len(windows)), "window_tokens": context,
                       "predictions": int(windows[:, 1:].size), "prompts": len(prompts), "prompt_tokens": prompt_len,
                       "new_tokens": new, "decode_rounds": args.decode_rounds, "threads": 2},
        "torch_float_ppl": float_ppl, "variants": rows,
        "goals": {name: {"max_ppl_ratio": bound, "ppl_ratio": rows[name]["ppl_ratio"],
                         "met": rows[name]["ppl_ratio"] <= bound} for name, bound in GOALS.items() if name in rows},
        "environment": environment(),
    }
    if "dynamic_int4_b32" in paths and args.kernel_check:
        result["blockwise_int4_kernels_ppl"] = kernel_check(paths["dynamic_int4_b32"], windows)
    return result


def environment() -> dict:
    from importlib.metadata import version

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "ai_edge_litert": version("ai-edge-litert"), "machine": platform.machine()}


def markdown(result: dict) -> str:
    t, m, e = result["training"], result["model"], result["evaluation"]
    lines = [
        "# Weight quantization quality: a byte-level Llama trained on Python stdlib source",
        "",
        f"Model: Llama, {m['parameters'] / 1e6:.2f} M parameters (hidden {m['hidden']}, intermediate "
        f"{m['intermediate']}, {m['layers']} layers, {m['heads']} heads / {m['kv_heads']} key-value heads, "
        f"256 byte tokens), trained {t['steps']} steps (AdamW, batch {t['batch']} x {m['context']} bytes) on "
        f"{result['corpus']['bytes'] / 1e6:.2f} MB of source of {len(result['corpus']['modules'])} stdlib modules: "
        f"train loss {t['train_loss']:.3f}, validation loss {t['val_loss']:.3f} nats/byte.",
        "",
        f"Perplexity on {e['windows']} held-out windows of {e['window_tokens']} bytes ({e['predictions']} "
        f"predictions), in LiteRT (XNNPACK) from the `prefill` signature; PyTorch float: "
        f"**{result['torch_float_ppl']:.4f}**. 'same weights': PyTorch with the file's weights dequantized. "
        f"Greedy: {e['prompts']} prompts of {e['prompt_tokens']} bytes, {e['new_tokens']} new tokens, agreement "
        f"position by position with PyTorch float. Decode: tokens/s, {e['threads']} threads, files interleaved.",
        "",
        "| file | perplexity | vs float | same weights (PyTorch) | MB | size | decode tok/s | greedy agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["variants"].items():
        tps = f"{r['decode_tokens_per_s']:.0f}" if "decode_tokens_per_s" in r else "-"
        lines.append(f"| {name} | {r['litert_ppl']:.4f} | {r['ppl_ratio']:.4f} | {r['torch_same_weights_ppl']:.4f} "
                     f"| {r['bytes'] / 1e6:.2f} | {r['size_ratio']:.3f} | {tps} "
                     f"| {r['greedy_vs_torch_float']['agreement']:.0%} |")
    lines += ["", "Goals (perplexity / float): " + ", ".join(
        f"{name} <= {g['max_ppl_ratio']}: {g['ppl_ratio']:.4f} {'met' if g['met'] else 'MISSED'}"
        for name, g in result["goals"].items()) + "."]
    if "blockwise_int4_kernels_ppl" in result:
        k = result["blockwise_int4_kernels_ppl"]
        lines += ["", "dynamic_int4_b32 on LiteRT's CPU paths: " + ", ".join(f"{n} {v:.4f}" for n, v in k.items())
                  + " (the reference kernels ignore the block scales)."]
    env = result["environment"]
    lines += ["", f"Python {env['python']}, torch {env['torch']}, transformers {env['transformers']}, "
                  f"ai-edge-litert {env['ai_edge_litert']}. `make bench-lm-quality`", ""]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default")
    parser.add_argument("--corpus-bytes", type=int, default=1_500_000)
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--max-train-seconds", type=float, default=None, help="stop training earlier")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--retrain", action="store_true", help="train even if cached weights exist")
    parser.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "torch2keras_lm_quality"),
                        help="where trained weights are cached ('' : nowhere)")
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--decode-rounds", type=int, default=100)
    parser.add_argument("--variants", nargs="*", help="only these files (names as in the table)")
    parser.add_argument("--no-kernel-check", dest="kernel_check", action="store_false")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "lm_quality.json"),
                        help="the JSON; the markdown table goes next to it (.md)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        result = run_benchmark(args, folder)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    table = markdown(result)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(table)
    print(table)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
