"""The lowering registry: one small function per torch op, turning a captured call into IR nodes.

A lowering is ``fn(ctx, *args, **kwargs)`` called with the fx call's arguments, where tensors
are already IR ``Value``s; it returns a Value (or a tuple of them for multi-result ops) built
with ``ctx.emit``. Register with ``@lowering(aten.op.overload, ..., emits=(...))``:

  emits       the IR ops the lowering may emit, itself or through the helpers it calls
              (``fn.emits``). ``ctx.emit`` refuses any other op, and ``registries.problems()``
              checks the lowering's source against it. The ops of the context's own helpers
              (``AMBIENT_OPS``: constants, casts, reshapes, run-time sizes) need no declaring.
  keep_whole  capture keeps the targets whole instead of decomposing them (``KEEP_WHOLE``):
              they map onto better Keras layers than their decompositions do.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..ir import Graph, LoweringError, Node, SourceLoc, TensorType, Value
from ..ir.ops import SCHEMAS
from ..ir.symbolic import unresolved_dims
from ..ir.types import dtype_to_numpy
from .symbolic import SymbolicSizes, dim_name

__all__ = ["AMBIENT_OPS", "KEEP_WHOLE", "LOWERINGS", "LoweringContext", "lowering", "torch_dtype", "tensor_type"]

LOWERINGS: dict[Any, Callable] = {}
KEEP_WHOLE: list = []  # torch ops capture keeps whole (registered with keep_whole=True)

# what the context's helpers emit (const, cast/as_value, reshape, and the run-time sizes of
# ``SymbolicSizes``): allowed in every lowering without being declared
AMBIENT_OPS = frozenset({"constant", "cast", "reshape", "dynamic_reshape", "concat", "dim", "add", "mul",
                         "floor_divide", "neg", "remainder", "maximum", "minimum"})

_DTYPES = {
    torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32", torch.float64: "f64",
    torch.int8: "i8", torch.uint8: "u8", torch.int16: "i16", torch.int32: "i32", torch.int64: "i64",
    torch.bool: "bool",
}


def torch_dtype(dtype: torch.dtype) -> str:
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise LoweringError(f"dtype {dtype} has no IR equivalent") from None


def tensor_type(t: torch.Tensor) -> TensorType:
    """The IR type of a (fake) tensor; a symbolic dim becomes its expression's text (see
    ``symbolic.dim_name``)."""
    shape = [d if isinstance(d, int) else dim_name(d) for d in t.shape]
    return TensorType(shape, torch_dtype(t.dtype))


def lowering(*targets: Any, emits: Optional[Sequence[str]] = None, keep_whole: bool = False) -> Callable:
    """Register the decorated function as the lowering of each of ``targets`` (see the module
    docstring for ``emits`` and ``keep_whole``). A function registered twice (stacked decorators)
    must declare the same ``emits``."""
    declared = None if emits is None else tuple(emits)
    unknown = [op for op in declared or () if op not in SCHEMAS]
    if unknown:
        raise ValueError(f"lowering of {[str(t) for t in targets]}: emits names unknown IR ops {unknown}")

    def register(fn: Callable) -> Callable:
        previous = getattr(fn, "emits", None)
        if declared is not None:
            if previous is not None and previous != declared:
                raise ValueError(f"{fn.__name__} declares emits={previous} and emits={declared}")
            fn.emits = declared
        for target in targets:
            if target in LOWERINGS:
                raise ValueError(f"{target} already has a lowering ({LOWERINGS[target].__name__})")
            LOWERINGS[target] = fn
            if keep_whole:
                KEEP_WHOLE.append(target)
        return fn

    return register


def _qualified(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


class LoweringContext:
    """What a lowering sees: the graph under construction and the call being lowered."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.loc: Optional[SourceLoc] = None
        self.name = "v"
        self.meta_val: Any = None  # the fx node's example result (FakeTensor or tuple)
        self.lowering: Optional[Callable] = None  # the registered lowering being run
        self.sizes = SymbolicSizes(self)  # run-time values of symbolic sizes

    # -- what the call returns, per torch's own tracing
    @property
    def out_type(self) -> TensorType:
        val = self.meta_val[0] if isinstance(self.meta_val, (tuple, list)) else self.meta_val
        return tensor_type(val)

    @property
    def out_dtype(self) -> str:
        return self.out_type.dtype

    def emit(self, op: str, inputs: Sequence[Value], types=None, **attrs) -> Value:
        """A node ``op`` of the running lowering (which must declare ``op``): its result, or the
        tuple of its results."""
        return _results(self.emit_node(op, inputs, types=types, **attrs))

    def emit_node(self, op: str, inputs: Sequence[Value], types=None, **attrs) -> Node:
        """``emit``, returning the node itself."""
        declared = getattr(self.lowering, "emits", None)
        if declared is not None and op not in declared:
            where = f" ({self.loc})" if self.loc else ""
            raise LoweringError(f"lowering {_qualified(self.lowering)} emitted IR op {op!r}, which it does not declare "
                                f"(emits={declared}): add it to the lowering's emits{where}")
        return self.graph.add_node(op, list(inputs), attrs, types=types, loc=self.loc, name=self.name)

    def emit_ambient(self, op: str, inputs: Sequence[Value], **attrs) -> Value:
        """``emit`` for the context's own helpers: ``op`` is one of ``AMBIENT_OPS``, which no
        lowering needs to declare."""
        if op not in AMBIENT_OPS:
            raise ValueError(f"{op!r} is not an ambient op ({sorted(AMBIENT_OPS)})")
        return _results(self.graph.add_node(op, list(inputs), attrs, loc=self.loc, name=self.name))

    def const(self, value: Any, dtype: Optional[str] = None, name: Optional[str] = None) -> Value:
        array = np.asarray(value)
        if dtype is not None:
            array = array.astype(dtype_to_numpy(dtype))
        return self.graph.add_constant(array, name=name or f"{self.name}_const", loc=self.loc, dtype=dtype)

    def as_value(self, x: Any, dtype: str) -> Value:
        """``x`` as an IR value of ``dtype``: python scalars become constants, tensors are cast."""
        if isinstance(x, Value):
            return self.cast(x, dtype)
        return self.const(x, dtype)

    def cast(self, v: Value, dtype: str) -> Value:
        if v.type.dtype == dtype:
            return v
        if v.producer.op == "constant":
            return self.const(v.producer.value.astype(dtype_to_numpy(dtype)), dtype)
        return self.emit_ambient("cast", [v], dtype=dtype)

    def reshape(self, v: Value, shape: Sequence) -> Value:
        """``v`` reshaped to ``shape`` (ints and symbolic dims). A ``reshape`` whose symbolic
        dims the backend can read off the input (all but at most one); else a
        ``dynamic_reshape`` fed with the sizes computed at run time."""
        if tuple(v.type.shape) == tuple(shape):
            return v
        if len(unresolved_dims(v.type.shape, shape)) > 1:
            return self.emit_ambient("dynamic_reshape", [v, self.sizes.vector(shape)], shape=list(shape))
        return self.emit_ambient("reshape", [v], shape=list(shape))

    def fail(self, message: str) -> LoweringError:
        where = f" ({self.loc})" if self.loc else ""
        return LoweringError(f"{self.loc.op if self.loc else ''}: {message}{where}")


def _results(node: Node) -> Any:
    return node.outputs[0] if len(node.outputs) == 1 else tuple(node.outputs)
