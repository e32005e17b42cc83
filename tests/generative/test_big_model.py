"""A Llama of 0.16B parameters (620 MB of float32 weights; ``benchmarks/big_model.py`` measures
1.1B) exported with one copy of its weights in memory: up to the written file no stage adds
a tenth of the weights to the process's resident memory (all of them together a fifth), the
LiteRT check (the file mapped next to the model) adds about the weights once, and the file generates PyTorch's greedy tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causal_lms import transformers
from torch2keras import generative
from torch2keras.generative.runner import LiteRTCausalLM


@pytest.mark.slow
def test_a_larger_llama_converts_with_one_copy_of_its_weights(tmp_path):
    config = transformers.LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                                      num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=512)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    exported = generative.export_tflite(model, str(tmp_path / "llama.tflite"), max_context=128, prefill_len=16,
                                        atol=1e-3, rtol=1e-3)
    result = exported.result
    assert weights <= result.bytes < 1.01 * weights
    grown = {stage: (peak - result.memory_start[stage]) / weights for stage, peak in result.memory.items()}
    # a copy of the embedding alone would be 0.21 (of all weights: 1); torch.export and the IR take ~0.05
    assert all(g < (1.15 if stage == "validate" else 0.1) for stage, g in grown.items()), grown
    assert (result.memory["write"] - result.memory_start["prefill reference"]) / weights < 0.2
    prompt = torch.randint(0, 32000, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
                                   pad_token_id=0)
    ids = generative.generate(LiteRTCausalLM(exported.path, delegates=False), prompt[0].numpy(), 8)
    np.testing.assert_array_equal(ids, reference[0].numpy())
