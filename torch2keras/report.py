"""The conversion report: errors vs PyTorch per output and per converted value, op and
transpose counts, timings (per stage and per pass); the first value whose error jumps above
the tolerance, located in the user's source. ``summary()`` is a plain-text table (``print()``
colours it on a terminal)."""

from __future__ import annotations

import html
import json
import os
import sys
from typing import Any, Optional

import attrs

__all__ = ["NodeCheck", "OutputCheck", "Report"]


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
class NodeCheck:
    """One converted value compared with its torch counterpart (logical layout, float64).

    status: "ok"; "first" (above tolerance while every compared value it depends on is within
    it: where the error starts); "mismatch" (above tolerance, inherited from upstream)."""

    value: str  # the value's name in the IR dump
    value_id: int
    op: str  # IR op
    torch_op: str  # the op it was lowered from, e.g. aten.conv2d.default
    module_path: str
    module_type: str
    file: str
    line: int
    code: str
    input_shapes: list
    shape: tuple
    max_abs_error: float
    max_rel_error: float
    max_abs_reference: float
    tolerance: float
    status: str = "ok"
    dtype: str = ""

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.tolerance

    @property
    def location(self) -> str:
        where = f"module '{self.module_path or '<top>'}'" + (f" ({self.module_type})" if self.module_type else "")
        return where + (f", {os.path.basename(self.file)}:{self.line}" if self.file else "")

    def describe(self) -> str:
        """Several lines: the value, its op, where it comes from, shapes and errors."""
        lines = [f"%{self.value} = {self.op} (from {self.torch_op}) in {self.location}"]
        if self.file:
            lines.append(f"    {self.file}:{self.line}" + (f": {self.code.strip()}" if self.code else ""))
        ins = ", ".join(self.input_shapes) or "-"
        lines.append(f"    inputs {ins} -> {self.dtype}{_shape(self.shape)}")
        lines.append(f"    max |err| {self.max_abs_error:.3e}, max rel err {self.max_rel_error:.3e}, "
                     f"max |ref| {self.max_abs_reference:.3e}, tolerance {self.tolerance:.1e}")
        return "\n".join(lines)


