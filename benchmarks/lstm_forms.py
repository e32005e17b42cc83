"""LiteRT latency of the two TFLite forms of an LSTM, unrolled / fused, over LSTM sizes: what
``to_tflite(lstm="auto")``'s rule (unrolled up to ``AUTO_UNROLL_BYTES`` of weights read over all
steps) rests on.

Per size (an LSTM of ``hidden`` units, ``layers`` layers, batch 1 over ``steps`` steps, a linear
layer on its last step; random seeded weights) both files are written by ``to_tflite``
(``lstm="unroll"`` and ``lstm="fused"``) and run in one LiteRT process (XNNPACK; 1 and 2 threads) in interleaved rounds
(``tflite.runtime.latency_rounds``); the result is the median of the per-round ratios unrolled /
fused per thread count, with what ``"auto"`` picks. The unrolled file is many small ops: with 2
threads each of them waits for the other thread, so its time suffers most when other processes
load the machine (the fused kernel runs on one thread) -- compare runs on a quiet machine. Writes benchmarks/results/lstm_forms.json
(and .md).

    python benchmarks/lstm_forms.py [--sizes 32x2x10,64x2x10,...] [--rounds 7]   (make bench-lstm-forms)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

HERE = os.path.dirname(os.path.abspath(__file__))
# hidden x layers x steps
SIZES = "32x2x10,32x1x32,16x2x64,24x2x32,32x2x20,32x2x64,48x2x32,64x2x10,64x1x32,96x1x16,128x2x50,256x1x64"
FEATURES = 16


def _model(hidden: int, layers: int):
    import torch

    class LastStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(FEATURES, hidden, num_layers=layers, batch_first=True)
            self.fc = torch.nn.Linear(hidden, 8)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    torch.manual_seed(0)
    return LastStep().eval()


def measure(hidden: int, layers: int, steps: int, folder: str, rounds: int) -> dict:
    import torch

    import torch2keras
    from torch2keras.tflite.runtime import latency_rounds

    model, x = _model(hidden, layers), torch.randn(1, steps, FEATURES, generator=torch.Generator().manual_seed(0))
    files, facts = {}, {}
    for form in ("unroll", "fused"):
        path = os.path.join(folder, f"lstm_{hidden}x{layers}x{steps}_{form}.tflite")
        written = torch2keras.to_tflite(model, (x,), path, lstm=form)
        files[form], facts[form] = path, {"ops": sum(written.op_counts.values()), "max_abs_error": written.max_abs_error}
    ratios, medians = {}, {}
    for threads in (1, 2):
        rows = latency_rounds(files, rounds, runs=10, round_seconds=0.3, num_threads=threads)
        ratios[threads] = [row["unroll"] / row["fused"] for row in rows]
        medians[threads] = {k: statistics.median(r[k] for r in rows) for k in files}
    read = steps * 4 * sum(w.numel() for n, w in model.lstm.named_parameters() if n.startswith("weight"))
    chosen = torch2keras.to_tflite(model, (x,), os.path.join(folder, "auto.tflite"), validate=False)  # what "auto" does
    auto = "fused" if "UNIDIRECTIONAL_SEQUENCE_LSTM" in chosen.op_counts else "unroll"
    return {"hidden": hidden, "layers": layers, "steps": steps, "weight_bytes_over_steps": read,
            "auto_picks": auto, "unroll/fused": {t: statistics.median(r) for t, r in ratios.items()},
            "round_ratios": ratios, "median_ms": medians, "files": facts}


def markdown(results: list[dict], rounds: int) -> str:
    lines = [f"LiteRT, XNNPACK; {rounds} interleaved rounds per thread count; batch 1, {FEATURES} features, a "
             "linear layer on the last step.", "",
             "| hidden x layers x steps | weights read over the steps | unrolled / fused, 1 thread | 2 threads "
             "| ms unrolled / fused (2 threads) | ops unrolled / fused | `auto` picks |", "|---|---|---|---|---|---|---|"]
    for r in results:
        ms, f, q = r["median_ms"][2], r["files"], r["unroll/fused"]
        lines.append(f"| {r['hidden']} x {r['layers']} x {r['steps']} | {r['weight_bytes_over_steps'] / 1e6:.2f} MB | "
                     f"**{q[1]:.2f}x** | **{q[2]:.2f}x** | {ms['unroll']:.3f} / {ms['fused']:.3f} | "
                     f"{f['unroll']['ops']} / {f['fused']['ops']} | {r['auto_picks']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES, help="hidden x layers x steps, comma-separated")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "lstm_forms.json"))
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes.split(","):
            hidden, layers, steps = (int(v) for v in size.split("x"))
            results.append(measure(hidden, layers, steps, folder, args.rounds))
            r = results[-1]
            print(f"{size:<10} {r['weight_bytes_over_steps'] / 1e6:6.2f} MB  unrolled/fused 1 thread "
                  f"{r['unroll/fused'][1]:.2f}x, 2 threads {r['unroll/fused'][2]:.2f}x  "
                  f"auto: {r['auto_picks']}", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"rounds": args.rounds, "threads": [1, 2], "results": results}, f, indent=1)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(markdown(results, args.rounds))
    print(f"written {args.out} and its .md table")


if __name__ == "__main__":
    main()
