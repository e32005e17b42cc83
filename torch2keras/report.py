"""The conversion report: errors vs PyTorch per output, op and transpose counts, timings."""

from __future__ import annotations

import json
import sys
from typing import Optional

import attrs

__all__ = ["OutputCheck", "Report"]


@attrs.define
class OutputCheck:
    name: str
    shape: tuple
    max_abs_error: float
    max_abs_reference: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.tolerance


@attrs.define
class Report:
    model: str = "model"
    capture_method: str = ""
    outputs: list[OutputCheck] = attrs.field(factory=list)
    ir_op_counts: dict[str, int] = attrs.field(factory=dict)
    transposes: int = 0
    keras_layers: int = 0
    timings: dict[str, float] = attrs.field(factory=dict)
    warnings: list[str] = attrs.field(factory=list)
    tflite: dict = attrs.field(factory=dict)

    @property
    def max_abs_error(self) -> Optional[float]:
        return max((o.max_abs_error for o in self.outputs), default=None)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def to_dict(self) -> dict:
        d = attrs.asdict(self)
        d["max_abs_error"] = self.max_abs_error
        d["ok"] = self.ok
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def summary(self) -> str:
        lines = [f"torch2keras report for {self.model} (captured with {self.capture_method})"]
        if self.outputs:
            lines.append(f"  {'output':<20} {'shape':<22} {'max |err|':>11} {'max |ref|':>11}  status")
            for o in self.outputs:
                status = "ok" if o.ok else f"MISMATCH (tol {o.tolerance:.1e})"
                lines.append(f"  {o.name:<20} {str(list(o.shape)):<22} {o.max_abs_error:>11.3e} "
                             f"{o.max_abs_reference:>11.3e}  {status}")
        ops = sum(n for op, n in self.ir_op_counts.items() if op not in ("input", "constant"))
        lines.append(f"  IR: {ops} ops, {self.transposes} transposes; Keras: {self.keras_layers} layers")
        if self.tflite:
            t = self.tflite
            lines.append(f"  TFLite: {t.get('ops')} ops, {t.get('transposes')} TRANSPOSE"
                         + (f", max |err| {t['max_abs_error']:.3e}" if t.get("max_abs_error") is not None else "")
                         + (f" -> {t['path']}" if t.get("path") else ""))
        if self.timings:
            lines.append("  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def print(self, file=None) -> None:
        print(self.summary(), file=file or sys.stdout)
