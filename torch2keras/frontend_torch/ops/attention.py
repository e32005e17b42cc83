"""Attention: ``scaled_dot_product_attention`` kept whole as one IR ``sdpa`` node."""

from __future__ import annotations

import numpy as np

from ..registry import lowering
from .common import aten


@lowering(aten.scaled_dot_product_attention.default, keep_whole=True, emits=("where", "sdpa"))
def lower_sdpa(ctx, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False):
    if enable_gqa and q.type.shape[-3] != k.type.shape[-3]:
        raise ctx.fail("grouped-query attention (enable_gqa with fewer key heads) is not supported yet")
    inputs = [q, k, v]
    if attn_mask is not None:
        if attn_mask.type.dtype == "bool":  # True = attend: turn into an additive mask
            zero = ctx.const(0.0, q.type.dtype)
            neg = ctx.const(-np.inf, q.type.dtype)
            attn_mask = ctx.emit("where", [attn_mask, zero, neg])
        inputs.append(ctx.cast(attn_mask, q.type.dtype))
    return ctx.emit("sdpa", inputs, scale=None if scale is None else float(scale), is_causal=bool(is_causal))
