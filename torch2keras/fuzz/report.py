"""Fuzzing results: the JSON summary, the table by root cause, and standalone reproducers."""

from __future__ import annotations

import collections
import json
import os
import re
import statistics
from typing import Optional

from .checker import STATUSES, Outcome, headline, root_cause
from .generator import CHECK_SEED_OFFSET
from .model import ModelSpec, model_source

__all__ = ["summarize", "table", "reproducer_source", "write_json", "slug"]


def summarize(specs: list[ModelSpec], outcomes: list[Outcome], seeds: str = "", tflite_backend: str = "auto") -> dict:
    """Counts by status, pass rate, time per model, which backend wrote the TFLite files (and
    the direct writer's refusals that sent a model to the converter, by IR op), and the failures
    grouped by root cause (each group: count, seeds, one example message, and the smallest
    failing model's size)."""
    statuses = collections.Counter(o.status for o in outcomes)
    groups: dict[str, dict] = {}
    for spec, o in zip(specs, outcomes):
        if o.status == "ok":
            continue
        g = groups.setdefault(root_cause(o), {"status": o.status, "stage": o.stage, "error_type": o.error_type,
                                              "where": o.where, "count": 0, "seeds": [], "example": "",
                                              "smallest_seed": spec.seed, "smallest_ops": len(spec.ops)})
        g["count"] += 1
        g["seeds"].append(spec.seed)
        if len(spec.ops) < g["smallest_ops"] or not g["example"]:
            g["smallest_seed"], g["smallest_ops"] = spec.seed, len(spec.ops)
            g["example"] = headline(o.message)[:300]
    seconds = [o.seconds for o in outcomes if o.status != "crash"]
    passed = sum(o.passed for o in outcomes)
    return {
        "models": len(outcomes), "seeds": seeds,
        "passed": passed, "pass_rate": round(passed / len(outcomes), 4) if outcomes else None,
        "by_status": {s: statuses.get(s, 0) for s in STATUSES},
        "seconds_per_model": {"mean": round(statistics.mean(seconds), 2) if seconds else None,
                              "median": round(statistics.median(seconds), 2) if seconds else None,
                              "max": round(max(seconds), 2) if seconds else None},
        "ops_per_model": round(statistics.mean(len(s.ops) for s in specs), 2) if specs else None,
        "tflite_backend": tflite_backend,
        "tflite_written_by": dict(collections.Counter(o.tflite_backend for o in outcomes if o.tflite_backend)),
        "direct_refusals": dict(collections.Counter(_refused_op(o.direct_refusal) for o in outcomes
                                                    if o.direct_refusal).most_common()),
        "root_causes": dict(sorted(groups.items(), key=lambda kv: (STATUSES.index(kv[1]["status"]),
                                                                   -kv[1]["count"]))),
    }


_REFUSED_OP = re.compile(r"IR op '([^']+)'")


def _refused_op(refusal: str) -> str:
    """The IR op a direct writer's refusal names (its first line otherwise)."""
    m = _REFUSED_OP.search(refusal)
    return m.group(1) if m else refusal[:120]


def table(summary: dict) -> str:
    """A Markdown table: one row per root cause, with its count, status and minimal reproducer."""
    lines = [f"{summary['models']} models (seeds {summary['seeds']}), {summary['passed']} pass end to end "
             f"({100 * (summary['pass_rate'] or 0):.1f}%), "
             f"{summary['seconds_per_model']['mean']} s per model (median {summary['seconds_per_model']['median']} s)",
             "", "| status | count |", "| --- | --- |"]
    lines += [f"| {s} | {n} |" for s, n in summary["by_status"].items() if n]
    written = summary.get("tflite_written_by") or {}
    if written:
        lines += ["", f"TFLite files (backend \"{summary.get('tflite_backend', 'auto')}\") written by: "
                  + ", ".join(f"{k} {n}" for k, n in sorted(written.items()))]
        refusals = summary.get("direct_refusals") or {}
        if refusals:
            lines[-1] += "; the direct writer refused (IR op: models): " + ", ".join(
                f"{op} {n}" for op, n in refusals.items())
    lines += ["", "| # | count | status @ stage | error / first line | where | minimal reproducer |",
              "| --- | --- | --- | --- | --- | --- |"]
    for k, (key, g) in enumerate(summary["root_causes"].items(), 1):
        shrunk = g.get("shrunk")
        repro = f"{shrunk['ops']} op(s): {', '.join(shrunk['kinds'])} ({shrunk['file']})" if shrunk else \
            f"seed {g['smallest_seed']} ({g['smallest_ops']} ops)"
        error = f"{g['error_type'].rsplit('.', 1)[-1]}: {g['example']}" if g["error_type"] else g["example"]
        lines.append(f"| {k} | {g['count']} | {g['status']} @ {g['stage']} | {_cell(error)} | {_cell(g['where'])} "
                     f"| {_cell(repro)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:200]


def slug(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")[:80]


def reproducer_source(spec: ModelSpec, outcome: Outcome) -> str:
    """A standalone script: the model, its inputs, and the calls that fail (compile, then Keras,
    TFLite and the reloaded ``.keras`` file on new inputs -- another batch size for the inputs of a
    dynamic batch, as the checker feeds them -- each compared with PyTorch)."""
    first = headline(outcome.message)[:300].replace('"""', "'''")
    dynamic = next((i.shape[0] + 1 for i in spec.inputs if i.dynamic_batch), None)
    check_seed = spec.seed + CHECK_SEED_OFFSET
    flags = [i.dynamic_batch for i in spec.inputs]
    check_inputs = (f"batch_resized(make_inputs({check_seed}, batch={dynamic}), make_inputs({check_seed}), {flags!r})"
                    if dynamic else f"make_inputs({check_seed})")
    backend = outcome.tflite_backend or "auto"
    header = (f'"""Reproducer of a torch2keras fuzzing failure (seed {spec.seed}, {len(spec.ops)} op(s)).\n\n'
              f'{outcome.status} at {outcome.stage or "-"}: {outcome.error_type}\n{first}\n"""\n')
    return header + model_source(spec) + f'''

def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    from torch2keras.fuzz.replay import {"batch_resized, " if dynamic else ""}check_reproducer

    check_reproducer(make_model(), make_inputs({spec.seed}), {check_inputs}, tflite_backend={backend!r},
                     input_layouts={spec.input_layouts()!r}, output_layouts={spec.output_layout_list()!r},
                     dynamic_shapes={spec.dynamic_shapes()!r})


if __name__ == "__main__":
    check_all()
'''


def write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.write("\n")


def write_reproducer(directory: str, name: str, spec: ModelSpec, outcome: Outcome) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.py")
    with open(path, "w") as f:
        f.write(reproducer_source(spec, outcome))
    return path


def attach_shrunk(summary: dict, key: str, spec: ModelSpec, path: Optional[str], checks: int) -> None:
    summary["root_causes"][key]["shrunk"] = {"ops": len(spec.ops), "kinds": spec.kinds, "file": path,
                                             "checks": checks, "spec": spec.to_dict()}
