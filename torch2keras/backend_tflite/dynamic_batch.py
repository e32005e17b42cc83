"""A run-time batch in the direct TFLite writer: a graph whose only run-time size is one symbol,
the stored leading axis of its inputs and outputs holding it (``f32[batch,3,8,8]``; values in
between may hold it, or integer arithmetic on it, at any axis), written as a file
whose tensors have size 1 there in ``shape`` and -1 in ``shape_signature``, so that LiteRT takes
any batch (``resize_tensor_input``, signature runners).

The emitters write static shapes. The graph is therefore written twice, with the symbol bound to
two sizes (``BATCH_SIZES``), and the two subgraphs are compared: whatever the batch size changes
is what depends on it. The first one is kept, with

* a tensor size that is k times the batch in both: k in ``shape``, -1 in ``shape_signature``
  (a tensor's stored size is where the run-time size starts from; kernels resize their
  results as they run);
* a RESHAPE's new shape holding one size k times the batch (the rest equal in both): -1 there,
  the one size TFLite then infers from the input's (which is k times the batch);
* a STRIDED_SLICE whose end is the batch, from 0 in steps of 1 along that axis (the whole axis):
  the axis's end mask bit set; a SLICE of the batch's size from 0: size -1 there (to the end).

Anything else that changes with the batch size -- a constant, an option, a tensor or op more or
less, a size not proportional to the batch -- is refused with a ``DirectExportError`` naming the
op that writes it, as is a graph with a run-time size that is not such a batch (several
symbols, a symbol off the stored leading axis, an expression of one).
"""

from __future__ import annotations

import ast
import contextlib
import operator
import re
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from ..ir import Graph, Node
from .builder import ModelBuilder, SubgraphBuilder
from .context import DirectExportError
from .schema import fb

__all__ = ["BATCH_SIZES", "add_batch_signature", "batch_symbol", "other_batch"]

# the sizes the batch is bound to for the two writes: neither 1 (no emitter's special case for a
# 1-sized axis), of different parity and divisors, unlikely to coincide with a static size
BATCH_SIZES = (13, 22)

_RESHAPE = fb.BuiltinOperator.RESHAPE
_STRIDED_SLICE = fb.BuiltinOperator.STRIDED_SLICE
_SLICE = fb.BuiltinOperator.SLICE
_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if isinstance(v, int) and not k.startswith("_")}
_STATIC_ONLY = "the direct backend writes static sizes and a run-time batch (the stored leading axis) only"


def batch_symbol(graph: Graph) -> Optional[str]:
    """The run-time batch of ``graph`` (its regions included): None when every size is static,
    else the one symbol, that the graph's inputs and outputs hold as their stored leading size
    only; values in between may hold it anywhere, or an integer expression of it
    (``4*batch``: attention's heads folded into the batch). A DirectExportError names the first
    value with another run-time size."""
    symbol = None
    boundary = {v.id for v in graph.inputs} | {v.id for v in graph.outputs}
    for _, node in graph.walk():
        for v in node.outputs:
            for axis, d in enumerate(v.type.physical_shape):
                if not isinstance(d, str):
                    continue
                if v.id in boundary and (axis != 0 or not re.fullmatch(r"\w+", d)):
                    raise DirectExportError(node, f"has a run-time size ({v.type}) other than its stored leading "
                                                  f"size; {_STATIC_ONLY}")
                names = set(re.findall(r"[A-Za-z_]\w*", d))
                if len(names) != 1 or (symbol is not None and names != {symbol}):
                    besides = f" besides the batch {symbol!r}" if symbol is not None else ""
                    raise DirectExportError(node, f"has a run-time size ({v.type}){besides} of "
                                                  f"{', '.join(map(repr, sorted(names - {symbol})))}; {_STATIC_ONLY}")
                symbol = names.pop()
                _evaluate(d, symbol, 1, node)
    return symbol


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
        ast.Mod: operator.mod}


