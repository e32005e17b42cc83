"""A Hugging Face causal LM compiled to one Keras model with a dynamic token count
(``generative.compile_keras``): the same model prefills a whole prompt and decodes one token
at a time over its static cache; greedy ids equal PyTorch's ``model.generate`` and each step's
logits match within 1e-4 (relative)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causal_lms import BUILDERS, VOCAB, transformers  # noqa: F401 - (imports transformers safely)
from torch2keras import generative

MAX_CONTEXT = 48


def _torch_greedy(model, prompt: torch.Tensor, new: int):
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new, do_sample=False,
                             pad_token_id=0, return_dict_in_generate=True, output_logits=True)
    return out.sequences[0].numpy(), [step[0].numpy() for step in out.logits]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_keras_model_generates_pytorchs_tokens(family):
    model = BUILDERS[family]()
    lm = generative.compile_keras(model, max_context=MAX_CONTEXT)
    assert len(lm.keras_model.weights) > 0 and lm.result.report.first_mismatch is None
    prompt = torch.randint(0, VOCAB, (1, 11), generator=torch.Generator().manual_seed(3))
    ref_ids, ref_logits = _torch_greedy(model, prompt, 16)
    ids = generative.generate(lm, prompt[0].numpy(), 16)
    np.testing.assert_array_equal(ids, ref_ids)
    lm.reset()  # the same steps, PyTorch's tokens fed: logits at every step
    got = [lm.prefill(prompt[0].numpy())] + [lm.decode(int(t)) for t in ref_ids[11:26]]
    worst = max(float(np.max(np.abs(g - r)) / np.max(np.abs(r))) for g, r in zip(got, ref_logits))
    assert worst <= 1e-4


def test_keras_runner_refuses_tokens_beyond_its_cache():
    lm = generative.compile_keras(BUILDERS["llama"](), max_context=8)
    lm.prefill(np.arange(6) % VOCAB)
    with pytest.raises(ValueError, match="6 tokens held and 3 more exceed max_context=8"):
        lm.prefill(np.arange(3))
    assert lm.position == 6  # a refused call changes nothing
