"""Structural and type checks of a graph, run after every pass.

Checks: acyclic; every input is defined in the graph; arity and attribute names match the op's
schema; result types agree with the schema's inference rule (shape and dtype; a symbolic dim
agrees with any dim, its spelling being torch's); layouts are permutations of the value's rank;
graph outputs are defined. Regions (the sub-graphs of control-flow ops) are verified recursively
and must match their op's signature (``regions.py``): inputs and outputs in number, shape and
dtype, each stored as the operand or result it stands for (``boundary_layouts``). Each state is
declared once and updated at most once, with a value of its type and layout (``state.py``).
"""

from __future__ import annotations

import networkx as nx

from .core import GraphBase, Node
from .errors import VerificationError
from .layout_rules import rule_for
from .ops import schema
from .printer import print_graph
from .regions import boundary_layouts, region_signature
from .state import check_state
from .symbolic import shapes_agree

__all__ = ["verify"]


def _fail(graph: GraphBase, node: Node | None, message: str) -> None:
    marker = (lambda n: "<<< here" if n is node else "") if node is not None else None
    try:
        dump = print_graph(graph, annotate=marker)
    except Exception:  # the dump itself may be what is broken
        dump = "<graph could not be printed>"
    where = f" at {node.op}#{node.id}" + (f" ({node.loc})" if node is not None and node.loc else "") if node else ""
    raise VerificationError(f"IR verification failed{where}: {message}\n{dump}")


def verify(graph: GraphBase) -> None:
    if not nx.is_directed_acyclic_graph(graph._nx):
        _fail(graph, None, "the graph has a cycle")
    for node in graph.topo_order():
        sch = schema(node.op)
        if not sch.min_inputs <= len(node.inputs) <= sch.max_inputs:
            _fail(graph, node, f"{len(node.inputs)} inputs, schema wants {sch.min_inputs}..{sch.max_inputs}")
        if set(node.attrs) != set(sch.attrs):
            _fail(graph, node, f"attributes {sorted(node.attrs)} differ from schema {sorted(sch.attrs)}")
        for v in node.inputs:
            if v.producer not in graph or v.index >= len(v.producer.outputs) or v.producer.outputs[v.index] is not v:
                _fail(graph, node, f"input {v} is not defined in the graph")
        if sch.num_outputs is not None and len(node.outputs) != sch.num_outputs:  # None: any number
            _fail(graph, node, f"{len(node.outputs)} results, schema wants {sch.num_outputs}")
        if sch.infer is not None and node.op != "input":
            try:
                expected = sch.infer([v.type for v in node.inputs], node.attrs)
            except Exception as e:  # noqa: BLE001 - reported with the node
                _fail(graph, node, f"type inference failed: {e}")
            for got, want in zip(node.outputs, expected):
                if not shapes_agree(got.type.shape, want.shape) or got.type.dtype != want.dtype:
                    _fail(graph, node, f"result type {got.type} disagrees with inferred {want}")
        if node.op == "relayout":
            perm = node.attrs["perm"]
            src, dst = node.inputs[0].type, node.output.type
            if sorted(perm) != list(range(src.rank)):
                _fail(graph, node, f"relayout perm {perm} is not a permutation")
            if tuple(src.perm[p] for p in perm) != dst.perm:
                _fail(graph, node, f"relayout {perm} maps layout {src.perm} to {dst.perm}, not {tuple(src.perm[p] for p in perm)}")
        if graph.meta.get("layouts_assigned"):
            rule_for(node).check(node, lambda message, node=node: _fail(graph, node, message))
        if node.regions:
            _verify_regions(graph, node)
    for v in graph.outputs:
        if v.producer not in graph:
            _fail(graph, None, f"graph output {v} is not defined")
    if len(graph.outputs) != len(graph.output_names):
        _fail(graph, None, "output names and outputs differ in number")
    check_state(graph, lambda node, message: _fail(graph, node, message))


def _types_text(types) -> str:
    return "(" + ", ".join(str(t) for t in types) + ")"


def _layouts_text(layouts) -> str:
    return "(" + ", ".join("{" + ",".join(map(str, x)) + "}" if tuple(x) != tuple(range(len(x))) else "torch"
                           for x in layouts) + ")"


def _verify_regions(graph: GraphBase, node: Node) -> None:
    try:
        signature = region_signature(node.op, [v.type for v in node.inputs], node.attrs)
        boundary = boundary_layouts(node.op, [v.type.perm for v in node.inputs], [v.type.perm for v in node.outputs],
                                    node.attrs)
    except Exception as e:  # noqa: BLE001 - reported with the node
        _fail(graph, node, f"region signature failed: {e}")
    for name, region in node.regions.items():
        if not isinstance(region, GraphBase):
            _fail(graph, node, f"region {name!r} is a {type(region).__name__}, not a Graph")
        want_in, want_out = signature[name]
        got_in = [v.type for v in region.inputs]
        if [(tuple(t.shape), t.dtype) for t in got_in] != [(tuple(t.shape), t.dtype) for t in want_in]:
            _fail(graph, node, f"region {name!r} takes {_types_text(got_in)}, the operands give {_types_text(want_in)}")
        got_out = [v.type for v in region.outputs]
        if want_out is not None and \
                [(tuple(t.shape), t.dtype) for t in got_out] != [(tuple(t.shape), t.dtype) for t in want_out]:
            _fail(graph, node, f"region {name!r} returns {_types_text(got_out)}, expected {_types_text(want_out)}")
        lay_in, lay_out = boundary[name]
        if [t.perm for t in got_in] != lay_in:
            _fail(graph, node, f"region {name!r} takes inputs stored {_layouts_text(t.perm for t in got_in)}, "
                               f"the operands give {_layouts_text(lay_in)}")
        if len(got_out) != len(lay_out):
            _fail(graph, node, f"region {name!r} returns {len(got_out)} values for {len(lay_out)}")
        if [t.perm for t in got_out] != lay_out:
            _fail(graph, node, f"region {name!r} returns outputs stored {_layouts_text(t.perm for t in got_out)}, "
                               f"the results need {_layouts_text(lay_out)}")
        try:
            verify(region)
        except VerificationError as e:
            _fail(graph, node, f"in region {name!r}: {e}")
