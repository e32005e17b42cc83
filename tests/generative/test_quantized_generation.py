"""``generative.export_tflite(quantize="dynamic_int8")``: a tiny Llama with int8 weights (one
copy shared by prefill and decode) greedy-generates the tokens PyTorch generates with the same
weights dequantized; LiteRT's per-call quantization of the activations does not flip an argmax
here (measured: 4 of 4 prompts, 24 tokens each; with dynamic_int4_b32 3 of 4, the fourth apart
from its 17th token)."""

from __future__ import annotations

import numpy as np
import torch

from causal_lms import VOCAB, tiny_llama
from dequantized_weights import dequantized
from torch2keras import WeightQuantization, generative
from torch2keras.backend_tflite.writer import build_signatures


def test_int8_llama_greedy_tokens_equal_pytorch_with_dequantized_weights(tmp_path):
    model = tiny_llama()
    mode = WeightQuantization("dynamic_int8", min_elements=0)
    exported = generative.export_tflite(model, str(tmp_path / "llama_int8.tflite"), max_context=64, prefill_len=16,
                                        quantize=mode)
    stored, _ = build_signatures(exported.result.graphs, weights=mode)
    float_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert stored.weight_bytes < 0.3 * float_bytes  # one int8 copy of the weights for both signatures
    reference = dequantized(model, mode)
    for seed in range(2):
        prompt = torch.randint(0, VOCAB, (1, 10), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = reference.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24,
                                          do_sample=False, pad_token_id=0)[0].numpy()
        np.testing.assert_array_equal(generative.generate(exported.path, prompt[0].numpy(), 24), expected)


def test_signatures_share_one_quantization_of_each_weight(tmp_path, monkeypatch):
    """prefill and decode read the same parameters: each weight is quantized once for the file."""
    calls = []
    original = WeightQuantization.quantize
    monkeypatch.setattr(WeightQuantization, "quantize", lambda self, w: calls.append(w.shape) or original(self, w))
    model = tiny_llama()
    generative.export_tflite(model, str(tmp_path / "q.tflite"), max_context=32, prefill_len=8,
                             quantize=WeightQuantization("dynamic_int8", min_elements=0), validate=False)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    layers = len(model.model.layers)
    # each linear layer's weight and the embedding table, once; q, k and v stacked, gate and up stacked
    assert len(calls) == len(linears) + 1 - layers * (2 + 1)
    attention = model.model.layers[0].self_attn
    stacked = attention.q_proj.out_features + 2 * attention.k_proj.out_features
    assert calls.count((stacked, model.config.hidden_size)) == layers
