"""Reads the IR text ``printer.py`` writes (its grammar is in that module's docstring) back into a Graph.

``parse(text, weights)`` builds exactly what the text says: every node with its printed result
types (nothing is re-inferred), attributes (defaults filled in where a hand-written line leaves
them out), regions and source locations; ``graph.verify()`` checks the result. What the text
does not carry comes back as follows:

- Large arrays (``<float32[64,3,3,3]>``) are looked up in ``weights`` by their key (the value's
  printed name, ``printer.weight_key``). A missing one becomes an ``ElidedArray`` (shape and
  dtype only, numeric use refused with ``ElidedWeightsError``) and its key is listed in
  ``graph.meta["elided_weights"]``; so ``print_graph(parse(text)) == text`` with or without them.
- Name hints: the comment's ``hint``/``hints`` note where there is one, else an input's
  ``name``, else the first result's printed name for every result of the node.
- Source locations: the comment's ``MODULE FILE:LINE`` becomes ``SourceLoc(module_path, file,
  line)`` with the file's base name (the text has no more); the module type, the source code
  line and the torch op are not printed and come back empty. Other notes are dropped.
- Region graphs are named ``<enclosing graph>_<region key>``, as the frontend names them.
- ``graph.meta``: the ``PRINTED_META`` entries on a ``return`` line; ``Value.meta`` and
  ``Node.meta`` are not printed.

Errors name the line and column and what was expected there (``IRSyntaxError``). The parser
creates each graph's inputs first, then its constants, then its other ops in text order, so a
parsed graph lists its nodes in the order they were printed and prints the same names.
"""

from __future__ import annotations

import ast
import re
import warnings
from typing import Any, Mapping, Optional

import attrs
import numpy as np

from .elided import ElidedArray
from .errors import Torch2KerasError
from .graph import Graph, SourceLoc, Value
from .ops import schema
from .printer import PRINTED_META, weight_key
from .types import DTYPES, TensorType

__all__ = ["IRSyntaxError", "parse", "parse_pass_specs"]

_NAME = re.compile(r"\w+")
_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_NUMBER = re.compile(r"-?(?:(?:inf|nan)\b|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)")
_INT = re.compile(r"-?\d+")
_IR_DTYPE = re.compile(r"[a-z]+\d*")
_BLANKS = re.compile(r"[ \t]*")
_OUTPUT_NAME = re.compile(r"[\w.]+")
_RETURN_LINE = re.compile(r"return\b")
_REGION_LINE = re.compile(r"region\b(?!\s*\()")  # a region header, not an effect op called region
_LOC = re.compile(r"(\S+)(?: (.+):(\d+))?")
_HINTS = re.compile(r"(hints?) (\w+(?:,\w+)*)")


class IRSyntaxError(Torch2KerasError, ValueError):
    """The IR text is malformed at ``line``:``column`` (1-based); the message says what was expected."""

    def __init__(self, problem: str, line: int, column: int, text: str = "", source: str = "<ir>") -> None:
        self.problem, self.line, self.column, self.source = problem, line, column, source
        shown = f"\n    {text}\n    {' ' * (column - 1)}^" if text else ""
        super().__init__(f"{source}:{line}:{column}: {problem}{shown}")


# ----------------------------------------------------------------------------- one line


class _Scanner:
    """A cursor over one line of text."""

    def __init__(self, text: str, line: int, source: str) -> None:
        self.text, self.line, self.source, self.pos = text, line, source, 0

    def error(self, problem: str, pos: Optional[int] = None) -> IRSyntaxError:
        return IRSyntaxError(problem, self.line, (self.pos if pos is None else pos) + 1, self.text, self.source)

    def expected(self, what: str) -> IRSyntaxError:
        self.skip()
        if self.pos >= len(self.text):
            found = "the end of the line"
        else:
            token = re.match(r"\w+|\S", self.text[self.pos:]).group(0)
            found = repr(token)
        return self.error(f"expected {what}, found {found}")

    def skip(self) -> None:
        self.pos = _BLANKS.match(self.text, self.pos).end()

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def peek(self, literal: str) -> bool:
        self.skip()
        return self.text.startswith(literal, self.pos)

    def take(self, literal: str) -> bool:
        if self.peek(literal):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str, what: str = "") -> None:
        if not self.take(literal):
            raise self.expected(what or repr(literal))

    def match(self, pattern: re.Pattern) -> Optional[str]:
        self.skip()
        m = pattern.match(self.text, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group(0)

    def require(self, pattern: re.Pattern, what: str) -> str:
        token = self.match(pattern)
        if token is None:
            raise self.expected(what)
        return token

    def rest(self) -> str:
        out = self.text[self.pos:]
        self.pos = len(self.text)
        return out


@attrs.frozen
class _Elided:
    """An ``<npdtype[shape]>`` reference, resolved against the weights when the node is built."""

    dtype: np.dtype
    shape: tuple[int, ...]
    column: int


_NP_DTYPES = {np.dtype(t).name: np.dtype(t) for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                                                        "uint32", "uint64", "float16", "float32", "float64")}


