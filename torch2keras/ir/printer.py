"""Stable, diffable text form of a graph (``parser.py`` reads it back), and a JSON dump for tooling.

One node per line, attributes sorted by name; the graph's inputs first, then its other ops in
topological order, then its constants (the weights), then ``return``::

    graph NAME
      %x : f32[batch,3,8,8] = input() {name='x'}
      %v : TYPE[, %w : TYPE] = OP(%x, %c) {key=value, ...}  # MODULE FILE:LINE  hint HINT
      OP(%v) {key=value, ...}                  # an op without results (an effect: state_update)
      %c : f32[16,3,3,3] = constant() {value=<float32[16,3,3,3]>}   # large: dtype and shape only
      %s : f32[] = constant() {value=float32[][0.5]}                 # small: its values
      return NAME=%v, ... {layouts_assigned=true}

Grammar (``parse`` reads exactly this; blanks between tokens are free, indentation is two
spaces per level)::

    graph    := 'graph' NAME NEWLINE body
    body     := (node | effect)* 'return' [output (',' output)*] [meta]
    node     := result (',' result)* '=' OP '(' [operands] ')' [attrs] [comment] region*
    effect   := OP '(' [operands] ')' [attrs] [comment] region*
    result   := '%' NAME ':' type
    type     := DTYPE '[' [dim (',' dim)*] ']' ['{' INT (',' INT)* '}']
    dim      := INT | SYMBOL        -- a name or an expression of torch's (``s0 - 1``, ``(h//2)``)
    operands := '%' NAME (',' '%' NAME)*
    attrs    := '{' KEY '=' value (',' KEY '=' value)* '}'
    value    := INT | FLOAT | STRING | 'true' | 'false' | 'none' | list | dict | array | elided
    list     := '[' [value (',' value)*] ']'
    dict     := '{' [value ':' value (',' value ':' value)*] '}'
    array    := NPDTYPE '[' [INT (',' INT)*] ']' '[' [SCALAR (',' SCALAR)*] ']'
    elided   := '<' NPDTYPE '[' [INT (',' INT)*] ']' '>'
    region   := 'region' KEY NEWLINE body
    output   := (NAME | STRING) '=' '%' NAME
    meta     := '{' KEY '=' value (',' KEY '=' value)* '}'
    comment  := '#' [location] ['  ' hint] ['  ' NOTE]*
    location := (MODULE | '<top>') [' ' FILE ':' LINE]
    hint     := 'hint' HINT | 'hints' HINT (',' HINT)*

``DTYPE`` is an IR dtype (``f32``, ``i64``, ``bool``...), ``NPDTYPE`` a numpy one (``float32``);
``{p0,p1,...}`` after a type is its layout when not the identity. ``FLOAT`` is Python's
``repr`` (``1e-05``, ``inf``, ``nan``), ``STRING`` a Python string literal; an ``array``
lists its elements (``SCALAR``: numbers, ``nan``, ``inf``, ``True``/``False``) in row-major
order, each the shortest text that reads back to the same bits. ``SYMBOL`` runs to the next
``,`` or ``]`` outside parentheses and brackets.

Names. ``%NAME`` comes from the value's name hint (non-word characters replaced by ``_``) plus
``_1``, ``_2``... where hints repeat; names are assigned at print time in topological order
(regions after their node), unique across the whole dump, so equal graphs print equal text and
the names agree with the validation report's. The parser takes a value's printed name as its
hint (an input's: its ``name``), and gives the other results of a node the first one's; where
that is not the hint (two values sharing one), the comment says ``hint HINT`` (every result) or
``hints H0,H1,...`` (one per result), so that a pass run on the parsed graph names new values
as it would in-process.

Constants. Arrays of at most ``SMALL_ARRAY`` elements print their values; larger ones print as
``<float32[...]>`` and go, keyed by ``weight_key``, to the weights file ``save_ir`` writes
(``print_graph(graph, values=True)`` prints every value instead). A ``constant``'s or
``state``'s ``dtype`` attribute is its result type's and is not printed.

Regions. A node's regions (control flow, attributes of kind ``graph``) follow its line in the
schema's order, each as ``region KEY`` two spaces deeper and its body two more::

      %r : TYPE = cond(%p, %a)
        region then_branch
          %a_1 : TYPE = input() {name='a'}
          ...
          return output_0=%v
        region else_branch
          ...

Graph metadata. Of ``graph.meta``, only the entries in ``PRINTED_META`` (the IR's own checks
read them) are printed, after the ``return`` outputs.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Optional

import numpy as np

from .elided import ElidedArray

from .core import GraphBase, Node, Value

__all__ = ["PRINTED_META", "SMALL_ARRAY", "Namer", "graph_to_json", "print_graph", "print_graph_and_weights",
           "printed_names", "weight_key"]

SMALL_ARRAY = 8  # arrays with at most this many elements are printed with their values
PRINTED_META = ("layouts_assigned", "outputs_are_dict")  # the graph.meta entries the text carries

Annotate = Callable[["Node"], Optional[str]]


def sanitize(hint: str) -> str:
    """A name hint as printed names use it: word characters only, never empty."""
    return re.sub(r"\W", "_", hint) or "v"


class _NameTable:
    """Hands out ``base`` if free, else ``base_k`` for the least free ``k >= 1``."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._next: dict[str, int] = {}  # per base, no k below this is free (names are never given back)

    def fresh(self, base: str) -> str:
        name, k = base, self._next.get(base, 1)
        if name in self._taken:
            name = f"{base}_{k}"
            while name in self._taken:
                k += 1
                name = f"{base}_{k}"
            self._next[base] = k + 1
        self._taken.add(name)
        return name