def _evaluate(text: str, symbol: str, size: int, node: Node) -> int:
    """Integer expression ``text`` of ``symbol`` (``4*batch``, ``batch - 1``) at ``size``;
    anything but integer arithmetic is refused."""

    def value(e: ast.AST) -> int:
        if isinstance(e, ast.Constant) and type(e.value) is int:
            return e.value
        if isinstance(e, ast.Name) and e.id == symbol:
            return size
        if isinstance(e, ast.BinOp) and type(e.op) in _OPS:
            return _OPS[type(e.op)](value(e.left), value(e.right))
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            return -value(e.operand)
        raise DirectExportError(node, f"has a run-time size {text!r} that is not integer arithmetic on the batch; "
                                      f"{_STATIC_ONLY}")

    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise DirectExportError(node, f"has a run-time size {text!r} that is not integer arithmetic on the batch; "
                                      f"{_STATIC_ONLY}") from None
    return value(tree.body)


@contextlib.contextmanager
def bound_batch(graph: Graph, symbol: str, size: int) -> Iterator[None]:
    """``graph`` with ``symbol`` bound to ``size`` in its values' shapes and its nodes'
    attributes other than strings (a reshape's ``['batch', 144]``), put back on exit."""
    types: list = []
    attrs: list = []
    mention = re.compile(rf"(?<!\w){re.escape(symbol)}(?!\w)")

    def bind(value: Any, node: Node) -> Any:
        if isinstance(value, str):
            return _evaluate(value, symbol, size, node) if mention.search(value) else value
        if isinstance(value, (list, tuple)):
            bound = [bind(x, node) for x in value]
            return type(value)(bound) if any(a is not b for a, b in zip(bound, value)) else value
        if isinstance(value, dict):
            bound = {k: bind(x, node) for k, x in value.items()}
            return bound if any(bound[k] is not value[k] for k in value) else value
        return value

    def dim(d: Any, node: Node) -> Any:
        return _evaluate(d, symbol, size, node) if isinstance(d, str) else d

    try:
        for _, node in graph.walk():
            specs = node.schema.attrs
            for key, value in list(node.attrs.items()):
                kind = specs[key].kind if key in specs else "any"
                if kind in ("graph", "str", "array") or (node.op == "constant" and key == "value"):
                    continue
                bound = bind(value, node)
                if bound is not value:
                    attrs.append((node, key, value))
                    node.attrs[key] = bound
            for v in node.outputs:
                if not v.type.is_static:
                    types.append((v, v.type))
                    v.type = v.type.replace(shape=tuple(dim(d, node) for d in v.type.shape))
        yield
    finally:
        for v, t in types:
            v.type = t
        for node, key, value in attrs:
            node.attrs[key] = value


def add_batch_signature(model: ModelBuilder, graph: Graph, symbol: str,
                        build: Callable[[ModelBuilder], dict[str, Node]]) -> dict[str, Node]:
    """``build(model)`` -- the writer adding ``graph``'s subgraph and signature to a model -- run
    with the batch bound to each of ``BATCH_SIZES`` (the second into a model of its own), the
    subgraphs it added to ``model`` then made batch-independent (see the module docstring).
    Returns the tensor names' nodes."""
    first, second = BATCH_SIZES
    start = len(model.subgraphs)
    declared = model.variables
    with bound_batch(graph, symbol, first):
        nodes = build(model)
    other = ModelBuilder(model.description)
    other.derived = model.derived  # (weights quantized once, for both writes)
    with bound_batch(graph, symbol, second):
        build(other)
    names = _Names(nodes, graph)
    ours = model.subgraphs[start:]
    if len(ours) != len(other.subgraphs):
        raise DirectExportError(names.first, f"is written with {len(ours)} subgraphs at batch {first} and "
                                             f"{len(other.subgraphs)} at batch {second}: its form depends on the batch "
                                             f"size; {_STATIC_ONLY}")
    for name, spec in other.variables.items():
        if model.variables.get(name) != spec and name not in declared:
            raise DirectExportError(names.first, f"holds state {name!r} whose size depends on the batch size; "
                                                 f"{_STATIC_ONLY}")
    for a, b in zip(ours, other.subgraphs):
        _Batch(a, b, names).mark()
    return nodes


class _Names:
    """The IR node behind a tensor name (``scope`` or ``scope/...``)."""

    def __init__(self, nodes: dict[str, Node], graph: Graph) -> None:
        self.nodes = nodes
        self.first = graph.inputs[0].producer if graph.inputs else next(iter(graph.topo_order()))

    def node(self, name: str) -> Node:
        while name:
            if name in self.nodes:
                return self.nodes[name]
            name = name.rpartition("/")[0]
        return self.first


