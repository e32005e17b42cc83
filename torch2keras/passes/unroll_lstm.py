"""LSTM layers unrolled over their time steps into linear, sigmoid, tanh, mul and add.

A fused LSTM kernel (TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM) is one op per layer and direction,
but LiteRT's XNNPACK delegate, its GPU delegate and most accelerators do not take it: it runs on
LiteRT's own kernel, and the delegated graph is cut around it. Unrolled, a sequence becomes ops
every delegate takes. Whether that is faster depends on the size: measured on XNNPACK (2 threads,
docs/recurrent.md), a 2-layer LSTM of 32 units over 10 steps runs in half the fused kernels' time,
but from about 1.5-2 MB of weights read over all steps (64 units over 10 steps, 32 units over
64) the unrolled file is 1.2-3x slower -- XNNPACK packs the weights of every step's FULLY_CONNECTED
separately, so the steps stop sharing one cached copy. Hence ``max_weight_bytes``: an LSTM whose
per-step weights times its steps exceed it stays fused (``to_tflite`` runs the pass with 1.5 MB);
``compile(..., extra_passes=["unroll_lstm"])`` unrolls up to ``max_steps`` whatever the size.

Two forms:

* a stack of unidirectional layers from zero states (torch's default) runs as *waves*: wave w
  computes step w - l of every layer l at once, the layers' states side by side ([batch, layers *
  hidden]; layer l's step t reads only layer l - 1's step t and its own step t - 1, both from
  wave w - 1). A wave is one ``linear`` of the previous wave's h (block weights: w_hh on the
  diagonal, w_ih of layer l from layer l - 1), the first layer's input projection added (one
  ``linear`` over the sequence's rows for every step at once, a ``slice`` per step), and one cell
  on the wide gates, laid out gate-major (i of every layer, then f, g, o: four equal slices, one
  SPLIT in TFLite). A layer not started yet gets an input gate of exactly 0 (``MASKED`` in that
  wave's bias), so its states stay 0;
* any other LSTM (bidirectional, given or constant non-zero states) layer by layer: the first
  layer's input projection at once, deeper layers ``linear(concat([x_t, h]), [w_ih | w_hh])``
  per step; constant states fold into constants.

Per cell: c' = sigmoid(f) * c + sigmoid(i) * tanh(g); h' = sigmoid(o) * tanh(c') (a zero c needs
no forget gate). Outputs: the sequence is concatenated along time only if something reads more
of it than single steps; a ``slice`` taking one step (``out[:, -1]``) reads that step's h
directly. The final h and c are concatenated as torch's h_n and c_n. Concatenations take at most
``XNNPACK_CONCAT_MAX_INPUTS`` inputs each (the most XNNPACK takes), longer ones are a tree.

Whether an LSTM is unrolled is the rule ``unrolling.unroll_refusal`` applies to every recurrent
layer, its steps reading every layer's w_ih and w_hh (the first layer's w_ih counted too).

Invariant afterwards: no ``lstm`` node with static shapes, constant weights, at most
``max_steps`` steps and at most ``max_weight_bytes`` of weights read over its steps is left; the
rewritten values are the LSTM's results within float rounding (each carries the torch tag of the
result it replaces, so validation compares them).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from .manager import register_pass
from .rewrite import Match, Op, RewritePass
from .unrolling import Builder, Dims, State, initial_state, projected_steps, replace_finals, replace_sequence, \
    unroll_refusal

__all__ = ["UnrollLSTM"]


class _Layer:
    """One layer-direction's weights and the step arithmetic over them."""

    def __init__(self, b: Builder, weights: list[np.ndarray], hidden: int, name: str) -> None:
        self.b, self.hidden, self.name = b, hidden, name
        self.w_ih, self.w_hh = weights[0], weights[1]
        bias = weights[2] + weights[3] if len(weights) == 4 else None
        self.bias = b.constant(bias, f"{name}_bias") if bias is not None else None

    # the weight constants, each made once (when first read) and read by every step
    @functools.cached_property
    def recurrent(self) -> Value:  # the first layer: h @ w_hh.T (its input projection is computed once)
        return self.b.constant(self.w_hh, f"{self.name}_w_hh")

    @functools.cached_property
    def input_only(self) -> Value:  # deeper layers from a zero h: x_t @ w_ih.T
        return self.b.constant(self.w_ih, f"{self.name}_w_ih")

    @functools.cached_property
    def joined(self) -> Value:  # deeper layers: [x_t, h] @ [w_ih | w_hh].T
        return self.b.constant(np.concatenate([self.w_ih, self.w_hh], axis=1), f"{self.name}_w_ih_hh")

    def state_value(self, state: State, name: str) -> Value:
        return state.value if state.value is not None else self.b.constant(state.array, name)

    def gates(self, projected: Optional[Value], x_t: Optional[Value], h: State, t: int) -> Value:
        """The step's pre-activation gates [batch, 4 * hidden] from the step's input projection
        (first layer) or its input (deeper layers) and the previous h."""
        b, name = self.b, f"{self.name}_t{t}"
        if projected is not None:
            if h.zero:
                return projected
            if h.array is not None:
                recurrent = b.constant(h.array @ self.w_hh.T, f"{name}_h0_gates")
            else:
                recurrent = b.linear(h.value, self.recurrent, None, f"{name}_hh")
            return b.add("add", [projected, recurrent], name=f"{name}_gates")
        if h.zero:
            return b.linear(x_t, self.input_only, self.bias, f"{name}_gates")
        joined = b.concat([x_t, self.state_value(h, f"{name}_h0")], 1, f"{name}_x_h")
        return b.linear(joined, self.joined, self.bias, f"{name}_gates")

    def cell(self, gates: Value, c: State, t: int) -> tuple[State, State]:
        return _cell(self.b, gates, c, self.hidden, f"{self.name}_t{t}")


