"""Tensor factories: with static shapes they all become constants."""

from __future__ import annotations

import numpy as np
import torch

from ...ir.types import dtype_to_numpy
from ..registry import LoweringContext, lowering
from ._util import aten


def _fill(ctx: LoweringContext, value) -> object:
    t = ctx.out_type
    return ctx.const(np.full(t.shape, value, dtype=dtype_to_numpy(t.dtype)), t.dtype)


@lowering(aten.zeros.default, aten.zeros_like.default, aten.new_zeros.default, aten.empty.memory_format,
          aten.empty_like.default, aten.new_empty.default, aten.empty_permuted.default, aten.empty_strided.default,
          aten.new_empty_strided.default)
def lower_zeros(ctx, *args, **kwargs):
    return _fill(ctx, 0)


@lowering(aten.ones.default, aten.ones_like.default, aten.new_ones.default)
def lower_ones(ctx, *args, **kwargs):
    return _fill(ctx, 1)


@lowering(aten.full.default, aten.new_full.default)
def lower_full(ctx, *args, **kwargs):
    value = args[-1] if "new_full" not in ctx.loc.op else args[2]
    if ctx.loc.op.startswith("aten.full"):
        value = args[1]
    return _fill(ctx, value)


@lowering(aten.full_like.default)
def lower_full_like(ctx, x, fill_value, **kwargs):
    return _fill(ctx, fill_value)


@lowering(aten.scalar_tensor.default)
def lower_scalar_tensor(ctx, value, **kwargs):
    return _fill(ctx, value)


@lowering(aten.arange.default, aten.arange.start, aten.arange.start_step)
def lower_arange(ctx, *args, **kwargs):
    t = ctx.out_type
    kwargs.pop("device", None)
    kwargs.pop("pin_memory", None)
    kwargs.pop("layout", None)
    values = torch.arange(*args, **kwargs).numpy().astype(dtype_to_numpy(t.dtype))
    return ctx.const(values, t.dtype)