def _np_dtype(sc: _Scanner) -> np.dtype:
    sc.skip()
    start = sc.pos
    name = sc.require(_NAME, "a numpy dtype (e.g. float32)")
    if name not in _NP_DTYPES:
        raise sc.error(f"expected a numpy dtype (e.g. float32), found {name!r}", start)
    return _NP_DTYPES[name]


def _int_list(sc: _Scanner, close: str) -> list[int]:
    out: list[int] = []
    if sc.take(close):
        return out
    while True:
        out.append(int(sc.require(_INT, "an integer")))
        if sc.take(close):
            return out
        sc.expect(",", f"',' or {close!r}")


def _scalar(sc: _Scanner, dtype: np.dtype) -> Any:
    sc.skip()
    start = sc.pos
    if dtype.kind == "b":
        token = sc.match(re.compile(r"True|False"))
        if token is None:
            raise sc.expected("True or False")
        return token == "True"
    token = sc.require(_NUMBER, "a number")
    if dtype.kind in "iu":
        if not _INT.fullmatch(token):
            raise sc.error(f"expected an integer for {dtype.name}, found {token!r}", start)
        return int(token)
    return float(token)


def _array(sc: _Scanner) -> np.ndarray:
    dtype = _np_dtype(sc)
    sc.expect("[", "'[' (the array's shape)")
    shape = tuple(_int_list(sc, "]"))
    start = sc.pos
    sc.expect("[", "'[' (the array's values)")
    items: list[Any] = []
    if not sc.take("]"):
        while True:
            items.append(_scalar(sc, dtype))
            if sc.take("]"):
                break
            sc.expect(",", "',' or ']'")
    size = int(np.prod(shape, dtype=np.int64))
    if len(items) != size:
        raise sc.error(f"expected {size} values for shape {list(shape)}, found {len(items)}", start)
    return np.array(items, dtype=dtype).reshape(shape)


def _elided(sc: _Scanner) -> _Elided:
    column = sc.pos + 1
    sc.expect("<")
    dtype = _np_dtype(sc)
    sc.expect("[", "'[' (the array's shape)")
    shape = tuple(_int_list(sc, "]"))
    sc.expect(">", "'>'")
    return _Elided(dtype, shape, column)


def _value(sc: _Scanner) -> Any:
    """One attribute value (see the grammar's ``value``)."""
    sc.skip()
    ch = sc.text[sc.pos] if sc.pos < len(sc.text) else ""
    if ch == "[":
        return _sequence(sc, "[", "]", lambda: _value(sc))
    if ch == "{":
        pairs = _sequence(sc, "{", "}", lambda: _pair(sc))
        return dict(pairs)
    if ch == "<":
        return _elided(sc)
    if ch in "'\"":
        token = sc.match(_STRING)
        if token is None:
            raise sc.error("expected a closing quote")
        return ast.literal_eval(token)
    token = sc.match(_NUMBER)
    if token is not None:
        return int(token) if _INT.fullmatch(token) else float(token)
    start = sc.pos  # (blanks skipped above)
    word = sc.match(_NAME)
    if word in ("true", "false"):
        return word == "true"
    if word == "none":
        return None
    if word is not None and sc.peek("["):
        sc.pos = start
        return _array(sc)
    sc.pos = start
    raise sc.expected("a value (a number, a 'string', true, false, none, [...], {...} or an array)")


def _pair(sc: _Scanner) -> tuple[Any, Any]:
    key = _value(sc)
    sc.expect(":", "':' (between a key and its value)")
    return key, _value(sc)


