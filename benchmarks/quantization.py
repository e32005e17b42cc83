"""Quantization benchmark: float32, fp16, dynamic-range int8 and full-integer int8 TFLite files
of torchvision models (random, seeded weights), all measured in one run.

Per model and variant: file size and its ratio to the float file, top-1 agreement with PyTorch
on --inputs random inputs (LiteRT interpreter, default XNNPACK delegate), the logits' error,
and LiteRT latency (2 threads, median of --runs runs, round-robin over the variants) with its
ratio to the float file. The int8 files are calibrated on --calibration other random inputs;
their per-layer check runs on 8 held-out ones. Writes benchmarks/results/quantization.json.

    python benchmarks/quantization.py [--models resnet18,mobilenet_v3_large] [--inputs 200]
                                      [--calibration 100] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import torch2keras  # noqa: E402
from layout import latencies_ms  # noqa: E402
from zoo import torchvision_model  # noqa: E402

VARIANTS = {  # name -> export_tflite keyword arguments
    "float32": {},
    "fp16": {"quantize": "fp16"},
    "dynamic_int8": {"quantize": "dynamic_int8"},
    "int8": {"quantize": "int8", "io_dtype": "int8"},
    "int8_float_io": {"quantize": "int8", "io_dtype": "float32"},
}


def build_model(name: str):
    """The torchvision model with random, seeded weights; batch-norm statistics from 16 random
    images (statistics of one image leave near-constant channels with huge gains)."""
    return torchvision_model(name, torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0)))


def random_inputs(n: int, seed: int, shape=(1, 3, 224, 224)) -> list[np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen).numpy() for _ in range(n)]


@torch.no_grad()
def torch_logits(model, inputs: list[np.ndarray], chunk: int = 25) -> np.ndarray:
    out = [model(torch.from_numpy(np.concatenate(inputs[i:i + chunk]))).numpy() for i in range(0, len(inputs), chunk)]
    return np.concatenate(out)


def tflite_logits(result, path: str, inputs: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([result.run_tflite(path, [x])[0] for x in inputs])


def bench_model(name: str, n_inputs: int, n_calibration: int, runs: int, tmp: str) -> dict:
    x = torch.randn(1, 3, 224, 224)
    model = build_model(name)
    result = torch2keras.compile(model, x, name=name, input_layouts="channels_last", validate="outputs")
    inputs = random_inputs(n_inputs, seed=1)
    calibration = [(a,) for a in random_inputs(n_calibration, seed=2)]
    holdout = [(a,) for a in random_inputs(8, seed=3)]
    reference = torch_logits(model, inputs)
    ref_top1 = reference.argmax(1)
    ordered = np.sort(reference, axis=1)
    margin = (ordered[:, -1] - ordered[:, -2]) / reference.std(axis=1)  # top-1 lead, in logit std units
    row: dict = {"model": name, "inputs": n_inputs, "calibration_samples": n_calibration,
                 "distinct_torch_top1": int(len(set(ref_top1.tolist()))),
                 "median_torch_margin_std": float(np.median(margin)), "variants": {}}
    paths = {}
    for variant, options in VARIANTS.items():
        path = paths[variant] = os.path.join(tmp, f"{name}_{variant}.tflite")
        start = time.perf_counter()
        extra = {"calibration": calibration, "holdout": holdout} if options.get("quantize") == "int8" else {}
        result.export_tflite(path, **options, **extra)
        export_s = time.perf_counter() - start
        logits = tflite_logits(result, path, inputs)
        err = np.abs(logits.astype(np.float64) - reference)
        top5 = np.argsort(-logits, axis=1)[:, :5]
        flipped = logits.argmax(1) != ref_top1
        entry = {"bytes": os.path.getsize(path), "export_s": export_s,
                 "top1_agreement": float(np.mean(logits.argmax(1) == ref_top1)),
                 "torch_top1_in_top5": float(np.mean([t in row for t, row in zip(ref_top1, top5)])),
                 # how close PyTorch's own top-2 were where the file disagrees (logit std units)
                 "max_torch_margin_of_disagreements": float(margin[flipped].max()) if flipped.any() else None,
                 "max_abs_error": float(err.max()), "rel_rms_error": float(np.sqrt(np.mean(err ** 2))
                                                                          / np.sqrt(np.mean(reference ** 2))),
                 "delegates_ready": {k: v["ready"] for k, v in result.report.delegates.targets.items()}}
        if result.report.quantization is not None and options.get("quantize") == "int8":
            q = result.report.quantization
            entry["per_layer"] = {"layers": len(q.layers), "jumps": [e.layers[0] if e.layers else e.tensor
                                                                     for e in q.jumps],
                                  "output_rel_error_vs_float": q.output_rel_error}
        row["variants"][variant] = entry
        print(f"  {name} {variant}: {entry['bytes'] / 1e6:.2f} MB, top-1 agreement {entry['top1_agreement']:.1%}, "
              f"rel rms err {entry['rel_rms_error']:.2e}", flush=True)
    for variant, ms in latencies_ms(paths, runs).items():
        row["variants"][variant]["latency_ms"] = ms
    base = row["variants"]["float32"]
    for entry in row["variants"].values():
        entry["size_ratio"] = entry["bytes"] / base["bytes"]
        entry["latency_ratio"] = entry["latency_ms"] / base["latency_ms"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v3_large")
    parser.add_argument("--inputs", type=int, default=200)
    parser.add_argument("--calibration", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "quantization.json"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(bench_model(name, args.inputs, args.calibration, args.runs, tmp))
    print(f"\n{'model':<20} {'variant':<14} {'MB':>7} {'size':>6} {'top-1 agr':>9} {'rel err':>9} "
          f"{'ms':>7} {'latency':>8}")
    for row in rows:
        for variant, e in row["variants"].items():
            print(f"{row['model']:<20} {variant:<14} {e['bytes'] / 1e6:>7.2f} {e['size_ratio']:>6.3f} "
                  f"{e['top1_agreement']:>9.1%} {e['rel_rms_error']:>9.2e} {e['latency_ms']:>7.2f} "
                  f"{e['latency_ratio']:>8.2f}")
        print(f"{'':<20} (PyTorch's top-1 over the {row['inputs']} inputs: {row['distinct_torch_top1']} classes; "
              f"median lead of its top-1 over its top-2: {row['median_torch_margin_std']:.3f} logit std)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"models": rows, "threads": 2, "runs": args.runs}, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
