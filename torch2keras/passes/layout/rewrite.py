"""Apply a labelling: give every value its chosen layout and insert the shared ``relayout``s.

After ``apply_labels`` every input of every node is stored as its option requires (through at
most one ``relayout`` per (value, layout) pair, shared by all consumers that need it), lower-rank
operands of an elementwise op in a permuted layout are first reshaped to full rank, and the graph
outputs are stored as requested.
"""

from __future__ import annotations

from typing import Callable, Optional

from ...ir import Graph, Node, TensorType, Value
from ...ir.layout_rules import Options, ident
from ...ir.types import Layout, full

__all__ = ["apply_labels", "convert_layout", "relayout_perm"]


def relayout_perm(src: TensorType, dst_layout: Optional[Layout]) -> Layout:
    """The physical transpose (numpy semantics) taking ``src``'s storage to ``dst_layout``."""
    p = src.perm
    q = full(dst_layout, src.rank)
    return tuple(p.index(a) for a in q)


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


def _full_rank(graph: Graph, node: Node, v: Value, cache: dict) -> Value:
    """``v`` (a lower-rank elementwise operand) in PyTorch order, reshaped to the result's rank."""
    rank = node.outputs[0].type.rank
    padded = (1,) * (rank - v.type.rank) + tuple(v.type.shape)
    v = convert_layout(graph, v, None, cache, loc=node.loc)
    return graph.add_node("reshape", [v], {"shape": list(padded)}, loc=node.loc,
                          name=f"{v.name_hint}_rank{rank}").output


def apply_labels(graph: Graph, nodes: list[Node], options: dict[int, Options], labels: dict[int, int],
                 output_layout: Callable[[int, str, Value], Layout]) -> bool:
    """Store every value as label ``labels[node.id]`` of its node's options says; returns whether
    anything changed (a layout other than PyTorch's, or a relayout inserted)."""
    cache: dict = {}
    changed = False
    for node in nodes:
        opts, d = options[node.id], labels[node.id]
        for i, v in enumerate(list(node.inputs)):
            want = opts.ins[d][i]
            if want is None:
                continue
            if i in opts.pad and opts.outs[d][0] != ident(node.outputs[0].type.rank):
                v, want = _full_rank(graph, node, v, cache), opts.outs[d][0]
                changed = True
            converted = convert_layout(graph, v, want, cache, loc=node.loc)
            if converted is not node.inputs[i]:
                graph.set_input(node, i, converted)
        for k, v in enumerate(node.outputs):
            new = v.type.replace(layout=opts.outs[d][k])
            changed |= new.layout != v.type.layout
            graph.set_type(v, new)
    for i, (name, v) in enumerate(zip(graph.output_names, list(graph.outputs))):
        graph.outputs[i] = convert_layout(graph, v, output_layout(i, name, v), cache)
    return changed or bool(cache)
