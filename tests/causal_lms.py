"""Tiny Hugging Face causal language models with seeded random weights (no downloads).

``transformers`` imports torchvision, whose compiled ops may not load against the project's CPU
torch: ``import_torchvision`` (tests/compat.py) runs first.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from compat import import_torchvision

import_torchvision()
transformers = pytest.importorskip("transformers")

VOCAB = 128


def _seeded(build: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build().eval()


def tiny_llama(seed: int = 0) -> torch.nn.Module:
    """Llama with grouped-query attention (2 key/value heads for 4 query heads) and rope."""
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return _seeded(lambda: transformers.LlamaForCausalLM(config), seed)


def tiny_qwen2(seed: int = 0) -> torch.nn.Module:
    config = transformers.Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return _seeded(lambda: transformers.Qwen2ForCausalLM(config), seed)


def tiny_gpt2(seed: int = 0) -> torch.nn.Module:
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                     bos_token_id=0, eos_token_id=0)
    return _seeded(lambda: transformers.GPT2LMHeadModel(config), seed)


BUILDERS = {"llama": tiny_llama, "qwen2": tiny_qwen2, "gpt2": tiny_gpt2}


class Logits(torch.nn.Module):
    """``model(input_ids).logits`` without a cache: the plain forward of a causal LM."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits
