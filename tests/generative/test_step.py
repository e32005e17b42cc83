"""The module a signature computes (``CausalLMStep``), in PyTorch: a prefill and decodes over
the argument cache give the logits of the model's own full forward, and the cache layout
refuses what it cannot hold."""

from __future__ import annotations

import pytest
import torch

from causal_lms import BUILDERS, VOCAB, transformers
from support import max_abs_error
from torch2keras.generative import CausalLMStep, cache_layout

ATOL = 1e-5


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_prefill_then_decode_equals_full_forward(family):
    model = BUILDERS[family]()
    step = CausalLMStep(model, cache_layout(model, 32))
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids).logits
        padded = torch.cat([ids[:, :8], torch.zeros(1, 4, dtype=torch.long)], 1)  # 8 tokens padded to 12
        out = step(padded, torch.tensor([0]), step.layout.zeros())
        assert max_abs_error(out["logits"][:, :8], full[:, :8]) <= ATOL
        cache = {name: out[f"kv_cache_{name}"] for name in step.layout.names()}
        for position in range(8, 12):
            out = step(ids[:, position:position + 1], torch.tensor([position]), cache)
            cache = {name: out[f"kv_cache_{name}"] for name in step.layout.names()}
            assert max_abs_error(out["logits"][:, 0], full[:, position]) <= ATOL


def test_cache_layout_of_grouped_query_attention():
    layout = cache_layout(BUILDERS["llama"](), 64)
    assert (layout.num_layers, layout.shape) == (2, (1, 2, 64, 8))
    assert layout.names() == ["k_0", "v_0", "k_1", "v_1"]


def test_cache_layout_refusals():
    with pytest.raises(ValueError, match="exceeds the model's max_position_embeddings=256"):
        cache_layout(BUILDERS["llama"](), 512)
    config = transformers.MistralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=4, num_key_value_heads=2, sliding_window=16)
    with pytest.raises(ValueError, match="sliding window of 16 tokens"):
        cache_layout(transformers.MistralForCausalLM(config), 64)


def test_a_model_without_a_cache_argument_is_refused():
    with pytest.raises(TypeError, match=r"Linear.forward takes no `cache` argument"):
        CausalLMStep(torch.nn.Linear(2, 2), cache_layout(BUILDERS["llama"](), 8))
