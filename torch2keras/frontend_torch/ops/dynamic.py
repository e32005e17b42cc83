"""Size arithmetic of dynamic shapes: ``x.shape[i]``, ``x.size()`` and the Python operators
torch.export records on them (``h // 2``, ``b * c``, ``1.0 / h``, ...), and the asserts it
leaves next to them.

Each such call has a SymInt result whose expression over the inputs' size symbols torch knows;
it lowers to that size: a Python int where it is static, else an i32 scalar computed at run
time from the inputs' shapes (``SymbolicSizes``). Comparisons (only guards and asserts read
them) become boolean scalars. (The shape-taking ops of dynamic shapes live in their own
families: ``dynamic_slice`` in ``common.py``, ``dynamic_expand`` in ``shape.py`` and
``creation.py``, ``arange`` in ``creation.py``, ``resize_scale`` in ``pool.py``.)
"""

from __future__ import annotations

import operator

import torch

from ..registry import LoweringContext, lowering
from ..symbolic import is_symint
from .common import aten, overloads

_SIZE_OPS = [
    aten.sym_size.int,
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod, operator.neg, operator.pow,
    operator.truediv, torch.sym_max, torch.sym_min, torch.sym_int, torch.sym_float, torch.sym_sqrt,
]
# float results (``1.0 / h``, ``math.sqrt(d)``): computed from the arguments in f32
_FLOAT_OPS = {operator.add: "add", operator.sub: "sub", operator.mul: "mul", operator.truediv: "div",
              operator.pow: "pow", torch.sym_max: "maximum", torch.sym_min: "minimum"}
_COMPARISONS = {operator.eq: "eq", operator.ne: "ne", operator.lt: "lt", operator.le: "le", operator.gt: "gt",
                operator.ge: "ge"}


@lowering(*_SIZE_OPS, emits=(*_FLOAT_OPS.values(), "neg", "sqrt"))
def lower_size(ctx: LoweringContext, *args, **kwargs):
    val = ctx.meta_val
    if isinstance(val, (float, torch.SymFloat)):
        return _float_result(ctx, val, args)
    if isinstance(val, bool) or not (isinstance(val, int) or is_symint(val)):
        raise ctx.fail(f"a size computation with a {type(val).__name__} result is not supported")
    return ctx.sizes.value(val)


def _float_result(ctx: LoweringContext, val, args):
    if isinstance(val, float):  # static
        return val
    target = next((fn for fn in _SIZE_OPS if str(fn) == ctx.loc.op), None)
    xs = [ctx.as_value(a, "f32") if not isinstance(a, torch.SymInt) else ctx.cast(ctx.sizes.scalar(a), "f32")
          for a in args]
    if target in (torch.sym_float,):
        return xs[0]
    if target is operator.neg:
        return ctx.emit("neg", xs)
    if target is torch.sym_sqrt:
        return ctx.emit("sqrt", xs)
    if target in _FLOAT_OPS:
        return ctx.emit(_FLOAT_OPS[target], xs)
    raise ctx.fail(f"a float size computation ({ctx.loc.op}) is not supported")


@lowering(*_COMPARISONS, emits=tuple(_COMPARISONS.values()))
def lower_size_comparison(ctx: LoweringContext, a, b):
    val = ctx.meta_val
    if isinstance(val, bool):
        return val
    op = _COMPARISONS[next(fn for fn in _COMPARISONS if str(fn) == ctx.loc.op)]
    return ctx.emit(op, [ctx.sizes.scalar(a), ctx.sizes.scalar(b)])


@lowering(torch.sym_not, emits=("logical_not",))
def lower_size_not(ctx: LoweringContext, a):
    val = ctx.meta_val
    if isinstance(val, bool):
        return val
    return ctx.emit("logical_not", [a])


@lowering(aten._assert_tensor_metadata.default, aten._assert_scalar.default,
          *overloads("_assert_async", "default", "msg"), emits=())
def lower_assert(ctx, *args, **kwargs):
    """Checks torch.export leaves in the graph; static shapes and dtypes already hold them."""
    return None
