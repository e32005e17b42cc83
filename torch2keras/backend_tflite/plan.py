"""What the direct TFLite writer fuses, decided on the annotated IR before anything is written.

TFLite ops carry a fused activation (``fused_activation_function``), reductions and fully
connected ops can drop or merge axes, SPLIT writes several slices at once; this module finds
where the IR lets the writer use them, as a pure function of the graph (tested on IR graphs in
tests/backend_tflite/test_tflite_plan.py):

* activation fusion: a conv, linear or add/sub/mul/div whose float result is read only by a
  ``relu``, a ``clamp`` to [0, 6], [-1, 1] or [0, inf) runs that activation itself; the
  activation node is written as nothing (its result is the fused op's);
* hardsigmoid after a conv or linear (relu6(x + 3) / 6): the + 3 goes into the layer's bias and
  the relu6 is fused, so the hardsigmoid is written as its MUL by 1/6 alone;
* written through a reshape: a ``linear`` read only by a ``reshape`` merging all its rows
  ([r1, ..., rk, out] -> [r1 * ... * rk, out]), or a reduction keeping its reduced axes read only
  by a ``reshape`` that drops them, writes the reshape's shape directly (``keep_num_dims`` /
  ``keep_dims`` false); the reshape is written as nothing;
* splits: a value read only by ``slice`` nodes along one axis, with step 1, that cut the axis
  into 2 to ``XNNPACK_SPLIT_MAX_PIECES`` equal consecutive pieces (``torch.chunk``, q/k/v from one
  projection, an LSTM's gates) is written as one SPLIT producing every piece (LiteRT's XNNPACK
  delegate takes a SPLIT of at most 4 outputs; more pieces are a STRIDED_SLICE each, which it
  takes: the graph is not cut around a SPLIT left to LiteRT's own kernel);
* parallel linears: ``linear`` layers with constant weights reading the same value (attention's
  q, k and v projections, an MLP's gate and up) are written as one FULLY_CONNECTED over their
  stacked filters, whose result is cut into theirs (SPLIT, or a STRIDED_SLICE each where their
  sizes differ): one pass over the input and one kernel call instead of several. Layers that
  fuse an activation or write a reshape's shape (above) run alone;
* an LSTM's last step: a ``slice`` taking the last time step of an ``lstm``'s sequence, read
  only by a ``linear`` writing a reshape's shape (``fc(out[:, -1])``), is the fused op's final
  hidden state, which its state variable holds after it ran: the linear reads that [batch,
  hidden] variable and the slice is written as nothing (``last_step``; for the LSTMs
  ``state_readable`` allows).

A fused value is read by nothing else and is not a graph output. Invariant: every node in
``absorbed`` has exactly one input, whose producer the plan gives the absorbed node's job.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs

from ..ir import Graph, Node
from ..ir.ops.elementwise import fused_activation
from ..ir.ops.shape import XNNPACK_SPLIT_MAX_PIECES

__all__ = ["FUSABLE_ACTIVATION", "Plan", "plan_graph", "state_readable"]

FUSES_ACTIVATION = {"conv", "linear", "add", "sub", "mul", "div"}  # IR ops whose TFLite op fuses one
FUSABLE_ACTIVATION = ("RELU", "RELU6", "RELU_N1_TO_1")
HARDSIGMOID_SHIFT = 3.0


@attrs.define
class Plan:
    """The writer's fusions (see the module docstring), by node id."""

    activation: dict[int, str] = attrs.field(factory=dict)  # node -> the activation it runs fused
    absorbed: dict[int, int] = attrs.field(factory=dict)  # node written as nothing -> the node doing its job
    into_reshape: dict[int, int] = attrs.field(factory=dict)  # node -> the reshape whose result it writes
    bias_shift: dict[int, float] = attrs.field(factory=dict)  # conv/linear -> a constant added to its bias
    scale_only: set[int] = attrs.field(factory=set)  # hardsigmoids written as their MUL by 1/6 alone
    splits: dict[int, list[int]] = attrs.field(factory=dict)  # slice -> its split's slices, in order
    parallel: dict[int, list[int]] = attrs.field(factory=dict)  # linear -> the linears run with it, in order
    last_step: dict[int, int] = attrs.field(factory=dict)  # slice -> the lstm whose final hidden state it is


