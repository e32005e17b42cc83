"""LiteRT latency against litert-torch on the models where the direct files were behind: vit_b_16,
a 2-layer LSTM + linear and the conv-hardsigmoid-strided-channel-slice model (``NobucoEssentials``).

Per model (random, seeded weights; benchmarks/zoo.py) three files are written: ours by the direct
backend (``to_tflite``), ours by TensorFlow's converter (``compile`` + ``export_tflite``) and
litert-torch's (``litert_torch.convert``, run in a subprocess of its own venv -- it pins its own
dependencies -- on the model exported here with ``torch.export``, so both start from the same
weights and graph); for a model with an LSTM also ours with the LSTM fused (``to_tflite(...,
lstm="fused")``; the direct file has it unrolled). The files then run in one LiteRT process (2 threads, the default XNNPACK
delegate) in rounds: every round runs each file ``--runs`` times (fast files: as often as fills
0.5 s), the invocations interleaved file by file (the order reversed every other invocation),
and a round's ratio is the median latency of one file over another's in that round. The medians
of the per-round ratios are the result (each model timed in a process of its own: in one
process the fused LSTM ran 2.6x faster after vit_b_16's rounds than alone); the ops XNNPACK
leaves to LiteRT's own kernels are listed per file. Writes benchmarks/results/peer_latency.json
(and .md).

    python benchmarks/peer_latency.py --peer-python .peers-venv/bin/python [--models vit_b_16,lstm2_linear,essentials]
                                      [--rounds 7] [--runs 10] [--keep FOLDER]
    python benchmarks/peer_latency.py --compare before=A.tflite after=B.tflite litert_torch=C.tflite
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ["vit_b_16", "lstm2_linear", "essentials"]
FILES = ("direct", "converter", "litert_torch")
PAIRS = (("direct", "litert_torch"), ("converter", "litert_torch"), ("direct", "converter"))
GOAL = 0.95  # direct / litert-torch, median of the rounds


# ----------------------------------------------------------------------------- litert-torch (its own venv)


def peer_worker(exported: str, out: str) -> dict:
    """litert-torch converting the exported program ``exported`` (``torch.export.save``) to ``out``."""
    import litert_torch
    import torch

    program = torch.export.load(exported)
    start = time.perf_counter()
    litert_torch.convert(program.module(), program.example_inputs[0]).export(out)
    return {"seconds": time.perf_counter() - start, "bytes": os.path.getsize(out)}


def run_peer(peer_python: str, exported: str, out: str) -> dict:
    cmd = [peer_python, os.path.abspath(__file__), "--peer-worker", exported, out]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"litert-torch on {exported} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the models and our files


def build(name: str):
    """(model, example inputs) of a benchmark model, random seeded weights."""
    import torch

    from zoo import essentials, lstm2_linear, torchvision_model

    if name == "vit_b_16":
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        return torchvision_model("vit_b_16", x), (x,)
    if name == "lstm2_linear":
        return lstm2_linear(), (torch.randn(1, 10, 16, generator=torch.Generator().manual_seed(0)),)
    if name == "essentials":
        return essentials(), (torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)),)
    raise SystemExit(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def write_files(name: str, tmp: str, peer_python: Optional[str], model_inputs=None) -> tuple[dict, dict]:
    """The files of ``name`` (litert-torch's only with ``peer_python``) and the largest output
    difference of each from torch (LiteRT's builtin kernels)."""
    import torch

    import torch2keras

    model, inputs = model_inputs or build(name)
    files = {k: os.path.join(tmp, f"{name}_{k}.tflite") for k in FILES if k != "litert_torch" or peer_python}
    torch2keras.to_tflite(model, inputs, files["direct"], validate=False)
    if any(isinstance(m, torch.nn.LSTM) for m in model.modules()):  # (to_tflite unrolls LSTMs; also the fused form)
        files["direct_fused"] = os.path.join(tmp, f"{name}_direct_fused.tflite")
        torch2keras.to_tflite(model, inputs, files["direct_fused"], validate=False, lstm="fused")
    torch2keras.compile(model, inputs, validate=False).export_tflite(files["converter"], validate=False,
                                                                     delegates=False)
    if peer_python:
        exported = os.path.join(tmp, f"{name}.pt2")
        torch.export.save(torch.export.export(model, inputs), exported)
        run_peer(peer_python, exported, files["litert_torch"])
    with torch.no_grad():
        expected = model(*inputs)
    expected = expected[0] if isinstance(expected, (tuple, list)) else expected
    return files, {k: max_abs_error(path, inputs, expected.numpy()) for k, path in files.items()}


def max_abs_error(path: str, inputs, expected) -> float:
    """Largest difference of the file's first output (LiteRT's builtin kernels) from ``expected``."""
    import numpy as np

    from torch2keras.tflite.runtime import interpreter

    runner = interpreter(path, delegates=False).get_signature_runner(_signature(path))
    out = runner(**dict(zip(runner.get_input_details(), (t.numpy() for t in inputs))))
    first = out[min(out, key=lambda n: runner.get_output_details()[n]["index"])]
    return float(np.abs(first - expected).max())


def _signature(path: str) -> str:
    from torch2keras.tflite.runtime import interpreter

    return next(iter(interpreter(path, delegates=False).get_signature_list()))


# ----------------------------------------------------------------------------- the files in LiteRT


def file_facts(path: str) -> dict:
    """Op counts and the ops XNNPACK leaves to LiteRT's kernels (``tflite/delegates.py``'s measurement)."""
    from torch2keras.tflite.delegates import analyze

    report = analyze(path)
    counts: dict[str, int] = {}
    from torch2keras.tflite.file import read_tflite

    for op in read_tflite(path).main_ops():
        counts[op.name] = counts.get(op.name, 0) + 1
    xnn = report.targets.get("XNNPACK", {})
    left = sorted({f"{f.op} x{f.count}" for f in report.findings if f.target == "XNNPACK" and f.op})
    return {"ops": report.ops, "transposes": counts.get("TRANSPOSE", 0), "op_counts": dict(sorted(counts.items())),
            "xnnpack_ops": f"{xnn.get('supported', '?')}/{xnn.get('ops', report.ops)}", "xnnpack_left": left}


def measure(name: str, tmp: str, peer_python: str, rounds: int, runs: int) -> dict:
    files, errors = write_files(name, tmp, peer_python)
    from torch2keras.tflite.runtime import latency_rounds

    per_round = latency_rounds(files, rounds, runs, round_seconds=0.5)
    pairs = PAIRS + ((("direct_fused", "litert_torch"),) if "direct_fused" in files else ())
    ratios = {f"{a}/{b}": [row[a] / row[b] for row in per_round] for a, b in pairs}
    return {"median_ratio": {p: statistics.median(v) for p, v in ratios.items()},
            "round_ratios": ratios, "round_ms": per_round,
            "median_ms": {k: statistics.median(row[k] for row in per_round) for k in files},
            "max_abs_error_vs_torch": errors, "files": {k: file_facts(p) for k, p in files.items()}}


def report(results: dict, rounds: int, runs: int) -> str:
    lines = [f"LiteRT, 2 threads, XNNPACK; {rounds} interleaved rounds x >= {runs} invocations per file",
             f"{'model':<14} {'direct/litert':>13} {'conv/litert':>11} {'direct/conv':>11}   ops d/c/l   "
             f"per-round direct/litert"]
    for name, r in results.items():
        q, f = r["median_ratio"], r["files"]
        per = " ".join(f"{x:.2f}" for x in r["round_ratios"]["direct/litert_torch"])
        lines.append(f"{name:<14} {q['direct/litert_torch']:>12.3f}x {q['converter/litert_torch']:>10.3f}x "
                     f"{q['direct/converter']:>10.3f}x   {f['direct']['ops']}/{f['converter']['ops']}/"
                     f"{f['litert_torch']['ops']}   {per}")
        if "direct_fused/litert_torch" in q:
            lines.append(f"    LSTM fused (lstm=\"fused\"): {q['direct_fused/litert_torch']:.3f}x litert-torch, "
                         f"{f['direct_fused']['ops']} ops")
        for k in f:
            lines.append(f"    {k:<13} XNNPACK {f[k]['xnnpack_ops']:<9} left: {', '.join(f[k]['xnnpack_left']) or '-'}")
    lines.append(f"goal: direct / litert-torch <= {GOAL}x, direct / converter <= 1.0x, every op on XNNPACK")
    return "\n".join(lines)


def compare(files: dict[str, str], rounds: int, runs: int) -> dict:
    """Every file's per-round latency ratio to the last one given (``latency_rounds``), and op counts."""
    from torch2keras.tflite.runtime import latency_rounds

    rows = latency_rounds(files, rounds, runs, round_seconds=0.5)
    *labels, base = list(files)
    ratios = {f"{a}/{base}": [row[a] / row[base] for row in rows] for a in labels}
    return {"median_ratio": {k: statistics.median(v) for k, v in ratios.items()}, "round_ratios": ratios,
            "round_ms": rows, "ops": {k: file_facts(p)["ops"] for k, p in files.items()}}


def markdown(results: dict, rounds: int, runs: int) -> str:
    """The table docs/deployment.md shows: median ratios, per-round ratios, ops, what XNNPACK leaves."""
    lines = [f"LiteRT, 2 threads, XNNPACK; {rounds} rounds, invocations interleaved file by file; per file and round "
             + ", ".join(f"{n} {r['round_ms'][0]['runs']}" for n, r in results.items()) + " invocations.", "",
             "| model | direct / litert-torch (per round) | converter / litert-torch | direct / converter "
             "| ops direct / converter / litert-torch | not on XNNPACK (direct; litert-torch) |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        q, f = r["median_ratio"], r["files"]
        per = ", ".join(f"{x:.2f}" for x in r["round_ratios"]["direct/litert_torch"])
        left = f"{', '.join(f['direct']['xnnpack_left']) or 'none'}; {', '.join(f['litert_torch']['xnnpack_left']) or 'none'}"
        lines.append(f"| {name} | **{q['direct/litert_torch']:.2f}x** ({per}) | {q['converter/litert_torch']:.2f}x | "
                     f"{q['direct/converter']:.2f}x | {f['direct']['ops']} / {f['converter']['ops']} / "
                     f"{f['litert_torch']['ops']} | {left} |")
        if "direct_fused/litert_torch" in q:
            per = ", ".join(f"{x:.2f}" for x in r["round_ratios"]["direct_fused/litert_torch"])
            lines.append(f"| {name}, LSTM fused (`lstm=\"fused\"`) | {q['direct_fused/litert_torch']:.2f}x ({per}) | | "
                         f"| {f['direct_fused']['ops']} | {', '.join(f['direct_fused']['xnnpack_left']) or 'none'} |")
    return "\n".join(lines) + "\n"


def _measure_apart(name: str, folder: str, args: argparse.Namespace, out: str) -> dict:
    """``measure(name, ...)`` in a new process (``--models name``), its result read back."""
    cmd = [sys.executable, os.path.abspath(__file__), "--models", name, "--peer-python", args.peer_python,
           "--rounds", str(args.rounds), "--runs", str(args.runs), "--out", out, "--keep", folder]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)["results"][name]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--peer-python", default=os.path.join(ROOT, ".peers-venv", "bin", "python"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=10,
                        help="invocations per file and round, at least (fast files: enough for 0.5 s)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "peer_latency.json"))
    parser.add_argument("--keep", help="keep the files written in this folder")
    parser.add_argument("--compare", nargs="+", metavar="LABEL=FILE",
                        help="only time these files (e.g. kept ones of two commits) against the last one given")
    parser.add_argument("--peer-worker", nargs=2, metavar=("EXPORTED", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_worker:
        print(json.dumps(peer_worker(*args.peer_worker)))
        return
    sys.path.insert(0, HERE)
    if args.compare:
        print(json.dumps(compare(dict(a.split("=", 1) for a in args.compare), args.rounds, args.runs), indent=1))
        return
    results = {}
    models = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        for name in models:
            print(f"{name} ...", flush=True)
            if len(models) == 1:
                results[name] = measure(name, folder, args.peer_python, args.rounds, args.runs)
            else:  # each model in a process of its own: one model's runs left LiteRT's kernels faster for the next
                results[name] = _measure_apart(name, folder, args, os.path.join(tmp, f"{name}.json"))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"goal": GOAL, "rounds": args.rounds, "runs": args.runs, "threads": 2, "results": results}, f,
                  indent=1)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(markdown(results, args.rounds, args.runs))
    print(report(results, args.rounds, args.runs))
    print(f"written {args.out} and its .md table")


if __name__ == "__main__":
    main()