def _sequence(sc: _Scanner, open_: str, close: str, item) -> list:
    sc.expect(open_)
    out: list = []
    if sc.take(close):
        return out
    while True:
        out.append(item())
        if sc.take(close):
            return out
        sc.expect(",", f"',' or {close!r}")


def _attributes(sc: _Scanner) -> dict[str, Any]:
    """``{key=value, ...}`` (the opening brace not yet taken)."""
    sc.expect("{")
    out: dict[str, Any] = {}
    if sc.take("}"):
        return out
    while True:
        sc.skip()
        start = sc.pos
        key = sc.require(_NAME, "an attribute name")
        if key in out:
            raise sc.error(f"attribute {key!r} is given twice", start)
        sc.expect("=", "'=' after the attribute name")
        out[key] = _value(sc)
        if sc.take("}"):
            return out
        sc.expect(",", "',' or '}'")


def _dims(sc: _Scanner) -> list:
    """The dims of a type up to its closing ']' (symbolic ones are taken verbatim)."""
    dims: list = []
    depth, start = 0, sc.pos
    while True:
        if sc.pos >= len(sc.text):
            raise sc.expected("']' closing the shape")
        ch = sc.text[sc.pos]
        if ch in "([":
            depth += 1
        elif ch in ")]" and depth:
            depth -= 1
        elif ch in ",]" and depth == 0:
            text = sc.text[start:sc.pos].strip()
            if text:
                dims.append(int(text) if _INT.fullmatch(text) else text)
            elif ch == "," or dims:
                raise sc.error("expected a dimension", start)
            sc.pos += 1
            if ch == "]":
                return dims
            start = sc.pos
            continue
        sc.pos += 1


def _type(sc: _Scanner) -> TensorType:
    sc.skip()
    start = sc.pos
    dtype = sc.match(_IR_DTYPE)
    if dtype not in DTYPES:
        sc.pos = start
        raise sc.expected(f"a type (one of {', '.join(DTYPES)}, then the shape in [...])")
    sc.expect("[", "'[' (the shape)")
    shape = _dims(sc)
    layout = _int_list(sc, "}") if sc.take("{") else None
    try:
        return TensorType(shape, dtype, layout)
    except ValueError as e:
        raise sc.error(str(e), start) from None


def _spec(dtype: np.dtype, shape: tuple) -> str:
    return f"{dtype.name}[{','.join(str(d) for d in shape)}]"


def _comment(comment: str) -> tuple[Optional[SourceLoc], Optional[list[str]]]:
    """A node's comment: its source location (the first note) and its ``hint`` note, if any."""
    loc, hints = None, None
    for k, note in enumerate(comment.strip().split("  ")):
        note = note.strip()
        m = _HINTS.fullmatch(note)
        if m is not None and hints is None:
            hints = m.group(2).split(",") if m.group(1) == "hints" else [m.group(2)]
            continue
        m = _LOC.fullmatch(note)
        if k == 0 and m is not None:
            loc = SourceLoc(module_path="" if m.group(1) == "<top>" else m.group(1), file=m.group(2) or "",
                            line=int(m.group(3) or 0))
    return loc, hints


# ----------------------------------------------------------------------------- lines of a body


@attrs.define
class _Result:
    name: str
    type: TensorType
    column: int


@attrs.define
class _Body:
    line: int  # of the line that opened it
    nodes: list = attrs.field(factory=list)
    outputs: list = attrs.field(factory=list)  # (output name, value name, column)
    meta: dict = attrs.field(factory=dict)
    return_line: int = 0


@attrs.define
class _NodeLine:
    line: int
    op: str
    op_column: int
    results: list
    operands: list  # (name, column)
    attrs: dict
    loc: Optional[SourceLoc]
    hints: Optional[list]  # the comment's hint note: one hint for every result, or one per result
    hint_column: int
    regions: list = attrs.field(factory=list)  # (key, _Body, line)


def _results(sc: _Scanner) -> list[_Result]:
    out = []
    while True:
        sc.skip()
        column = sc.pos + 1
        sc.expect("%", "'%' (a result name)")
        name = sc.require(_NAME, "a result name")
        sc.expect(":", "':' and the result's type")
        out.append(_Result(name, _type(sc), column))
        if sc.take("="):
            return out
        sc.expect(",", "',' (another result) or '=' (the op)")