class _Batch:
    """Subgraph ``a`` (written at batch ``BATCH_SIZES[0]``) compared with ``b`` (the other size)
    and made batch-independent."""

    def __init__(self, a: SubgraphBuilder, b: SubgraphBuilder, names: _Names) -> None:
        self.a, self.b, self.names = a, b, names

    def refuse(self, op: Optional[Any], why: str) -> None:
        node = self.names.first
        if op is not None and len(op.outputs):
            node = self.names.node(self.a.tensors[int(op.outputs[0])].name)
        what = f"its {self.op_name(op)} " if op is not None else ""
        raise DirectExportError(node, f"is written with {what}{why}: it depends on the batch size; {_STATIC_ONLY}")

    def op_name(self, op: Any) -> str:
        return _OP_NAMES.get(self.a.model.operator_code(op.opcodeIndex), "op")

    def code(self, sub: SubgraphBuilder, op: Any) -> int:
        return sub.model.operator_code(op.opcodeIndex)

    def mark(self) -> None:
        a, b = self.a, self.b
        if (len(a.operators), len(a.tensors)) != (len(b.operators), len(b.tensors)) \
                or list(a.inputs) != list(b.inputs) or list(a.outputs) != list(b.outputs):
            at = next((k for k, (x, y) in enumerate(zip(a.operators, b.operators))
                       if self.code(a, x) != self.code(b, y) or list(x.inputs) != list(y.inputs)
                       or list(x.outputs) != list(y.outputs)), min(len(a.operators), len(b.operators)) - 1)
            self.refuse(a.operators[at] if a.operators else None,
                        f"{len(a.operators)} ops at batch {BATCH_SIZES[0]} and {len(b.operators)} at batch "
                        f"{BATCH_SIZES[1]} (the first differing here)")
        readers: dict[int, list[tuple[Any, int]]] = {}
        for op in a.operators:
            for k, t in enumerate(op.inputs):
                readers.setdefault(int(t), []).append((op, k))
        for x, y in zip(a.operators, b.operators):
            if self.code(a, x) != self.code(b, y) or list(x.inputs) != list(y.inputs) \
                    or list(x.outputs) != list(y.outputs):
                self.refuse(x, "other operands at either batch size")
        for index, (s, t) in enumerate(zip(a.tensors, b.tensors)):
            if s.name != t.name or s.type != t.type:
                self.refuse(self.writer(index), f"tensor {s.name!r} written as {t.name!r} at the other batch size")
        # options compared before constants are rewritten (a STRIDED_SLICE's end mask goes with
        # its end), rewritten after them (a RESHAPE's new shape as its constant); sizes last
        differ = [(x, y) for x, y in zip(a.operators, b.operators)
                  if not _same_options(x.builtinOptions, y.builtinOptions)]
        patched: dict[int, Any] = {}
        for index, (s, t) in enumerate(zip(a.tensors, b.tensors)):
            if not (a.is_constant(index) or b.is_constant(index)):
                continue
            va, vb = a.model.array(s.buffer) if s.buffer else None, b.model.array(t.buffer) if t.buffer else None
            if va is not None and vb is not None and va.shape == vb.shape and va.dtype == vb.dtype \
                    and np.array_equal(va, vb):
                continue
            if index not in readers and index not in a.outputs:
                continue  # (left unread by the clean-up, ``peephole.simplify``)
            self.constant(index, va, vb, readers.get(index, []), patched)
        for x, y in differ:
            if not self.options(x, y, patched):
                self.refuse(x, "options that differ between batch sizes")
        written = {int(t) for op in a.operators for t in op.outputs}
        for index, (s, t) in enumerate(zip(a.tensors, b.tensors)):
            if list(s.shape) != list(t.shape) and (index in readers or index in written or index in a.outputs
                                                   or index in a.inputs):
                self.size(index, s, t)

    def writer(self, index: int) -> Optional[Any]:
        """The op writing tensor ``index``, else the first op reading it."""
        for op in self.a.operators:
            if index in [int(t) for t in op.outputs]:
                return op
        for op in self.a.operators:
            if index in [int(t) for t in op.inputs]:
                return op
        return None

    def size(self, index: int, s: Any, t: Any) -> None:
        """A tensor whose size changes with the batch: k at a size k times the batch, -1 in its
        signature."""
        first, second = BATCH_SIZES
        if self.a.is_constant(index) or len(s.shape) != len(t.shape):
            self.refuse(self.writer(index), f"tensor {s.name!r} of shape {s.shape.tolist()} at batch {first} and "
                                            f"{t.shape.tolist()} at batch {second}")
        shape, signature = [], []
        for da, db in zip((int(d) for d in s.shape), (int(d) for d in t.shape)):
            if da == db:
                shape.append(da)
                signature.append(da)
            elif da % first == 0 and db % second == 0 and da // first == db // second:
                shape.append(da // first)
                signature.append(-1)
            else:
                self.refuse(self.writer(index), f"tensor {s.name!r} of shape {s.shape.tolist()} at batch {first} and "
                                                f"{t.shape.tolist()} at batch {second}, not proportional to it")
        s.shape = np.asarray(shape, np.int32)
        s.shapeSignature = np.asarray(signature, np.int32)

    def constant(self, index: int, va: Optional[np.ndarray], vb: Optional[np.ndarray],
                 readers: list[tuple[Any, int]], patched: dict[int, Any]) -> None:
        """A constant that differs between the batch sizes: rewritten where every read of it is
        an audited use (a RESHAPE's new shape, a STRIDED_SLICE's end, a SLICE's size; a reader of another form
        gets a constant of its own), else refused."""
        name = self.a.tensors[index].name
        op = readers[0][0] if readers else self.writer(index)
        if va is None or vb is None or va.shape != vb.shape or va.ndim != 1 or va.dtype != np.int32 or not readers:
            self.refuse(op, f"constant {name!r} holding the batch size")
        forms = []
        for r, k in readers:
            code = self.code(self.a, r)
            if (code, k) == (_RESHAPE, 1):
                new = _inferred_shape(va, vb)
                if new is None:
                    self.refuse(r, f"new shape {va.tolist()} at batch {BATCH_SIZES[0]} and {vb.tolist()} at batch "
                                   f"{BATCH_SIZES[1]} (one size k times the batch, the rest static, is written as -1)")
                patched[id(r)] = new
            elif (code, k) == (_STRIDED_SLICE, 2) and self.whole_axes(r, va, vb):
                new = np.where(va == vb, va, 0).astype(np.int32)
            elif (code, k) == (_SLICE, 2) and self.whole_slice(r, va, vb):
                new = np.where(va == vb, va, -1).astype(np.int32)
            else:
                self.refuse(r, f"input {k}, constant {name!r}, holding the batch size ({va.tolist()} at batch "
                               f"{BATCH_SIZES[0]}, {vb.tolist()} at batch {BATCH_SIZES[1]})")
            forms.append((r, k, new))
        tensors: dict[bytes, int] = {}
        for r, k, new in forms:
            if not tensors:
                self.a.tensors[index].buffer = self.a.model.buffer(new)
                tensors[new.tobytes()] = index
            elif new.tobytes() not in tensors:
                tensors[new.tobytes()] = self.a.tensor(new.shape, new.dtype, f"{name}/batch",
                                                       buffer=self.a.model.buffer(new))
            r.inputs[k] = tensors[new.tobytes()]
            if self.code(self.a, r) == _STRIDED_SLICE:
                r.builtinOptions.endMask = int(r.builtinOptions.endMask) | _mask(va != vb)

    def whole_axes(self, op: Any, end_a: np.ndarray, end_b: np.ndarray) -> bool:
        """Whether a STRIDED_SLICE ends at the batch only where it reads the whole axis: from 0
        (or a begin mask bit) in steps of 1, its end the batch size itself, no ellipsis or new
        or shrunk axes there."""
        begin, strides = (self.a.model.array(self.a.tensors[int(op.inputs[k])].buffer)
                          if self.a.is_constant(int(op.inputs[k])) else None for k in (1, 3))
        o = op.builtinOptions
        if begin is None or strides is None or o.ellipsisMask or o.newAxisMask or getattr(o, "offset", False):
            return False
        for axis in np.flatnonzero(end_a != end_b):
            bit = 1 << int(axis)
            if (end_a[axis], end_b[axis]) != BATCH_SIZES or strides[axis] != 1 or o.shrinkAxisMask & bit \
                    or not (begin[axis] == 0 or o.beginMask & bit):
                return False
        return True

    def whole_slice(self, op: Any, size_a: np.ndarray, size_b: np.ndarray) -> bool:
        """Whether a SLICE's size is the batch only where it reads the whole axis from 0 (its
        size there is then -1: to the end)."""
        begin = int(op.inputs[1])
        if not self.a.is_constant(begin):
            return False
        begin = self.a.model.array(self.a.tensors[begin].buffer)
        return all((size_a[axis], size_b[axis]) == BATCH_SIZES and begin[axis] == 0
                   for axis in np.flatnonzero(size_a != size_b))

    def options(self, x: Any, y: Any, patched: dict[int, Any]) -> bool:
        """Options that differ between the batch sizes, rewritten where audited (a RESHAPE's new
        shape, as its constant); whether they were."""
        if self.code(self.a, x) != _RESHAPE or type(x.builtinOptions) is not type(y.builtinOptions):
            return False
        if not _same_options(x.builtinOptions, y.builtinOptions, skip=("newShape",)):
            return False
        if id(x) in patched:
            x.builtinOptions.newShape = [int(d) for d in patched[id(x)]]
            return True
        inferred = _inferred_shape(np.asarray(x.builtinOptions.newShape, np.int32),
                                   np.asarray(y.builtinOptions.newShape, np.int32))
        if inferred is None:
            return False
        x.builtinOptions.newShape = [int(d) for d in inferred]
        return True


def _inferred_shape(a: np.ndarray, b: np.ndarray) -> Optional[np.ndarray]:
    """A RESHAPE's new shape at the two batch sizes with -1 where it holds k times the batch --
    when that is its only size that differs, and no size is inferred already -- else None."""
    first, second = BATCH_SIZES
    if a.shape != b.shape or a.ndim != 1 or (a < 0).any() or (b < 0).any():
        return None
    differ = np.flatnonzero(a != b)
    if len(differ) != 1:
        return None
    da, db = int(a[differ[0]]), int(b[differ[0]])
    if da % first or db % second or da // first != db // second:
        return None
    out = a.astype(np.int32).copy()
    out[differ[0]] = -1
    return out


def _mask(bits: np.ndarray) -> int:
    return sum(1 << int(k) for k in np.flatnonzero(bits))


def _same_options(x: Any, y: Any, skip: Sequence[str] = ()) -> bool:
    if type(x) is not type(y):
        return False
    if x is None:
        return True
    fx, fy = vars(x), vars(y)
    for key in fx.keys() | fy.keys():
        if key in skip:
            continue
        u, v = fx.get(key), fy.get(key)
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray) or isinstance(u, list) or isinstance(v, list):
            if u is None or v is None or not np.array_equal(np.asarray(u), np.asarray(v)):
                if not (u is None and v is None):
                    return False
        elif u != v:
            return False
    return True


