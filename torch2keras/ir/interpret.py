"""Run an IR graph on numpy arrays with the ops' reference implementations.

Values are logical arrays (PyTorch's axis order): a ``relayout`` is the identity and layouts
are ignored, so a graph computes the same before and after the layout pass. That makes the
interpreter the numeric check of a pass on its own, without torch or Keras: run the graph before
and after, compare.

State (``state`` / ``state_update``) lives in an ``InterpreterState``: a call reads every state
as it was when the call started, and the updates it makes are seen by the next call.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .evaluate import evaluate
from .types import dtype_to_numpy

__all__ = ["InterpreterState", "run_graph"]


class InterpreterState:
    """State values by name, kept between calls of ``run_graph``."""

    def __init__(self) -> None:
        self.values: dict[str, np.ndarray] = {}

    def read(self, node) -> np.ndarray:
        return self.values.get(node.attrs["name"], np.asarray(node.attrs["value"]))


Inputs = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]


def _feeds(graph, inputs: Inputs) -> list[np.ndarray]:
    if isinstance(inputs, Mapping):
        missing = [n for n in graph.input_names if n not in inputs]
        if missing:
            raise ValueError(f"graph {graph.name!r} needs inputs {missing}")
        return [np.asarray(inputs[n]) for n in graph.input_names]
    inputs = list(inputs)
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"graph {graph.name!r} takes {len(graph.inputs)} inputs, got {len(inputs)}")
    return [np.asarray(x) for x in inputs]


def run_graph(graph, inputs: Inputs, state: Optional[InterpreterState] = None) -> list[np.ndarray]:
    """The graph's outputs for ``inputs`` (by position or input name), all logical arrays."""
    if graph.meta.get("elided_constants"):
        raise ValueError(f"graph {graph.name!r} was read without its weights ({len(graph.meta['elided_constants'])} "
                         "constants elided): load it with its side file to compute with it")
    state = state if state is not None else InterpreterState()
    env: dict[int, np.ndarray] = {v.id: x for v, x in zip(graph.inputs, _feeds(graph, inputs))}
    updates: dict[str, np.ndarray] = {}
    for node in graph.topo_order():
        if node.op == "input":
            continue
        if node.op == "constant":
            env[node.output.id] = node.value
            continue
        if node.op == "state":
            env[node.output.id] = state.read(node)
            continue
        args = [env[v.id] for v in node.inputs]
        if node.op == "state_update":
            updates[node.attrs["name"]] = args[0]
            continue
        with np.errstate(all="ignore"):
            results = evaluate(node.op, args, node.attrs)
        for v, array in zip(node.outputs, results):
            env[v.id] = np.asarray(array, dtype=dtype_to_numpy(v.type.dtype))
    state.values.update(updates)
    return [env[v.id] for v in graph.outputs]