def _cell(b: Builder, gates: Value, c: State, hidden: int, name: str) -> tuple[State, State]:
    """(h', c') from the [batch, 4 * hidden] gates (i, f, g, o) and the previous c (a zero c needs
    no forget gate)."""
    gate = lambda k, act: b.add(act, [b.slice(gates, 1, k * hidden, (k + 1) * hidden, f"{name}_{'ifgo'[k]}")],  # noqa
                                name=f"{name}_{'ifgo'[k]}_act")
    written = b.add("mul", [gate(0, "sigmoid"), gate(2, "tanh")], name=f"{name}_ig")
    if not c.zero:
        c_value = c.value if c.value is not None else b.constant(c.array, f"{name}_c0")
        written = b.add("add", [b.add("mul", [gate(1, "sigmoid"), c_value], name=f"{name}_fc"), written],
                        name=f"{name}_c")
    o = gate(3, "sigmoid")
    h = b.add("mul", [o, b.add("tanh", [written], name=f"{name}_c_act")], name=f"{name}_h")
    return State(h, None), State(written, None)


def _run_direction(b: Builder, layer: _Layer, inputs: list[Value], projected: bool, h: State, c: State,
                   reverse: bool) -> tuple[list[Value], State, State]:
    """Every step of one layer-direction: (h per step in time order, final h, final c)."""
    steps = len(inputs)
    outs: list[Optional[Value]] = [None] * steps
    for t in (reversed(range(steps)) if reverse else range(steps)):
        gates = layer.gates(inputs[t] if projected else None, None if projected else inputs[t], h, t)
        h, c = layer.cell(gates, c, t)
        outs[t] = h.value
    return outs, h, c


MASKED = -1.0e4  # an input gate's pre-activation for a layer not started: sigmoid gives exactly 0


def _gate_rows(blocks: list[np.ndarray], lanes: int, lane: int, hidden: int, width: int) -> np.ndarray:
    """A [4 * lanes * hidden, width] matrix holding the i, f, g, o ``blocks`` ([hidden, width]
    each) at ``lane``'s rows of the gate-major, lane-minor layout, zeros elsewhere."""
    out = np.zeros((4 * lanes * hidden, width), blocks[0].dtype)
    for k, block in enumerate(blocks):
        start = (k * lanes + lane) * hidden
        out[start:start + hidden] = block
    return out


def _wavefront(b: Builder, x: Value, weights: list[np.ndarray], dims: Dims
               ) -> tuple[list[Value], list[Value], list[Value]]:
    """A unidirectional stack of ``layers`` from zero states, as waves: wave w runs step w - l of
    every layer l at once on the layers' states side by side ([batch, layers * hidden]), since
    layer l's step t reads only layer l - 1's step t and its own step t - 1, both from wave w - 1.
    Per wave one linear of the previous wave's h (block weights: w_hh on the diagonal, w_ih of
    layer l from layer l - 1), the first layer's input projection added, then one cell on the
    wide gates (laid out gate-major: i of every layer, f of every layer, ...). A layer not
    started yet gets an input gate of 0 (``MASKED`` in that wave's bias), so its c and h stay 0;
    a finished layer's values are read by nothing. Returns (the last layer's h per step, every
    layer's final h, final c)."""
    layers, hidden, per, steps, batch = dims.layers, dims.hidden, dims.per, dims.steps, dims.batch
    width, gates_width = layers * hidden, 4 * layers * hidden
    split = lambda w: [w[k * hidden:(k + 1) * hidden] for k in range(4)]  # noqa: E731 - i, f, g, o blocks
    layer_weights = [weights[k * per:(k + 1) * per] for k in range(layers)]
    bias = np.zeros(gates_width, b.dtype)
    recurrent = np.zeros((gates_width, width), b.dtype)
    for lane, w in enumerate(layer_weights):
        if per == 4:
            bias += _gate_rows(split((w[2] + w[3])[:, None]), layers, lane, hidden, 1)[:, 0]
        recurrent[:, lane * hidden:(lane + 1) * hidden] += _gate_rows(split(w[1]), layers, lane, hidden, hidden)
        if lane:
            recurrent[:, (lane - 1) * hidden:lane * hidden] += _gate_rows(split(w[0]), layers, lane, hidden, hidden)
    projection = _gate_rows(split(layer_weights[0][0]), layers, 0, hidden, x.type.shape[2])
    bias_value = b.constant(bias, "bias")
    step_inputs = projected_steps(b, x, b.constant(projection, "l0_w_ih"), bias_value, dims, gates_width, "l0")
    w_rec = b.constant(recurrent, "w_rec")
    c_zero = State(None, np.zeros((batch, width), b.dtype))
    h, c = None, c_zero
    waves: list[tuple[Value, Value]] = []
    for w in range(steps + layers - 1):
        mask = np.zeros(gates_width, b.dtype)
        for lane in range(w + 1, layers):  # not started
            mask[lane * hidden:(lane + 1) * hidden] = MASKED
        name = f"wave{w}"
        if h is None:  # the first wave: zero states
            gates = step_inputs[0] if not mask.any() else \
                b.add("add", [step_inputs[0], b.constant(mask, f"{name}_mask")], name=f"{name}_gates")
        else:  # (from wave ``steps`` on, no projection carries the bias: the linear does)
            wave_bias = bias_value if w >= steps else b.constant(mask, f"{name}_mask") if mask.any() else None
            recurrent_part = b.linear(h, w_rec, wave_bias, f"{name}_hh")
            if w < steps:
                gates = b.add("add", [step_inputs[w], recurrent_part], name=f"{name}_gates")
            else:
                gates = recurrent_part
        h_state, c = _cell(b, gates, c, layers * hidden, name)
        h = h_state.value
        waves.append((h, c.value))
    lane_of = lambda v, lane, what: b.slice(v, 1, lane * hidden, (lane + 1) * hidden, f"l{lane}_{what}")  # noqa: E731
    last = layers - 1
    outs = [lane_of(waves[t + last][0], last, f"t{t}_h") if layers > 1 else waves[t][0] for t in range(steps)]
    finals_h = [lane_of(waves[steps - 1 + lane][0], lane, "h_n") if layers > 1 else waves[-1][0]
                for lane in range(layers)]
    finals_c = [lane_of(waves[steps - 1 + lane][1], lane, "c_n") if layers > 1 else waves[-1][1]
                for lane in range(layers)]
    return outs, finals_h, finals_c


