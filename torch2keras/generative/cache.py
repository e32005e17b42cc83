"""Hugging Face ``Cache`` objects over key/value tensors given as arguments, updated out of place.

Hugging Face's ``StaticCache`` keeps its tensors as state and writes them in place; a converted
signature instead takes the caches as inputs and returns the updated ones. ``ArgumentCache``
has the same static layout (``[batch, kv_heads, max_context, head_dim]`` per layer, what the
model's ``create_causal_mask`` expects from a static cache) and holds, after a forward, the new
tensors to return. The model's own code calls it unchanged.

An encoder-decoder model's cross-attention keys and values are computed once from the encoder's
output: ``RecordingCache`` keeps what each decoder layer computes on its first call (the
``encode`` signature returns them), ``FixedCache`` hands them back to every later step (a
``decode`` signature reads them, never writes).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer, StaticLayer

__all__ = ["ArgumentCache", "ArgumentLayer", "FixedCache", "RecordingCache", "written"]


def written(cache: torch.Tensor, new: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """``cache`` [b, h, max_context, d] with ``new`` [b, h, T, d] at positions ``start ...
    start + T - 1``, out of place, as one select over the cache: ``where(slot is written,
    new's row for the slot, cache)``. One new token (decode) is broadcast over the slots;
    several are gathered to them first. (A scatter, ``index_copy``, lowers to a flattened
    scatter with transposes of the whole cache around it: several passes over it per layer.)

    With a fixed T, ``start`` is first clamped into [0, max_context - T] (a generation never
    goes past the cache; the clamp makes the write a dynamic update slice exactly, which the
    ``update_slice_from_select`` pass then writes: one row run written, not the whole cache
    selected)."""
    slots = torch.arange(cache.shape[2], device=cache.device)
    steps = new.shape[2]
    if isinstance(steps, int):
        start = start.clamp(0, cache.shape[2] - steps)
    kept = (slots < start) | (slots >= start + steps)
    if not (isinstance(steps, int) and steps == 1):  # (a dynamic token count: always gathered)
        new = new.index_select(2, (slots - start).clamp(0, steps - 1))
    return torch.where(kept.reshape(1, 1, -1, 1), cache, new.to(cache.dtype))


class ArgumentLayer(StaticLayer):
    """A static cache layer over given tensors: ``update`` writes the new keys and values at
    positions ``start, start + 1, ...`` of a copy (``written``), which becomes the layer's."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, start: torch.Tensor) -> None:
        super().__init__(max_cache_len=keys.shape[2])
        self.keys, self.values = keys, values
        self.cumulative_length = start
        self.device = keys.device
        self.batch_size, self.num_heads = keys.shape[:2]
        self.k_head_dim, self.v_head_dim = keys.shape[-1], values.shape[-1]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys = written(self.keys, key_states, self.cumulative_length)
        self.values = written(self.values, value_states, self.cumulative_length)
        return self.keys, self.values


class _KeysAndValues:
    """The per-layer ``keys`` and ``values`` of a cache made of layers (``Cache.layers``)."""

    layers: list

    @property
    def keys(self) -> list[torch.Tensor]:
        return [layer.keys for layer in self.layers]

    @property
    def values(self) -> list[torch.Tensor]:
        return [layer.values for layer in self.layers]


class ArgumentCache(_KeysAndValues, Cache):
    """One ``ArgumentLayer`` per decoder layer; ``start`` is the position of the first new token
    (a 0-d integer tensor: the number of tokens already in the cache)."""

    def __init__(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], start: torch.Tensor) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} key caches but {len(values)} value caches")
        super().__init__(layers=[ArgumentLayer(k, v, start) for k, v in zip(keys, values)])


class FixedLayer(StaticLayer):
    """Given keys and values that every step reads as they are: all ``keys.shape[2]``
    positions held (a model asking whether its cross-attention cache is filled hears yes)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__(max_cache_len=keys.shape[2])
        self.keys, self.values = keys, values
        self.cumulative_length = keys.shape[2]
        self.device = keys.device
        self.batch_size, self.num_heads = keys.shape[:2]
        self.k_head_dim, self.v_head_dim = keys.shape[-1], values.shape[-1]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError("a FixedCache is read-only: the model recomputed keys and values it holds")


class FixedCache(_KeysAndValues, Cache):
    """One ``FixedLayer`` per decoder layer: an encoder-decoder model's cross-attention keys and
    values, computed once (``RecordingCache``) and read by every decoding step."""

    def __init__(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} key caches but {len(values)} value caches")
        super().__init__(layers=[FixedLayer(k, v) for k, v in zip(keys, values)])


class RecordingLayer(DynamicLayer):
    """An empty layer keeping the keys and values of its first ``update``."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.is_initialized:
            raise RuntimeError("a RecordingCache layer records one update")
        self.keys, self.values, self.device, self.is_initialized = key_states, value_states, key_states.device, True
        return key_states, value_states


class RecordingCache(_KeysAndValues, Cache):
    """Empty: a ``RecordingLayer`` is added for each layer that writes, so that after a forward
    it holds each layer's keys and values."""

    def __init__(self) -> None:
        super().__init__(layer_class_to_replicate=RecordingLayer)
