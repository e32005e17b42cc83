"""What a picture of a graph shows: plain-data nodes with their module scopes, types, status and
source, built from an IR graph (``from_ir.py``) or from a captured graph that failed to convert
(``frontend_torch/fx_view.py``); the HTML view and the SVG draw it."""

from __future__ import annotations

import os
from typing import Optional

import attrs

__all__ = ["STATUS_FILL", "STATUS_LABEL", "ViewGraph", "ViewNode"]

# node status -> box colour; the order is the legend's
STATUS_FILL = {"ok": "#c9efc4", "first": "#d9383a", "mismatch": "#f7b2b2", "unsupported": "#e0301e",
               "none": "#ffffff", "relayout": "#ffc46b", "input": "#cfe3ff", "output": "#e8e8e8",
               "constant": "#f2f2f2"}
STATUS_LABEL = {"ok": "within tolerance", "first": "first mismatch", "mismatch": "inherited mismatch",
                "unsupported": "no lowering", "none": "not compared", "relayout": "inserted transpose",
                "input": "input", "output": "output", "constant": "constant"}
BAD = ("unsupported", "first", "mismatch")  # statuses that mark a whole module, worst first


@attrs.define
class ViewNode:
    """One drawn node. ``inputs`` are the ids of the drawn nodes it reads; ``scopes`` the
    (module path, class name) of each module it is in, outermost first."""

    id: int
    name: str  # the value's name in the dump (or the call's name)
    op: str
    inputs: list[int] = attrs.field(factory=list)
    types: list[str] = attrs.field(factory=list)  # one per result: "f32[1,16,32,32] NHWC"
    attributes: list[tuple[str, str]] = attrs.field(factory=list)
    scopes: list[tuple[str, str]] = attrs.field(factory=list)
    module_type: str = ""
    file: str = ""
    line: int = 0
    code: str = ""
    source_op: str = ""  # the framework op it was lowered from
    status: str = "none"  # a key of STATUS_FILL
    error: str = ""  # the comparison with PyTorch, as text
    max_error: Optional[float] = None
    stub: str = ""  # for an unsupported call: the converter stub to fill
    text: str = ""  # its line in the IR dump
    note: str = ""  # a short third line of the box (e.g. a relayout's layouts)

    @property
    def label(self) -> str:
        return f"return {self.name}" if self.op == "output" else f"%{self.name} = {self.op}"

    @property
    def module_path(self) -> str:
        return self.scopes[-1][0] if self.scopes else ""

    @property
    def where(self) -> str:
        """``module (Type), file.py:12``: the short location shown in boxes and details."""
        text = self.module_path or "<top>"
        if self.module_type:
            text += f" ({self.module_type})"
        return text + (f", {os.path.basename(self.file)}:{self.line}" if self.file else "")

    def box_lines(self) -> list[str]:
        """The lines of its box: label, first result type, then a note or the error."""
        lines = [self.label, *self.types[:1]]
        if self.note:
            lines.append(self.note)
        if self.max_error is not None:
            lines.append(f"max |err| {self.max_error:.2e}")
        return lines

    def to_json(self) -> dict:
        d = attrs.asdict(self)
        d["label"], d["where"] = self.label, self.where
        return d


@attrs.define
class ViewGraph:
    """A drawable graph: nodes in a topological order (producers first)."""

    title: str
    nodes: list[ViewNode] = attrs.field(factory=list)
    summary: str = ""
    kind: str = "ir"  # "ir": a converted graph; "captured": a captured graph that did not convert

    def statuses(self) -> list[str]:
        """The statuses that occur, in legend order."""
        found = {n.status for n in self.nodes}
        return [s for s in STATUS_FILL if s in found]

    def to_json(self) -> dict:
        return {"title": self.title, "summary": self.summary, "kind": self.kind,
                "nodes": [n.to_json() for n in self.nodes],
                "legend": [[s, STATUS_LABEL[s], STATUS_FILL[s]] for s in self.statuses()]}