def _shape(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


_COLOURS = {"ok": "\033[32m", "first": "\033[1;31m", "mismatch": "\033[31m", "end": "\033[0m"}


def _paint(text: str, status: str, color: bool) -> str:
    return f"{_COLOURS[status]}{text}{_COLOURS['end']}" if color else text


@attrs.define
class Report:
    model: str = "model"
    capture_method: str = ""
    outputs: list[OutputCheck] = attrs.field(factory=list)
    ir_op_counts: dict[str, int] = attrs.field(factory=dict)
    transposes: int = 0
    keras_layers: int = 0
    timings: dict[str, float] = attrs.field(factory=dict)
    memory: dict[str, int] = attrs.field(factory=dict)  # stage -> the process's peak resident bytes during it
    passes: list = attrs.field(factory=list)  # passes.PassRecord per pipeline position (group members too)
    warnings: list[str] = attrs.field(factory=list)
    tflite: dict = attrs.field(factory=dict)
    nodes: list[NodeCheck] = attrs.field(factory=list)  # every compared value, in graph order
    first_mismatch: Optional[NodeCheck] = None
    quantization: Any = None  # quantize.QuantizationReport of the last int8 TFLite export
    quantization_selection: Any = None  # selective.SelectiveQuantization (keep_float / target_agreement)
    delegates: Any = None  # delegates.DelegateReport of the last TFLite export
    layout: Optional[dict] = None  # the layout pass's solve: method, variables, approximated, seconds
    atol: Optional[float] = None  # the tolerance of every check: |err| <= atol + rtol * max|ref|
    rtol: Optional[float] = None

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

    def node_table(self, rows: Optional[list[NodeCheck]] = None, color: bool = False) -> str:
        """The per-value table (all compared values unless ``rows`` is given)."""
        rows = self.nodes if rows is None else rows
        lines = [f"  {'value':<24} {'op':<14} {'module':<20} {'source':<22} {'shape':<18} "
                 f"{'max |err|':>10} {'rel err':>9}  status"]
        for c in rows:
            source = f"{os.path.basename(c.file)}:{c.line}" if c.file else ""
            status = {"ok": "ok", "first": "FIRST MISMATCH", "mismatch": "mismatch"}[c.status]
            line = (f"  {_cut('%' + c.value, 24):<24} {_cut(c.op, 14):<14} {_cut(c.module_path or '<top>', 20):<20} "
                    f"{_cut(source, 22):<22} {_cut(_shape(c.shape), 18):<18} {c.max_abs_error:>10.2e} "
                    f"{c.max_rel_error:>9.1e}  {status}")
            lines.append(_paint(line, c.status, color))
        return "\n".join(lines)

    def summary(self, color: bool = False) -> str:
        lines = [f"torch2keras report for {self.model} (captured with {self.capture_method})"]
        if self.outputs:
            lines.append(f"  {'output':<20} {'shape':<22} {'max |err|':>11} {'max |ref|':>11}  status")
            for o in self.outputs:
                status = "ok" if o.ok else f"MISMATCH (tol {o.tolerance:.1e})"
                lines.append(_paint(f"  {o.name:<20} {str(list(o.shape)):<22} {o.max_abs_error:>11.3e} "
                                    f"{o.max_abs_reference:>11.3e}  {status}", "ok" if o.ok else "first", color))
            if self.atol is not None and self.rtol is not None:
                lines.append(f"  tolerance: max |err| <= atol {self.atol:.1e} + rtol {self.rtol:.1e} * max |ref|")
        if self.nodes:
            bad = [c for c in self.nodes if not c.ok]
            lines.append(f"  values compared with PyTorch: {len(self.nodes)}, above tolerance: {len(bad)}")
            if self.first_mismatch is not None:
                lines.append(_paint("  first mismatch: " + self.first_mismatch.describe().replace("\n", "\n  "),
                                    "first", color))
                at = next(i for i, c in enumerate(self.nodes) if c is self.first_mismatch)
                shown = self.nodes[max(0, at - 3):at] + bad[bad.index(self.first_mismatch):][:12]
                lines.append(self.node_table(shown, color))
                if len(self.nodes) > len(shown):
                    lines.append(f"  ({len(self.nodes) - len(shown)} more values: report.node_table())")
        ops = sum(n for op, n in self.ir_op_counts.items() if op not in ("input", "constant"))
        lines.append(f"  IR: {ops} ops, {self.transposes} transposes; Keras: {self.keras_layers} layers")
        if self.layout:
            lay = self.layout
            lines.append(f"  layout: {lay['method']} over {lay['variables']} choices, {lay['approximated']} approximated, "
                         f"{lay['seconds']:.3f}s")
        if self.tflite:
            t = self.tflite
            kind = t.get("quantize") or "float32"
            if t.get("quantize") == "int8":
                kind += f", {t.get('io_dtype')} I/O"
            size = f", {t['bytes'] / 1e6:.2f} MB" if t.get("bytes") else ""
            lines.append(f"  TFLite: {kind}{size}, {t.get('ops')} ops, {t.get('transposes')} TRANSPOSE"
                         + (f", max |err| {t['max_abs_error']:.3e}" if t.get("max_abs_error") is not None else "")
                         + (f" -> {t['path']}" if t.get("path") else ""))
        if self.quantization_selection is not None:
            lines.append(self.quantization_selection.summary())
        if self.quantization is not None:
            lines.append(self.quantization.summary())
        if self.delegates is not None:
            lines.append(self.delegates.summary())
        if self.timings:
            lines.append("  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))
        if self.memory:
            lines.append("  peak memory (RSS): " + ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in self.memory.items()))
        if self.passes:
            lines.extend(_passes_table(self.passes))
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """A compact table for notebooks: outputs and errors, op and transpose counts, the first
        mismatch, timings, warnings."""
        return _report_html(self)

    def print(self, file=None, color: Optional[bool] = None) -> None:
        """Print the summary; coloured when ``file`` is a terminal (unless ``color`` says)."""
        file = file or sys.stdout
        if color is None:
            color = bool(getattr(file, "isatty", lambda: False)())
        print(self.summary(color=color), file=file)


def _passes_table(records: list) -> list[str]:
    """One line per pipeline position: name (* if it changed the graph), time, rewrite outcomes,
    and a group's members (x runs)."""

    def outcomes(r) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in r.rewrites.items() if n)

    def mark(r) -> str:
        return r.name + ("*" if r.changed else "")

    lines = ["  passes (* changed the graph):"]
    for r in records:
        if "." in r.position:
            continue
        members = [m for m in records if m.position.rsplit(".", 1)[0] == r.position and "." in m.position]
        detail = ", ".join(f"{mark(m)} x{m.runs}" + (f" ({outcomes(m)})" if outcomes(m) else "") for m in members)
        line = f"  {r.position:>4} {_cut(mark(r), 28):<28} {r.seconds * 1e3:>8.1f} ms  {detail or outcomes(r)}"
        lines.append(line.rstrip())
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_HTML_STYLE = ("<style>.t2k-report td,.t2k-report th{padding:2px 10px;text-align:left;font-family:monospace}"
               ".t2k-report .bad{color:#b00020;font-weight:bold}.t2k-report .ok{color:#1b7f2a}</style>")


def _report_html(report: Report) -> str:
    esc = html.escape
    rows = [f"<tr><th colspan=5>torch2keras report for {esc(report.model)} (captured with "
            f"{esc(report.capture_method or '-')})</th></tr>",
            "<tr><th>output</th><th>shape</th><th>max |err|</th><th>max |ref|</th><th>status</th></tr>"]
    for o in report.outputs:
        status = "ok" if o.ok else f"MISMATCH (tol {o.tolerance:.1e})"
        rows.append(f"<tr><td>{esc(o.name)}</td><td>{esc(_shape(o.shape))}</td><td>{o.max_abs_error:.3e}</td>"
                    f"<td>{o.max_abs_reference:.3e}</td><td class={'ok' if o.ok else 'bad'}>{status}</td></tr>")
    ops = sum(n for op, n in report.ir_op_counts.items() if op not in ("input", "constant"))
    facts = [("IR", f"{ops} ops, {report.transposes} transposes; Keras: {report.keras_layers} layers")]
    if report.nodes:
        bad = sum(1 for c in report.nodes if not c.ok)
        facts.append(("values compared", f"{len(report.nodes)}, above tolerance: {bad}"))
    if report.first_mismatch is not None:
        facts.append(("first mismatch", report.first_mismatch.describe()))
    if report.tflite:
        t = report.tflite
        facts.append(("TFLite", f"{t.get('quantize') or 'float32'}, {t.get('ops')} ops, {t.get('transposes')} TRANSPOSE"
                      + (f", max |err| {t['max_abs_error']:.3e}" if t.get("max_abs_error") is not None else "")))
    if report.timings:
        facts.append(("time", ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())))
    facts += [("warning", w) for w in report.warnings]
    for key, value in facts:
        cls = " class=bad" if key in ("first mismatch", "warning") else ""
        rows.append(f"<tr><th>{esc(key)}</th><td colspan=4{cls}><pre style='margin:0'>{esc(value)}</pre></td></tr>")
    return _HTML_STYLE + "<table class=t2k-report>" + "".join(rows) + "</table>"
