"""What the passes unrolling a recurrent layer over its time steps share (``unroll_lstm``,
``unroll_gru``): the one rule saying whether a layer is unrolled, the builder of the unrolled
nodes, the layer's sizes, its initial states and its first layer's input projection, and the
replacement of its results.

The rule (``unroll_refusal``): a recurrent node is unrolled when its shapes are static, it runs
on floats, its weights are constants, it runs 1 to ``max_steps`` steps, and the weights its
unrolled steps read -- per step, times the steps -- come to at most ``max_weight_bytes``
(float32; None: any). Each pass says which weights its steps read (``per_step_weights``). Both
limits exist for XNNPACK: it packs the weights of every step's FULLY_CONNECTED apart, so beyond a
size the steps stop sharing one cached copy, and many steps are many small ops. Where the
measured limits lie, per layer type, is ``passes/recurrent.py``'s business (``to_tflite`` and
the direct export); asked by name (``compile(..., extra_passes=[...])``) a pass unrolls up to
``max_steps`` steps whatever the size.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.ops.shape import concat_tree
from .rewrite import describe, erase_dead, replace_value

__all__ = ["Builder", "Dims", "State", "initial_state", "projected_steps", "replace_finals", "replace_sequence",
           "unroll_refusal"]

DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64}


def unroll_refusal(graph: Graph, node: Node, weights: Sequence[Value], per_step_weights: Sequence[Value],
                   max_steps: int, max_weight_bytes: Optional[int]) -> Optional[str]:
    """None where ``node`` is unrolled (the module docstring's rule), else the reason it is not.
    weights: every weight of the node; per_step_weights: those its unrolled steps read."""
    x = node.inputs[0]
    if not all(v.type.is_static for v in (*node.inputs, *node.outputs)):
        return f"{describe(node)} has run-time sizes"
    if x.type.dtype not in DTYPES:
        return f"{describe(node)} runs on {x.type.dtype}"
    if any(graph.constant_value(w) is None for w in weights):
        return f"{describe(node)} has weights computed by the model"
    steps = x.type.shape[1 if node.attrs["batch_first"] else 0]
    if not 1 <= steps <= max_steps:
        return f"{describe(node)} runs {steps} steps (unrolled: 1 to max_steps={max_steps})"
    read = steps * sum(4 * int(np.prod(w.type.shape)) for w in per_step_weights)
    if max_weight_bytes is not None and read > max_weight_bytes:
        return (f"{describe(node)} reads {read / 1e6:.2f} MB of weights over its steps (unrolled: up to "
                f"max_weight_bytes={max_weight_bytes / 1e6:.2f} MB)")
    return None


class Builder:
    """Adds the unrolled nodes to ``graph``, each at the recurrent node's source location."""

    def __init__(self, graph: Graph, node: Node) -> None:
        self.graph, self.loc = graph, node.loc
        self.dtype = np.dtype(DTYPES[node.inputs[0].type.dtype])
        self.prefix = node.outputs[0].name_hint

    def add(self, op: str, inputs: Sequence[Value], attrs: Optional[dict] = None, name: str = "") -> Value:
        return self.graph.add_node(op, inputs, attrs or {}, loc=self.loc, name=f"{self.prefix}_{name or op}").output

    def constant(self, array: np.ndarray, name: str) -> Value:
        return self.graph.add_constant(np.ascontiguousarray(array, dtype=self.dtype), name=f"{self.prefix}_{name}",
                                       loc=self.loc)

    def linear(self, x: Value, w: Value, b: Optional[Value], name: str) -> Value:
        """x @ w.T (+ b), the weights constants made once and read by every step."""
        return self.add("linear", [x, w] + ([b] if b is not None else []), name=name)

    def slice(self, x: Value, axis: int, start: int, end: int, name: str) -> Value:
        return self.add("slice", [x], {"axis": axis, "start": start, "end": end, "step": 1}, name)

    def reshape(self, x: Value, shape: Sequence[int], name: str) -> Value:
        if list(x.type.shape) == list(shape):
            return x
        return self.add("reshape", [x], {"shape": [int(s) for s in shape]}, name)

    def concat(self, xs: Sequence[Value], axis: int, name: str) -> Value:
        """``xs`` concatenated along ``axis``: one node, or a tree of them (``concat_tree``)."""
        return concat_tree(list(xs), lambda group: self.add("concat", group, {"axis": axis}, name))

    def weights(self, node: Node, first: int) -> list[np.ndarray]:
        """The node's weight constants from input ``first`` on, in the builder's dtype."""
        return [np.asarray(self.graph.constant_value(w), dtype=self.dtype) for w in node.inputs[first:]]


@dataclasses.dataclass(frozen=True)
class Dims:
    """A recurrent node's sizes, read once from its attributes and its input's shape."""

    layers: int
    dirs: int  # 2: bidirectional
    hidden: int
    per: int  # weights per layer-direction: w_ih, w_hh (, b_ih, b_hh)
    batch_first: bool
    steps: int
    batch: int

    @property
    def time_axis(self) -> int:
        return 1 if self.batch_first else 0

    @classmethod
    def of(cls, node: Node) -> "Dims":
        a, shape = node.attrs, node.inputs[0].type.shape
        time_axis = 1 if a["batch_first"] else 0
        return cls(a["num_layers"], 2 if a["bidirectional"] else 1, a["hidden_size"], 4 if a["has_biases"] else 2,
                   bool(a["batch_first"]), shape[time_axis], shape[1 - time_axis])


@dataclasses.dataclass
class State:
    """A running state: a value, or a known constant array (None: not known)."""

    value: Optional[Value]
    array: Optional[np.ndarray]

    @property
    def zero(self) -> bool:
        return self.array is not None and not self.array.any()


def initial_state(b: Builder, v: Value, k: int, batch: int, hidden: int, name: str) -> State:
    """Layer-direction ``k``'s initial state from torch's [layers * directions, batch, hidden] ``v``."""
    array = b.graph.constant_value(v)
    if array is not None:
        return State(None, np.asarray(array[k], dtype=b.dtype))
    return State(b.reshape(b.slice(v, 0, k, k + 1, f"{name}{k}_row"), [batch, hidden], f"{name}{k}"), None)


def projected_steps(b: Builder, x: Value, w: Value, bias: Optional[Value], dims: Dims, width: int,
                    name: str) -> list[Value]:
    """The first layer's input projection of every step ([batch, width] each): one linear over
    the sequence's rows, then a slice per step."""
    shape, steps, batch = list(x.type.shape), dims.steps, dims.batch
    rows = b.reshape(x, [shape[0] * shape[1], shape[2]], f"{name}_rows")
    projected = b.linear(rows, w, bias, f"{name}_ih")
    if not dims.batch_first or batch == 1:  # each step's rows are consecutive
        return [b.slice(projected, 0, t * batch, (t + 1) * batch, f"{name}_t{t}_ih") for t in range(steps)]
    by_step = b.reshape(projected, [batch, steps, width], f"{name}_ih_steps")
    return [b.reshape(b.slice(by_step, 1, t, t + 1, f"{name}_t{t}_ih_row"), [batch, width], f"{name}_t{t}_ih")
            for t in range(steps)]


def _single_step_readers(graph: Graph, seq: Value, time_axis: int) -> Optional[list[tuple[Node, int]]]:
    """(slice node, step) for every reader of the sequence if each takes exactly one step; else None."""
    if graph.is_output(seq):
        return None
    found = []
    for node, _ in graph.uses(seq):
        if node.op != "slice" or node.attrs["axis"] % 3 != time_axis or node.attrs["step"] != 1:
            return None
        start, end, _ = slice(node.attrs["start"], node.attrs["end"]).indices(seq.type.shape[time_axis])
        if end - start != 1:
            return None
        found.append((node, start))
    return found


def replace_sequence(b: Builder, node: Node, steps: list[Value], time_axis: int) -> None:
    """Points the readers of the node's sequence (its output 0) at the steps' h ([batch,
    features] each, in time order): a single-step slice at that step's, anything else at their
    concatenation along time."""
    graph, seq = b.graph, node.outputs[0]
    if graph.num_uses(seq) == 0 and not graph.is_output(seq):
        return
    row = [1, *steps[0].type.shape] if time_axis == 0 else [steps[0].type.shape[0], 1, steps[0].type.shape[1]]
    single = _single_step_readers(graph, seq, time_axis)
    if single is not None:
        for reader, t in single:
            replace_value(graph, reader.output, b.reshape(steps[t], row, f"t{t}_out"))
        erase_dead(graph, [reader for reader, _ in single])
        return
    rows = [b.reshape(h, row, f"t{t}_row") for t, h in enumerate(steps)]
    replace_value(graph, seq, b.concat(rows, time_axis, "sequence"))


def replace_finals(b: Builder, node: Node, k: int, finals: list[Value], name: str) -> None:
    """Points the readers of the node's output ``k`` (torch's [layers * directions, batch,
    hidden] final states) at ``finals`` ([batch, hidden] each) stacked, where anything reads it."""
    graph = b.graph
    if graph.num_uses(node.outputs[k]) == 0 and not graph.is_output(node.outputs[k]):
        return
    batch, hidden = finals[0].type.shape
    rows = [b.reshape(v, [1, batch, hidden], f"{name}{j}") for j, v in enumerate(finals)]
    replace_value(graph, node.outputs[k], b.concat(rows, 0, name))
