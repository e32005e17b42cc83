"""Operator coverage: PyTorch's OpInfo samples through torch2keras, as a table.

For every in-scope OpInfo entry (see ``tests/ops/harness.py`` for the scope and why), run its
CPU sample inputs -- float32, and int64/int32/bool where the op takes them, up to
``--max-samples`` samples that can be a model per dtype -- through ``torch2keras.compile`` and compare Keras with PyTorch.
An entry is ``passed`` when every sample passes (samples that cannot be a model, e.g. with
zero-size tensors, are skipped with their reason), else it takes its worst sample's status:
``crashed`` > ``unsupported`` (with the reason) > ``mismatch`` (with the max error).

Writes ``benchmarks/results/op_coverage.md`` and ``.json`` (per entry, the totals, the entries
out of scope with their reason, and the Core ATen opset: lowered and exercised, or unsupported
with the reason). ``--jobs`` runs entries in parallel processes.

    .venv/bin/python benchmarks/op_coverage.py [--max-samples 8] [--jobs 2] [--only REGEX]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "ops"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

_RANK = {"crashed": 3, "unsupported": 2, "mismatch": 1, "passed": 0}


def harness_max_samples() -> int:
    import harness

    return harness.MAX_SAMPLES


def run_entry(name: str, max_samples: int, dtypes: list[str]) -> dict:
    import torch

    import harness

    opinfo = harness.all_entries()[name]
    seen: set[str] = set()
    counts = {"passed": 0, "mismatch": 0, "unsupported": 0, "crashed": 0, "skipped": 0}
    worst, worst_detail, max_error, skips = "passed", "", 0.0, []
    by_dtype: dict[str, dict] = {}  # per dtype: the worst status and its first failing sample
    start = time.perf_counter()
    for dtype in harness.sample_dtypes(opinfo):
        dname = str(dtype).replace("torch.", "")
        if dname not in dtypes:
            continue
        try:
            samples = harness.samples(opinfo, dtype)
            ran = 0
            for index, sample in enumerate(samples):
                if max_samples and ran >= max_samples:
                    break
                with harness.recording_ops() as ops:
                    outcome = harness.run_sample(opinfo, sample, dtype)
                counts[outcome.status] += 1
                if outcome.status == "skipped":
                    skips.append(outcome.detail)
                    continue
                ran += 1
                entry = by_dtype.setdefault(dname, {"status": "passed", "detail": ""})
                if outcome.status == "passed":
                    seen |= ops
                    max_error = max(max_error, outcome.max_error or 0.0)
                    continue
                if _RANK[outcome.status] > _RANK[entry["status"]]:
                    entry.update(status=outcome.status, detail=f"sample {index}: {outcome.detail}"[:300])
                if _RANK[outcome.status] > _RANK[worst]:
                    worst = outcome.status
                    worst_detail = f"{dname} sample {index}: {outcome.detail}"
                if outcome.status == "mismatch" and outcome.max_error is not None:
                    max_error = max(max_error, outcome.max_error)
        except Exception as e:  # noqa: BLE001 - sample generation itself failed
            counts["crashed"] += 1
            worst, worst_detail = "crashed", f"{dname}: sample generation: {type(e).__name__}: {e}"[:300]
    ran = counts["passed"] + counts["mismatch"] + counts["unsupported"] + counts["crashed"]
    status = worst if ran else "skipped"
    return {"entry": name, "status": status, "detail": worst_detail if ran else (skips[0] if skips else ""),
            "max_error": max_error, "samples": counts, "by_dtype": by_dtype, "aten_ops": sorted(seen),
            "seconds": round(time.perf_counter() - start, 2)}


def core_aten_table(exercised: set[str]) -> list[dict]:
    import harness  # noqa: F401  (torch imported)
    from torch2keras.frontend_torch import LOWERINGS
    from torch2keras.frontend_torch.unsupported import UNSUPPORTED, core_aten_ops
    from test_core_aten import DIRECT, DYNAMIC_SHAPES

    def tested_in(name: str):
        if name in DIRECT:
            return "tests/ops/test_core_aten.py"
        return "tests/frontend/test_dynamic.py" if name in DYNAMIC_SHAPES else None

    rows = []
    for op in core_aten_ops():
        name = str(op)
        if op in UNSUPPORTED:
            rows.append({"op": name, "status": "unsupported", "reason": UNSUPPORTED[op]})
        elif op in LOWERINGS:
            rows.append({"op": name, "status": "lowered", "exercised_by_opinfo": name in exercised,
                         "tested_in": tested_in(name)})
        else:
            rows.append({"op": name, "status": "missing"})
    return rows


def write_markdown(path: str, data: dict) -> None:
    t = data["totals"]
    lines = [
        "# Operator coverage (PyTorch OpInfo samples through torch2keras)",
        "",
        f"torch {data['torch']}; up to {data['max_samples'] or 'all'} samples per entry and dtype "
        f"({', '.join(data['dtypes'])}); Keras outputs vs PyTorch (atol 1e-4 + rtol 1e-4 * max|ref|, "
        "integers and bools exact). Generated by `benchmarks/op_coverage.py`.",
        "",
        "## Totals",
        "",
        f"- in-scope OpInfo entries: {t['in_scope']}",
        f"- passed: {t['passed']} ({100.0 * t['pass_rate']:.1f}%)",
        f"- mismatch: {t['mismatch']}, unsupported: {t['unsupported']}, crashed: {t['crashed']}, "
        f"all samples skipped: {t['skipped']}",
        f"- samples run: {t['samples_run']} (skipped: {t['samples_skipped']})",
        f"- out of scope: {t['out_of_scope']}",
        f"- Core ATen ops: {t['core_ops']} -- lowered {t['core_lowered']} (exercised by passing OpInfo samples: "
        f"{t['core_exercised']}; the others tested directly in tests/ops/test_core_aten.py or tests/frontend/test_dynamic.py: "
        f"{t['core_lowered'] - t['core_exercised'] - t['core_untested']}; untested: {t['core_untested']}), "
        f"unsupported with a reason {t['core_unsupported']}, missing {t['core_missing']}",
        "",
        "## Entries that do not pass",
        "",
        "Each is listed with its reason in `tests/ops/expectations.py` (the tests expect these failures).",
        "",
        "| entry | status | max error | listed reason | first failing sample |",
        "|---|---|---|---|---|",
    ]
    for e in data["entries"]:
        if e["status"] not in ("passed",):
            err = "" if e["status"] != "mismatch" else f"{e['max_error']:.3g}"
            lines.append(f"| {e['entry']} | {e['status']} | {err} | {e.get('listed_reason') or 'NOT LISTED'} | "
                         f"{e['detail'].replace('|', '/')} |")
    lines += ["", "## All in-scope entries", "", "| entry | status | samples passed / run | max error |",
              "|---|---|---|---|"]
    for e in data["entries"]:
        s = e["samples"]
        run = s["passed"] + s["mismatch"] + s["unsupported"] + s["crashed"]
        lines.append(f"| {e['entry']} | {e['status']} | {s['passed']} / {run} | {e['max_error']:.3g} |")
    lines += ["", "## Core ATen opset", "", "| op | status | note |", "|---|---|---|"]
    for r in data["core_aten"]:
        note = r.get("reason", "") if r["status"] != "lowered" else \
            "; ".join(["exercised by OpInfo"] * r["exercised_by_opinfo"]
                      + [f"tested in {r['tested_in']}"] * bool(r["tested_in"])) or "NOT TESTED"
        lines.append(f"| {r['op']} | {r['status']} | {note} |")
    lines += ["", "## Out of scope", "", "| entry | reason |", "|---|---|"]
    for name, reason in sorted(data["out_of_scope"].items()):
        lines.append(f"| {name} | {reason} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-samples", type=int, default=harness_max_samples(),
                        help="samples (that can be a model) per entry and dtype; 0: all")
    parser.add_argument("--dtypes", default="float32,int64,int32,bool")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", help="a regex over entry names")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "op_coverage"))
    args = parser.parse_args(argv)
    import torch

    import harness

    entries = harness.all_entries()
    scope = {n: o for n, o in entries.items() if harness.in_scope(o)}
    out_of_scope = {n: harness.scope_reason(o) for n, o in entries.items() if not harness.in_scope(o)}
    names = sorted(n for n in scope if not args.only or re.search(args.only, n))
    dtypes = args.dtypes.split(",")
    start = time.perf_counter()
    results = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_entry, n, args.max_samples, dtypes): n for n in names}
        for k, fut in enumerate(as_completed(futures), 1):
            name = futures[fut]
            try:
                results[name] = fut.result()
            except Exception as e:  # noqa: BLE001 - a worker died
                results[name] = {"entry": name, "status": "crashed", "detail": f"worker: {type(e).__name__}: {e}",
                                 "max_error": 0.0, "samples": {s: 0 for s in _RANK} | {"skipped": 0},
                                 "aten_ops": [], "seconds": 0.0}
            r = results[name]
            print(f"[{k}/{len(names)}] {name}: {r['status']} {r['detail'][:120]}", flush=True)
    rows = [results[n] for n in names]
    from expectations import FIRST_SAMPLE, SWEEP

    for r in rows:
        listed = FIRST_SAMPLE.get(r["entry"]) or next((v for (e, _), v in SWEEP.items() if e == r["entry"]), None)
        r["listed_reason"] = listed
    exercised = set().union(*(r["aten_ops"] for r in rows)) if rows else set()
    core = core_aten_table(exercised)
    counted = [r for r in rows if r["status"] != "skipped"]
    totals = {s: sum(r["status"] == s for r in rows) for s in ("passed", "mismatch", "unsupported", "crashed",
                                                                 "skipped")}
    totals.update(
        in_scope=len(rows), out_of_scope=len(out_of_scope),
        pass_rate=totals["passed"] / max(len(rows), 1),
        samples_run=sum(r["samples"][s] for r in rows for s in _RANK),
        samples_skipped=sum(r["samples"]["skipped"] for r in rows),
        core_ops=len(core), core_lowered=sum(r["status"] == "lowered" for r in core),
        core_exercised=sum(bool(r.get("exercised_by_opinfo")) for r in core),
        core_untested=sum(r["status"] == "lowered" and not (r["exercised_by_opinfo"] or r["tested_in"])
                          for r in core),
        core_unsupported=sum(r["status"] == "unsupported" for r in core),
        core_missing=sum(r["status"] == "missing" for r in core),
        seconds=round(time.perf_counter() - start, 1))
    del counted
    data = {"torch": torch.__version__, "max_samples": args.max_samples, "dtypes": dtypes, "totals": totals,
            "entries": rows, "core_aten": core, "out_of_scope": out_of_scope}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(data, f, indent=1)
    write_markdown(args.out + ".md", data)
    print(json.dumps(totals, indent=1))
    print(f"wrote {args.out}.md and {args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
