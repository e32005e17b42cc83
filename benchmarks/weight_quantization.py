"""Weight-only quantization of the direct writer against Google's ai-edge-quantizer: the same
float model (an MLP) written float32 by ``to_tflite``, quantized by ai-edge-quantizer's recipes
(dynamic_wi8_afp32, dynamic_wi4_afp32, dynamic_wi4b32_afp32) and written quantized directly by
``to_tflite(quantize=...)``; prints each file's size, its error against PyTorch and its latency in
LiteRT (the default CPU path, XNNPACK), timed interleaved (one call of each file in turn).

    PYTHONPATH=$PWD python benchmarks/weight_quantization.py [--repeats 200]

Needs ai-edge-quantizer (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from torch2keras import to_tflite

PAIRS = {"dynamic_int8": "dynamic_wi8_afp32", "dynamic_int4": "dynamic_wi4_afp32",
         "dynamic_int4_b32": "dynamic_wi4b32_afp32"}


def mlp(width: int = 1024, hidden: int = 4096) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, width),
                               torch.nn.SiLU(), torch.nn.Linear(width, hidden), torch.nn.SiLU(),
                               torch.nn.Linear(hidden, width)).eval()


def reference_file(float_path: str, recipe_name: str, path: str) -> str:
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(float_path)
    q.load_quantization_recipe(getattr(recipe, recipe_name)())
    if os.path.exists(path):
        os.remove(path)
    q.quantize().export_model(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rows", type=int, default=8, help="rows of the input (tokens of a prefill)")
    args = parser.parse_args()
    from ai_edge_litert.interpreter import Interpreter

    model = mlp()
    x = torch.randn(1, args.rows, 1024)
    with torch.no_grad():
        ref = model(x).numpy()
    folder = tempfile.mkdtemp()
    float_path = os.path.join(folder, "float.tflite")
    to_tflite(model, (x,), float_path)
    files = {"float32": float_path}
    for mode, recipe_name in PAIRS.items():
        files[f"ours {mode}"] = os.path.join(folder, f"{mode}.tflite")
        to_tflite(model, (x,), files[f"ours {mode}"], quantize=mode)
        files[f"aeq {recipe_name}"] = reference_file(float_path, recipe_name, os.path.join(folder, f"{recipe_name}.tflite"))
    runners, feed = {}, x.numpy()
    for name, path in files.items():
        it = Interpreter(path, num_threads=1)
        it.allocate_tensors()
        runners[name] = it.get_signature_runner()
    times = {name: [] for name in files}
    errors = {}
    for name, run in runners.items():
        out = next(iter(run(**{next(iter(run.get_input_details())): feed}).values()))
        errors[name] = float(np.max(np.abs(out - ref)))
    for _ in range(args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(**{next(iter(run.get_input_details())): feed})
            times[name].append(time.perf_counter() - start)
    print(f"{'file':<28} {'bytes':>10} {'ratio':>6} {'max|err|':>9} {'median ms':>10} {'p10 ms':>7}")
    for name, path in files.items():
        size = os.path.getsize(path)
        t = np.asarray(times[name]) * 1e3
        print(f"{name:<28} {size:>10} {size / os.path.getsize(float_path):>6.3f} {errors[name]:>9.2e} "
              f"{np.median(t):>10.3f} {np.percentile(t, 10):>7.3f}")


if __name__ == "__main__":
    main()
