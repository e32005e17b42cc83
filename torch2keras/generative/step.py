"""One step of a Hugging Face causal LM over an argument cache: what a prefill or decode
signature computes.

``CausalLMStep(model, layout)`` is an ``nn.Module`` with
``forward(tokens [1, T], input_pos [1], kv_cache {"k_0": [1, kv_heads, L, head_dim], "v_0", ...})``
returning ``{"logits": [1, T, vocab], "kv_cache_k_0": updated cache, ...}`` (a converted
signature's cache inputs and outputs then have the same names): the tokens at positions
``input_pos, ..., input_pos + T - 1`` are attended causally over the cache's first
``input_pos`` entries and written into it. The model runs unmodified (its own forward, mask
and rope); only the cache object (``cache.ArgumentCache``) is ours. An optional fourth argument
``last_index`` [1] (int) keeps only the logits of ``tokens[0, last_index]`` (``logits`` [1, 1,
vocab]; the other rows are never projected onto the vocabulary: the model's ``logits_to_keep``).
``self_attention_cache``, ``outputs`` and ``context_inputs`` are what ``seq2seq_step.Seq2SeqStep``
(an encoder-decoder model's decoder) shares and extends.
"""

from __future__ import annotations

import inspect
from typing import Optional

import torch

from .cache import ArgumentCache
from .layout import CacheLayout

__all__ = ["CausalLMStep"]


class CausalLMStep(torch.nn.Module):
    """A causal LM step over a static argument cache (see the module docstring)."""

    encoder_decoder = False  # the models it steps: causal LMs (``Seq2SeqStep``: encoder-decoder ones)

    def __init__(self, model: torch.nn.Module, layout: CacheLayout) -> None:
        super().__init__()
        if "cache" not in inspect.signature(model.forward).parameters:
            raise TypeError(f"{type(model).__name__}.forward takes no `cache` argument: torch2keras.generative needs "
                            f"a Hugging Face causal LM of transformers >= 5 (pip install 'transformers>=5')")
        if bool(getattr(model.config, "is_encoder_decoder", False)) != self.encoder_decoder:
            steps = "encoder-decoder models" if self.encoder_decoder else "causal LMs"
            raise TypeError(f"{type(model).__name__} is {'not ' if self.encoder_decoder else ''}an encoder-decoder "
                            f"model: {type(self).__name__} steps {steps} (generative.export_tflite takes both)")
        self.model = model
        self.layout = layout

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor, kv_cache: dict,
                last_index: Optional[torch.Tensor] = None) -> dict:
        kv, valid = self.self_attention_cache(tokens, input_pos, kv_cache)
        keep = {} if last_index is None else {"logits_to_keep": last_index.reshape(1)}
        out = self.model(input_ids=tokens, attention_mask=valid, cache=kv, use_cache=True, **keep)
        return self.outputs(out.logits, kv)

    def self_attention_cache(self, tokens: torch.Tensor, input_pos: torch.Tensor, kv_cache: dict
                             ) -> tuple[ArgumentCache, torch.Tensor]:
        """The cache the tokens are written into (from ``input_pos`` on) and the padding mask of
        its slots: the positions written so far (and now); later slots are masked."""
        names = self.layout.names()
        start = input_pos.reshape(())
        kv = ArgumentCache([kv_cache[n] for n in names[0::2]], [kv_cache[n] for n in names[1::2]], start)
        valid = torch.arange(self.layout.max_context, device=tokens.device)[None, :] < start + tokens.shape[1]
        return kv, valid

    def outputs(self, logits: torch.Tensor, kv: ArgumentCache) -> dict:
        """``{"logits": ..., "kv_cache_k_0": updated cache, ...}``."""
        names = self.layout.names()
        result = {"logits": logits}
        for i in range(self.layout.num_layers):
            result[f"kv_cache_{names[2 * i]}"], result[f"kv_cache_{names[2 * i + 1]}"] = kv.keys[i], kv.values[i]
        return result

    def example_inputs(self, length: int, start: int = 0, seed: int = 0, last_index: Optional[int] = None
                       ) -> tuple:
        """Arguments for a step of ``length`` tokens at position ``start``: seeded random tokens
        (below the vocabulary size) and a seeded random cache (its first ``start`` entries the
        past the tokens attend to), then ``context_inputs``; with ``last_index``, that index last."""
        if start + length > self.layout.max_context:
            raise ValueError(f"a step of {length} tokens at position {start} exceeds max_context="
                             f"{self.layout.max_context}")
        generator = torch.Generator().manual_seed(seed)
        vocab = self.model.get_output_embeddings().weight.shape[0]
        tokens = torch.randint(0, vocab, (1, length), generator=generator)
        cache = self.layout.random(generator)
        args = (tokens, torch.tensor([start]), cache, *self.context_inputs(generator))
        return args if last_index is None else (*args, torch.tensor([last_index]))

    def context_inputs(self, generator: torch.Generator) -> tuple:
        """Example arguments between the cache and ``last_index`` (a causal LM has none)."""
        return ()