def _node_line(sc: _Scanner) -> _NodeLine:
    results = _results(sc) if sc.peek("%") else []
    sc.skip()
    op_column = sc.pos + 1
    op = sc.require(_NAME, "an op name" if results else "an op name, a result ('%name : type') or 'return'")
    sc.expect("(", "'(' after the op name")
    operands = []
    if not sc.take(")"):
        while True:
            sc.skip()
            column = sc.pos + 1
            sc.expect("%", "'%' (an operand)")
            operands.append((sc.require(_NAME, "an operand name"), column))
            if sc.take(")"):
                break
            sc.expect(",", "',' or ')' after an operand")
    attributes = _attributes(sc) if sc.peek("{") else {}
    loc, hints, hint_column = None, None, 0
    if sc.take("#"):
        hint_column = sc.pos
        loc, hints = _comment(sc.rest())
    if not sc.at_end():
        raise sc.expected("'{' (attributes), '#' (a comment) or the end of the line")
    if hints is not None and len(hints) not in (1, len(results)):
        raise sc.error(f"expected one hint or one per result ({len(results)}), found {len(hints)}", hint_column)
    return _NodeLine(sc.line, op, op_column, results, operands, attributes, loc, hints, hint_column)


def _return_line(sc: _Scanner, body: _Body) -> None:
    sc.expect("return")
    body.return_line = sc.line
    if not sc.at_end() and not sc.peek("{"):
        while True:
            token = sc.match(_STRING)
            name = ast.literal_eval(token) if token else sc.require(_OUTPUT_NAME, "an output name")
            sc.expect("=", "'=' after the output name")
            sc.skip()
            column = sc.pos + 1
            sc.expect("%", "'%' (the output's value)")
            body.outputs.append((name, sc.require(_NAME, "a value name"), column))
            if not sc.take(","):
                break
    if sc.peek("{"):
        body.meta = _attributes(sc)
    if not sc.at_end():
        raise sc.expected("',' (another output), '{' (graph metadata) or the end of the line")


class _Reader:
    """The text's lines, blank ones (and full-line ``#`` comments) skipped."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.split("\n")
        self.source = source
        self.index = 0

    def peek(self) -> Optional[tuple[int, int, str]]:
        """(line number, indentation, content) of the next line that says something."""
        while self.index < len(self.lines):
            raw = self.lines[self.index].rstrip("\r")
            stripped = raw.lstrip(" ")
            if stripped and not stripped.startswith("#"):
                if stripped[0] == "\t":
                    raise IRSyntaxError("expected spaces for indentation, found a tab", self.index + 1,
                                        len(raw) - len(stripped) + 1, raw, self.source)
                return self.index + 1, len(raw) - len(stripped), raw
            self.index += 1
        return None

    def scanner(self) -> _Scanner:
        number, indent, raw = self.peek()
        self.index += 1
        sc = _Scanner(raw, number, self.source)
        sc.pos = indent
        return sc


def _body(reader: _Reader, indent: int, opened: int, what: str) -> _Body:
    body = _Body(opened)
    while True:
        nxt = reader.peek()
        if nxt is None:
            raise IRSyntaxError(f"expected 'return' ending {what} (opened at line {opened}), found the end of the "
                                f"text", len(reader.lines), 1, "", reader.source)
        number, got, raw = nxt
        if got != indent:
            raise IRSyntaxError(f"expected {indent} spaces of indentation ({what}, opened at line {opened}), "
                                f"found {got}", number, got + 1, raw, reader.source)
        sc = reader.scanner()
        if _RETURN_LINE.match(raw, indent):
            _return_line(sc, body)
            return body
        if _REGION_LINE.match(raw, indent):
            raise sc.error("expected a node or 'return'; a 'region' block goes two spaces deeper than its node")
        node = _node_line(sc)
        body.nodes.append(node)
        _regions(reader, node, indent + 2)


def _regions(reader: _Reader, node: _NodeLine, indent: int) -> None:
    """The ``region KEY`` blocks following ``node``'s line."""
    while True:
        nxt = reader.peek()
        if nxt is None or nxt[1] != indent or not _REGION_LINE.match(nxt[2], indent):
            return
        sc = reader.scanner()
        sc.expect("region")
        key = sc.require(_NAME, "the region's name (an attribute of the op)")
        if not sc.at_end():
            raise sc.expected("the end of the line after the region's name")
        node.regions.append((key, _body(reader, indent + 2, sc.line, f"region {key!r}"), sc.line))


