"""The steps of a Hugging Face encoder-decoder model (``T5ForConditionalGeneration``,
``WhisperForConditionalGeneration``) over argument caches: what its ``encode`` and decoder
(``prefill``, ``decode``) signatures compute.

``encode_step(model)`` runs the encoder once and returns what every decoding step reads from
it: the cross-attention keys and values of each decoder layer, ``{"cross_cache_k_0": [1, heads,
source_len, head_dim], "cross_cache_v_0": ..., ...}``. A text encoder (``TextEncodeStep``) takes
``input_ids`` and ``attention_mask`` [1, source_len] (0 at the padding of a shorter input) and
also returns ``cross_cache_mask`` [1, source_len] (bool: the encoder positions the decoder
attends to); an audio encoder (``AudioEncodeStep``) takes ``input_features``. The model computes
the keys and values itself: its own forward with one decoder token over a ``RecordingCache``,
whose first writes are the result; the rest of that forward (the decoder's step, the logits)
reaches no output and is left out of the signature's graph.

``Seq2SeqStep(model, layout, cross_layout)`` is a ``CausalLMStep`` (the decoder's
self-attention cache, ``kv_cache_*``, written out of place) whose ``forward`` also takes those
tensors as ``cross_cache`` (read only: a ``FixedCache``): ``forward(tokens, input_pos,
kv_cache, cross_cache[, last_index])`` returns ``{"logits", "kv_cache_k_0", ...}`` as a causal
LM step does. The model runs unmodified: its own decoder, masks and relative position buckets.
"""

from __future__ import annotations

import inspect
from typing import Optional

import torch
from transformers.cache_utils import EncoderDecoderCache

from .cache import FixedCache, RecordingCache
from .layout import CacheLayout
from .step import CausalLMStep

__all__ = ["AudioEncodeStep", "Seq2SeqStep", "TextEncodeStep", "encode_step", "seq2seq_layouts"]


class _EncodeStep(torch.nn.Module):
    """Encoder inputs -> the cross-attention keys and values of every decoder layer."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        if not getattr(model.config, "is_encoder_decoder", False):
            raise TypeError(f"{type(model).__name__} is not an encoder-decoder model (config.is_encoder_decoder)")
        self.model = model

    def record(self, **encoder_inputs) -> tuple[RecordingCache, RecordingCache]:
        """The self- and cross-attention caches of the model's forward on ``encoder_inputs``
        and one decoder token."""
        start = getattr(self.model.config, "decoder_start_token_id", None) or 0
        token = torch.full((1, 1), int(start), dtype=torch.long)
        written, cross = RecordingCache(), RecordingCache()
        self.model(**encoder_inputs, decoder_input_ids=token, cache=EncoderDecoderCache(written, cross), use_cache=True)
        return written, cross

    def cross_outputs(self, **encoder_inputs) -> dict:
        _, cross = self.record(**encoder_inputs)
        out = {}
        for i, (k, v) in enumerate(zip(cross.keys, cross.values)):
            out[f"cross_cache_k_{i}"], out[f"cross_cache_v_{i}"] = k, v
        return out


class TextEncodeStep(_EncodeStep):
    """``forward(input_ids [1, S], attention_mask [1, S])`` (see the module docstring)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        out = self.cross_outputs(input_ids=input_ids, attention_mask=attention_mask)
        out["cross_cache_mask"] = attention_mask > 0
        return out

    def example_inputs(self, source_len: int, seed: int = 0) -> tuple:
        """Seeded random ids, the last quarter of them padding (masked)."""
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, self.model.config.vocab_size, (1, source_len), generator=generator)
        mask = (torch.arange(source_len) < source_len - source_len // 4).to(torch.long)[None, :]
        return ids, mask


class AudioEncodeStep(_EncodeStep):
    """``forward(input_features [1, mel bins, frames])`` (see the module docstring)."""

    def forward(self, input_features: torch.Tensor) -> dict:
        return self.cross_outputs(input_features=input_features)

    def feature_shape(self) -> tuple[int, int, int]:
        """The features the encoder takes: its ``max_source_positions`` times its convolutions' strides."""
        encoder = self.model.get_encoder()
        frames = encoder.config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]
        return (1, int(encoder.config.num_mel_bins), int(frames))

    def example_inputs(self, source_len: Optional[int] = None, seed: int = 0) -> tuple:
        """Seeded normal features (``source_len``: the encoder's fixed length, checked)."""
        shape = self.feature_shape()
        if source_len is not None and source_len != shape[2]:
            raise ValueError(f"{type(self.model).__name__} takes {shape[2]} frames of features "
                             f"(max_source_positions x its convolutions' strides), not encoder_len={source_len}")
        return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)),)


