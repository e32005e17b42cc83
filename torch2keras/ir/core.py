"""The IR graph's data structure: nodes (operations) and values (typed tensors) over a networkx
MultiDiGraph (``graph.Graph`` is this plus its text form and verification).

Every edit goes through a few ``Graph`` methods, which keep the networkx graph (one edge per
*use*: ``x + x`` is two edges) and the nodes' ordered input tuples in step. Node ids come from
a counter, and iteration is in a topological order that breaks ties by id, so everything
derived from a graph (dumps, emitted models) is deterministic.

Control-flow nodes own *regions*: graphs held in their attributes of kind ``graph``
(``Node.regions``), whose inputs stand for the node's operands (``ir/regions.py``). A region is
self-contained (it reads nothing of the enclosing graph); ``walk`` and ``nested_graphs`` reach
every nested graph.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Iterable, Iterator, Optional, Sequence

import attrs
import networkx as nx
import numpy as np

from .ops import schema
from .types import TensorType, dtype_from_numpy

__all__ = ["GraphBase", "Node", "SourceLoc", "Value"]


@attrs.frozen
class SourceLoc:
    """Where a node came from: the module path and the user's file:line. ``scopes`` lists every
    module the call is in, outermost first, as (module path, class name) pairs (the module path
    is the last one's)."""

    module_path: str = ""
    module_type: str = ""
    file: str = ""
    line: int = 0
    code: str = ""
    op: str = ""  # the framework op this node was lowered from, e.g. aten.conv2d.default
    scopes: tuple = ()

    @property
    def file_line(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""

    def short(self) -> str:

        parts = [self.module_path or "<top>"]
        if self.file:
            parts.append(f"{os.path.basename(self.file)}:{self.line}")
        return " ".join(parts)

    def __str__(self) -> str:
        text = f"module '{self.module_path or '<top>'}'"
        if self.module_type:
            text += f" ({self.module_type})"
        if self.file:
            text += f", {self.file}:{self.line}"
            if self.code:
                text += f"\n    {self.code.strip()}"
        return text


@attrs.define(eq=False, repr=False)
class Value:
    id: int
    type: TensorType
    producer: "Node"
    index: int = 0
    name_hint: str = "v"
    meta: dict = attrs.field(factory=dict)

    def __repr__(self) -> str:
        return f"Value({self.name_hint}#{self.id}: {self.type})"


@attrs.define(eq=False, repr=False)
class Node:
    id: int
    op: str
    attrs: dict
    inputs: tuple = ()
    outputs: list = attrs.field(factory=list)
    loc: Optional[SourceLoc] = None
    meta: dict = attrs.field(factory=dict)

    @property
    def schema(self):
        return schema(self.op)

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise ValueError(f"{self.op} has {len(self.outputs)} outputs")
        return self.outputs[0]

    @property
    def regions(self) -> dict[str, "GraphBase"]:
        """The sub-graphs this node owns (its attributes of kind ``graph``), in schema order."""
        return {k: self.attrs[k] for k, spec in self.schema.attrs.items() if spec.kind == "graph"}

    @property
    def is_constant(self) -> bool:
        return self.op == "constant"

    @property
    def value(self) -> np.ndarray:
        """The array of a constant node."""
        if self.op != "constant":
            raise ValueError(f"{self.op} node has no constant value")
        return self.attrs["value"]

    def __repr__(self) -> str:
        return f"Node({self.op}#{self.id})"


class GraphBase:
    """A dataflow graph of IR nodes, with ordered named inputs and outputs (the data structure;
    ``graph.Graph`` adds its text form and verification)."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self._nx = nx.MultiDiGraph()
        self._nodes: dict[int, Node] = {}
        self._ids = itertools.count()
        self.outputs: list[Value] = []
        self.output_names: list[str] = []
        self.meta: dict[str, Any] = {}

    # ------------------------------------------------------------------ construction

    def add_node(
        self,
        op: str,
        inputs: Sequence[Value] = (),
        attrs: Optional[dict] = None,
        types: Optional[Sequence[TensorType]] = None,
        loc: Optional[SourceLoc] = None,
        name: Optional[str] = None,
    ) -> Node:
        """Create a node; result types are inferred from the op's schema unless given."""
        sch = schema(op)
        inputs = tuple(inputs)
        if not sch.min_inputs <= len(inputs) <= sch.max_inputs:
            raise ValueError(f"{op}: expected {sch.min_inputs}..{sch.max_inputs} inputs, got {len(inputs)}")
        full_attrs = sch.with_defaults(attrs or {})
        if types is None:
            if sch.infer is None:
                raise ValueError(f"{op}: result types must be given (no inference rule)")
            types = sch.infer([v.type for v in inputs], full_attrs)
        for v in inputs:
            self._check_owned(v)
        node = Node(id=next(self._ids), op=op, attrs=full_attrs, inputs=inputs, loc=loc)
        hint = name or op
        for i, t in enumerate(types):
            node.outputs.append(Value(id=next(self._ids), type=t, producer=node, index=i, name_hint=hint))
        self._nodes[node.id] = node
        self._nx.add_node(node.id)
        for idx, v in enumerate(inputs):
            self._nx.add_edge(v.producer.id, node.id, key=idx, out=v.index)
        return node

    def new_region(self, name: str) -> "GraphBase":
        """An empty graph meant to become a region of one of this graph's nodes; it draws node
        and value ids from this graph's counter, so ids stay unique across the nesting."""
        region = type(self)(name)
        region._ids = self._ids
        return region

    def add_input(self, name: str, type: TensorType) -> Value:
        return self.add_node("input", attrs={"name": name}, types=[type], name=name).output

    def add_constant(self, value: Any, name: str = "const", loc: Optional[SourceLoc] = None,
                     dtype: Optional[str] = None) -> Value:
        array = np.asarray(value)
        t = TensorType(array.shape, dtype or dtype_from_numpy(array.dtype))
        return self.add_node("constant", attrs={"value": array, "dtype": t.dtype}, types=[t], loc=loc, name=name).output

    def set_outputs(self, names: Sequence[str], values: Sequence[Value]) -> None:
        for v in values:
            self._check_owned(v)
        self.output_names = list(names)
        self.outputs = list(values)

    # ------------------------------------------------------------------ queries

    def __iter__(self) -> Iterator[Node]:
        return iter(self.topo_order())

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: Node) -> bool:
        return self._nodes.get(node.id) is node

    def node(self, node_id: int) -> Node:
        return self._nodes[node_id]

    @property
    def inputs(self) -> list[Value]:
        return [n.output for n in sorted(self._nodes.values(), key=lambda n: n.id) if n.op == "input"]

    @property
    def input_names(self) -> list[str]:
        return [v.producer.attrs["name"] for v in self.inputs]

    def topo_order(self) -> list[Node]:
        return [self._nodes[i] for i in nx.lexicographical_topological_sort(self._nx)]

    def nested_graphs(self) -> list["GraphBase"]:
        """Every graph nested in this one (regions of its nodes, recursively), innermost first,
        then this graph itself: the order passes run in."""
        out: list[Graph] = []
        for node in list(self._nodes.values()):  # (id order: deterministic, no sort needed)
            for region in node.regions.values():
                out.extend(region.nested_graphs())
        out.append(self)
        return out

    def walk(self) -> Iterator[tuple["GraphBase", Node]]:
        """(graph, node) for every node of this graph and of the regions nested in it, each
        node before the nodes of its regions."""
        for node in self.topo_order():
            yield self, node
            for region in node.regions.values():
                yield from region.walk()

    def nodes_by_op(self, *ops: str) -> list[Node]:
        return [n for n in self.topo_order() if n.op in ops]

    def uses(self, value: Value) -> list[tuple[Node, int]]:
        """The (consumer, input index) pairs reading ``value``; graph outputs not included."""
        out = []
        for _, dst, key, data in self._nx.out_edges(value.producer.id, keys=True, data=True):
            if data["out"] == value.index:
                out.append((self._nodes[dst], key))
        return sorted(out, key=lambda u: (u[0].id, u[1]))

    def users(self, value: Value) -> list[Node]:
        seen: dict[int, Node] = {}
        for n, _ in self.uses(value):
            seen.setdefault(n.id, n)
        return list(seen.values())

    def is_output(self, value: Value) -> bool:
        return any(v is value for v in self.outputs)

    def num_uses(self, value: Value) -> int:
        return len(self.uses(value)) + sum(1 for v in self.outputs if v is value)

    def constant_value(self, value: Value) -> Optional[np.ndarray]:
        """The array behind ``value`` if it is produced by a constant node, else None."""
        return value.producer.attrs["value"] if value.producer.op == "constant" else None

    def op_counts(self, nested: bool = True) -> dict[str, int]:
        """Nodes per op, the nodes of control-flow regions included unless ``nested=False``."""
        counts: dict[str, int] = {}
        nodes = (n for _, n in self.walk()) if nested else self._nodes.values()
        for n in nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return dict(sorted(counts.items()))

    # ------------------------------------------------------------------ edits

    def set_input(self, node: Node, index: int, value: Value) -> None:
        self._check_owned(value)
        old = node.inputs[index]
        self._nx.remove_edge(old.producer.id, node.id, key=index)
        self._nx.add_edge(value.producer.id, node.id, key=index, out=value.index)
        node.inputs = node.inputs[:index] + (value,) + node.inputs[index + 1:]

    def replace_all_uses(self, old: Value, new: Value, *, except_node: Optional[Node] = None) -> int:
        """Point every use of ``old`` (graph outputs included) at ``new``; returns how many."""
        count = 0
        for node, idx in self.uses(old):
            if node is except_node:
                continue
            self.set_input(node, idx, new)
            count += 1
        for i, v in enumerate(self.outputs):
            if v is old:
                self.outputs[i] = new
                count += 1
        return count

    def set_type(self, value: Value, type: TensorType) -> None:
        """Change a value's type (the layout pass uses it to record physical layouts)."""
        self._check_owned(value)
        value.type = type

    def erase(self, node: Node) -> None:
        """Remove a node whose results are no longer used."""
        for v in node.outputs:
            if self.num_uses(v):
                raise ValueError(f"cannot erase {node}: {v} still has uses")
        self._nx.remove_node(node.id)
        del self._nodes[node.id]

    def _check_owned(self, value: Value) -> None:
        if self._nodes.get(value.producer.id) is not value.producer:
            raise ValueError(f"{value} is not defined in this graph")
