"""The static SVG picture of a ``ViewGraph`` (for docs and reports): bounded in size.

Modules are collapsed at the deepest module depth that leaves at most ``max_boxes`` boxes (a
module holding one node shows as that node, as in the HTML view); each box goes in the layer of
its longest path from a source, ordered within the layer by barycentre sweeps, long edges in
lanes of their own. A layout taller than ``max_height`` is wrapped into side-by-side columns
(fewer, taller ones where they would be wider than ``max_width``).

Every node box is ``<g id="node-NAME" class="node op-OP status-STATUS">`` (an output
``node-output-NAME``), every collapsed module ``<g id="module-PATH" class="module ...">``,
every edge ``<path class="edge" data-from=... data-to=...>``.
"""

from __future__ import annotations

import html
from typing import Union

from .model import BAD, STATUS_FILL, ViewGraph, ViewNode

__all__ = ["view_svg"]

_CHAR_W, _LINE_H, _PAD, _HGAP, _VGAP, _COLGAP = 7.3, 15, 8, 24, 40, 60
_MODULE_FILL = "#e9eef6"


class _Module:
    """A collapsed module: one box for every node inside it."""

    def __init__(self, path: str, type_: str, order: int) -> None:
        self.path, self.type, self.order = path, type_, order
        self.nodes: list[ViewNode] = []

    @property
    def status(self) -> str:
        found = {n.status for n in self.nodes}
        return next((s for s in BAD if s in found), "")

    def lines(self) -> list[str]:
        relayouts = sum(1 for n in self.nodes if n.op == "relayout")
        info = f"{len(self.nodes)} ops" + (f", {relayouts} transposes" if relayouts else "")
        bad = {"unsupported": "calls without a lowering inside", "first": "first mismatch inside",
               "mismatch": "mismatch inside"}.get(self.status)
        return [f"[+] {self.path}" + (f" ({self.type})" if self.type else ""), info, *([bad] if bad else [])]


Unit = Union[ViewNode, _Module]


def _grouping(view: ViewGraph) -> dict[int, list[tuple[str, str]]]:
    """Each node's modules, without those holding only this node (shown as the node itself)."""
    counts: dict[tuple, int] = {}
    for n in view.nodes:
        for k in range(1, len(n.scopes) + 1):
            counts[tuple(n.scopes[:k])] = counts.get(tuple(n.scopes[:k]), 0) + 1
    out = {}
    for n in view.nodes:
        k = 0
        while k < len(n.scopes) and counts[tuple(n.scopes[: k + 1])] > 1:
            k += 1
        out[n.id] = list(n.scopes[:k])
    return out


def _units(view: ViewGraph, scopes: dict, depth: int) -> dict[int, Unit]:
    """node id -> its box when modules at ``depth`` (1: top level) are collapsed."""
    modules: dict[tuple, _Module] = {}
    unit: dict[int, Unit] = {}
    for order, n in enumerate(view.nodes):
        chain = scopes[n.id]
        if len(chain) >= depth:
            key = tuple(chain[:depth])
            m = modules.setdefault(key, _Module(chain[depth - 1][0], chain[depth - 1][1], order))
            m.nodes.append(n)
            unit[n.id] = m
        else:
            unit[n.id] = n
    return unit


def _choose(view: ViewGraph, scopes: dict, max_boxes: int) -> dict[int, Unit]:
    deepest = max((len(c) for c in scopes.values()), default=0)
    for depth in range(deepest + 1, 0, -1):
        unit = _units(view, scopes, depth)
        if len({id(u) for u in unit.values()}) <= max_boxes or depth == 1:
            return unit
    return _units(view, scopes, 1)