def _layer_by_layer(b: Builder, node: Node, weights: list[np.ndarray], dims: Dims
                    ) -> tuple[list[Value], list[Value], list[Value]]:
    """Each layer-direction unrolled in turn, from any initial states (bidirectional layers, given
    states): (the last layer's h per step, directions concatenated; every final h; final c)."""
    x, h0, c0 = node.inputs[:3]
    dirs, hidden, per, steps, batch = dims.dirs, dims.hidden, dims.per, dims.steps, dims.batch
    inputs: list[Value] = []
    finals_h, finals_c = [], []
    for layer in range(dims.layers):
        per_direction = []
        for d in range(dirs):
            k = layer * dirs + d
            cell = _Layer(b, weights[k * per:(k + 1) * per], hidden, f"l{layer}" + ("_reverse" if d else ""))
            h, c = (initial_state(b, v, k, batch, hidden, name) for v, name in ((h0, "h0_"), (c0, "c0_")))
            step_inputs = inputs if layer else projected_steps(b, x, cell.input_only, cell.bias, dims, 4 * hidden,
                                                                cell.name)
            outs, h, c = _run_direction(b, cell, step_inputs, layer == 0, h, c, d == 1)
            per_direction.append(outs)
            finals_h.append(h.value)
            finals_c.append(c.value)
        inputs = per_direction[0] if dirs == 1 else [
            b.concat([p[t] for p in per_direction], 1, f"l{layer}_t{t}_directions") for t in range(steps)]
    return inputs, finals_h, finals_c


@register_pass
@dataclasses.dataclass(frozen=True)
class UnrollLSTM(RewritePass):
    """Unrolls every ``lstm`` with static shapes, constant weights and at most ``max_steps``
    steps into per-step linear / sigmoid / tanh / mul / add nodes (module docstring: the form,
    why, and the invariant)."""

    name = "unroll_lstm"
    pattern = Op("lstm", rest=True, name="lstm")
    max_steps: int = 64
    max_weight_bytes: Optional[int] = None  # weights read per step (float32) times the steps; None: any

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        node = m["lstm"]
        weights = node.inputs[3:]  # every step reads its layers' w_ih and w_hh (the first layer's w_ih: counted too)
        return unroll_refusal(graph, node, weights, [w for w in weights if len(w.type.shape) == 2], self.max_steps,
                              self.max_weight_bytes)

    def rewrite(self, graph: Graph, m: Match) -> None:
        node = m["lstm"]
        x, h0, c0 = node.inputs[:3]
        b, dims = Builder(graph, node), Dims.of(node)
        weights = b.weights(node, 3)
        zero_states = all(graph.constant_value(v) is not None and not graph.constant_value(v).any() for v in (h0, c0))
        if dims.dirs == 1 and zero_states:
            inputs, finals_h, finals_c = _wavefront(b, x, weights, dims)
        else:
            inputs, finals_h, finals_c = _layer_by_layer(b, node, weights, dims)
        replace_sequence(b, node, inputs, dims.time_axis)
        replace_finals(b, node, 1, finals_h, "h_n")
        replace_finals(b, node, 2, finals_c, "c_n")
