"""Op counts of the two TFLite paths on the test zoo: the direct backend's file against the TF
converter's, per model -- ops, TRANSPOSEs, the ops LiteRT's default XNNPACK delegate leaves to the
plain kernels, and each file's error vs PyTorch.

Models: the 12 of tests/e2e/test_zoo.py and shufflenet_v2_x1_0 (both built by tests/zoo_models.py),
benchmarks/zoo.py's small models (lstm2_linear, essentials); random, seeded weights, PyTorch's I/O
layout. Each model is compiled
once; both files come from that one result, LSTMs fused in both (``lstm="fused"``). Ops are counted over every subgraph of a file (as the
direct-backend tests compare them); the XNNPACK leftovers are main-graph ops outside every
DELEGATE partition (``tflite.runtime.xnnpack_delegated_ops``). Errors: max |tflite - torch| on the
example input (default delegates, 2 threads) and the same divided by max(1, max |torch|).

Writes benchmarks/results/op_counts.json and op_counts.md. Usage:

    python benchmarks/op_counts.py [--models resnet18,googlenet]
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
import torch.utils._pytree as pytree  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
sys.path.insert(0, HERE)
sys.path.insert(0, TESTS)

import torch2keras  # noqa: E402
from torch2keras.tflite.file import read_tflite  # noqa: E402
from torch2keras.tflite.runtime import xnnpack_delegated_ops  # noqa: E402
from zoo import essentials, lstm2_linear  # noqa: E402
from zoo_models import ZOO, zoo_model  # noqa: E402

TOL = 1e-4  # the zoo tests' tolerance on the scaled error
# ops the direct backend leaves off XNNPACK on purpose: the UNPACK writing the LSTM state variables
# that a FULLY_CONNECTED reads after the fused ops (backend_tflite/emitters/recurrent.py
# ``_unpacked_states``: XNNPACK takes SPLIT, and would run it with that reader ahead of the LSTMs)
INTENDED_OFF_XNNPACK = {"UNPACK": "writes the LSTM states read after the fused ops; kept off XNNPACK so that "
                                  "it and the LSTMs run before the reader"}


def model_names() -> list[str]:
    return [*ZOO, "shufflenet_v2_x1_0", "lstm2_linear", "essentials"]


def build(name: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """(model in eval mode with random seeded weights, example inputs) -- as the tests build them."""
    if name == "lstm2_linear":
        torch.manual_seed(0)
        return lstm2_linear(), (torch.randn(1, 10, 16),)
    if name == "essentials":
        torch.manual_seed(0)
        return essentials(), (torch.rand(1, 3, 64, 64),)
    model, x = zoo_model(name)
    return model, (x,)


def xnnpack_leftovers(path: str) -> list[str]:
    """Names of the main-graph ops XNNPACK does not take (sorted, with repeats)."""
    taken, why = xnnpack_delegated_ops(path)
    if taken is None:
        return [f"(does not load with the default delegates: {why})"]
    return sorted(op.name for k, op in enumerate(read_tflite(path).main_ops()) if k not in taken)


def errors(result, path: str, inputs, reference: list[np.ndarray]) -> dict:
    """max |file - torch| over the outputs, and that over max(1, max |torch|) per output (largest)."""
    outs = result.run_tflite(path, [t.numpy() for t in inputs])
    absolute, scaled = 0.0, 0.0
    for o, r in zip(outs, reference):
        diff = float(np.max(np.abs(np.asarray(o, np.float64) - r))) if r.size else 0.0
        absolute = max(absolute, diff)
        scaled = max(scaled, diff / max(1.0, float(np.max(np.abs(r))) if r.size else 1.0))
    return {"max_abs_error": absolute, "scaled_error": scaled}


def file_stats(result, path: str, inputs, reference) -> dict:
    counts = read_tflite(path).op_counts()
    return {"ops": sum(counts.values()), "transposes": counts.get("TRANSPOSE", 0), "op_counts": counts,
            "not_on_xnnpack": xnnpack_leftovers(path), "bytes": os.path.getsize(path),
            **errors(result, path, inputs, reference)}


def bench_model(name: str, tmp: str) -> dict:
    model, inputs = build(name)
    with torch.no_grad():
        out = model(*[t.clone() for t in inputs])
    reference = [t.numpy().astype(np.float64) for t in pytree.tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    start = time.perf_counter()
    result = torch2keras.compile(model, inputs, name=name, validate=False)
    row: dict = {"model": name, "compile_s": time.perf_counter() - start}
    for backend in ("direct", "converter"):
        path = os.path.join(tmp, f"{name}_{backend}.tflite")
        start = time.perf_counter()
        # (LSTMs fused in both files: the converter writes them so; the direct file's default,
        # unrolled where that measured faster, is benchmarks/lstm_forms.py's business)
        options = {"lstm": "fused"} if backend == "direct" else {}
        result.export_tflite(path, validate=False, delegates=False, backend=backend, **options)
        row[backend] = {"export_s": time.perf_counter() - start, **file_stats(result, path, inputs, reference)}
    d, c = row["direct"], row["converter"]
    row["ops_ratio"] = d["ops"] / c["ops"] if c["ops"] else None
    row["findings"] = findings(d, c)
    return row


def findings(direct: dict, converter: dict) -> list[str]:
    """What the direct file misses of the done-criterion: more ops or TRANSPOSEs than the
    converter's, an op XNNPACK does not take (beyond the converter's own and
    ``INTENDED_OFF_XNNPACK``), an error above TOL."""
    out = []
    if direct["ops"] > converter["ops"]:
        out.append(f"{direct['ops']} ops > converter's {converter['ops']}")
    if direct["transposes"] > converter["transposes"]:
        out.append(f"{direct['transposes']} TRANSPOSE > converter's {converter['transposes']}")
    extra = sorted(set(direct["not_on_xnnpack"]) - set(converter["not_on_xnnpack"]) - set(INTENDED_OFF_XNNPACK))
    if extra:
        out.append(f"not on XNNPACK: {', '.join(extra)}")
    if direct["scaled_error"] >= TOL:
        out.append(f"error {direct['scaled_error']:.2g} (scaled) >= {TOL:g}")
    return out


def _leftovers(names: list[str]) -> str:
    if not names:
        return "0"
    counts = {n: names.count(n) for n in sorted(set(names))}
    return ", ".join(f"{n} x{k}" if k > 1 else n for n, k in counts.items())


def markdown(rows: list[dict]) -> str:
    lines = ["# TFLite op counts: direct backend vs TF converter", "",
             "Random seeded weights, PyTorch's I/O layout; ops over all subgraphs; \"not on XNNPACK\": main-graph ops "
             "outside LiteRT's default XNNPACK partitions; max err: max |tflite - torch| / max(1, max |torch|) on "
             "the example input (default delegates). `python benchmarks/op_counts.py` (`make bench-op-counts`).", "",
             "| model | ops direct | ops converter | TRANSPOSE direct | TRANSPOSE converter | ops ratio | "
             "not on XNNPACK direct | not on XNNPACK converter | max err direct | max err converter |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | failed: {row['error']} | | | | | | | | |")
            continue
        d, c = row["direct"], row["converter"]
        lines.append(f"| {row['model']} | {d['ops']} | {c['ops']} | {d['transposes']} | {c['transposes']} | "
                     f"{row['ops_ratio']:.2f} | {_leftovers(d['not_on_xnnpack'])} | "
                     f"{_leftovers(c['not_on_xnnpack'])} | {d['scaled_error']:.1e} | {c['scaled_error']:.1e} |")
    notes = [f"- {row['model']}: {'; '.join(row['findings'])}" for row in rows if row.get("findings")]
    lines += ["", "Where the direct file misses the criterion (<= the converter's ops and TRANSPOSEs, every op "
              "on XNNPACK that the converter's has there, error < 1e-4): " + ("" if notes else "nowhere."), *notes]
    intended = sorted({op for row in rows if "direct" in row for op in row["direct"]["not_on_xnnpack"]}
                      & set(INTENDED_OFF_XNNPACK))
    if intended:
        lines += ["", "Off XNNPACK by design in the direct files:", "",
                  *[f"- {op}: {INTENDED_OFF_XNNPACK[op]}" for op in intended]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "op_counts.json"))
    args = parser.parse_args(argv)
    known = model_names()
    names = [m for m in args.models.split(",") if m] if args.models else known
    unknown = [m for m in names if m not in known]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {', '.join(known)}")
    rows = []
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    md_path = os.path.splitext(args.out)[0] + ".md"
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"{name}...", flush=True)
            try:
                row = bench_model(name, tmp)
            except Exception as e:  # noqa: BLE001 - one failing model is a row of the table
                row = {"model": name, "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"}
                print(f"  failed: {row['error']}", flush=True)
            else:
                d, c = row["direct"], row["converter"]
                print(f"  ops {d['ops']} / {c['ops']}, TRANSPOSE {d['transposes']} / {c['transposes']}, "
                      f"not on XNNPACK {_leftovers(d['not_on_xnnpack'])} / {_leftovers(c['not_on_xnnpack'])}, "
                      f"err {d['scaled_error']:.1e} / {c['scaled_error']:.1e} (direct / converter)"
                      + (f"  <- {'; '.join(row['findings'])}" if row["findings"] else ""), flush=True)
            rows.append(row)
            with open(args.out, "w") as f:  # after every model: a partial run leaves its rows
                json.dump({"models": rows}, f, indent=1)
            with open(md_path, "w") as f:
                f.write(markdown(rows))
    print(markdown(rows))
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
