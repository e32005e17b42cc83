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


def cache_layout(model: torch.nn.Module, max_context: int) -> CacheLayout:
    """The cache layout of ``model`` (a Hugging Face ``...ForCausalLM``) for ``max_context`` tokens."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_context > limit:
        raise ValueError(f"max_context={max_context} exceeds the model's max_position_embeddings={limit}")
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True) \
            and config.sliding_window < max_context:
        raise ValueError(f"the model attends within a sliding window of {config.sliding_window} tokens: "
                         f"max_context={max_context} must not exceed it (sliding-window caches are not supported)")
    dtype = next(model.parameters()).dtype
    return CacheLayout(int(config.num_hidden_layers), int(kv_heads), int(head_dim), int(max_context), dtype)
