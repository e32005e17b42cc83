"""``python -m torch2keras.fuzz``: generate, check, group by root cause, shrink one failure per group."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional, Sequence

from .checker import TFLITE_BACKENDS, Outcome, root_cause, same_failure
from .generator import generate
from .model import ModelSpec
from .report import attach_shrunk, slug, summarize, table, write_json, write_reproducer
from .runner import Worker, run_parallel
from .shrinker import shrink


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m torch2keras.fuzz", description=__doc__)
    p.add_argument("--n", type=int, default=200, help="number of random models")
    p.add_argument("--seed", type=int, default=0, help="first seed (models use seeds SEED .. SEED+N-1)")
    p.add_argument("--out", default="fuzz_out", help="output directory")
    p.add_argument("--workers", type=int, default=2, help="checking processes")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per model before it counts as a crash")
    p.add_argument("--max-ops", type=int, default=15)
    p.add_argument("--shrink-budget", type=int, default=30, help="checks per root cause spent shrinking (0: none)")
    p.add_argument("--shrink-above", type=int, default=2, help="shrink only groups whose smallest model has more ops")
    p.add_argument("--tflite-backend", choices=TFLITE_BACKENDS, default="auto",
                   help="who writes the TFLite file: auto (the direct writer, TensorFlow's converter where it refuses "
                        "the model), converter or direct")
    p.add_argument("--resume", action="store_true", help="keep the outcomes already in OUT/results.jsonl")
    return p.parse_args(argv)


def _previous(results: str) -> dict[int, Outcome]:
    """Outcomes a previous run of the same output directory recorded, by seed."""
    if not os.path.exists(results):
        return {}
    with open(results) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {row["seed"]: Outcome.from_dict(row["outcome"]) for row in rows}


def _check_all(specs: list[ModelSpec], args: argparse.Namespace, log: str, results: str) -> list[Outcome]:
    known = _previous(results) if args.resume else {}
    if not args.resume:
        open(results, "w").close()
    todo = [s for s in specs if s.seed not in known]
    done = [0]
    start = time.perf_counter()

    def work(worker: Worker, spec: ModelSpec) -> Outcome:
        outcome = worker.check(spec)
        done[0] += 1
        with open(results, "a") as f:
            f.write(json.dumps({"seed": spec.seed, "ops": len(spec.ops), "outcome": outcome.to_dict()}) + "\n")
        print(f"[{time.perf_counter() - start:7.1f}s] {done[0]}/{len(todo)} seed {spec.seed}: {outcome.status}"
              + (f" @ {outcome.stage}" if outcome.stage else "")
              + (f" (tflite: {outcome.tflite_backend})" if outcome.tflite_backend else ""), flush=True)
        return outcome

    fresh = run_parallel(todo, work, workers=args.workers, timeout=args.timeout, log_path=log,
                         tflite_backend=args.tflite_backend)
    known.update({s.seed: o for s, o in zip(todo, fresh)})
    return [known[s.seed] for s in specs]


def _shrink_groups(specs: list[ModelSpec], outcomes: list[Outcome], summary: dict, args: argparse.Namespace,
                   log: str) -> None:
    """Shrink the smallest failing model of each root cause; write its reproducer."""
    by_seed = {s.seed: (s, o) for s, o in zip(specs, outcomes)}
    jobs = [(f"{k:02d}_{g['status']}_{g['stage']}_{g['where'] or g['error_type']}", key, *by_seed[g["smallest_seed"]])
            for k, (key, g) in enumerate(summary["root_causes"].items(), 1) if g["smallest_ops"] > args.shrink_above]
    repro_dir = os.path.join(args.out, "repros")

    def work(worker: Worker, job) -> None:
        name, key, spec, outcome = job
        small, spent = shrink(spec, lambda s: same_failure(outcome, worker.check(s)), budget=args.shrink_budget)
        path = write_reproducer(repro_dir, slug(name), small, outcome)
        attach_shrunk(summary, key, small, path, spent)
        print(f"shrunk {key[:90]}: {len(spec.ops)} -> {len(small.ops)} op(s) in {spent} checks", flush=True)

    run_parallel(jobs, work, workers=args.workers, timeout=args.timeout, log_path=log,
                 tflite_backend=args.tflite_backend)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse(argv)
    os.makedirs(args.out, exist_ok=True)
    log, results = os.path.join(args.out, "workers.log"), os.path.join(args.out, "results.jsonl")
    seeds = range(args.seed, args.seed + args.n)
    specs = [generate(s, max_ops=args.max_ops) for s in seeds]
    outcomes = _check_all(specs, args, log, results)
    summary = summarize(specs, outcomes, seeds=f"{seeds.start}..{seeds.stop - 1}", tflite_backend=args.tflite_backend)
    if args.shrink_budget > 0:
        _shrink_groups(specs, outcomes, summary, args, log)
    summary["models_by_seed"] = {s.seed: {"ops": s.kinds, "root_cause": root_cause(o) if o.status != "ok" else "ok"}
                                 for s, o in zip(specs, outcomes)}
    write_json(os.path.join(args.out, "fuzz.json"), summary)
    text = table(summary)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