def view_svg(view: ViewGraph, *, max_boxes: int = 60, max_height: float = 1600.0,
             max_width: float = 1600.0) -> str:
    """The SVG text of ``view`` (see the module docstring)."""
    unit_of = _choose(view, _grouping(view), max_boxes)
    boxes: dict[int, dict] = {}  # id(unit) -> box
    for n in view.nodes:
        u = unit_of[n.id]
        if id(u) not in boxes:
            boxes[id(u)] = _box(u, len(boxes))
    preds: dict = {k: [] for k in boxes}
    for n in view.nodes:  # edges between boxes (one back into an earlier box is left out)
        b = id(unit_of[n.id])
        for a in [id(unit_of[i]) for i in n.inputs if i in unit_of]:
            if a != b and boxes[a]["order"] < boxes[b]["order"] and a not in preds[b]:
                preds[b].append(a)
    layer: dict = {}
    for key in sorted(boxes, key=lambda k: boxes[k]["order"]):
        layer[key] = 1 + max((layer[p] for p in preds[key]), default=-1)
    routes = _route(boxes, preds, layer)
    rows = _order(boxes, layer, routes)
    width, height = _place(boxes, rows, max_height)
    while width > max_width and height < sum(b["h"] + _VGAP for b in boxes.values()):  # fewer, taller columns
        max_height *= 1.25
        width, height = _place(boxes, rows, max_height)
    return _render(view, boxes, routes, width, height)


def _box(u: Unit, order: int) -> dict:
    if isinstance(u, ViewNode):
        lines = u.box_lines()
        name = f"output-{u.name}" if u.op == "output" else u.name
        box = {"kind": "node", "unit": u, "name": name, "lines": lines, "status": u.status}
    else:
        lines = u.lines()
        box = {"kind": "module", "unit": u, "name": u.path, "lines": lines, "status": u.status}
    box.update(order=order, w=max(len(t) for t in lines) * _CHAR_W + 2 * _PAD,
               h=len(lines) * _LINE_H + 2 * _PAD - 4)
    return box


def _route(boxes: dict, preds: dict, layer: dict) -> list[list]:
    """One chain of keys per edge; an edge crossing layers gets a lane box in each."""
    routes = []
    for key in list(boxes):
        for p in preds[key]:
            chain = [p]
            for depth in range(layer[p] + 1, layer[key]):
                via = ("via", p, key, depth)
                boxes[via] = {"kind": "lane", "w": 10.0, "h": 0.0, "name": ""}
                layer[via] = depth
                chain.append(via)
            routes.append(chain + [key])
    return routes


def _order(boxes: dict, layer: dict, routes: list[list]) -> list[list]:
    """Rows of keys, ordered by barycentre sweeps (down, up, down) to reduce crossings."""
    up: dict = {k: [] for k in boxes}
    down: dict = {k: [] for k in boxes}
    for chain in routes:
        for a, b in zip(chain, chain[1:]):
            up[b].append(a)
            down[a].append(b)
    depth = max(layer.values(), default=0)
    rows = [[k for k in boxes if layer[k] == d] for d in range(depth + 1)]
    pos = {k: float(i) for row in rows for i, k in enumerate(row)}

    def sweep(indices, neighbours):
        for d in indices:
            rows[d].sort(key=lambda k: sum(pos[n] for n in neighbours[k]) / len(neighbours[k])
                         if neighbours[k] else pos[k])
            for i, k in enumerate(rows[d]):
                pos[k] = float(i)

    sweep(range(1, depth + 1), up)
    sweep(range(depth - 1, -1, -1), down)
    sweep(range(1, depth + 1), up)
    return rows


def _columns(boxes: dict, rows: list[list], max_height: float) -> list[list[list]]:
    """Consecutive rows cut into columns no taller than ``max_height`` (one row at least each)."""
    columns: list[list[list]] = [[]]
    used = 0.0
    for row in rows:
        h = max((boxes[k]["h"] for k in row), default=0.0) + _VGAP
        if columns[-1] and used + h > max_height:
            columns.append([])
            used = 0.0
        columns[-1].append(row)
        used += h
    return columns