def _read(text: str, source: str) -> tuple[str, _Body]:
    reader = _Reader(text, source)
    first = reader.peek()
    if first is None:
        raise IRSyntaxError("expected 'graph NAME', found an empty text", 1, 1, "", source)
    sc = reader.scanner()
    if first[1] != 0 or not sc.take("graph") or sc.at_end() or sc.text[sc.pos - 1] not in " \t":
        sc.pos = first[1]
        raise sc.expected("'graph NAME' (the text's first line)")
    name = sc.rest().strip()
    body = _body(reader, 2, sc.line, "the graph's body")
    rest = reader.peek()
    if rest is not None:
        raise IRSyntaxError("expected the end of the text after the graph's 'return'", rest[0], rest[1] + 1, rest[2],
                            source)
    return name, body


# ----------------------------------------------------------------------------- building the graph


def _holds_elided(value: Any) -> bool:
    if isinstance(value, _Elided):
        return True
    if isinstance(value, list):
        return any(_holds_elided(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_elided(k) or _holds_elided(v) for k, v in value.items())
    return False


class _Builder:
    def __init__(self, weights: Optional[Mapping[str, Any]], source: str, lines: list[str]) -> None:
        self.weights = weights if weights is not None else {}
        self.source = source
        self.lines = lines
        self.defined: dict[str, int] = {}  # every value name of the text -> its line
        self.elided: list[str] = []

    def error(self, problem: str, line: int, column: int) -> IRSyntaxError:
        text = self.lines[line - 1].rstrip("\r") if 0 < line <= len(self.lines) else ""
        return IRSyntaxError(problem, line, column, text, self.source)

    def collect(self, body: _Body) -> None:
        """Every result name of the text, each defined once."""
        for node in body.nodes:
            for r in node.results:
                if r.name in self.defined:
                    raise self.error(f"%{r.name} is defined twice (first at line {self.defined[r.name]})", node.line,
                                     r.column)
                self.defined[r.name] = node.line
            for _, region, _ in node.regions:
                self.collect(region)

    def graph(self, graph: Graph, body: _Body) -> None:
        scope: dict[str, Value] = {}
        here = {r.name for node in body.nodes for r in node.results}
        sources = [n for n in body.nodes if n.op == "input"] + [n for n in body.nodes if n.op == "constant"]
        for node in sources + [n for n in body.nodes if n.op not in ("input", "constant")]:
            self.node(graph, node, scope, here)
        outs = [self.lookup(scope, here, name, body.return_line, column) for _, name, column in body.outputs]
        graph.set_outputs([n for n, _, _ in body.outputs], outs)
        unknown = set(body.meta) - set(PRINTED_META)
        if unknown:
            raise self.error(f"unknown graph metadata {sorted(unknown)}; the text carries {list(PRINTED_META)}",
                             body.return_line, 1)
        graph.meta.update(body.meta)

    def lookup(self, scope: dict[str, Value], here: set[str], name: str, line: int, column: int) -> Value:
        if name in scope:
            return scope[name]
        if name in here:
            raise self.error(f"%{name} is used before its definition at line {self.defined[name]} (ops are listed in "
                             "topological order; only inputs and constants may come later)", line, column)
        if name in self.defined:
            raise self.error(f"%{name} (line {self.defined[name]}) belongs to another graph: a region reads only "
                             "its own inputs", line, column)
        raise self.error(f"%{name} is not defined", line, column)

    def node(self, graph: Graph, line: _NodeLine, scope: dict[str, Value], here: set[str]) -> None:
        try:
            sch = schema(line.op)
        except KeyError:
            raise self.error(f"unknown op {line.op!r}", line.line, line.op_column) from None
        inputs = [self.lookup(scope, here, name, line.line, column) for name, column in line.operands]
        inline_regions = [k for k in line.attrs if k in sch.attrs and sch.attrs[k].kind == "graph"]
        if inline_regions:
            raise self.error(f"region {inline_regions[0]!r} is given as a 'region {inline_regions[0]}' block after "
                             "the node, not as an attribute", line.line, line.op_column)
        nested = [k for k, v in line.attrs.items() if not isinstance(v, _Elided) and _holds_elided(v)]
        if nested:
            raise self.error(f"attribute {nested[0]!r}: an elided array (<dtype[shape]>) stands for a whole "
                             "attribute, not for part of one", line.line, line.op_column)
        node_attrs = {k: self.weight(line, k, v) if isinstance(v, _Elided) else v for k, v in line.attrs.items()}
        for key, region_body, region_line in line.regions:
            spec = sch.attrs.get(key)
            if spec is None or spec.kind != "graph":
                regions = [k for k, s in sch.attrs.items() if s.kind == "graph"]
                raise self.error(f"{line.op} has no region {key!r} (its regions: {regions or 'none'})", region_line,
                                 1 + len(self.lines[region_line - 1]) - len(self.lines[region_line - 1].lstrip()))
            region = graph.new_region(f"{graph.name}_{key}")
            self.graph(region, region_body)
            node_attrs[key] = region
        if line.op in ("constant", "state") and line.results:
            node_attrs.setdefault("dtype", line.results[0].type.dtype)
        if sch.num_outputs is not None and len(line.results) != sch.num_outputs:
            raise self.error(f"{line.op} has {sch.num_outputs} result(s), the line names {len(line.results)}",
                             line.line, line.op_column)
        hints = self.hints(line)
        try:
            node = graph.add_node(line.op, inputs, node_attrs, types=[r.type for r in line.results], loc=line.loc,
                                  name=hints[0] if hints else None)
        except (ValueError, KeyError) as e:  # arity, unknown or missing attributes (the message names the op)
            raise self.error(str(e.args[0] if e.args else e), line.line, line.op_column) from None
        for r, v, hint in zip(line.results, node.outputs, hints):
            v.name_hint = hint
            scope[r.name] = v

    @staticmethod
    def hints(line: _NodeLine) -> list[str]:
        """Each result's name hint: the comment's, else an input's name, else the first result's name."""
        if not line.results:
            return []
        given = line.hints
        if given is None:
            name = line.attrs.get("name")
            given = [name if line.op == "input" and isinstance(name, str) else line.results[0].name]
        return given * len(line.results) if len(given) == 1 else list(given)

    def weight(self, line: _NodeLine, key: str, ref: _Elided) -> Any:
        if not line.results:
            raise self.error("an elided array needs a node with a result (its name keys the weights file)",
                             line.line, ref.column)
        name = weight_key(line.results[0].name, key)
        if name not in self.weights:
            self.elided.append(name)
            return ElidedArray(name, ref.shape, ref.dtype)
        array = np.asarray(self.weights[name])
        if array.shape != ref.shape or array.dtype != ref.dtype:
            raise self.error(f"the weights' {name!r} is {_spec(array.dtype, array.shape)}, the text says "
                             f"{_spec(ref.dtype, ref.shape)}", line.line, ref.column)
        return array


def parse(text: str, weights: Optional[Mapping[str, Any]] = None, *, source: str = "<ir>") -> Graph:
    """The graph ``text`` (``print_graph``'s form) describes. ``weights`` maps the keys of the
    elided arrays to their values (``load_ir`` reads them from the side file); those missing
    become ``ElidedArray`` stand-ins listed in ``graph.meta["elided_weights"]`` (with a warning
    when ``weights`` was given). ``source`` names the text in error messages."""
    name, body = _read(text, source)
    builder = _Builder(weights, source, text.split("\n"))
    builder.collect(body)
    graph = Graph(name)
    builder.graph(graph, body)
    if builder.elided:
        graph.meta["elided_weights"] = list(builder.elided)
        if weights is not None:
            shown = ", ".join(builder.elided[:5]) + (", ..." if len(builder.elided) > 5 else "")
            warnings.warn(f"{source}: the weights lack {len(builder.elided)} elided array(s) ({shown}); they stay "
                          "stand-ins that refuse numeric use", stacklevel=2)
    return graph


def parse_pass_specs(text: str) -> list[tuple[str, dict[str, Any]]]:
    """A comma-separated pass list, ``name`` or ``name{option=value, ...}`` (values in the IR's
    attribute syntax), as ``torch2keras opt -p`` takes it: ``[(name, options), ...]``."""
    sc = _Scanner(text, 1, "passes")
    out = []
    while True:
        name = sc.require(_NAME, "a pass name")
        options = _attributes(sc) if sc.peek("{") else {}
        out.append((name, options))
        if sc.at_end():
            return out
        sc.expect(",", "',' (another pass) or the end")
