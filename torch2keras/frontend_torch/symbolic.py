"""Symbolic sizes at lowering: torch's SymInt expressions as IR types and as run-time values.

A symbolic dim of a captured tensor is a sympy expression over torch's size symbols (``s0``,
...). In IR types it is the expression's text (renamed to the user's dim names after
lowering). Where a lowering needs the size as a value (a reshape target, slice bounds, a tensor
factory's shape), ``SymbolicSizes`` builds it from the graph inputs' run-time shapes: each
symbol is one axis of an input (a ``dim`` op), and the expression becomes integer ops on i32
scalars. Static sizes stay Python ints throughout.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import sympy
import torch

from ..ir import LoweringError, Value

__all__ = ["INT32_MAX", "SymbolicSizes", "dim_name", "dim_of", "dims_product", "is_symint", "expression"]

INT32_MAX = 2**31 - 1  # "to the end" as an i32 slice bound

# dim text -> its sympy expression, for every symbolic dim a type was made from
_EXPRESSIONS: dict[str, sympy.Expr] = {}


def is_symint(x: Any) -> bool:
    return isinstance(x, torch.SymInt)


def dim_name(d: "torch.SymInt") -> Union[int, str]:
    """The IR dim of a torch size: an int when it is a constant, else its expression's text."""
    expr = d.node.expr
    if expr.is_number:
        return int(expr)
    text = str(expr)
    _EXPRESSIONS[text] = expr
    return text


def dim_of(expr: sympy.Expr) -> Union[int, str]:
    """The IR dim of a size expression: an int when it is a constant, else its text (remembered,
    so that ``SymbolicSizes`` can compute it at run time)."""
    expr = sympy.sympify(expr)
    if expr.is_number:
        return int(expr)
    text = str(expr)
    _EXPRESSIONS[text] = expr
    return text


def dims_product(dims: Sequence[Any]) -> Union[int, str]:
    """The product of sizes (ints, SymInts or IR dim texts) as an IR dim."""
    out: sympy.Expr = sympy.Integer(1)
    for d in dims:
        out = out * expression(d)
    return dim_of(out)


def expression(d: Any) -> sympy.Expr:
    """The sympy expression behind an int, a SymInt or an IR dim text."""
    if isinstance(d, bool):
        return sympy.Integer(int(d))
    if isinstance(d, int):
        return sympy.Integer(d)
    if is_symint(d):
        return d.node.expr
    if isinstance(d, str) and d in _EXPRESSIONS:
        return _EXPRESSIONS[d]
    if isinstance(d, sympy.Expr):
        return d
    raise LoweringError(f"no expression is known for the size {d!r}")


class SymbolicSizes:
    """Run-time values of symbolic sizes, built on demand in the graph under construction."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.symbols: dict[str, tuple[Value, int]] = {}  # torch symbol -> (graph input, axis)
        self._cache: dict[str, Value] = {}

    def register_input(self, value: Value, fake: torch.Tensor) -> None:
        """Record which axes of a graph input hold a size symbol of their own."""
        for axis, d in enumerate(fake.shape):
            if is_symint(d) and isinstance(d.node.expr, sympy.Symbol):
                self.symbols.setdefault(str(d.node.expr), (value, axis))

    # ------------------------------------------------------------------ values

    def value(self, d: Any) -> Union[int, Value]:
        """An int for a static size, else an i32 scalar value computing it at run time."""
        if isinstance(d, Value):
            return d
        expr = expression(d)
        if expr.is_number:
            return int(expr)
        return self._lower(expr)

    def scalar(self, d: Any) -> Value:
        """``value(d)`` as an IR value (constants for static sizes)."""
        v = self.value(d)
        if isinstance(v, Value):
            return v if v.type.dtype == "i32" else self.ctx.cast(v, "i32")
        return self.ctx.const(np.int32(v), "i32")

    def vector(self, dims: Sequence[Any]) -> Value:
        """A 1-D i32 value holding ``dims`` (ints, SymInts, dim texts or i32 scalar values)."""
        ctx = self.ctx
        parts: list = []
        static: list[int] = []
        for d in dims:
            v = self.value(d)
            if isinstance(v, Value):
                if static:
                    parts.append(ctx.const(np.asarray(static, np.int32), "i32"))
                    static = []
                parts.append(ctx.reshape(self.scalar(v), [1]))
            else:
                static.append(int(v))
        if static:
            parts.append(ctx.const(np.asarray(static, np.int32), "i32"))
        if len(parts) == 1:
            return parts[0]
        return ctx.emit_ambient("concat", parts, axis=0)

    # ------------------------------------------------------------------ sympy -> IR

    def _lower(self, expr: sympy.Expr) -> Value:
        key = str(expr)
        if key not in self._cache:
            self._cache[key] = self._build(expr)
        return self._cache[key]

    def _operand(self, expr: sympy.Expr) -> Value:
        if expr.is_number:
            if not expr.is_integer:
                raise LoweringError(f"the size expression {expr} is not an integer")
            return self.ctx.const(np.int32(int(expr)), "i32")
        return self._lower(expr)

    def _binary(self, op: str, args) -> Value:
        out = self._operand(args[0])
        for a in args[1:]:
            out = self.ctx.emit_ambient(op, [out, self._operand(a)])
        return out

    def _build(self, expr: sympy.Expr) -> Value:
        from torch.utils._sympy import functions as F

        ctx = self.ctx
        if isinstance(expr, sympy.Symbol):
            name = str(expr)
            if name not in self.symbols:
                raise LoweringError(f"the size symbol {name} is not an axis of any input: it cannot be read at "
                                    f"run time ({ctx.loc})")
            value, axis = self.symbols[name]  # (no source line: one read of the input serves every use)
            return ctx.graph.add_node("dim", [value], {"axis": axis}, name=f"{value.name_hint}_dim{axis}").output
        if isinstance(expr, sympy.Add):
            return self._binary("add", list(expr.args))
        if isinstance(expr, sympy.Mul):
            return self._binary("mul", list(expr.args))
        if isinstance(expr, (F.FloorDiv, F.CleanDiv)):
            return self._binary("floor_divide", list(expr.args))
        if isinstance(expr, F.CeilDiv):  # -((-a) // b)
            a, b = expr.args
            return ctx.emit_ambient("neg", [self._binary("floor_divide", [-a, b])])
        if isinstance(expr, (F.PythonMod, F.Mod, sympy.Mod)):
            return self._binary("remainder", list(expr.args))
        if isinstance(expr, F.ModularIndexing):  # (a // b) % c
            a, b, c = expr.args
            return ctx.emit_ambient("remainder", [self._binary("floor_divide", [a, b]), self._operand(c)])
        if isinstance(expr, F.Max) or isinstance(expr, sympy.Max):
            return self._binary("maximum", list(expr.args))
        if isinstance(expr, F.Min) or isinstance(expr, sympy.Min):
            return self._binary("minimum", list(expr.args))
        if isinstance(expr, (sympy.Pow, F.PowByNatural)) and expr.args[1].is_Integer and int(expr.args[1]) > 0:
            return self._binary("mul", [expr.args[0]] * int(expr.args[1]))
        raise LoweringError(f"the size expression {expr} ({type(expr).__name__}) has no run-time form yet "
                            f"({ctx.loc})")