class Namer:
    """Unique, deterministic printed names for values, from their hints, in the order asked."""

    def __init__(self) -> None:
        self._names: dict[Value, str] = {}  # by the Value object: ids repeat across nested graphs
        self._table = _NameTable()

    def __call__(self, v: Value) -> str:
        if v not in self._names:
            self._names[v] = self._table.fresh(sanitize(v.name_hint))
        return self._names[v]


def weight_key(value_name: str, attr: str) -> str:
    """The key of an elided array in a weights file: the value's printed name (``attr.value``
    of a constant or state), else ``name.attr``."""
    return value_name if attr == "value" else f"{value_name}.{attr}"


# ----------------------------------------------------------------------------- values


def _format_scalar(x: Any, dtype: np.dtype) -> str:
    """One array element: the shortest text that reads back to the same bits."""
    if dtype.kind == "b":
        return "True" if x else "False"
    if dtype.kind in "iu":
        return str(int(x))
    if dtype.kind == "f":
        x = dtype.type(x)
        if np.isnan(x):
            return "nan"
        if np.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0 or 1e-4 <= abs(float(x)) < 1e16:
            return np.format_float_positional(x, unique=True, trim=".")
        return np.format_float_scientific(x, unique=True, trim=".")
    return repr(x.item() if isinstance(x, np.generic) else x)  # not an IR dtype: shown, not parseable


def _array_text(array: np.ndarray) -> str:
    shape = ",".join(str(d) for d in array.shape)
    body = ",".join(_format_scalar(x, array.dtype) for x in array.reshape(-1))
    return f"{array.dtype.name}[{shape}][{body}]"


def _elided_text(array: "np.ndarray | ElidedArray") -> str:
    return f"<{array.dtype.name}[{','.join(str(d) for d in array.shape)}]>"


