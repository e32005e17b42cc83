"""Layout assignment: channel-aware ops run channels-last, with the transposes they need.

Every op keeps its PyTorch-logical meaning; this pass decides the *physical* layout of each
value (``TensorType.layout``) and inserts ``relayout`` nodes (physical transposes) where a
consumer needs its input stored differently. Rules, by the op's layout class:

  channel   the activation input is converted to channels-last, the result is channels-last
  agnostic  the result takes the layout of the first full-rank non-constant input; the other
            inputs are converted to it (lower-rank ones are first reshaped to full rank)
  axis      the result follows the first input's layout (reduced axes dropped); other tensor
            inputs are converted to it; the backend maps axis attributes through the layout
  fixed     every input is converted to PyTorch's order

Graph inputs and outputs are stored as requested (``"channels_last"`` or PyTorch order).
Afterwards every value has a layout the backend can emit for its consumers, and each
(value, layout) pair is converted at most once.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

from ..ir import Graph, Node, TensorType, Value
from ..ir.types import Layout, channels_last, full, invert
from .manager import Pass, register_pass

__all__ = ["AssignLayout", "relayout_perm", "reduced_layout", "convert_layout"]


def relayout_perm(src: TensorType, dst_layout: Optional[Layout]) -> Layout:
    """The physical transpose (numpy semantics) taking ``src``'s storage to ``dst_layout``."""
    p = src.perm
    q = full(dst_layout, src.rank)
    return tuple(p.index(a) for a in q)


def reduced_layout(layout: Layout, removed: set[int]) -> Optional[Layout]:
    """The layout left after dropping logical axes ``removed`` (renumbered)."""
    kept = [a for a in layout if a not in removed]
    order = sorted(kept)
    return tuple(order.index(a) for a in kept) or None


def convert_layout(graph: Graph, value: Value, layout: Optional[Layout], cache: dict, loc=None) -> Value:
    """``value`` stored in ``layout``: itself, or a (shared) ``relayout`` of it."""
    target = TensorType(value.type.shape, value.type.dtype, layout)
    if target.layout == value.type.layout:
        return value
    key = (value.id, target.layout)
    if key not in cache:
        perm = relayout_perm(value.type, target.layout)
        node = graph.add_node("relayout", [value], {"perm": list(perm)}, types=[target],
                              loc=loc or value.producer.loc, name=f"{value.name_hint}_relayout")
        cache[key] = node.output
    return cache[key]


def _resolve(spec, name: str, index: int):
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return spec.get(name)
    return spec[index] if index < len(spec) else None


def _requested(spec, rank: int) -> Optional[Layout]:
    if spec in (None, "torch", "channels_first"):
        return None
    if spec == "channels_last":
        return channels_last(rank)
    raise ValueError(f"unknown layout {spec!r}: use 'channels_last' or None")


@register_pass
@dataclasses.dataclass(frozen=True)
class AssignLayout(Pass):
    """Assigns a physical layout to every value and inserts the ``relayout``s consumers need."""

    name = "assign_layout"
    input_layouts: object = None  # None | "channels_last" | {name: layout} | [layout, ...]
    output_layouts: object = None

    def run(self, graph: Graph) -> bool:
        cache: dict = {}
        before = len(graph)
        for i, v in enumerate(graph.inputs):
            want = _requested(_resolve(self.input_layouts, v.producer.attrs["name"], i), v.type.rank)
            graph.set_type(v, v.type.replace(layout=want))
        for node in graph.topo_order():
            kind = node.schema.layout
            if kind in ("source", "relayout"):
                continue
            getattr(self, f"_{kind}")(graph, node, cache)
        for i, (name, v) in enumerate(zip(graph.output_names, list(graph.outputs))):
            want = _requested(_resolve(self.output_layouts, name, i), v.type.rank)
            graph.outputs[i] = convert_layout(graph, v, want, cache)
        return len(graph) != before or any(v.type.layout for v in graph.inputs)

    def _set_input(self, graph, node, index, layout, cache):
        v = node.inputs[index]
        converted = convert_layout(graph, v, layout, cache, loc=node.loc)
        if converted is not v:
            graph.set_input(node, index, converted)

    def _channel(self, graph: Graph, node: Node, cache) -> None:
        x = node.inputs[0]
        self._set_input(graph, node, 0, channels_last(x.type.rank), cache)
        for v in node.outputs:
            graph.set_type(v, v.type.replace(layout=channels_last(v.type.rank)))

    def _fixed(self, graph: Graph, node: Node, cache) -> None:
        for i in range(len(node.inputs)):
            self._set_input(graph, node, i, None, cache)

    def _agnostic(self, graph: Graph, node: Node, cache) -> None:
        out = node.outputs[0]
        rank = out.type.rank
        layout = None
        for v in node.inputs:
            if v.type.rank == rank and v.producer.op != "constant" and v.type.layout is not None:
                layout = v.type.layout
                break
        for i, v in enumerate(node.inputs):
            if layout is not None and v.type.rank < rank:
                if v.type.is_static and v.type.numel == 1:
                    continue  # a single element broadcasts the same in every layout
                padded = (1,) * (rank - v.type.rank) + tuple(v.type.shape)
                v = convert_layout(graph, v, None, cache, loc=node.loc)
                v = graph.add_node("reshape", [v], {"shape": list(padded)}, loc=node.loc,
                                   name=f"{v.name_hint}_rank{rank}").output
                graph.set_input(node, i, v)
            self._set_input(graph, node, i, layout, cache)
        for v in node.outputs:
            graph.set_type(v, v.type.replace(layout=layout))

    def _axis(self, graph: Graph, node: Node, cache) -> None:
        x = node.inputs[0]
        layout = x.type.layout
        for i in range(1, len(node.inputs)):
            self._set_input(graph, node, i, layout, cache)
        out = node.outputs[0]
        if layout is not None and out.type.rank != x.type.rank:  # a reduction without keepdim
            axes = node.attrs.get("axes")
            removed = set(range(x.type.rank)) if axes is None else {a % x.type.rank for a in axes}
            layout = reduced_layout(layout, removed)
        for v in node.outputs:
            graph.set_type(v, v.type.replace(layout=layout))
