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
    """The model built under ``seed``; parameters initialised to zeros (biases, Gemma's norm
    offsets) re-drawn, so that each of them reaches the logits."""
    torch.manual_seed(seed)
    model = build().eval()
    model.generation_config.eos_token_id = None  # greedy generation runs its full length
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.1)
    return model


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


SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=8, max_position_embeddings=256, initializer_range=0.4)
# initializer_range: weights large enough for logits of a few units (soft-caps bind, greedy tokens vary)
PHI3_ORIGINAL_CONTEXT = 64  # longrope's switch to its long factors
SLIDING_WINDOW = 8  # shorter than a 16-token prompt: the window decides what a sliding layer sees


def tiny_mistral(seed: int = 0) -> torch.nn.Module:
    """Mistral: every layer attends within a sliding window."""
    config = transformers.MistralConfig(**SMALL, sliding_window=SLIDING_WINDOW)
    return _seeded(lambda: transformers.MistralForCausalLM(config), seed)


def tiny_smollm(seed: int = 0) -> torch.nn.Module:
    """SmolLM-135M's shape, tiny: a Llama with tied embeddings, 9 query heads over 3 key/value heads."""
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=36, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=256,
                                      tie_word_embeddings=True, initializer_range=0.4)
    return _seeded(lambda: transformers.LlamaForCausalLM(config), seed)


def tiny_llama3(seed: int = 0) -> torch.nn.Module:
    """Llama 3.x rope scaling (``rope_type: llama3``: low frequencies stretched, high ones kept)."""
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    config = transformers.LlamaConfig(**SMALL, rope_parameters=rope)
    return _seeded(lambda: transformers.LlamaForCausalLM(config), seed)


def tiny_qwen3(seed: int = 0) -> torch.nn.Module:
    """Qwen3: RMS norms on the queries and keys of each head."""
    config = transformers.Qwen3Config(**SMALL)
    return _seeded(lambda: transformers.Qwen3ForCausalLM(config), seed)


def _gemma(build: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    """A Gemma model whose (tied, sqrt(hidden)-scaled) embedding is drawn small (std 0.04): at the
    initializer's std the token's own embedding outweighs the blocks and greedy decoding repeats
    one token; so the blocks decide, and the generated tokens vary."""
    model = _seeded(build, seed)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(0.1)
    return model


def tiny_gemma(seed: int = 0) -> torch.nn.Module:
    """Gemma: tied embeddings scaled by sqrt(hidden), GeGLU (gelu-tanh), norms of weight 1 + w."""
    config = transformers.GemmaConfig(**SMALL)
    return _gemma(lambda: transformers.GemmaForCausalLM(config), seed)


def tiny_gemma2(seed: int = 0) -> torch.nn.Module:
    """Gemma2: sliding-window and global layers alternating, attention and final logit soft-capping
    (caps low enough to bind), norms before and after each block."""
    config = transformers.Gemma2Config(**SMALL, sliding_window=SLIDING_WINDOW, query_pre_attn_scalar=8,
                                       attn_logit_softcapping=2.0, final_logit_softcapping=1.0)
    return _gemma(lambda: transformers.Gemma2ForCausalLM(config), seed)


def tiny_gemma3(seed: int = 0) -> torch.nn.Module:
    """Gemma3 (text): a sliding-window layer then a global one, local and global rope bases, query
    and key norms."""
    config = transformers.Gemma3TextConfig(**SMALL, sliding_window=SLIDING_WINDOW, query_pre_attn_scalar=8,
                                           layer_types=["sliding_attention", "full_attention"])
    return _gemma(lambda: transformers.Gemma3ForCausalLM(config), seed)


def tiny_phi3(seed: int = 0) -> torch.nn.Module:
    """Phi-3: fused qkv and gate/up projections, partial rotary, longrope scaling (its short
    factors: the cache holds at most ``original_max_position_embeddings`` tokens)."""
    rope = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0, 1.5], "long_factor": [2.0, 4.0],
            "factor": SMALL["max_position_embeddings"] / PHI3_ORIGINAL_CONTEXT,
            "original_max_position_embeddings": PHI3_ORIGINAL_CONTEXT}
    config = transformers.Phi3Config(**{k: v for k, v in SMALL.items() if k != "head_dim"}, partial_rotary_factor=0.5,
                                     original_max_position_embeddings=PHI3_ORIGINAL_CONTEXT, rope_parameters=rope,
                                     pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return _seeded(lambda: transformers.Phi3ForCausalLM(config), seed)


BUILDERS = {"llama": tiny_llama, "qwen2": tiny_qwen2, "gpt2": tiny_gpt2, "smollm": tiny_smollm,
            "llama3": tiny_llama3, "qwen3": tiny_qwen3, "gemma": tiny_gemma, "gemma2": tiny_gemma2,
            "gemma3": tiny_gemma3, "phi3": tiny_phi3, "mistral": tiny_mistral}


class Logits(torch.nn.Module):
    """``model(input_ids).logits`` without a cache: the plain forward of a causal LM."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits
