"""Several signatures in one .tflite (``to_tflite_signatures``): each runs in LiteRT as its
PyTorch module does, and weights the modules share are stored once."""

from __future__ import annotations

import gc
import os
import weakref

import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.backend_tflite.writer import build_signatures
from torch2keras.tflite.runtime import interpreter
from support import max_abs_error

ATOL = 1e-4


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(64, 256)

    def forward(self, x):
        return torch.tanh(self.proj(x))


class Scorer(nn.Module):
    """Uses ``Encoder``'s weights (the same parameter objects) and a head of its own."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(256, 3)

    def forward(self, x, bias):
        return self.head(self.encoder(x)) + bias


@pytest.fixture(scope="module")
def two_signatures(tmp_path_factory):
    torch.manual_seed(0)
    encoder = Encoder().eval()
    scorer = Scorer(encoder).eval()
    folder = tmp_path_factory.mktemp("signatures")
    inputs = {"encode": (encoder, (torch.randn(2, 64),)), "score": (scorer, (torch.randn(5, 64), torch.randn(3)))}
    both = torch2keras.to_tflite_signatures(inputs, str(folder / "both.tflite"))
    single = torch2keras.to_tflite_signatures({"score": inputs["score"]}, str(folder / "score.tflite"))
    return encoder, scorer, both, single


def test_each_signature_matches_pytorch(two_signatures):
    encoder, scorer, both, _ = two_signatures
    assert set(both.max_abs_errors) == {"encode", "score"}
    tflite = interpreter(both.path, delegates=False)
    assert sorted(tflite.get_signature_list()) == ["encode", "score"]
    x, bias = torch.randn(5, 64), torch.randn(3)
    with torch.no_grad():
        ref = scorer(x, bias).numpy()
    out = tflite.get_signature_runner("score")(x=x.numpy(), bias=bias.numpy())
    assert max_abs_error(list(out.values())[0], ref) <= ATOL
    x = torch.randn(2, 64)
    out = tflite.get_signature_runner("encode")(x=x.numpy())
    with torch.no_grad():
        assert max_abs_error(list(out.values())[0], encoder(x).numpy()) <= ATOL


def test_shared_weights_are_stored_once(two_signatures):
    _, _, both, single = two_signatures
    model, _ = build_signatures(both.graphs)
    shared = 64 * 256 * 4  # the encoder's weight matrix, used by both signatures
    alone, _ = build_signatures({"score": single.graphs["score"]})
    assert model.weight_bytes - alone.weight_bytes < shared / 10
    assert os.path.getsize(both.path) < 1.1 * os.path.getsize(single.path)


def test_no_signature_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="at least one signature"):
        torch2keras.to_tflite_signatures({}, str(tmp_path / "none.tflite"))


def test_a_written_model_is_freed_without_the_garbage_collector(two_signatures):
    """No reference cycle keeps the built model -- and the float16 weights of an fp16 file -- alive
    after writing, until the cyclic garbage collector happens to run (a billion-parameter
    model's validation would start with those gigabytes still held)."""
    _, _, both, _ = two_signatures
    gc.disable()
    try:
        model, _ = build_signatures(both.graphs, fp16=True)
        assert model.weight_bytes > 0
        alive = weakref.ref(model)
        del model
        assert alive() is None
    finally:
        gc.enable()
