"""GRU layers unrolled over their time steps into linear, sigmoid, tanh, mul, add and sub.

TFLite has no fused GRU: left whole, the direct TFLite writer writes a WHILE loop per layer and
direction (and the converter path one too), which no delegate takes. Unrolled, a short GRU is
ops every delegate takes and runs faster on XNNPACK: measured with 2 threads, unrolled / loop, 2
layers of 32 units over 10 steps 0.61x, of 64 units over 20 steps (2.0 MB of recurrent weights
read over the steps) 0.81x, over 32 steps (3.1 MB) 1.0x; 32 units over 64 steps 1.24x (the many
small ops), 128 units over 50 steps 1.64x (XNNPACK packs every step's weights apart: they stop
sharing the cache). Hence ``to_tflite`` and the direct export run the pass with at most 32
steps and 2 MB of weights read over them (``passes/recurrent.py``);
``compile(..., extra_passes=["unroll_gru"])`` unrolls up to ``max_steps`` whatever the size.
Whether a GRU is unrolled is the rule ``unrolling.unroll_refusal`` applies to every recurrent
layer, its steps reading every layer's w_hh (each layer's input projection is computed for all
steps at once).

The form, layer by layer and direction by direction from any initial states: a layer's input
projection of every step at once (one ``linear`` over the rows of the sequence -- the model's
input, or the previous layer's steps concatenated as rows -- then a ``slice`` per step), then
per step gh = h @ w_hh.T + b_hh (a constant where h is known: zero states), its three gates
sliced (one SPLIT in TFLite) and

    r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z), n = tanh(gi_n + r * gh_n),
    h' = (1 - z) * n + z * h = n + z * (h - n)      (n - z * n from a zero h).

Outputs: the sequence is concatenated along time only if something reads more of it than
single steps (a ``slice`` taking one step reads that step's h); the final h of every
layer-direction is concatenated as torch's h_n. Concatenations take at most
``XNNPACK_CONCAT_MAX_INPUTS`` inputs each (the most XNNPACK takes), longer ones are a tree.

Invariant afterwards: no ``gru`` node with static shapes, constant weights, at most
``max_steps`` steps and at most ``max_weight_bytes`` of recurrent weights read over its steps is
left; the rewritten values are the GRU's results within float rounding (each carries the torch
tag of the result it replaces, so validation compares them).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from .manager import register_pass
from .rewrite import Match, Op, RewritePass
from .unrolling import Builder, Dims, State, initial_state, projected_steps, replace_finals, replace_sequence, \
    unroll_refusal

__all__ = ["UnrollGRU"]


def _step(b: Builder, gi: Value, h: State, w_hh: Value, w_hh_array: np.ndarray, b_hh: Optional[np.ndarray],
          hidden: int, name: str) -> State:
    """h' from the step's input projection ``gi`` ([batch, 3 * hidden]: r, z, n) and h."""
    if h.array is not None:  # a known h: its recurrent gates are constants
        gh = h.array @ w_hh_array.T + (b_hh if b_hh is not None else 0)
        h_gates = [b.constant(gh[:, k * hidden:(k + 1) * hidden], f"{name}_h{'rzn'[k]}") for k in range(3)]
    else:
        gh = b.linear(h.value, w_hh, b.constant(b_hh, f"{name}_b_hh") if b_hh is not None else None, f"{name}_hh")
        h_gates = [b.slice(gh, 1, k * hidden, (k + 1) * hidden, f"{name}_h{'rzn'[k]}") for k in range(3)]
    i_r, i_z, i_n = (b.slice(gi, 1, k * hidden, (k + 1) * hidden, f"{name}_i{'rzn'[k]}") for k in range(3))
    r = b.add("sigmoid", [b.add("add", [i_r, h_gates[0]], name=f"{name}_r_in")], name=f"{name}_r")
    z = b.add("sigmoid", [b.add("add", [i_z, h_gates[1]], name=f"{name}_z_in")], name=f"{name}_z")
    n_in = b.add("add", [i_n, b.add("mul", [r, h_gates[2]], name=f"{name}_rh")], name=f"{name}_n_in")
    n = b.add("tanh", [n_in], name=f"{name}_n")
    if h.zero:
        return State(b.add("sub", [n, b.add("mul", [z, n], name=f"{name}_zn")], name=f"{name}_h"), None)
    h_value = h.value if h.value is not None else b.constant(h.array, f"{name}_h0")
    change = b.add("mul", [z, b.add("sub", [h_value, n], name=f"{name}_h_minus_n")], name=f"{name}_zh")
    return State(b.add("add", [n, change], name=f"{name}_h"), None)


def _layers(b: Builder, node: Node, weights: list[np.ndarray], dims: Dims) -> tuple[list[Value], list[Value]]:
    """Every layer-direction unrolled in turn: (the last layer's h per step, directions
    concatenated on the features; every layer-direction's final h)."""
    x, h0 = node.inputs[:2]
    hidden, steps, batch = dims.hidden, dims.steps, dims.batch
    outs: list[Value] = []
    finals: list[Value] = []
    for layer in range(dims.layers):
        rows = b.concat(outs, 0, f"l{layer}_input_rows") if layer else None  # [steps * batch, features], by time
        per_direction = []
        for d in range(dims.dirs):
            k = layer * dims.dirs + d
            name = f"l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh, b_ih, b_hh = (weights[k * dims.per:(k + 1) * dims.per] + [None, None])[:4]
            w_ih_value = b.constant(w_ih, f"{name}_w_ih")
            bias = b.constant(b_ih, f"{name}_b_ih") if b_ih is not None else None
            if rows is None:
                gi = projected_steps(b, x, w_ih_value, bias, dims, 3 * hidden, name)
            else:
                projected = b.linear(rows, w_ih_value, bias, f"{name}_ih")
                gi = [b.slice(projected, 0, t * batch, (t + 1) * batch, f"{name}_t{t}_ih") for t in range(steps)]
            w_hh_value = b.constant(w_hh, f"{name}_w_hh")
            h = initial_state(b, h0, k, batch, hidden, "h0_")
            direction: list[Optional[Value]] = [None] * steps
            for t in (reversed(range(steps)) if d else range(steps)):
                h = _step(b, gi[t], h, w_hh_value, w_hh, b_hh, hidden, f"{name}_t{t}")
                direction[t] = h.value
            per_direction.append(direction)
            finals.append(h.value)
        outs = per_direction[0] if dims.dirs == 1 else [
            b.concat([p[t] for p in per_direction], 1, f"l{layer}_t{t}_directions") for t in range(steps)]
    return outs, finals


@register_pass
@dataclasses.dataclass(frozen=True)
class UnrollGRU(RewritePass):
    """Unrolls every ``gru`` with static shapes, constant weights, at most ``max_steps`` steps and
    at most ``max_weight_bytes`` of recurrent weights read over them into per-step linear /
    sigmoid / tanh / mul / add / sub nodes (module docstring: the form, why, and the invariant)."""

    name = "unroll_gru"
    pattern = Op("gru", rest=True, name="gru")
    max_steps: int = 64
    max_weight_bytes: Optional[int] = None  # recurrent weights (float32) times the steps; None: any

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        node = m["gru"]
        weights = node.inputs[2:]
        return unroll_refusal(graph, node, weights, weights[1::Dims.of(node).per], self.max_steps,
                              self.max_weight_bytes)

    def rewrite(self, graph: Graph, m: Match) -> None:
        node = m["gru"]
        b, dims = Builder(graph, node), Dims.of(node)
        outs, finals = _layers(b, node, b.weights(node, 2), dims)
        replace_sequence(b, node, outs, dims.time_axis)
        replace_finals(b, node, 1, finals, "h_n")
