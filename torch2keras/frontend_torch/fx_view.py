"""A captured graph that did not convert, as a ``ViewGraph``: every call with its shapes, module
and source line; calls without a lowering are marked ``unsupported`` and carry their stub.

``UnsupportedOpError.view`` holds it, so the picture can be drawn although no IR exists.
"""

from __future__ import annotations

import operator
from typing import Any, Mapping

import torch

from ..view.model import ViewGraph, ViewNode
from .capture import Captured
from .lower import iter_calls
from .stubs import _tensor_text, converter_stub, describe_arg

__all__ = ["captured_view"]


def _short_op(target: Any) -> str:
    text = str(target)
    text = text[len("aten."):] if text.startswith("aten.") else text
    return text[: -len(".default")] if text.endswith(".default") else text


def _types(node: torch.fx.Node) -> list[str]:
    val = node.meta.get("val")
    vals = [val] if isinstance(val, torch.Tensor) else list(val) if isinstance(val, (tuple, list)) else []
    return [_tensor_text(v) for v in vals if isinstance(v, torch.Tensor)]


def _call_node(node: torch.fx.Node, loc, ids: dict, lowerings: Mapping) -> ViewNode:
    unsupported = node.target not in lowerings
    args = [f"{describe_arg(a)}" for a in node.args] + [f"{k}={describe_arg(v)}" for k, v in node.kwargs.items()]
    return ViewNode(
        id=len(ids), name=node.name, op=_short_op(node.target),
        inputs=sorted({ids[a] for a in node.all_input_nodes if a in ids}), types=_types(node),
        scopes=[tuple(s) for s in loc.scopes], module_type=loc.module_type, file=loc.file, line=loc.line,
        code=loc.code, source_op=str(node.target), status="unsupported" if unsupported else "none",
        stub=converter_stub(node.target, node) if unsupported else "",
        text=f"%{node.name} = {node.target}({', '.join(args)})")


def captured_view(captured: Captured, lowerings: Mapping, title: str = "model") -> ViewGraph:
    """Inputs, calls (those of control-flow sub-graphs too) and outputs of ``captured``; tuple
    indexing (``getitem``) is drawn as an edge from the indexed call."""
    ids: dict[torch.fx.Node, int] = {}
    nodes: list[ViewNode] = []
    public = dict(zip(captured.user_inputs, captured.input_names))
    for node in captured.graph.nodes:
        if node.op == "placeholder" and node.name in public:
            ids[node] = len(ids)
            nodes.append(ViewNode(id=ids[node], name=public[node.name], op="input", types=_types(node),
                                  status="input"))
    for node, loc in iter_calls(captured.graph):
        if node.target is operator.getitem:
            source = node.args[0]
            if source in ids:
                ids[node] = ids[source]
            continue
        view = _call_node(node, loc, ids, lowerings)
        ids[node] = view.id
        nodes.append(view)
    for k, (name, out) in enumerate(zip(captured.output_names, captured.user_outputs)):
        if isinstance(out, torch.fx.Node) and out in ids:
            nodes.append(ViewNode(id=len(ids) + k, name=name, op="output", inputs=[ids[out]], types=_types(out),
                                  status="output"))
    bad = [n for n in nodes if n.status == "unsupported"]
    ops = sorted({n.op for n in bad})
    summary = (f"captured {sum(1 for n in nodes if n.op not in ('input', 'output'))} calls; {len(bad)} call(s) of "
               f"{len(ops)} op(s) have no lowering: {', '.join(ops)}")
    return ViewGraph(title=title, nodes=nodes, summary=summary, kind="captured")
