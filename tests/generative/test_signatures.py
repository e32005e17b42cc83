"""Several signatures in one .tflite (``to_tflite_signatures``): each runs in LiteRT as its
PyTorch module does, and weights the modules share are stored once."""

from __future__ import annotations

import copy
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


class Accumulator(nn.Module):
    """A running total of the rows it is given and a call counter: state its signatures share."""

    def __init__(self):
        super().__init__()
        self.register_buffer("total", torch.full((1, 3), 0.5))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        self.total += x.sum(0, keepdim=True)
        self.calls += 1
        return self.total * self.calls


def test_signatures_share_state(tmp_path):
    """Each signature reads and writes the same variables: calls of either, on one interpreter,
    follow PyTorch's calls; a new interpreter starts from the buffers' values."""
    model = Accumulator().eval()
    rows = {"one": torch.randn(1, 3), "many": torch.randn(4, 3)}
    written = torch2keras.to_tflite_signatures({key: (model, (x,)) for key, x in rows.items()},
                                               str(tmp_path / "accumulator.tflite"))
    assert written.max_abs_errors["one"] < ATOL and written.max_abs_errors["many"] < ATOL
    reference = copy.deepcopy(model)
    tflite = interpreter(written.path)
    runners = {key: tflite.get_signature_runner(key) for key in rows}
    for key in ("one", "many", "many", "one"):
        with torch.no_grad():
            expected = reference(rows[key]).numpy()
        assert max_abs_error(runners[key](x=rows[key].numpy())["output"], expected) < ATOL, key
    assert float(reference.calls) == 4 and float(model.calls) == 0
    fresh = interpreter(written.path).get_signature_runner("many")(x=rows["many"].numpy())["output"]
    with torch.no_grad():
        assert max_abs_error(fresh, model(rows["many"]).numpy()) < ATOL


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
