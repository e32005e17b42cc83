"""The interactive HTML view of a ``ViewGraph``: one self-contained page (inline script, style
and data; nothing fetched), laid out in the browser (``static/viewer.js``)."""

from __future__ import annotations

import html
import json
from importlib import resources

from .model import ViewGraph

__all__ = ["view_html", "view_iframe"]


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _json_for_script(data: dict) -> str:
    """JSON that cannot end its <script> element early."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")


def view_html(view: ViewGraph) -> str:
    """The page: a toolbar (search, expand/collapse, legend), the graph and a details panel."""
    title = html.escape(view.title)
    legend = "".join(f'<span class="key" style="background:{fill}">{html.escape(label)}</span>'
                     for _, label, fill in view.to_json()["legend"])
    hint = ("Click a module to expand or collapse it, a node for its details; drag to pan, wheel to zoom; "
            "/ searches ops, modules and source.")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - torch2keras</title>
<style>
{_static("viewer.css")}</style></head>
<body>
<header>
<h1>{title}</h1><span>{html.escape(view.summary)}</span>
<input id="t2k-search" type="search" placeholder="search op, module, file:line, code" autocomplete="off">
<button id="t2k-top" title="collapse to the top-level modules">top level</button>
<button id="t2k-all" title="expand every module">expand all</button>
<button id="t2k-fit" title="fit the graph to the window">fit</button>
<span id="t2k-counts"></span>
<span>{legend}</span>
</header>
<main>
<svg id="t2k-svg" xmlns="http://www.w3.org/2000/svg" aria-label="{html.escape(hint)}">
<defs><marker id="t2k-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"
orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>
<g id="t2k-viewport"></g></svg>
<div id="t2k-results"></div>
<aside id="t2k-details" hidden><button id="t2k-close">close</button><div id="t2k-detail-body"></div></aside>
</main>
<script id="t2k-data" type="application/json">{_json_for_script(view.to_json())}</script>
<script>
{_static("viewer.js")}</script>
</body></html>
"""


def view_iframe(view: ViewGraph, height: int = 620) -> str:
    """The page inside an ``<iframe srcdoc>`` (for notebooks: its script and style stay inside)."""
    return (f'<iframe srcdoc="{html.escape(view_html(view), quote=True)}" style="width:100%;height:{height}px;'
            'border:1px solid #ccc" sandbox="allow-scripts"></iframe>')
