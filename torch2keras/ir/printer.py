"""Stable, diffable text form of a graph, and a JSON dump for tooling.

Grammar (one node per line, attributes sorted by name):

    graph NAME
      %v : TYPE[, %w : TYPE] = OP(%a, %b) {key=val, ...}  # MODULE FILE:LINE
      OP(%a) {key=val, ...}  # an op without results (an effect: state_update)
      return NAME=%v, ...

``TYPE`` is ``dtype[d0,d1,...]`` followed by ``{p0,p1,...}`` when the value is stored in a
non-identity layout. Names are assigned at print time from name hints plus a counter, so two
dumps of equal graphs are equal text.

A node's regions (control flow, attributes of kind ``graph``) follow its line, each as a header
and its nodes indented two more spaces; names are unique across the whole dump:

      %r : TYPE = cond(%p, %a)
        region then_branch
          %a_1 : TYPE = input() {name='a'}
          ...
          return output_0=%v
        region else_branch
          ...
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .graph import Graph, Value

__all__ = ["print_graph", "graph_to_json", "Namer"]

_SMALL = 8


class Namer:
    """Unique, deterministic printed names for values, from their hints."""

    def __init__(self) -> None:
        self._names: dict[Value, str] = {}  # by the Value object: ids repeat across nested graphs
        self._taken: set[str] = set()

    def __call__(self, v: Value) -> str:
        if v not in self._names:
            base = re.sub(r"\W", "_", v.name_hint) or "v"
            name, k = base, 1
            while name in self._taken:
                name = f"{base}_{k}"
                k += 1
            self._taken.add(name)
            self._names[v] = name
        return self._names[v]


def format_attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= _SMALL:
            body = np.array2string(value.reshape(-1), separator=",", max_line_width=10**6)
            return f"{value.dtype.name}{list(value.shape)}{body}".replace(" ", "")
        return f"<{value.dtype.name}{list(value.shape)}>".replace(" ", "")
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_attr(v) for v in value) + "]"
    if isinstance(value, Graph):
        return f"<region {value.name}: {len(value)} nodes>"
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def print_graph(graph: Graph, annotate=None) -> str:
    """The text form; ``annotate(node) -> str`` may append a note to each line."""
    lines = [f"graph {graph.name}"]
    _print_body(graph, annotate, Namer(), "  ", lines)
    return "\n".join(lines) + "\n"


def _print_body(graph: Graph, annotate, name: Namer, indent: str, lines: list[str]) -> None:
    for node in graph.topo_order():
        results = ", ".join(f"%{name(v)} : {v.type}" for v in node.outputs)
        args = ", ".join(f"%{name(v)}" for v in node.inputs)
        regions = node.regions
        shown = {k: v for k, v in node.attrs.items()
                 if not (node.op in ("constant", "state") and k == "dtype") and k not in regions}
        attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in sorted(shown.items()))
        line = f"{indent}{results} = {node.op}({args})" if node.outputs else f"{indent}{node.op}({args})"
        if attrs:
            line += " {" + attrs + "}"
        notes = []
        if node.loc is not None and (node.loc.module_path or node.loc.file):
            notes.append(node.loc.short())
        if annotate is not None:
            extra = annotate(node)
            if extra:
                notes.append(extra)
        if notes:
            line += "  # " + "  ".join(notes)
        lines.append(line)
        for region_name, region in regions.items():
            lines.append(f"{indent}  region {region_name}")
            _print_body(region, annotate, name, indent + "    ", lines)
    outs = ", ".join(f"{n}=%{name(v)}" for n, v in zip(graph.output_names, graph.outputs))
    lines.append(f"{indent}return {outs}")


def _json_attr(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        out = {"shape": list(value.shape), "dtype": value.dtype.name}
        if value.size <= _SMALL:
            out["data"] = value.reshape(-1).tolist()
        return out
    if isinstance(value, (list, tuple)):
        return [_json_attr(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def _json_type(v: Value) -> dict:
    return {"shape": list(v.type.shape), "dtype": v.type.dtype, "layout": list(v.type.perm)}


def graph_to_json(graph: Graph, _namer: "Namer | None" = None) -> dict:
    """A JSON-ready description of the graph (not meant to be parsed back into a Graph); a
    node's regions are nested graphs under ``"regions"``."""
    name = _namer or Namer()
    nodes = []
    for node in graph.topo_order():
        regions = node.regions
        entry = {
            "id": node.id,
            "op": node.op,
            "inputs": [name(v) for v in node.inputs],
            "outputs": [{"name": name(v), **_json_type(v)} for v in node.outputs],
            "attrs": {k: _json_attr(v) for k, v in sorted(node.attrs.items()) if k not in regions},
        }
        if regions:
            entry["regions"] = {k: graph_to_json(g, name) for k, g in regions.items()}
        if node.loc is not None:
            entry["loc"] = {"module": node.loc.module_path, "module_type": node.loc.module_type,
                            "file": node.loc.file, "line": node.loc.line, "source_op": node.loc.op}
        nodes.append(entry)
    return {
        "name": graph.name,
        "inputs": [name(v) for v in graph.inputs],
        "outputs": [{"name": n, "value": name(v)} for n, v in zip(graph.output_names, graph.outputs)],
        "nodes": nodes,
    }