def encode_step(model: torch.nn.Module) -> _EncodeStep:
    """The encode step of ``model``: a text encoder (``input_ids``) or an audio one (``input_features``)."""
    kinds = {"input_ids": TextEncodeStep, "input_features": AudioEncodeStep}
    name = getattr(model, "main_input_name", None)
    if name not in kinds:
        raise TypeError(f"{type(model).__name__}'s encoder takes {name!r}: torch2keras.generative encodes "
                        f"input_ids (T5) or input_features (Whisper)")
    return kinds[name](model.eval())


def seq2seq_layouts(step: _EncodeStep, example: tuple, max_context: int) -> tuple[CacheLayout, CacheLayout]:
    """The decoder's self-attention cache layout (``max_context`` positions) and its cross-attention
    one (the encoder's output length), read off one PyTorch forward on ``example``."""
    config = step.model.config
    limit = getattr(config, "max_target_positions", None) or getattr(config, "max_position_embeddings", None)
    if limit is not None and max_context > limit:
        raise ValueError(f"max_context={max_context} exceeds the decoder's {limit} positions")
    names = inspect.signature(step.forward).parameters
    with torch.no_grad():
        written, cross = step.record(**dict(zip(names, example)))
    dtype = next(step.model.parameters()).dtype
    (_, heads, _, head_dim), (_, cross_heads, source, cross_dim) = written.keys[0].shape, cross.keys[0].shape
    return (CacheLayout(len(written.layers), int(heads), int(head_dim), int(max_context), dtype),
            CacheLayout(len(cross.layers), int(cross_heads), int(cross_dim), int(source), dtype))


class Seq2SeqStep(CausalLMStep):
    """A decoder step over the self-attention cache and the fixed cross-attention one (see the
    module docstring)."""

    encoder_decoder = True

    def __init__(self, model: torch.nn.Module, layout: CacheLayout, cross_layout: CacheLayout,
                 encoder_mask: bool) -> None:
        super().__init__(model, layout)
        self.cross_layout = cross_layout
        self.encoder_mask = encoder_mask
        self.hidden_size = int(model.config.hidden_size)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor, kv_cache: dict, cross_cache: dict,
                last_index: Optional[torch.Tensor] = None) -> dict:
        kv, valid = self.self_attention_cache(tokens, input_pos, kv_cache)
        names = self.cross_layout.names()
        cross = FixedCache([cross_cache[n] for n in names[0::2]], [cross_cache[n] for n in names[1::2]])
        # the encoder's output: only its shape is read (the keys and values it gives are in `cross`)
        encoded = cross.keys[0].new_zeros(1, self.cross_layout.max_context, self.hidden_size)
        mask = {"attention_mask": cross_cache["mask"]} if self.encoder_mask else {}
        out = self.model(decoder_input_ids=tokens, decoder_attention_mask=valid, encoder_outputs=(encoded,),
                         cache=EncoderDecoderCache(kv, cross), use_cache=True, **mask)
        logits = out.logits if last_index is None else out.logits.index_select(1, last_index.reshape(1))
        return self.outputs(logits, kv)

    def context_inputs(self, generator: torch.Generator) -> tuple:
        """A seeded random cross cache (and, with an encoder mask, its last quarter masked)."""
        cross = self.cross_layout.random(generator)
        if self.encoder_mask:
            source = self.cross_layout.max_context
            cross["mask"] = (torch.arange(source) < source - source // 4)[None, :]
        return (cross,)
