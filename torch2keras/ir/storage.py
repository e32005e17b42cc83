"""IR files: a graph's text (``print_graph``) and, next to it, its large constants in ``PATH.npz``.

``save_ir(graph, path)`` writes the text to ``path`` and the arrays it elides to
``weights_path(path)`` (``path + ".npz"``: an uncompressed zip of ``.npy`` files keyed by
``printer.weight_key``; no file when nothing is elided). ``load_ir(path)`` parses the text
with those arrays; without the side file the graph still loads, its large constants stand-ins
that refuse numeric use (``elided.py``). ``IRDumper`` writes the stages of a compilation
(``compile(dump_ir=DIR, dump_weights=...)``).
"""

from __future__ import annotations

import os
import zipfile
from typing import Mapping, Optional

import numpy as np

from .graph import Graph
from .parser import parse
from .printer import print_graph, print_graph_and_weights

__all__ = ["IRDumper", "load_ir", "save_ir", "weights_path"]


def weights_path(path: str) -> str:
    """Where the large constants of the IR file ``path`` are kept."""
    return f"{path}.npz"


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _write_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """An ``np.load``-able .npz (stored, not compressed), written to a new file that then takes
    the name: a hard link to the old file (``IRDumper``) keeps the old contents."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    os.replace(tmp, path)


def _remove(path: str) -> None:
    if os.path.lexists(path):
        os.remove(path)


def save_ir(graph: Graph, path: str) -> str:
    """Write ``graph``'s text to ``path`` and its large constants to ``path + ".npz"`` (a stale
    weights file of an earlier save is removed when nothing is elided). Constants whose values
    are already missing (a graph parsed without its weights) stay missing."""
    text, arrays = print_graph_and_weights(graph)
    _write_text(path, text)
    if arrays:
        _write_npz(weights_path(path), arrays)
    else:
        _remove(weights_path(path))
    return path


def load_ir(path: str) -> Graph:
    """The graph saved at ``path`` (``save_ir``, ``compile(dump_ir=...)``), with the values of
    its large constants from ``path + ".npz"`` when that file exists."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    npz = weights_path(path)
    if not os.path.exists(npz):
        return parse(text, source=path)
    with np.load(npz, allow_pickle=False) as data:
        weights = {key: data[key] for key in data.files}
    return parse(text, weights, source=path)


class IRDumper:
    """Writes each stage of a compilation to ``DIRECTORY/STEM.txt``; with ``weights=True`` also
    its large constants to ``STEM.txt.npz``, as a hard link to the previous stage's file when the
    arrays are the previous stage's (the same objects under the same names), so a pipeline that
    leaves the weights alone stores them once."""

    def __init__(self, directory: str, weights: bool = False) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.weights = weights
        self._last: Optional[tuple[str, dict[str, np.ndarray]]] = None  # (file, the arrays it holds)

    def __call__(self, stem: str, graph: Graph) -> str:
        path = os.path.join(self.directory, f"{stem}.txt")
        npz = weights_path(path)
        if not self.weights:
            _write_text(path, print_graph(graph))
            _remove(npz)  # a weights file of an earlier run would not match this text
            return path
        text, arrays = print_graph_and_weights(graph)
        _write_text(path, text)
        _remove(npz)
        if not arrays:
            return path
        last = self._last
        if last is not None and last[1].keys() == arrays.keys() and all(last[1][k] is a for k, a in arrays.items()):
            try:
                os.link(last[0], npz)
            except OSError:  # no hard links on this file system
                _write_npz(npz, arrays)
        else:
            _write_npz(npz, arrays)
        self._last = (npz, arrays)
        return path
