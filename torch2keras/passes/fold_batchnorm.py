"""Fold inference-mode batch norm into a neighbouring convolution or linear layer.

With s = gamma / sqrt(var + eps) and t = beta - mean * s, batch norm is y = x * s + t per
channel.

conv -> bn (bn after):   W'[o] = W[o] * s[o],          b' = b * s + t
bn -> conv (bn before):  W'[o, i] = W[o, i] * s[i],    b'[o] = b[o] + sum_{i,k} W[o, i, k] * t[i]

The second is exact only when the convolution pads nothing (padding inserts zeros *after* the
batch norm, where the folded form would see t instead), so it fires only for unpadded convs.
Linear layers fold the same way with their [out, in] weights, for 2-D inputs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from .manager import register_pass
from .rewrite import Any, Match, OneOf, Op, RewritePass, read_once, replace_value

_LAYERS = ("conv", "linear")


def _bn(x: Any) -> Op:
    return Op("batch_norm", x, Any("mean"), Any("var"), Any("gamma", optional=True), Any("beta", optional=True),
              name="bn")


def _layer(x: Any) -> Op:
    return Op(_LAYERS, x, Any("w"), Any("b", optional=True), name="layer")


def _bn_params(graph: Graph, m: Match) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(scale, shift) of the matched batch norm in float64, or None if its statistics are not constants."""
    mean, var = graph.constant_value(m["mean"]), graph.constant_value(m["var"])
    gamma = np.ones_like(mean) if m["gamma"] is None else graph.constant_value(m["gamma"])
    beta = np.zeros_like(mean) if m["beta"] is None else graph.constant_value(m["beta"])
    if any(a is None for a in (mean, var, gamma, beta)):
        return None
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + m["bn"].attrs["eps"])
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return scale, shift


def _refuse_layer(graph: Graph, layer: Node) -> Optional[str]:
    """Why ``layer`` cannot absorb a batch norm (None if it can)."""
    if layer.op == "conv" and layer.attrs["transposed"]:
        return "the conv is transposed"
    if layer.op == "linear" and layer.inputs[0].type.rank != 2:
        return "the linear layer's input is not 2-D"
    if graph.constant_value(layer.inputs[1]) is None or (
            len(layer.inputs) > 2 and graph.constant_value(layer.inputs[2]) is None):
        return f"the {layer.op}'s weights are not constants"
    return None


def _replace(graph: Graph, node: Node, w: np.ndarray, b: np.ndarray, x: Value, out_of: Value) -> None:
    """A copy of ``node`` reading ``x`` with weights ``w``, ``b``, taking over the uses of ``out_of``."""
    dtype = node.inputs[1].type.dtype
    wv = graph.add_constant(w, name=node.inputs[1].name_hint, dtype=dtype)
    bv = graph.add_constant(b, name=f"{node.outputs[0].name_hint}_bias", dtype=dtype)
    fused = graph.add_node(node.op, [x, wv, bv], dict(node.attrs), types=[out_of.type], loc=node.loc,
                           name=node.outputs[0].name_hint).output
    replace_value(graph, out_of, fused)  # the fused value still stands for torch's (validation compares it)


def _weights(graph: Graph, layer: Node) -> tuple[np.ndarray, Optional[np.ndarray]]:
    w = graph.constant_value(layer.inputs[1])
    return w, graph.constant_value(layer.inputs[2]) if len(layer.inputs) > 2 else None


def _fold_after(graph: Graph, bn: Node, layer: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    w, b = _weights(graph, layer)
    b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    w2 = w.astype(np.float64) * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    _replace(graph, layer, w2.astype(w.dtype), (b * scale + shift).astype(w.dtype), layer.inputs[0], bn.output)


def _fold_before(graph: Graph, bn: Node, layer: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    w, b = _weights(graph, layer)
    groups = layer.attrs["groups"] if layer.op == "conv" else 1
    out_ch, in_per_group = w.shape[0], w.shape[1]
    wg = w.astype(np.float64).reshape(groups, out_ch // groups, in_per_group, -1)
    s = scale.reshape(groups, 1, in_per_group, 1)
    t = shift.reshape(groups, 1, in_per_group, 1)
    w2 = (wg * s).reshape(w.shape)
    extra = (wg * t).sum(axis=(2, 3)).reshape(out_ch)
    b2 = (np.zeros(out_ch) if b is None else b.astype(np.float64)) + extra
    _replace(graph, layer, w2.astype(w.dtype), b2.astype(w.dtype), bn.inputs[0], layer.output)


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldBatchNorm(RewritePass):
    """Folds ``batch_norm`` into the conv/linear right before it (whose result nothing else
    reads) or right after it (the batch norm's only reader, unpadded conv or 2-D linear).

    Afterwards no batch norm with constant statistics sits next to a layer it could fold into
    (the postcondition: no match passes its check); the folded batch norms are gone and the
    layers' weights and biases absorb them. Never fires when weights or statistics are not
    constants, and says why (``graph.meta["rewrites"]["fold_batchnorm"]``).
    """

    name = "fold_batchnorm"
    pattern = OneOf(after=_bn(_layer(Any("x"))), before=_layer(_bn(Any("x"))))

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        bn, layer = m["bn"], m["layer"]
        if _bn_params(graph, m) is None:
            return "the batch norm's statistics are not constants"
        refused = _refuse_layer(graph, layer)
        if refused:
            return refused
        if m.rule == "after":
            if not read_once(graph, layer.output):
                return f"the {layer.op}'s result has other readers"
            return None
        if not read_once(graph, bn.output):
            return "the batch norm's result has other readers"
        if layer.op == "conv" and any(layer.attrs["padding"]):
            return "the conv pads: its zeros would enter after the batch norm"
        return None

    def rewrite(self, graph: Graph, m: Match) -> None:
        scale, shift = _bn_params(graph, m)
        fold = _fold_after if m.rule == "after" else _fold_before
        fold(graph, m["bn"], m["layer"], scale, shift)
