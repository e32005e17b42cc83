"""Grouped-query attention (passes/group_query_attention.py): attention over repeated keys and
values (Hugging Face's ``repeat_kv``) runs over the key/value heads themselves; outputs vs
PyTorch, the repeat's ops counted in the IR and the TFLite file."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.tflite.file import op_counts

HEADS, KV_HEADS, LENGTH, DIM = 6, 2, 24, 8


def _repeat_kv(x: torch.Tensor, rep: int) -> torch.Tensor:
    b, g, length, d = x.shape
    return x[:, :, None, :, :].expand(b, g, rep, length, d).reshape(b, g * rep, length, d)


class _Attention(nn.Module):
    def __init__(self, per_head_mask: bool = False, causal: bool = False) -> None:
        super().__init__()
        self.per_head_mask, self.causal = per_head_mask, causal

    def forward(self, q, k, v, mask):
        rep = q.shape[1] // k.shape[1]
        mask = mask.expand(1, q.shape[1], -1, -1) if self.per_head_mask else mask
        if self.causal:
            return nn.functional.scaled_dot_product_attention(q, _repeat_kv(k, rep), _repeat_kv(v, rep), is_causal=True)
        return nn.functional.scaled_dot_product_attention(q, _repeat_kv(k, rep), _repeat_kv(v, rep), attn_mask=mask)


def _inputs(tokens: int):
    g = torch.Generator().manual_seed(tokens)
    mask = torch.where(torch.rand(1, 1, tokens, LENGTH, generator=g) < 0.3, float("-inf"), 0.0)
    mask[..., 0] = 0.0  # every row attends somewhere
    return (torch.randn(1, HEADS, tokens, DIM, generator=g), torch.randn(1, KV_HEADS, LENGTH, DIM, generator=g),
            torch.randn(1, KV_HEADS, LENGTH, DIM, generator=g), mask)


def _ops(result) -> dict[str, int]:
    return result.ir.op_counts()


@pytest.mark.parametrize("tokens", [1, 4])
def test_repeated_keys_and_values_are_not_materialised(tokens, tmp_path):
    """One token (a decode step) or several (their mask rows repeated per query head)."""
    result = torch2keras.compile(_Attention(), _inputs(tokens))
    assert result.report.ok and result.report.max_abs_error < 1e-5
    assert {r.name: r for r in result.report.passes}["group_query_attention"].changed
    sdpa = result.ir.nodes_by_op("sdpa")
    assert len(sdpa) == 1 and sdpa[0].inputs[1].type.shape[1] == KV_HEADS
    assert _ops(result).get("expand", 0) == (0 if tokens == 1 else 1)  # (the mask's rows, not the keys)
    path = str(tmp_path / "gqa.tflite")
    result.export_tflite(path, backend="direct")
    assert op_counts(path).get("BROADCAST_TO", 0) == (0 if tokens == 1 else 1)  # (the mask)
    assert result.report.tflite["max_abs_error"] < 1e-5


@pytest.mark.parametrize("kind", ["per_head_mask", "causal"])
def test_a_per_head_mask_or_a_causal_attention_keeps_the_repeat(kind):
    result = torch2keras.compile(_Attention(**{kind: True}), _inputs(4))
    assert result.report.ok and result.report.max_abs_error < 1e-5
    sdpa = result.ir.nodes_by_op("sdpa")
    assert not {r.name: r for r in result.report.passes}["group_query_attention"].changed
    assert sdpa[0].inputs[1].type.shape[1] == HEADS
