"""The lowering registry: one small function per torch op, turning a captured call into IR nodes.

A lowering is ``fn(ctx, *args, **kwargs)`` called with the fx call's arguments, where tensors
are already IR ``Value``s; it returns a Value (or a tuple of them for multi-result ops) built
with ``ctx.emit``. Register with ``@lowering(aten.op.overload, ...)``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..ir import Graph, LoweringError, SourceLoc, TensorType, Value

__all__ = ["LOWERINGS", "LoweringContext", "lowering", "torch_dtype", "tensor_type"]

LOWERINGS: dict[Any, Callable] = {}

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
    from .symbolic import dim_name

    shape = [d if isinstance(d, int) else dim_name(d) for d in t.shape]
    return TensorType(shape, torch_dtype(t.dtype))


def lowering(*targets) -> Callable:
    """Register the decorated function as the lowering of each of ``targets``."""

    def register(fn: Callable) -> Callable:
        for target in targets:
            if target in LOWERINGS:
                raise ValueError(f"{target} already has a lowering ({LOWERINGS[target].__name__})")
            LOWERINGS[target] = fn
        return fn

    return register


class LoweringContext:
    """What a lowering sees: the graph under construction and the call being lowered."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.loc: Optional[SourceLoc] = None
        self.name = "v"
        self.meta_val: Any = None  # the fx node's example result (FakeTensor or tuple)
        from .symbolic import SymbolicSizes

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
        node = self.graph.add_node(op, list(inputs), attrs, types=types, loc=self.loc, name=self.name)
        return node.outputs[0] if len(node.outputs) == 1 else tuple(node.outputs)

    def const(self, value: Any, dtype: Optional[str] = None, name: Optional[str] = None) -> Value:
        from ..ir.types import dtype_to_numpy

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
            from ..ir.types import dtype_to_numpy

            return self.const(v.producer.value.astype(dtype_to_numpy(dtype)), dtype)
        return self.emit("cast", [v], dtype=dtype)

    def reshape(self, v: Value, shape: Sequence) -> Value:
        """``v`` reshaped to ``shape`` (ints and symbolic dims). A ``reshape`` whose symbolic
        dims the backend can read off the input (all but at most one); else a
        ``dynamic_reshape`` fed with the sizes computed at run time."""
        if tuple(v.type.shape) == tuple(shape):
            return v
        from ..ir.symbolic import unresolved_dims

        if len(unresolved_dims(v.type.shape, shape)) > 1:
            return self.emit("dynamic_reshape", [v, self.sizes.vector(shape)], shape=list(shape))
        return self.emit("reshape", [v], shape=list(shape))

    def fail(self, message: str) -> LoweringError:
        where = f" ({self.loc})" if self.loc else ""
        return LoweringError(f"{self.loc.op if self.loc else ''}: {message}{where}")
