"""Size arithmetic of dynamic shapes: ``x.shape[i]``, ``x.size()``, ``numel`` and the Python
operators torch.export records on them (``h // 2``, ``b * c``, ...).

Each such call has a SymInt result whose expression over the inputs' size symbols torch knows;
it lowers to that size: a Python int where it is static, else an i32 scalar computed at run
time from the inputs' shapes (``SymbolicSizes``). Comparisons (only guards and asserts read
them) become boolean scalars.
"""

from __future__ import annotations

import operator

import torch

from ..registry import LoweringContext, lowering
from ..symbolic import is_symint
from ._util import aten

_SIZE_OPS = [
    aten.sym_size.int, aten.sym_numel.default,
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod, operator.neg, operator.pow,
    torch.sym_max, torch.sym_min, torch.sym_int,
]
_COMPARISONS = {operator.eq: "eq", operator.ne: "ne", operator.lt: "lt", operator.le: "le", operator.gt: "gt",
                operator.ge: "ge"}


@lowering(*_SIZE_OPS)
def lower_size(ctx: LoweringContext, *args, **kwargs):
    val = ctx.meta_val
    if isinstance(val, bool) or not (isinstance(val, int) or is_symint(val)):
        raise ctx.fail(f"a size computation with a {type(val).__name__} result (only integer sizes are supported)")
    return ctx.sizes.value(val)


@lowering(*_COMPARISONS)
def lower_size_comparison(ctx: LoweringContext, a, b):
    val = ctx.meta_val
    if isinstance(val, bool):
        return val
    op = _COMPARISONS[next(fn for fn in _COMPARISONS if str(fn) == ctx.loc.op)]
    return ctx.emit(op, [ctx.sizes.scalar(a), ctx.sizes.scalar(b)])


@lowering(torch.sym_not)
def lower_size_not(ctx: LoweringContext, a):
    val = ctx.meta_val
    if isinstance(val, bool):
        return val
    return ctx.emit("logical_not", [a])
