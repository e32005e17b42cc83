"""The IR graph: ``core.GraphBase`` (nodes, values, edits) with its text form and verification.

The printer and the verifier work on ``GraphBase``; this module, above them, gives ``Graph`` its
``str()`` (the IR text, ``printer.py``), ``to_json()`` and ``verify()`` (``verifier.py``).
"""

from __future__ import annotations

from .core import GraphBase, Node, SourceLoc, Value
from .printer import graph_to_json, print_graph
from .verifier import verify

__all__ = ["Graph", "Node", "SourceLoc", "Value"]


class Graph(GraphBase):
    """A dataflow graph of IR nodes, with ordered named inputs and outputs; ``str(graph)`` is its
    IR text (``parser.parse`` reads it back)."""

    # ------------------------------------------------------------------ text

    def __str__(self) -> str:
        return print_graph(self)

    def _repr_html_(self) -> str:
        """The text form in a scrolling block (how notebooks show a graph; the interactive
        picture is ``CompileResult``'s, or ``torch2keras.draw.draw_graph``)."""
        import html

        return ('<pre style="max-height:32em;overflow:auto;font-size:12px">' + html.escape(str(self)) + "</pre>")

    def to_json(self) -> dict:
        return graph_to_json(self)

    def verify(self) -> None:
        verify(self)