def other_batch(graph: Graph, inputs: Sequence[np.ndarray], extra: int = 2, seed: int = 0
                ) -> tuple[int, list[np.ndarray]]:
    """Inputs of ``graph`` (arrays in PyTorch's layout, those of the example) at another batch
    size: the example's batch + ``extra``, rows repeated from the example's, float ones moved
    by about 1% of their scale (rows that differ from each other); returns (size, inputs).
    What the file of a run-time batch is checked on besides the example."""
    symbol = batch_symbol(graph)
    rng = np.random.default_rng(seed)
    size, out = None, []
    for v, x in zip(graph.inputs, inputs):
        x = np.asarray(x)
        axis = v.type.perm[0] if v.type.rank else None
        if axis is None or v.type.shape[axis] != symbol or not x.shape[axis]:
            out.append(x)
            continue
        size = x.shape[axis] + extra if size is None else size
        reps = -(-size // max(x.shape[axis], 1))
        y = np.take(np.concatenate([x] * reps, axis=axis), np.arange(size), axis=axis)
        if y.dtype.kind == "f" and y.size:
            scale = float(np.max(np.abs(y))) or 1.0
            y = (y + rng.standard_normal(y.shape) * 0.01 * scale).astype(y.dtype)
        out.append(y)
    return (size or 0), out
