"""Draw a graph: an interactive self-contained HTML page, or a static SVG (no Graphviz needed).

``graph`` is an IR graph (with its checks against PyTorch, ``report.nodes``) or a ``ViewGraph``
(e.g. ``UnsupportedOpError.view``, the captured graph of a model that did not convert). The
HTML page groups the nodes in a collapsible tree of modules, opened at the top-level modules,
with search, pan and zoom, and a click on a node shows its types, attributes, error and source
line (``view/page.py``). The SVG collapses modules until it is small enough to read and wraps
tall layouts into columns (``view/svg.py``).

Colours: inserted transposes (``relayout``) are orange; with validation checks, values within
tolerance are green, the first mismatch dark red and inherited mismatches light red; calls
without a lowering are red; values that were not compared are white. Constants (weights) are
left out unless ``constants=True``.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from .ir import Graph
from .view.from_ir import ir_view, layout_name
from .view.model import ViewGraph
from .view.page import view_html
from .view.svg import view_svg

__all__ = ["draw_graph", "graph_svg", "graph_html", "layout_name", "to_view"]

Drawable = Union[Graph, ViewGraph]


def to_view(graph: Drawable, checks: Sequence = (), *, title: Optional[str] = None,
            constants: bool = False) -> ViewGraph:
    """The drawable form of ``graph`` (a ``ViewGraph`` is returned as it is, retitled if asked)."""
    if isinstance(graph, ViewGraph):
        if title:
            graph.title = title
        return graph
    return ir_view(graph, checks, title=title or graph.name, constants=constants)


def graph_svg(graph: Drawable, checks: Sequence = (), *, constants: bool = False, max_boxes: int = 60,
              max_height: float = 1600.0, max_width: float = 1600.0) -> str:
    """The static SVG text (see ``view/svg.py``)."""
    return view_svg(to_view(graph, checks, constants=constants), max_boxes=max_boxes, max_height=max_height,
                    max_width=max_width)


def graph_html(graph: Drawable, checks: Sequence = (), *, title: Optional[str] = None,
               constants: bool = False) -> str:
    """The interactive self-contained HTML page (see ``view/page.py``)."""
    return view_html(to_view(graph, checks, title=title, constants=constants))


def draw_graph(graph: Drawable, path: str, checks: Sequence = (), *, title: Optional[str] = None,
               constants: bool = False) -> str:
    """Write ``graph`` to ``path``: ``.svg`` gets the SVG, anything else the HTML page."""
    view = to_view(graph, checks, title=title, constants=constants)
    text = view_svg(view) if str(path).lower().endswith(".svg") else view_html(view)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)
