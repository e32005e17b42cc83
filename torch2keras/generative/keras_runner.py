"""``KerasCausalLM``: a Hugging Face causal LM compiled to ONE Keras model that generates with a
static key/value cache, on any Keras backend.

``compile_keras(model, max_context)`` compiles ``CausalLMStep`` with a dynamic number of tokens:
the same model (one copy of the weights) takes a whole prompt (prefill) or one token (decode).
Its inputs are ``tokens`` [1, T], ``input_pos`` [1] and the caches ``kv_cache_<k|v>_<layer>``
[1, kv_heads, max_context, head_dim]; its outputs ``logits`` [1, T, vocab] and the updated
caches. ``KerasCausalLM`` holds the caches between calls and offers what ``LiteRTCausalLM``
offers (``reset``, ``prefill``, ``decode``), so ``generate`` runs either.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ..api import compile as compile_model
from .layout import CacheLayout, cache_layout
from .step import CausalLMStep

__all__ = ["KerasCausalLM", "compile_keras"]

_EXAMPLE_TOKENS = 4  # the example's token count (any size: the dim is dynamic)


class KerasCausalLM:
    """A compiled step (``result``: its ``CompileResult``, e.g. to ``save`` the Keras model) and
    the cache state (see the module docstring)."""

    def __init__(self, result, layout: CacheLayout, vocab_size: int) -> None:
        self.result = result
        self.layout = layout
        self.max_context = layout.max_context
        self.vocab_size = vocab_size
        self.reset()

    @property
    def keras_model(self):
        return self.result.keras_model

    def reset(self) -> None:
        """Empty caches: the next ``prefill`` starts a new sequence."""
        dtype = str(self.layout.dtype).replace("torch.", "")
        self.cache = [np.zeros(self.layout.shape, dtype) for _ in self.layout.names()]
        self.position = 0

    def _step(self, tokens: np.ndarray) -> np.ndarray:
        n = len(tokens)
        if self.position + n > self.max_context:
            raise ValueError(f"{self.position} tokens held and {n} more exceed max_context={self.max_context}: "
                             f"compile with a larger max_context")
        outs = self.result.run_keras([tokens.astype(np.int64)[None, :], np.asarray([self.position], np.int64),
                                      *self.cache])
        self.cache = [np.asarray(o) for o in outs[1:]]
        self.position += n
        return np.asarray(outs[0])[0]

    def prefill(self, prompt: Sequence[int]) -> np.ndarray:
        """Feed ``prompt`` (any length, one call) after the tokens already held; the logits of
        its last token."""
        prompt = np.asarray(prompt, np.int64).reshape(-1)
        if len(prompt) == 0:
            raise ValueError("prefill needs at least one token")
        return self._step(prompt)[-1]

    def decode(self, token: int) -> np.ndarray:
        """Feed one token after the tokens already held; its logits."""
        return self._step(np.asarray([token], np.int64))[-1]


def compile_keras(model: torch.nn.Module, max_context: int, *, atol: float = 1e-4, rtol: float = 1e-4,
                  progress=None) -> KerasCausalLM:
    """``model`` (a Hugging Face ``...ForCausalLM``, unmodified) as one Keras model over a cache of
    ``max_context`` positions, validated against PyTorch on a seeded step (``atol``, ``rtol``)."""
    if max_context < _EXAMPLE_TOKENS + 1:
        raise ValueError(f"max_context={max_context} is too small (at least {_EXAMPLE_TOKENS + 1})")
    step = CausalLMStep(model.eval(), cache_layout(model, max_context))
    example = step.example_inputs(_EXAMPLE_TOKENS, 1, seed=0)
    result = compile_model(step, example, dynamic_shapes={"tokens": {1: "tokens"}}, atol=atol, rtol=rtol,
                           on_mismatch="raise", progress=progress)
    vocab = model.get_output_embeddings().weight.shape[0]
    return KerasCausalLM(result, step.layout, int(vocab))
