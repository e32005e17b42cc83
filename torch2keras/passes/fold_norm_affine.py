"""A layer norm's affine scale and shift folded into the linear layer that reads it.

With n the normalized x, a layer norm over the last axis is y = n * w + b; a linear layer
reading y computes y @ W.T + c = n @ (W * w).T + (c + W @ b). So the layer norm keeps only its
normalization and the linear layer absorbs the affine: W'[o, i] = W[o, i] * w[i],
c'[o] = c[o] + sum_i W[o, i] * b[i]. Between the two may sit ops that move whole rows without
touching the feature axis (a reshape keeping the last axis, a permute keeping it last, a slice
along another axis), each read once: the affine commutes with them.

In TFLite this drops the affine MUL and ADD over the whole [rows, features] tensor (two ops per
layer norm: ViT-B/16 has 25); the linear layer's weights change once, at compile time.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node
from .manager import register_pass
from .rewrite import Any, Chain, Match, Op, RewritePass, describe, replace_value

__all__ = ["FoldNormAffine"]

_ROW_MOVES = ("reshape", "permute", "slice")  # ops between the norm and the linear that may keep the features


def _keeps_features(node: Node) -> bool:
    """Whether ``node`` moves whole rows, keeping the last (feature) axis as it is."""
    x, y = node.inputs[0].type, node.output.type
    if x.rank < 1 or y.rank < 1 or x.shape[-1] != y.shape[-1]:
        return False
    if node.op == "permute":
        return list(node.attrs["perm"])[-1] == x.rank - 1
    if node.op == "slice":
        return node.attrs["axis"] % x.rank != x.rank - 1
    return True  # a reshape with the same last size keeps every row's features together


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldNormAffine(RewritePass):
    """Folds a layer norm's affine weight and bias (over the last axis, constants) into the
    linear layer (constant weights) that is the only reader of its result, across reshapes,
    permutes and slices that keep the feature axis last and whole.

    Invariant afterwards: no layer norm with an affine weight or bias is read, directly or across
    such row moves, only by a linear layer with constant weights (the postcondition: no match
    passes its check); the folded norms normalize only and their linear layers carry the affine.
    """

    name = "fold_norm_affine"
    pattern = Op("linear",
                 Chain(_ROW_MOVES, Op("layer_norm", Any("x"), Any("w", optional=True), Any("b", optional=True),
                                      name="norm", single_use=True), name="chain"),
                 Any("lw"), Any("lb", optional=True), name="linear")

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        norm, linear = m["norm"], m["linear"]
        if m["w"] is None and m["b"] is None:
            return "the layer norm has no affine weight or bias"
        if norm.attrs["num_axes"] != 1:
            return "the layer norm normalizes more than the last axis"
        if any(v is not None and graph.constant_value(v) is None for v in (m["w"], m["b"])):
            return "the layer norm's weight or bias is not a constant"
        features = norm.output.type.shape[-1]
        if any(v is not None and graph.constant_value(v).size != features for v in (m["w"], m["b"])):
            return "the layer norm's weight or bias is not one value per feature"
        if graph.constant_value(m["lw"]) is None or (m["lb"] is not None and graph.constant_value(m["lb"]) is None):
            return "the linear layer's weights are not constants"
        if linear.meta.get("quantized") is not None or norm.output.type.dtype != "f32" \
                or m["lw"].type.dtype != "f32":
            return "not float32 (or the linear layer is quantized)"
        for node in m["chain"]:
            if not _keeps_features(node):
                return f"{describe(node)} between the norm and the linear layer moves the feature axis"
        return None

    def rewrite(self, graph: Graph, m: Match) -> None:
        norm, linear = m["norm"], m["linear"]
        w64 = graph.constant_value(m["lw"]).astype(np.float64)
        features = w64.shape[1]
        scale = np.ones(features) if m["w"] is None else graph.constant_value(m["w"]).astype(np.float64).reshape(-1)
        shift = np.zeros(features) if m["b"] is None else graph.constant_value(m["b"]).astype(np.float64).reshape(-1)
        bias = np.zeros(w64.shape[0]) if m["lb"] is None else graph.constant_value(m["lb"]).astype(np.float64)
        v = graph.add_node("layer_norm", [m["x"]], dict(norm.attrs), loc=norm.loc,
                           name=f"{norm.output.name_hint}_normalized").output
        for node in reversed(m["chain"]):
            v = graph.add_node(node.op, [v], dict(node.attrs), loc=node.loc, name=node.output.name_hint).output
        dtype = m["lw"].type.dtype
        wv = graph.add_constant((w64 * scale[None, :]).astype(np.float32), name=m["lw"].name_hint, dtype=dtype)
        bv = graph.add_constant((bias + w64 @ shift).astype(np.float32), name=f"{linear.output.name_hint}_bias",
                                dtype=dtype)
        folded = graph.add_node("linear", [v, wv, bv], dict(linear.attrs), types=[linear.output.type],
                                loc=linear.loc, name=linear.output.name_hint).output
        replace_value(graph, linear.output, folded)