def format_attr(value: Any, values: bool = False) -> str:
    """An attribute value in the text's syntax; arrays larger than ``SMALL_ARRAY`` as
    ``<dtype[shape]>`` unless ``values``."""
    if isinstance(value, ElidedArray):
        return _elided_text(value)
    if isinstance(value, np.ndarray):
        return _array_text(value) if values or value.size <= SMALL_ARRAY else _elided_text(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_attr(v, values) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{format_attr(k, values)}:{format_attr(v, values)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _output_name(name: str) -> str:
    return name if re.fullmatch(r"[\w.]+", name) else repr(name)


# ----------------------------------------------------------------------------- order and names


def _by_kind(topo: list[Node]) -> tuple[list[Node], list[Node], list[Node]]:
    """(inputs, constants, other ops), each in ``topo``'s order."""
    sources = ("input", "constant")
    return ([n for n in topo if n.op == "input"], [n for n in topo if n.op == "constant"],
            [n for n in topo if n.op not in sources])


class _Orders:
    """Each graph's topological order, computed once per printing."""

    def __init__(self) -> None:
        self._topo: dict[GraphBase, list[Node]] = {}

    def topo(self, graph: GraphBase) -> list[Node]:
        if graph not in self._topo:
            self._topo[graph] = graph.topo_order()
        return self._topo[graph]

    def walk(self, graph: GraphBase) -> Iterator[Node]:
        """Like ``Graph.walk``: each node, then the nodes of its regions."""
        for node in self.topo(graph):
            yield node
            for region in node.regions.values():
                yield from self.walk(region)

    def printed(self, graph: GraphBase) -> list[Node]:
        """The order the text lists ``graph``'s nodes in: inputs, other ops, constants."""
        inputs, constants, ops = _by_kind(self.topo(graph))
        return inputs + ops + constants

    def parsed(self, graph: GraphBase) -> Iterator[Value]:
        """The values in the order a parsed copy of ``graph`` names them: the parser creates each
        graph's inputs, then its constants, then its other ops, each in printed order."""
        inputs, constants, ops = _by_kind(self.topo(graph))
        for node in inputs + constants + ops:
            yield from node.outputs
            for region in node.regions.values():
                yield from self.parsed(region)


def _canonical_namer(graph: GraphBase, orders: _Orders) -> Namer:
    """Names given in topological order, each node's regions after it (``Graph.walk``)."""
    namer = Namer()
    for node in orders.walk(graph):
        for v in node.outputs:
            namer(v)
    return namer


def printed_names(graph: GraphBase) -> dict[Value, str]:
    """The name the text gives each value of ``graph`` and of its regions (without the ``%``)."""
    orders = _Orders()
    namer = _canonical_namer(graph, orders)
    return {v: namer(v) for node in orders.walk(graph) for v in node.outputs}


def _assumed_hint(node: Node, names: dict[Value, str]) -> str:
    """The hint the parser gives a node's results when its line has no hint note: an input's
    name (``Graph.add_input``'s hint), else the first result's printed name."""
    if node.op == "input" and isinstance(node.attrs.get("name"), str):
        return sanitize(node.attrs["name"])
    return names[node.outputs[0]]


def _hint_notes(graph: GraphBase, namer: Namer, orders: _Orders) -> dict[Node, str]:
    """The ``hint`` notes: node -> note, where the printed names would not give the parser the
    node's result hints. Hints are kept as they are unless the parsed copy would then print
    other names (hints shared in an order the parser cannot rebuild); such values take their
    printed name as hint instead, until every name comes out the same."""
    nodes = list(orders.walk(graph))
    names = {v: namer(v) for n in nodes for v in n.outputs}
    wanted = {v: sanitize(v.name_hint) for v in names}
    order = list(orders.parsed(graph))
    while True:  # (usually once)
        table = _NameTable()
        wrong = [v for v in order if table.fresh(wanted[v]) != names[v]]
        if not wrong:
            break
        for v in wrong:
            wanted[v] = names[v]
    notes: dict[Node, str] = {}
    for node in nodes:
        hints = [wanted[v] for v in node.outputs]
        if not hints or hints == [_assumed_hint(node, names)] * len(hints):
            continue  # what the parser assumes
        notes[node] = f"hint {hints[0]}" if len(set(hints)) == 1 else "hints " + ",".join(hints)
    return notes


# ----------------------------------------------------------------------------- the text


class _Printer:
    def __init__(self, graph: GraphBase, annotate: Optional[Annotate], values: bool) -> None:
        self.annotate = annotate
        self.values = values
        self.orders = _Orders()
        self.name = _canonical_namer(graph, self.orders)
        self.hints = _hint_notes(graph, self.name, self.orders)
        self.weights: dict[str, np.ndarray] = {}  # the arrays the text elides, by weight_key
        self.lines = [f"graph {graph.name}"]
        self.body(graph, "  ")

    def body(self, graph: GraphBase, indent: str) -> None:
        for node in self.orders.printed(graph):
            self.lines.append(indent + self.node_line(node))
            for region_name, region in node.regions.items():
                self.lines.append(f"{indent}  region {region_name}")
                self.body(region, indent + "    ")
        outs = ", ".join(f"{_output_name(n)}=%{self.name(v)}" for n, v in zip(graph.output_names, graph.outputs))
        meta = ", ".join(f"{k}={format_attr(graph.meta[k])}" for k in PRINTED_META if k in graph.meta)
        self.lines.append(f"{indent}return" + (f" {outs}" if outs else "") + (f" {{{meta}}}" if meta else ""))

    def node_line(self, node: Node) -> str:
        results = ", ".join(f"%{self.name(v)} : {v.type}" for v in node.outputs)
        args = ", ".join(f"%{self.name(v)}" for v in node.inputs)
        regions = node.regions
        shown = {k: v for k, v in node.attrs.items()
                 if not (node.op in ("constant", "state") and k == "dtype") and k not in regions}
        attrs = ", ".join(f"{k}={self.attr(node, k, v)}" for k, v in sorted(shown.items()))
        line = f"{results} = {node.op}({args})" if node.outputs else f"{node.op}({args})"
        if attrs:
            line += " {" + attrs + "}"
        notes = []
        if node.loc is not None and (node.loc.module_path or node.loc.file):
            notes.append(node.loc.short())
        if node in self.hints:
            notes.append(self.hints[node])
        if self.annotate is not None:
            extra = self.annotate(node)
            if extra:
                notes.append(extra)
        if notes:
            line += "  # " + "  ".join(notes)
        return line

    def attr(self, node: Node, key: str, value: Any) -> str:
        """An attribute; a large array is elided (and kept for the weights file) unless it is
        nested in another value (printed whole: the weights file keys whole attributes only)."""
        if isinstance(value, np.ndarray) and value.size > SMALL_ARRAY and not self.values and node.outputs:
            self.weights[weight_key(self.name(node.outputs[0]), key)] = value
            return _elided_text(value)
        return format_attr(value, values=True)


def print_graph(graph: GraphBase, annotate: Optional[Annotate] = None, *, values: bool = False) -> str:
    """The text form; ``annotate(node) -> str`` may append a note to each line; ``values=True``
    prints every array's values (large constants included) instead of eliding them."""
    return "\n".join(_Printer(graph, annotate, values).lines) + "\n"


def print_graph_and_weights(graph: GraphBase) -> tuple[str, dict[str, np.ndarray]]:
    """The text form and the arrays it elides, by the key the text refers to each with
    (``weight_key``); stand-ins of arrays already elided (``ElidedArray``) are not included."""
    printer = _Printer(graph, None, False)
    return "\n".join(printer.lines) + "\n", printer.weights


# ----------------------------------------------------------------------------- JSON


def _json_attr(value: Any) -> Any:
    if isinstance(value, ElidedArray):
        return {"shape": list(value.shape), "dtype": value.dtype.name, "elided": True}
    if isinstance(value, np.ndarray):
        out = {"shape": list(value.shape), "dtype": value.dtype.name}
        if value.size <= SMALL_ARRAY:
            out["data"] = value.reshape(-1).tolist()
        return out
    if isinstance(value, (list, tuple)):
        return [_json_attr(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def _json_type(v: Value) -> dict:
    return {"shape": list(v.type.shape), "dtype": v.type.dtype, "layout": list(v.type.perm)}


def graph_to_json(graph: GraphBase, _namer: "Namer | None" = None) -> dict:
    """A JSON-ready description of the graph (not meant to be parsed back into a Graph); a
    node's regions are nested graphs under ``"regions"``."""
    name = _namer or Namer()
    nodes = []
    for node in graph.topo_order():
        regions = node.regions
        entry = {
            "id": node.id,
            "op": node.op,
            "inputs": [name(v) for v in node.inputs],
            "outputs": [{"name": name(v), **_json_type(v)} for v in node.outputs],
            "attrs": {k: _json_attr(v) for k, v in sorted(node.attrs.items()) if k not in regions},
        }
        if regions:
            entry["regions"] = {k: graph_to_json(g, name) for k, g in regions.items()}
        if node.loc is not None:
            entry["loc"] = {"module": node.loc.module_path, "module_type": node.loc.module_type,
                            "file": node.loc.file, "line": node.loc.line, "source_op": node.loc.op}
        nodes.append(entry)
    return {
        "name": graph.name,
        "inputs": [name(v) for v in graph.inputs],
        "outputs": [{"name": n, "value": name(v)} for n, v in zip(graph.output_names, graph.outputs)],
        "nodes": nodes,
    }
