"""The module a signature computes (``CausalLMStep``), in PyTorch: a prefill and decodes over
the argument cache give the logits of the model's own full forward, and the cache layout
refuses what it cannot hold."""

from __future__ import annotations

import copy

import pytest
import torch

from causal_lms import BUILDERS, PHI3_ORIGINAL_CONTEXT, SLIDING_WINDOW, VOCAB
from support import max_abs_error
from torch2keras.generative import CausalLMStep, cache_layout

ATOL = 1e-5
RTOL = 1e-5  # of the largest logit (a few units for the families drawn with larger weights)


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_prefill_then_decode_equals_full_forward(family):
    model = BUILDERS[family]()
    step = CausalLMStep(model, cache_layout(model, 32))
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids).logits
        tolerance = RTOL * float(full.abs().max())
        padded = torch.cat([ids[:, :8], torch.zeros(1, 4, dtype=torch.long)], 1)  # 8 tokens padded to 12
        out = step(padded, torch.tensor([0]), step.layout.zeros())
        assert max_abs_error(out["logits"][:, :8], full[:, :8]) <= tolerance
        cache = {name: out[f"kv_cache_{name}"] for name in step.layout.names()}
        for position in range(8, 12):
            out = step(ids[:, position:position + 1], torch.tensor([position]), cache)
            cache = {name: out[f"kv_cache_{name}"] for name in step.layout.names()}
            assert max_abs_error(out["logits"][:, 0], full[:, position]) <= tolerance


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "mistral"])
def test_the_sliding_window_decides_later_positions(family):
    """The step's logits are those of the windowed model (above), which differ from the same
    weights with the window opened (a sliding-window cache that ignored the window would give
    these) from the window's length on, and equal them before."""
    model = BUILDERS[family]()
    wide = copy.deepcopy(model)
    wide.config.sliding_window = 64  # read when the masks are built
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        windowed, opened = model(ids).logits, wide(ids).logits
    assert max_abs_error(windowed[:, :SLIDING_WINDOW], opened[:, :SLIDING_WINDOW]) <= ATOL
    assert (windowed[0, SLIDING_WINDOW:] - opened[0, SLIDING_WINDOW:]).abs().amax(-1).min() > 0.01


def test_cache_layout_of_grouped_query_attention():
    layout = cache_layout(BUILDERS["llama"](), 64)
    assert (layout.num_layers, layout.shape) == (2, (1, 2, 64, 8))
    assert layout.names() == ["k_0", "v_0", "k_1", "v_1"]


def test_cache_layout_refusals():
    with pytest.raises(ValueError, match="exceeds the model's max_position_embeddings=256"):
        cache_layout(BUILDERS["llama"](), 512)
    with pytest.raises(ValueError, match=rf"beyond original_max_position_embeddings={PHI3_ORIGINAL_CONTEXT}, .*"
                                         rf"use max_context <= {PHI3_ORIGINAL_CONTEXT}"):
        cache_layout(BUILDERS["phi3"](), PHI3_ORIGINAL_CONTEXT + 1)
    assert cache_layout(BUILDERS["phi3"](), PHI3_ORIGINAL_CONTEXT).max_context == PHI3_ORIGINAL_CONTEXT


def test_a_model_without_a_cache_argument_is_refused():
    with pytest.raises(TypeError, match=r"Linear.forward takes no `cache` argument"):
        CausalLMStep(torch.nn.Linear(2, 2), cache_layout(BUILDERS["llama"](), 8))
