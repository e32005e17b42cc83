"""An IR graph (with its checks against PyTorch, ``report.nodes``) as a ``ViewGraph``.

Values are named as in the IR dump; constants (weights) are left out unless ``constants=True``;
each graph output becomes an ``output`` node. A node's status is its worst check ("first",
"mismatch", "ok"), else "relayout" for inserted transposes, else its op for inputs/constants.
"""

from __future__ import annotations

from typing import Sequence

from ..ir import Graph, Node, Value
from ..ir.printer import Namer, format_attr
from .model import ViewGraph, ViewNode

__all__ = ["ir_view", "layout_name"]

_AXES = {3: "NCL", 4: "NCHW", 5: "NCDHW"}


def layout_name(v: Value) -> str:
    """The stored layout: ``NCHW``/``NHWC`` (and ``NCDHW``/``NDHWC``) for ranks 4 and 5; for other
    ranks nothing in PyTorch's order, ``NLC`` for rank-3 channels-last, else the permutation."""
    t = v.type
    names = _AXES.get(t.rank)
    if t.rank in (4, 5) or (t.rank == 3 and t.perm == (0, 2, 1)):
        return "".join(names[a] for a in t.perm)
    return "{" + ",".join(str(a) for a in t.layout) + "}" if t.layout else ""


def type_text(v: Value) -> str:
    lay = layout_name(v)
    dims = ",".join(str(d) for d in v.type.shape)
    return f"{v.type.dtype}[{dims}]" + (f" {lay}" if lay else "")


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


def _ir_line(node: Node, namer: Namer) -> str:
    results = ", ".join(f"%{namer(v)} : {v.type}" for v in node.outputs)
    args = ", ".join(f"%{namer(v)}" for v in node.inputs)
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in _shown_attrs(node))
    line = f"{results} = {node.op}({args})" if node.outputs else f"{node.op}({args})"
    return line + (f" {{{attrs}}}" if attrs else "")


def _shown_attrs(node: Node) -> list[tuple[str, object]]:
    regions = node.regions
    return [(k, v) for k, v in sorted(node.attrs.items())
            if k not in regions and not (node.op in ("constant", "state") and k == "dtype")]


def _node(node: Node, namer: Namer, drawn: dict, checks: dict) -> ViewNode:
    loc = node.loc
    errs = [checks[v.id] for v in node.outputs if v.id in checks]
    view = ViewNode(
        id=node.id, name=namer(node.outputs[0]) if node.outputs else f"{node.op}{node.id}", op=node.op,
        inputs=sorted({u.producer.id for u in node.inputs if u.producer.id in drawn}),
        types=[type_text(v) for v in node.outputs], attributes=[(k, format_attr(v)) for k, v in _shown_attrs(node)],
        status=_status(node, checks), text=_ir_line(node, namer),
        error="\n".join(c.describe() for c in errs), max_error=max((c.max_abs_error for c in errs), default=None))
    if loc is not None:
        view.scopes = [tuple(s) for s in loc.scopes] or ([(loc.module_path, loc.module_type)] if loc.module_path
                                                          else [])
        view.module_type, view.file, view.line, view.code, view.source_op = (loc.module_type, loc.file, loc.line,
                                                                              loc.code, loc.op)
    if node.op == "relayout":
        view.note = f"{layout_name(node.inputs[0]) or 'torch order'} -> {layout_name(node.outputs[0]) or 'torch order'}"
    return view


def ir_view(graph: Graph, checks: Sequence = (), *, title: str = "", constants: bool = False) -> ViewGraph:
    """The drawable form of ``graph``: its nodes (not those of control-flow regions, which show
    as their node's attribute) and one ``output`` node per graph output."""
    by_value = {c.value_id: c for c in checks}
    namer = Namer()
    order = graph.topo_order()
    for n in order:  # name every value in dump order, drawn or not
        for v in n.outputs:
            namer(v)
    drawn: dict = {n.id: n for n in order if constants or n.op != "constant"}
    nodes = [_node(n, namer, drawn, by_value) for n in drawn.values()]
    next_id = max(drawn, default=0) + 1
    for k, (out_name, v) in enumerate(zip(graph.output_names, graph.outputs)):
        if v.producer.id in drawn:
            nodes.append(ViewNode(id=next_id + k, name=out_name, op="output", inputs=[v.producer.id],
                                  types=[type_text(v)], status="output", text=f"return {out_name}=%{namer(v)}"))
    counts = graph.op_counts()
    ops = sum(k for op, k in counts.items() if op not in ("input", "constant"))
    bad = [c for c in checks if not c.ok]
    summary = (f"{ops} ops, {counts.get('relayout', 0)} relayouts"
               + (f"; {len(checks)} values compared with PyTorch, {len(bad)} above tolerance" if checks else ""))
    return ViewGraph(title=title or graph.name, nodes=nodes, summary=summary, kind="ir")
