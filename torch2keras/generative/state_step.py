"""A causal LM step that keeps its key/value cache as state: what a ``cache="state"`` file's
prefill and decode signatures compute.

``StateCacheStep(step)`` wraps a ``CausalLMStep`` and holds its cache as buffers
(``kv_cache_k_0``, ``kv_cache_v_0``, ... of ``step.layout``'s shape, zeros); ``forward(tokens
[1, T], input_pos [1], last_index=None)`` runs ``step`` over them, copies the updated cache
into them and returns ``{"logits": ...}``. Buffers ``forward()`` mutates are state
(docs/state_and_control_flow.md): in the ``.tflite`` file each is a resource variable named
after its buffer, which every signature of the file reads and writes (one interpreter, one
cache), so the caller feeds tokens and positions only.

A new sequence needs no clearing: the mask admits only the slots written since position 0 of
the current sequence (each slot is written before anything attends to it), so entries an
earlier sequence left behind are never read.
"""

from __future__ import annotations

from typing import Optional

import torch

from .step import CausalLMStep

__all__ = ["CACHE_KINDS", "StateCacheStep"]

CACHE_KINDS = ("arguments", "state")  # export_tflite(cache=...): signature inputs and outputs, or variables


class StateCacheStep(torch.nn.Module):
    """``step`` over a cache it holds as state (see the module docstring)."""

    encoder_decoder = False

    def __init__(self, step: CausalLMStep) -> None:
        super().__init__()
        if step.encoder_decoder:
            raise TypeError(f"{type(step.model).__name__} is an encoder-decoder model: cache=\"state\" is written for "
                            f"causal LMs (an encoder-decoder file takes its caches as arguments: cache=\"arguments\")")
        self.step = step
        self.layout = step.layout
        for name, empty in step.layout.zeros().items():
            self.register_buffer(f"kv_cache_{name}", empty)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor, last_index: Optional[torch.Tensor] = None
                ) -> dict:
        names = [f"kv_cache_{name}" for name in self.layout.names()]
        cache = {name[len("kv_cache_"):]: getattr(self, name) for name in names}
        out = self.step(tokens, input_pos, cache, last_index)
        for name in names:
            getattr(self, name).copy_(out.pop(name))
        return out

    def example_inputs(self, length: int, start: int = 0, seed: int = 0, last_index: Optional[int] = None
                       ) -> tuple:
        """``step.example_inputs`` without the cache (the buffers hold it: an empty one)."""
        tokens, position, _cache, *rest = self.step.example_inputs(length, start, seed, last_index)
        return (tokens, position, *rest)
