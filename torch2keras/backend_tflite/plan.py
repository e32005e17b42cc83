"""What the direct TFLite writer fuses, decided on the annotated IR before anything is written.

TFLite ops carry a fused activation (``fused_activation_function``) and a fully connected op can
flatten its rows; this module finds where the IR lets the writer use them, as a pure function
of the graph (tested on IR graphs in tests/backend_tflite/test_tflite_plan.py):

* activation fusion: a conv, linear or add/sub/mul/div whose float result is read only by a
  ``relu``, a ``clamp`` to [0, 6], [-1, 1] or [0, inf) (and is not a graph output) runs that
  activation itself; the activation node is then written as nothing (its result is the fused
  op's);
* row flattening: a ``linear`` whose result is read only by a ``reshape`` that merges all its
  row axes into one ([r1, ..., rk, out] -> [r1 * ... * rk, out]) writes that shape directly
  (``keep_num_dims=False``), and the reshape is written as nothing.

Invariant: every node marked ``absorbed`` has exactly one input, produced by a node that the plan
gives the absorbed node's job, and no other reader of that input.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs

from ..ir import Graph, Node

__all__ = ["FUSABLE_ACTIVATION", "Plan", "activation_of", "plan_graph"]

# IR ops whose TFLite op takes a fused activation
FUSES_ACTIVATION = {"conv", "linear", "add", "sub", "mul", "div"}
FUSABLE_ACTIVATION = ("RELU", "RELU6", "RELU_N1_TO_1")


@attrs.define
class Plan:
    """activation: node id -> the TFLite activation it runs fused; absorbed: ids of nodes whose
    result is another node's (written as nothing); flatten_rows: linear nodes written with
    their rows merged, each with the reshape whose result they then write."""

    activation: dict[int, str] = attrs.field(factory=dict)
    absorbed: dict[int, int] = attrs.field(factory=dict)  # absorbed node id -> the node doing its job
    flatten_rows: dict[int, int] = attrs.field(factory=dict)  # linear id -> the reshape merging its rows


def activation_of(node: Node) -> Optional[str]:
    """The TFLite fused activation that computes ``node`` (a relu or a clamp), or None."""
    if node.op == "relu":
        return "RELU"
    if node.op != "clamp":
        return None
    low, high = node.attrs["min"], node.attrs["max"]
    return {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, None): "RELU"}.get(
        (None if low is None else float(low), None if high is None else float(high)))


def _single_reader(graph: Graph, node: Node) -> Optional[Node]:
    """The one node reading ``node``'s single result (once), unless a graph output reads it."""
    if len(node.outputs) != 1:
        return None
    out = node.output
    uses = graph.uses(out)
    if len(uses) != 1 or graph.is_output(out):
        return None
    return uses[0][0]


def _fusable(graph: Graph, node: Node) -> Optional[tuple[Node, str]]:
    if node.op not in FUSES_ACTIVATION or node.output.type.dtype not in ("f32", "f16"):
        return None
    if node.op == "conv" and any(v.producer.op != "constant" for v in node.inputs[1:]):
        return None  # (a conv with computed weights is not written as one op)
    reader = _single_reader(graph, node)
    if reader is None:
        return None
    act = activation_of(reader)
    if act is None or reader.output.type.layout != node.output.type.layout:
        return None
    return reader, act


def _merges_rows(graph: Graph, node: Node) -> Optional[Node]:
    """The reshape merging all the rows of linear ``node``'s result, if that is its one reader."""
    reader = _single_reader(graph, node)
    out = node.output.type
    if reader is None or reader.op != "reshape" or out.rank < 3 or not out.is_static:
        return None
    if out.perm[-1] != out.rank - 1:
        return None
    # (the layout pass leaves only reshapes that keep the bytes in order: rows merge as stored)
    if list(reader.output.type.physical_shape) != [math.prod(out.shape[:-1]), out.shape[-1]]:
        return None
    return reader


def plan_graph(graph: Graph) -> Plan:
    """The fusions of ``graph`` (see the module docstring)."""
    plan = Plan()
    for node in graph.topo_order():
        if node.op == "linear" and node.inputs[0].type.rank >= 3:
            reshape = _merges_rows(graph, node)
            if reshape is not None:
                plan.flatten_rows[node.id] = reshape.id
                plan.absorbed[reshape.id] = node.id
                continue
        fused = _fusable(graph, node)
        if fused is not None:
            reader, act = fused
            plan.activation[node.id] = act
            plan.absorbed[reader.id] = node.id
    return plan