def _single_reader(graph: Graph, node: Node) -> Optional[Node]:
    """The one node reading ``node``'s single result (once), unless a graph output reads it."""
    if len(node.outputs) != 1:
        return None
    out = node.output
    uses = graph.uses(out)
    if len(uses) != 1 or graph.is_output(out):
        return None
    return uses[0][0]


def _layer_with_constants(node: Node) -> bool:
    return node.op in ("conv", "linear") and all(v.producer.op == "constant" for v in node.inputs[1:]) \
        and not (node.op == "conv" and node.attrs["transposed"])


def _activation_fusion(graph: Graph, node: Node) -> Optional[tuple[Node, str]]:
    if node.op not in FUSES_ACTIVATION or node.output.type.dtype not in ("f32", "f16"):
        return None
    if node.op == "conv" and not _layer_with_constants(node):
        return None  # (a conv with computed weights is not one TFLite op)
    reader = _single_reader(graph, node)
    if reader is None or len(reader.outputs) != 1 or reader.output.type.layout != node.output.type.layout:
        return None
    if reader.op == "hardsigmoid" and _layer_with_constants(node):
        return reader, "RELU6"
    act = fused_activation(reader)
    return (reader, act) if act is not None else None


def _reshape_dropping(graph: Graph, node: Node) -> Optional[Node]:
    """The reshape that is ``node``'s only reader, when ``node`` can write its shape itself."""
    reader = _single_reader(graph, node)
    out = node.output.type
    if reader is None or reader.op != "reshape" or not out.is_static:
        return None
    # (the layout pass leaves only reshapes that keep the stored bytes in order)
    got = list(reader.output.type.physical_shape)
    if node.op == "linear":
        if out.rank < 3 or out.perm[-1] != out.rank - 1:
            return None
        return reader if got == [math.prod(out.shape[:-1]), out.shape[-1]] else None
    kept = [d for k, d in enumerate(out.physical_shape) if k not in _reduced_axes(node)]
    return reader if got == kept and got != list(out.physical_shape) else None


def _reduced_axes(node: Node) -> set[int]:
    """The stored axes a keep-dims reduction (or a pool to 1x...x1) reduces, else none."""
    x = node.inputs[0].type
    if node.op == "reduce" and node.attrs["keepdim"] and node.attrs["kind"] in ("sum", "mean", "max", "min", "prod"):
        axes = range(x.rank) if node.attrs["axes"] is None else node.attrs["axes"]
        return {x.physical_axis(a) for a in axes}
    if node.op in ("adaptive_avg_pool", "adaptive_max_pool") and all(o == 1 for o in node.attrs["output_size"]):
        return {x.physical_axis(a) for a in range(2, x.rank)}
    return set()


def _split_pieces(graph: Graph, node: Node) -> Optional[list[Node]]:
    """The slices of ``node``'s result, in order, if they cut one axis into 2 to
    ``XNNPACK_SPLIT_MAX_PIECES`` equal pieces and nothing else reads it."""
    if len(node.outputs) != 1 or graph.is_output(node.output):
        return None
    x = node.output
    readers = graph.users(x)
    if not 2 <= len(readers) <= XNNPACK_SPLIT_MAX_PIECES or len(graph.uses(x)) != len(readers) \
            or any(r.op != "slice" for r in readers):
        return None
    axes = {r.attrs["axis"] % x.type.rank for r in readers}
    if len(axes) != 1 or any(r.attrs["step"] != 1 for r in readers) or not x.type.is_static:
        return None
    size = x.type.shape[axes.pop()]
    bounds = sorted((slice(r.attrs["start"], r.attrs["end"]).indices(size)[:2], r.id) for r in readers)
    width = size // len(readers)
    if size % len(readers) or [b for b, _ in bounds] != [(k * width, (k + 1) * width) for k in range(len(readers))]:
        return None
    return [graph.node(i) for _, i in bounds]


