"""The static key/value cache layout of a Hugging Face causal LM: layers, heads, head size."""

from __future__ import annotations

import attrs
import torch

__all__ = ["CacheLayout", "cache_layout"]


@attrs.frozen
class CacheLayout:
    """Per layer, keys and values of shape ``[1, kv_heads, max_context, head_dim]``."""

    num_layers: int
    kv_heads: int
    head_dim: int
    max_context: int
    dtype: torch.dtype = torch.float32

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (1, self.kv_heads, self.max_context, self.head_dim)

    def names(self) -> list[str]:
        """The cache tensors' names, in signature order: ``k_0, v_0, k_1, v_1, ...``."""
        return [f"{kind}_{i}" for i in range(self.num_layers) for kind in ("k", "v")]

    def zeros(self) -> dict[str, torch.Tensor]:
        """An empty cache (what generation starts from)."""
        return {name: torch.zeros(self.shape, dtype=self.dtype) for name in self.names()}

    def random(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A cache of standard normal draws from ``generator`` (example inputs)."""
        return {name: torch.randn(self.shape, generator=generator).to(self.dtype) for name in self.names()}


def cache_layout(model: torch.nn.Module, max_context: int) -> CacheLayout:
    """The cache layout of ``model`` (a Hugging Face ``...ForCausalLM``) for ``max_context`` tokens."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_context > limit:
        raise ValueError(f"max_context={max_context} exceeds the model's max_position_embeddings={limit}")
    _check_longrope(config, max_context)
    dtype = next(model.parameters()).dtype
    return CacheLayout(int(config.num_hidden_layers), int(kv_heads), int(head_dim), int(max_context), dtype)


def _rope_parameters(config) -> list[dict]:
    """The model's rope parameter sets: one, or one per layer type (Gemma3's local and global)."""
    rope = getattr(config, "rope_parameters", None) or {}
    if all(isinstance(v, dict) for v in rope.values()) and rope:
        return list(rope.values())
    return [rope]


def _check_longrope(config, max_context: int) -> None:
    """Longrope switches every position's rotary factors once a sequence passes
    ``original_max_position_embeddings``; ``model.generate`` then recomputes the whole cache
    (Phi-3's ``prepare_inputs_for_generation``), which a static cache cannot."""
    for rope in _rope_parameters(config):
        limit = rope.get("original_max_position_embeddings") or getattr(config, "original_max_position_embeddings", None)
        if rope.get("rope_type") == "longrope" and limit and max_context > limit:
            raise ValueError(f"longrope switches to its long factors beyond original_max_position_embeddings={limit}, "
                             f"recomputing the whole cache, which a static cache cannot: use max_context <= {limit}")
