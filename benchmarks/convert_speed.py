"""Conversion speed and memory: the direct TFLite backend against the converter path, measured in
one run, and the LiteRT latency of the files they write.

Per model (torchvision, random seeded weights) and path, a fresh subprocess converts the model
with validation off -- converter: ``compile(...)`` then ``export_tflite(...)`` (Keras model,
SavedModel, TensorFlow's converter); direct: ``to_tflite(...)`` (no Keras, no TensorFlow) -- and
reports wall time, CPU time (all threads) and peak RSS at the end of every stage (the model is
built before the clock starts; importing the compiler is part of the first stage). The paths
alternate (direct first on even repeats, the converter first on odd ones) so a change of load
on the machine hits both alike; medians over ``--repeats`` are compared as direct / converter.

Then both files run in LiteRT (2 threads, default XNNPACK delegate) in rounds (files reloaded
every round in rotated order, invocations interleaved), and the median of the per-round latency
ratios is reported, with the ops XNNPACK leaves to LiteRT's own kernels. Writes benchmarks/results/convert_speed.json.

    python benchmarks/convert_speed.py [--models resnet18,mobilenet_v3_large,convnext_tiny,vit_b_16]
                                       [--repeats 2] [--rounds 5] [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ["resnet18", "mobilenet_v3_large", "convnext_tiny", "vit_b_16"]
PATHS = ("direct", "converter")
GOALS = {"cpu": 0.3, "peak_rss": 0.7, "latency": 1.0}


# ----------------------------------------------------------------------------- one conversion (a subprocess)


class Stages:
    """Wall and CPU seconds and peak RSS (MB) at the end of every stage."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.current = "import"
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.mark = (self.wall0, self.cpu0)

    def next(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.rows.append({"stage": self.current, "wall_s": wall - self.mark[0], "cpu_s": cpu - self.mark[1],
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        self.current, self.mark = name, (wall, cpu)

    def total(self) -> dict:
        return {"wall_s": time.perf_counter() - self.wall0, "cpu_s": time.process_time() - self.cpu0,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "stages": self.rows}


def worker(path_kind: str, model_name: str, out: str) -> dict:
    """Convert one model by one path in this process; returns the measurements."""
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from compat import import_torchvision, seeded_model

    tv = import_torchvision()
    example = torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    model = seeded_model(getattr(tv.models, model_name), example)
    x = example[:1].clone()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stages = Stages()
    say = lambda msg: stages.next(msg.rstrip("."))  # noqa: E731
    import torch2keras

    if path_kind == "direct":
        torch2keras.to_tflite(model, x, out, validate=False, progress=say)
    else:
        result = torch2keras.compile(model, x, validate=False, progress=say)
        stages.next("export_tflite")
        result.export_tflite(out, validate=False, delegates=False)
    stages.next("end")
    return {**stages.total(), "baseline_rss_mb": baseline, "bytes": os.path.getsize(out)}


def run_worker(path_kind: str, model_name: str, out: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", path_kind, model_name, out]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{path_kind} {model_name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the files in LiteRT


def latencies_ms(paths: dict[str, str], rounds: int, runs: int) -> dict:
    """Per-round median latencies of both files (2 threads, default delegates;
    ``tflite.runtime.latency_rounds``: files reloaded every round in rotated order, invocations
    interleaved) and the median of the per-round direct / converter ratios."""
    from torch2keras.tflite.runtime import latency_medians, latency_rounds

    rows = latency_rounds(paths, rounds=rounds, runs=runs)
    ratios = [row["direct"] / row["converter"] for row in rows]
    return {"median_ms": latency_medians(rows), "ratio": statistics.median(ratios),
            "round_ratios": [round(r, 3) for r in ratios], "rounds": rows}


def file_facts(path: str) -> dict:
    from torch2keras.tflite.file import read_tflite
    from torch2keras.tflite.runtime import xnnpack_delegated_ops

    main = read_tflite(path).main_ops()
    taken, why = xnnpack_delegated_ops(path)
    counts: dict[str, int] = {}
    for op in main:
        counts[op.name] = counts.get(op.name, 0) + 1
    left = sorted({op.name for k, op in enumerate(main) if taken is not None and k not in taken})
    return {"ops": len(main), "transposes": counts.get("TRANSPOSE", 0), "op_counts": dict(sorted(counts.items())),
            "xnnpack_left": left if taken is not None else f"not loadable: {why}"}


# ----------------------------------------------------------------------------- the comparison


def measure(model_name: str, repeats: int, rounds: int, runs: int, tmp: str) -> dict:
    files = {k: os.path.join(tmp, f"{model_name}_{k}.tflite") for k in PATHS}
    samples: dict[str, list[dict]] = {k: [] for k in PATHS}
    for rep in range(repeats):
        for k in (PATHS if rep % 2 == 0 else PATHS[::-1]):
            samples[k].append(run_worker(k, model_name, files[k]))
            print(f"  {model_name} {k} #{rep}: {samples[k][-1]['cpu_s']:.1f} s CPU, "
                  f"{samples[k][-1]['wall_s']:.1f} s wall, {samples[k][-1]['peak_rss_mb']:.0f} MB", flush=True)
    summary = {k: {m: statistics.median(s[m] for s in samples[k]) for m in ("wall_s", "cpu_s", "peak_rss_mb")}
               for k in PATHS}
    latency = latencies_ms(files, rounds, runs)
    ratios = {"cpu": summary["direct"]["cpu_s"] / summary["converter"]["cpu_s"],
              "wall": summary["direct"]["wall_s"] / summary["converter"]["wall_s"],
              "peak_rss": summary["direct"]["peak_rss_mb"] / summary["converter"]["peak_rss_mb"],
              "latency": latency["ratio"]}
    return {"summary": summary, "ratios": ratios, "latency_ms": latency, "runs": samples,
            "files": {k: {**file_facts(files[k]), "bytes": os.path.getsize(files[k])} for k in PATHS}}


def report(results: dict) -> str:
    lines = [f"{'model':<20} {'CPU':>7} {'wall':>7} {'peak RSS':>9} {'latency':>8}   ops direct/converter  XNNPACK left"]
    for name, r in results.items():
        q = r["ratios"]
        f = r["files"]
        left = f["direct"]["xnnpack_left"] or "-"
        lines.append(f"{name:<20} {q['cpu']:>6.2f}x {q['wall']:>6.2f}x {q['peak_rss']:>8.2f}x {q['latency']:>7.2f}x   "
                     f"{f['direct']['ops']:>4}/{f['converter']['ops']:<4} "
                     f"(T {f['direct']['transposes']}/{f['converter']['transposes']})  {left}")
    lines.append(f"goals: CPU <= {GOALS['cpu']}x, peak RSS <= {GOALS['peak_rss']}x, latency <= {GOALS['latency']}x "
                 f"(direct / converter)")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="LiteRT rounds (files reloaded, rotated order)")
    parser.add_argument("--runs", type=int, default=10, help="LiteRT invocations per file and round")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "convert_speed.json"))
    parser.add_argument("--worker", nargs=3, metavar=("PATH", "MODEL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            results[name] = measure(name, args.repeats, args.rounds, args.runs, tmp)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"goals": GOALS, "results": results}, f, indent=1)
    print(report(results))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
