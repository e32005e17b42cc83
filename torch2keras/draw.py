"""Draw an IR graph as SVG, or as a self-contained HTML page around that SVG (no Graphviz needed).

Layout: each drawn node goes in the layer of its longest path from a source; within a layer,
nodes are ordered by the mean position of their producers (one barycentre sweep), which keeps
chains straight. Boxes show the value's dump name, the op, the logical type with its physical
layout (e.g. ``f32[1,16,32,32] NHWC``) and the module and source line.

Colours: inserted transposes (``relayout``) are orange; with validation checks (``report.nodes``),
values within tolerance are green, the first mismatch dark red and inherited mismatches light
red; values that were not compared are white. Hovering a box shows its IR line and errors.
Constants (weights) are left out unless ``constants=True``. Every drawn node is an SVG group
``<g id="node-NAME" class="node op-OP">`` (NAME as in the IR dump).
"""

from __future__ import annotations

import html
import os
from typing import Optional, Sequence

from .ir import Graph, Node
from .ir.printer import Namer, format_attr

__all__ = ["draw_graph", "graph_svg", "graph_html", "layout_name"]

_AXES = {3: "NCL", 4: "NCHW", 5: "NCDHW"}
_FILL = {"first": "#d9383a", "mismatch": "#f7b2b2", "ok": "#c9efc4", "relayout": "#ffc46b", "input": "#cfe3ff",
         "output": "#e8e8e8", "none": "#ffffff", "constant": "#f2f2f2"}
_CHAR_W, _LINE_H, _PAD, _HGAP, _VGAP = 7.0, 15, 8, 24, 46


def layout_name(v) -> str:
    """The stored layout: ``NCHW``/``NHWC`` (and ``NCDHW``/``NDHWC``) for ranks 4 and 5; for other
    ranks nothing in PyTorch's order, ``NLC`` for rank-3 channels-last, else the permutation."""
    t = v.type
    names = _AXES.get(t.rank)
    if t.rank in (4, 5) or (t.rank == 3 and t.perm == (0, 2, 1)):
        return "".join(names[a] for a in t.perm)
    return "{" + ",".join(str(a) for a in t.layout) + "}" if t.layout else ""


def _status(node: Node, checks: dict) -> str:
    found = [checks[v.id].status for v in node.outputs if v.id in checks]
    for s in ("first", "mismatch", "ok"):
        if s in found:
            return s
    if node.op == "relayout":
        return "relayout"
    if node.op in ("input", "constant"):
        return node.op
    return "none"


def _layers(nodes: list[Node], preds: dict[int, list[int]]) -> dict[int, int]:
    layer: dict[int, int] = {}
    for n in nodes:  # topological order
        layer[n.id] = 1 + max((layer[p] for p in preds[n.id]), default=-1)
    return layer


