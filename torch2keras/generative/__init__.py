"""On-device language models: a Hugging Face causal LM as one ``.tflite`` file with ``prefill``
and ``decode`` signatures over a static key/value cache (an encoder-decoder model, T5 or
Whisper: ``encode`` too, computing the cross-attention cache once), and generation with it in
LiteRT.

    from torch2keras import generative
    generative.export_tflite(hf_model, "lm.tflite", max_context=256, prefill_len=32)
    ids = generative.generate("lm.tflite", prompt_ids, max_new_tokens=32)
    ids = generative.generate(generative.compile_keras(hf_model, max_context=256), prompt_ids, 32)
    generative.export_tflite(t5, "t5.tflite", max_context=64, encoder_len=32)
    ids = generative.generate("t5.tflite", [t5.config.decoder_start_token_id], 32, encoder_input=input_ids)

Modules: ``layout`` (the cache's shapes), ``cache`` (Hugging Face ``Cache`` objects over argument
tensors), ``step`` (the module a signature computes), ``state_step`` (a step holding its cache
as state: ``export_tflite(..., cache="state")``), ``seq2seq_step`` (an encoder-decoder's
``encode`` and decoder steps), ``export`` (the file), ``file_metadata`` (what the file records
about its cache), ``runner`` (the file in LiteRT),
``seq2seq_runner`` (an encoder-decoder file in LiteRT), ``keras_runner`` (one Keras model, any
number of tokens per call), ``sampling`` (the next token), ``generation`` (the loop). Importing
``torch2keras.generative`` needs ``transformers`` only for ``export_tflite``.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "export_tflite": "torch2keras.generative.export", "GenerativeExport": "torch2keras.generative.export",
    "signature_modules": "torch2keras.generative.export", "CausalLMStep": "torch2keras.generative.step",
    "cache_layout": "torch2keras.generative.layout", "CacheLayout": "torch2keras.generative.layout",
    "LiteRTCausalLM": "torch2keras.generative.runner", "prefill_plan": "torch2keras.generative.runner",
    "LiteRTSeq2SeqLM": "torch2keras.generative.seq2seq_runner", "Seq2SeqStep": "torch2keras.generative.seq2seq_step",
    "encode_step": "torch2keras.generative.seq2seq_step", "StateCacheStep": "torch2keras.generative.state_step",
    "TokenSampler": "torch2keras.generative.sampling",
    "generate": "torch2keras.generative.generation",
    "KerasCausalLM": "torch2keras.generative.keras_runner", "compile_keras": "torch2keras.generative.keras_runner",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'torch2keras.generative' has no attribute {name!r}")