def _place(boxes: dict, rows: list[list], max_height: float) -> tuple[float, float]:
    """Coordinates: rows stacked top-down and centred in their column; returns (width, height)."""
    left, height = 20.0, 0.0
    for column in _columns(boxes, rows, max_height):
        row_w = [sum(boxes[k]["w"] for k in row) + _HGAP * (len(row) - 1) for row in column]
        col_w = max(row_w, default=100.0)
        y, right = 20.0, left + col_w + _COLGAP / 2
        for row, w in zip(column, row_w):
            row_h = max((boxes[k]["h"] for k in row), default=0.0)
            x = left + (col_w - w) / 2
            for k in row:
                b = boxes[k]
                b["x"], b["y"], b["gap"] = x, y, right
                if b["kind"] == "lane":
                    b["h"] = row_h  # the lane runs through the whole row
                x += b["w"] + _HGAP
            y += row_h + _VGAP
        left += col_w + _COLGAP
        height = max(height, y)
    return left - _COLGAP + 20, height


def _path(boxes: dict, chain: list) -> str:
    """Smooth vertical curves between rows, straight through lanes; into the next column along
    the gap between the columns."""
    first = boxes[chain[0]]
    x, y, gap = first["x"] + first["w"] / 2, first["y"] + first["h"], first["gap"]
    d = [f"M {x:.1f} {y:.1f}"]
    for key in chain[1:]:
        b = boxes[key]
        x2, y2 = b["x"] + b["w"] / 2, b["y"]
        if y2 < y:  # the next column
            d.append(f"L {x:.1f} {y + 12:.1f} L {gap:.1f} {y + 12:.1f} L {gap:.1f} 8 L {x2:.1f} 8 L {x2:.1f} {y2:.1f}")
        else:
            bend = (y2 - y) / 2 + 10
            d.append(f"C {x:.1f} {y + bend:.1f}, {x2:.1f} {y2 - bend:.1f}, {x2:.1f} {y2:.1f}")
        x, y, gap = x2, y2, b["gap"]
        if b["kind"] == "lane":
            y = b["y"] + b["h"]
            d.append(f"L {x:.1f} {y:.1f}")
    return " ".join(d)


def _render(view: ViewGraph, boxes: dict, routes: list[list], width: float, height: float) -> str:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans Mono, Menlo, monospace" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
           f'<title>{html.escape(view.title)}</title>', '<rect width="100%" height="100%" fill="#ffffff"/>',
           '<g class="edges">']
    for chain in routes:
        a, b = boxes[chain[0]], boxes[chain[-1]]
        out.append(f'<path class="edge" data-from="{html.escape(a["name"])}" data-to="{html.escape(b["name"])}" '
                   f'd="{_path(boxes, chain)}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)"/>')
    out.append("</g>")
    for b in boxes.values():
        if b["kind"] != "lane":
            out.extend(_box_svg(b))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _box_svg(b: dict) -> list[str]:
    status, u = b["status"], b["unit"]
    if b["kind"] == "node":
        op = u.op.replace(" ", "_")
        head = f'<g id="node-{html.escape(b["name"])}" class="node op-{html.escape(op)} status-{status}">'
        fill, tip = STATUS_FILL.get(status, "#ffffff"), u.text or u.label
        stroke, width = ("#c06000", 2.2) if u.op == "relayout" else ("#333333", 1.0)
        if u.error:
            tip += "\n" + u.error
        if u.file:
            tip += f"\n{u.where}"
    else:
        cls = f"module status-{status}" if status else "module"
        head = f'<g id="module-{html.escape(b["name"])}" class="{cls}">'
        fill, tip = _MODULE_FILL, b["name"]
        stroke, width = (STATUS_FILL[status], 3.0) if status else ("#4b5d7a", 1.2)
    text_fill = "#ffffff" if status in ("first", "unsupported") and b["kind"] == "node" else "#111111"
    out = [head, f"<title>{html.escape(tip)}</title>",
           f'<rect x="{b["x"]:.1f}" y="{b["y"]:.1f}" width="{b["w"]:.1f}" height="{b["h"]:.1f}" '
           f'rx="{7 if b["kind"] == "module" else 5}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>']
    for i, text in enumerate(b["lines"]):
        weight = ' font-weight="bold"' if i == 0 else ""
        out.append(f'<text x="{b["x"] + _PAD:.1f}" y="{b["y"] + _PAD + 10 + i * _LINE_H:.1f}" fill="{text_fill}"'
                   f"{weight}>{html.escape(text)}</text>")
    out.append("</g>")
    return out