def graph_svg(graph: Graph, checks: Sequence = (), *, constants: bool = False) -> str:
    """The SVG text of ``graph`` (see the module docstring)."""
    by_value = {c.value_id: c for c in checks}
    namer = Namer()
    order = graph.topo_order()
    for n in order:  # name every value in dump order, drawn or not
        for v in n.outputs:
            namer(v)
    nodes = [n for n in order if constants or n.op != "constant"]
    drawn = {n.id for n in nodes}
    preds = {n.id: sorted({u.producer.id for u in n.inputs if u.producer.id in drawn}) for n in nodes}

    boxes: dict[object, dict] = {}
    for n in nodes:
        name = namer(n.outputs[0]) if n.outputs else f"{n.op}{n.id}"
        lines = [f"%{name} = {n.op}"]
        for v in n.outputs[:2]:
            lay = layout_name(v)
            dims = ",".join(str(d) for d in v.type.shape)
            lines.append(f"{v.type.dtype}[{dims}]" + (f" {lay}" if lay else ""))
        if n.loc is not None and (n.loc.module_path or n.loc.file):
            lines.append(n.loc.short())
        errs = [by_value[v.id] for v in n.outputs if v.id in by_value]
        if errs:
            lines.append(f"max |err| {max(c.max_abs_error for c in errs):.2e}")
        boxes[n.id] = {"node": n, "name": name, "lines": lines, "status": _status(n, by_value)}
    layer = _layers(nodes, preds)
    # graph outputs: one pseudo-box each, below their producer
    for k, (out_name, v) in enumerate(zip(graph.output_names, graph.outputs)):
        if v.producer.id not in drawn:
            continue
        key = f"out{k}"
        preds[key] = [v.producer.id]
        layer[key] = layer[v.producer.id] + 1
        boxes[key] = {"node": None, "name": f"output-{out_name}", "lines": [f"return {out_name}"], "status": "output"}

    for b in boxes.values():
        b["w"] = max(len(t) for t in b["lines"]) * _CHAR_W + 2 * _PAD
        b["h"] = len(b["lines"]) * _LINE_H + 2 * _PAD - 4
    routes = _route(boxes, preds, layer)
    rows = _order(boxes, layer, routes)
    width, height = _place(boxes, rows)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans Mono, Menlo, monospace" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
           f'<title>{html.escape(graph.name)}</title>', '<g class="edges">']
    for chain in routes:
        a, b = boxes[chain[0]], boxes[chain[-1]]
        out.append(f'<path class="edge" data-from="{html.escape(a["name"])}" data-to="{html.escape(b["name"])}" '
                   f'd="{_path(boxes, chain)}" fill="none" stroke="#555" stroke-width="1.2" '
                   'marker-end="url(#arrow)"/>')
    out.append("</g>")
    for key, b in boxes.items():
        if b.get("virtual"):
            continue
        n = b["node"]
        op = n.op if n is not None else "return"
        fill = _FILL[b["status"]]
        text_fill = "#ffffff" if b["status"] == "first" else "#111111"
        stroke = "#c06000" if op == "relayout" else "#333333"
        tip = _tooltip(graph, n, namer, by_value) if n is not None else b["lines"][0]
        out.append(f'<g id="node-{html.escape(b["name"])}" class="node op-{op} status-{b["status"]}">')
        out.append(f"<title>{html.escape(tip)}</title>")
        rx = 14 if n is None else 5
        out.append(f'<rect x="{b["x"]:.1f}" y="{b["y"]:.1f}" width="{b["w"]:.1f}" height="{b["h"]:.1f}" rx="{rx}" '
                   f'fill="{fill}" stroke="{stroke}" stroke-width="{2.2 if op == "relayout" else 1}"/>')
        for i, text in enumerate(b["lines"]):
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(f'<text x="{b["x"] + _PAD:.1f}" y="{b["y"] + _PAD + 10 + i * _LINE_H:.1f}" fill="{text_fill}"'
                       f"{weight}>{html.escape(text)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _route(boxes: dict, preds: dict, layer: dict) -> list[list]:
    """One chain of keys per edge; an edge crossing layers gets a virtual box in each (so long
    edges run in their own lane instead of through boxes)."""
    routes = []
    for key in [k for k in boxes]:
        for p in preds[key]:
            chain = [p]
            for depth in range(layer[p] + 1, layer[key]):
                via = ("via", p, key, depth)
                boxes[via] = {"virtual": True, "name": "", "w": 10.0, "h": 0.0}
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


def _place(boxes: dict, rows: list[list]) -> tuple[float, float]:
    """Coordinates: rows stacked top-down, each centred; returns (width, height)."""
    row_w = [sum(boxes[k]["w"] for k in row) + _HGAP * (len(row) - 1) for row in rows]
    width = max(row_w, default=100) + 40
    y = 20.0
    for row, w in zip(rows, row_w):
        height = max((boxes[k]["h"] for k in row), default=0.0)
        x = (width - w) / 2
        for k in row:
            b = boxes[k]
            b["x"], b["y"] = x, y
            if b.get("virtual"):
                b["h"] = height  # the lane runs through the whole row
            x += b["w"] + _HGAP
        y += height + _VGAP
    return width, y


def _path(boxes: dict, chain: list) -> str:
    """Smooth vertical curves between rows, straight through the lanes of virtual boxes."""
    first = boxes[chain[0]]
    x, y = first["x"] + first["w"] / 2, first["y"] + first["h"]
    d = [f"M {x:.1f} {y:.1f}"]
    for key in chain[1:]:
        b = boxes[key]
        x2, y2 = b["x"] + b["w"] / 2, b["y"]
        mid = (y + y2) / 2
        d.append(f"C {x:.1f} {mid:.1f}, {x2:.1f} {mid:.1f}, {x2:.1f} {y2:.1f}")
        x, y = x2, y2
        if b.get("virtual"):
            y = b["y"] + b["h"]
            d.append(f"L {x:.1f} {y:.1f}")
    return " ".join(d)


def _tooltip(graph: Graph, node: Node, namer: Namer, checks: dict) -> str:
    results = ", ".join(f"%{namer(v)} : {v.type}" for v in node.outputs)
    args = ", ".join(f"%{namer(v)}" for v in node.inputs)
    shown = {k: v for k, v in node.attrs.items() if not (node.op == "constant" and k == "dtype")}
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in sorted(shown.items()))
    lines = [f"{results} = {node.op}({args})" + (f" {{{attrs}}}" if attrs else "")]
    if node.loc is not None and node.loc.file:
        lines.append(str(node.loc))
    for v in node.outputs:
        if v.id in checks:
            lines.append(checks[v.id].describe())
    return "\n".join(lines)


def graph_html(graph: Graph, checks: Sequence = (), *, title: Optional[str] = None, constants: bool = False) -> str:
    """A self-contained HTML page: a header with counts, a legend and the inline SVG."""
    svg = graph_svg(graph, checks, constants=constants)
    counts = graph.op_counts()
    ops = sum(k for op, k in counts.items() if op not in ("input", "constant"))
    bad = [c for c in checks if not c.ok]
    legend = "".join(f'<span class="key" style="background:{_FILL[s]}">{label}</span>' for s, label in
                     [("ok", "within tolerance"), ("first", "first mismatch"), ("mismatch", "inherited mismatch"),
                      ("none", "not compared"), ("relayout", "inserted transpose"), ("input", "input")])
    summary = (f"{ops} ops, {counts.get('relayout', 0)} relayouts"
               + (f"; {len(checks)} values compared with PyTorch, {len(bad)} above tolerance" if checks else ""))
    name = html.escape(title or graph.name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} - torch2keras IR</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 16px; color: #111; }}
.key {{ display: inline-block; padding: 2px 8px; margin-right: 6px; border: 1px solid #888; border-radius: 4px;
        font-size: 13px; }}
.canvas {{ overflow: auto; border: 1px solid #ddd; padding: 8px; }}
.node:hover rect {{ stroke-width: 2.5; }}
</style></head>
<body>
<h1>{name}</h1>
<p>{html.escape(summary)}. Hover a node for its IR line, source and errors.</p>
<p>{legend}</p>
<div class="canvas">
{svg}</div>
</body></html>
"""


def draw_graph(graph: Graph, path: str, checks: Sequence = (), *, title: Optional[str] = None,
               constants: bool = False) -> str:
    """Write ``graph`` to ``path``: ``.svg`` gets the SVG, anything else the HTML page."""
    text = graph_svg(graph, checks, constants=constants) if str(path).lower().endswith(".svg") \
        else graph_html(graph, checks, title=title, constants=constants)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)
