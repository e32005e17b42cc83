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
from .manager import Pass, register_pass
from .rewrite import replace_value


def _const(graph: Graph, v: Optional[Value]) -> Optional[np.ndarray]:
    return None if v is None else graph.constant_value(v)


def _bn_params(graph: Graph, bn: Node):
    x, mean, var, *rest = bn.inputs
    mean, var = _const(graph, mean), _const(graph, var)
    gamma = _const(graph, rest[0]) if len(rest) > 0 else np.ones_like(mean)
    beta = _const(graph, rest[1]) if len(rest) > 1 else np.zeros_like(mean)
    if any(a is None for a in (mean, var, gamma, beta)):
        return None
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + bn.attrs["eps"])
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return scale, shift


def _weights(graph: Graph, node: Node):
    w = _const(graph, node.inputs[1])
    b = _const(graph, node.inputs[2]) if len(node.inputs) > 2 else None
    return w, b


def _replace(graph: Graph, node: Node, w: np.ndarray, b: np.ndarray, x: Value, out_of: Value) -> None:
    """A copy of ``node`` reading ``x`` with weights ``w``, ``b``, taking over the uses of ``out_of``."""
    dtype = node.inputs[1].type.dtype
    wv = graph.add_constant(w, name=node.inputs[1].name_hint, dtype=dtype)
    bv = graph.add_constant(b, name=f"{node.outputs[0].name_hint}_bias", dtype=dtype)
    fused = graph.add_node(node.op, [x, wv, bv], dict(node.attrs), types=[out_of.type], loc=node.loc,
                           name=node.outputs[0].name_hint).output
    replace_value(graph, out_of, fused)  # the fused value still stands for torch's (validation compares it)


def _foldable_layer(node: Node) -> bool:
    if node.op == "conv":
        return not node.attrs["transposed"]
    return node.op == "linear" and node.inputs[0].type.rank == 2


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldBatchNorm(Pass):
    """Folds ``batch_norm`` into the conv/linear right before it (whose result nothing else
    reads) or right after it (the batch norm's only reader, unpadded conv or 2-D linear).

    Afterwards the folded batch norm is gone and the layer's weights and bias absorb it.
    Never fires when weights or statistics are not constants.
    """

    name = "fold_batchnorm"

    def run(self, graph: Graph) -> bool:
        changed = False
        for bn in graph.topo_order():
            if bn not in graph or bn.op != "batch_norm":
                continue
            params = _bn_params(graph, bn)
            if params is None:
                continue
            if self._fold_after(graph, bn, params) or self._fold_before(graph, bn, params):
                changed = True
        return changed

    def _fold_after(self, graph, bn, params) -> bool:
        layer = bn.inputs[0].producer
        if not _foldable_layer(layer) or graph.num_uses(layer.output) != 1:
            return False
        w, b = _weights(graph, layer)
        if w is None or (len(layer.inputs) > 2 and b is None):
            return False
        scale, shift = params
        b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
        w2 = w.astype(np.float64) * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        _replace(graph, layer, w2.astype(w.dtype), (b * scale + shift).astype(w.dtype), layer.inputs[0], bn.output)
        graph.erase(bn)
        graph.erase(layer)
        return True

    def _fold_before(self, graph, bn, params) -> bool:
        users = graph.uses(bn.output)
        if len(users) != 1 or graph.is_output(bn.output):
            return False
        layer, index = users[0]
        if index != 0 or not _foldable_layer(layer):
            return False
        if layer.op == "conv" and any(layer.attrs["padding"]):
            return False
        if layer.op == "linear" and bn.inputs[0].type.rank != 2:
            return False
        w, b = _weights(graph, layer)
        if w is None or (len(layer.inputs) > 2 and b is None):
            return False
        scale, shift = params
        groups = layer.attrs["groups"] if layer.op == "conv" else 1
        out_ch, in_per_group = w.shape[0], w.shape[1]
        wg = w.astype(np.float64).reshape(groups, out_ch // groups, in_per_group, -1)
        s = scale.reshape(groups, 1, in_per_group, 1)
        t = shift.reshape(groups, 1, in_per_group, 1)
        w2 = (wg * s).reshape(w.shape)
        extra = (wg * t).sum(axis=(2, 3)).reshape(out_ch)
        b2 = (np.zeros(out_ch) if b is None else b.astype(np.float64)) + extra
        _replace(graph, layer, w2.astype(w.dtype), b2.astype(w.dtype), bn.inputs[0], layer.output)
        graph.erase(layer)
        graph.erase(bn)
        return True