def _parallel_linears(graph: Graph, plan: Plan) -> None:
    """``plan.parallel``: linears with constant weights (and bias) reading one value, in
    topological order, two or more of them, none of them fused otherwise."""
    by_input: dict[int, list[Node]] = {}
    for node in graph.topo_order():
        if node.op != "linear" or node.meta.get("quantized") is not None or node.id in plan.activation \
                or node.id in plan.into_reshape or node.id in plan.bias_shift:
            continue
        x, out = node.inputs[0].type, node.output.type
        constant = all(v.producer.op == "constant" and v.type.layout is None for v in node.inputs[1:])
        if constant and x.is_static and x.rank >= 2 and x.perm[-1] == x.rank - 1 and out.perm == x.perm \
                and out.dtype == "f32" and node.inputs[1].type.dtype == out.dtype:
            by_input.setdefault(node.inputs[0].id, []).append(node)
    for nodes in by_input.values():
        if len(nodes) > 1:
            for node in nodes:
                plan.parallel[node.id] = [n.id for n in nodes]


def state_readable(lstm: Node) -> bool:
    """Whether a reader of ``lstm``'s state variables after the fused ops runs after them in
    LiteRT: a forward-only LSTM whose sequence is a model input and whose initial states are
    constants or model inputs. Nothing but the op order ties such a reader to the fused ops (it
    reads the variable the state write produced), and LiteRT's delegate partitioning keeps that
    order only where the state write, the fused ops of every layer and nothing else run in one
    partition: the write and the first layer are ready at once, each layer reads the previous."""
    return not lstm.attrs["bidirectional"] and all(
        v.producer.op in ("input", "constant") for v in lstm.inputs[:3]) and lstm.inputs[0].producer.op == "input"


def _lstm_last_step(graph: Graph, node: Node, plan: Plan) -> Optional[Node]:
    """The ``lstm`` whose last step ``node`` (a ``slice``) takes, where the state variable can
    stand for it (``state_readable``), the slice read only by a float linear that writes a
    reshape's [rows, out] (its FULLY_CONNECTED reads any [..., hidden])."""
    x = node.inputs[0]
    lstm = x.producer
    if lstm.op != "lstm" or x is not lstm.outputs[0] or not state_readable(lstm) or node.attrs["step"] != 1:
        return None
    if x.type.layout is not None or not x.type.is_static or node.output.type.layout is not None:
        return None
    time_axis = 1 if lstm.attrs["batch_first"] else 0
    steps = x.type.shape[time_axis]
    if node.attrs["axis"] % x.type.rank != time_axis or \
            slice(node.attrs["start"], node.attrs["end"]).indices(steps)[:2] != (steps - 1, steps):
        return None
    reader = _single_reader(graph, node)
    if reader is None or reader.op != "linear" or reader.inputs[0] is not node.output \
            or reader.id not in plan.into_reshape or reader.meta.get("quantized") is not None:
        return None
    return lstm


def plan_graph(graph: Graph) -> Plan:
    """The fusions of ``graph`` (see the module docstring)."""
    plan = Plan()
    for node in graph.topo_order():
        pieces = _split_pieces(graph, node)
        if pieces is not None:
            for piece in pieces:
                plan.splits[piece.id] = [p.id for p in pieces]
        if node.op in ("linear", "reduce", "adaptive_avg_pool", "adaptive_max_pool"):
            reshape = _reshape_dropping(graph, node)
            if reshape is not None:
                plan.into_reshape[node.id] = reshape.id
                plan.absorbed[reshape.id] = node.id
                continue
        fused = _activation_fusion(graph, node)
        if fused is None:
            continue
        reader, act = fused
        plan.activation[node.id] = act
        if reader.op == "hardsigmoid":
            plan.bias_shift[node.id] = HARDSIGMOID_SHIFT
            plan.scale_only.add(reader.id)
        else:
            plan.absorbed[reader.id] = node.id
    _parallel_linears(graph, plan)
    for node in graph.topo_order():
        lstm = _lstm_last_step(graph, node, plan) if node.op == "slice" and node.id not in plan.splits else None
        if lstm is not None:
            plan.last_step[node.id] = lstm.id
    return plan
