"""Recurrent layers: nn.LSTM, nn.GRU, nn.RNN and the cells, in Keras and TFLite, against PyTorch.

Every variant (layers, directions, batch_first, initial states given or not, outputs and final
states) must match PyTorch within 1e-4 in Keras and in TFLite, where each .tflite file is also
invoked twice on one interpreter (a fused LSTM that kept its state would fail the second time).
LSTMs must become fused UNIDIRECTIONAL_SEQUENCE_LSTM ops, with no loop left.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from fresh_process import run_saved
from support import max_abs_error

ATOL = 1e-4
FEATURES, HIDDEN, STEPS, BATCH = 6, 8, 5, 2


def _flat(out) -> list[np.ndarray]:
    return [o.detach().numpy() for o in torch.utils._pytree.tree_flatten(out)[0]]



def _tflite_twice(result, path: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Invoke one interpreter on other inputs first, then on ``inputs``; return the second results."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    rng = np.random.default_rng(1)
    runner(**result.keras_inputs([rng.standard_normal(x.shape).astype(np.float32) for x in inputs]))
    outs = runner(**result.keras_inputs(inputs))
    return result.torch_outputs([outs[n] for n in result.output_names])


def _check(model: nn.Module, inputs: tuple, tmp_path, name: str, validate="outputs"):
    """Convert; compare Keras and TFLite (second invocation) with PyTorch; return the result."""
    model = model.eval()
    with torch.no_grad():
        ref = _flat(model(*[t.clone() for t in inputs]))
    assert all(np.abs(r).max() > 1e-2 for r in ref), "degenerate reference"
    result = torch2keras.compile(model, inputs, name=name, validate=validate)
    assert result.report.ok, result.report.summary()
    arrays = [t.numpy() for t in inputs]
    for k, r in zip(result.run_keras(arrays), ref):
        assert k.shape == r.shape
        assert max_abs_error(k, r) < ATOL, f"{name}: Keras differs from PyTorch by {max_abs_error(k, r)}"
    path = result.export_tflite(str(tmp_path / f"{name}.tflite"))
    for t, r in zip(_tflite_twice(result, path, arrays), ref):
        assert max_abs_error(t, r) < ATOL, f"{name}: TFLite differs from PyTorch by {max_abs_error(t, r)}"
    return result


class Recurrent(nn.Module):
    """One torch recurrent module; returns its outputs and final states (given states optional)."""

    def __init__(self, cls, **kwargs):
        super().__init__()
        self.rnn = cls(FEATURES, HIDDEN, **kwargs)

    def forward(self, x, *states):
        if not states:
            return self.rnn(x)
        return self.rnn(x, states if len(states) > 1 else states[0])


class AllKinds(nn.Module):
    """nn.LSTM, nn.GRU and nn.RNN (tanh and relu) configured alike, side by side on one input;
    returns every output and final state."""

    def __init__(self, **kwargs):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, HIDDEN, **kwargs)
        self.gru = nn.GRU(FEATURES, HIDDEN, **kwargs)
        self.rnn_tanh = nn.RNN(FEATURES, HIDDEN, nonlinearity="tanh", **kwargs)
        self.rnn_relu = nn.RNN(FEATURES, HIDDEN, nonlinearity="relu", **kwargs)

    def forward(self, x, h=None, c=None):
        if h is None:
            return self.lstm(x), self.gru(x), self.rnn_tanh(x), self.rnn_relu(x)
        return self.lstm(x, (h, c)), self.gru(x, h * 0.5), self.rnn_tanh(x, h), self.rnn_relu(x, h.abs())


def _inputs(kwargs: dict, with_states: bool) -> tuple:
    x = torch.randn(BATCH, STEPS, FEATURES) if kwargs.get("batch_first") else torch.randn(STEPS, BATCH, FEATURES)
    if not with_states:
        return (x,)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    return (x, torch.randn(layers, BATCH, HIDDEN) * 0.5, torch.randn(layers, BATCH, HIDDEN) * 0.5)


VARIANTS = {
    "batch_first": (dict(batch_first=True), False),
    "time_major_states": (dict(), True),
    "2layers_bidir_states": (dict(num_layers=2, bidirectional=True), True),
    "2layers_batch_first_bidir_nobias": (dict(num_layers=2, bidirectional=True, batch_first=True, bias=False), False),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_recurrent_layers_match_torch(tmp_path, variant):
    torch.manual_seed(0)
    kwargs, with_states = VARIANTS[variant]
    result = _check(AllKinds(**kwargs), _inputs(kwargs, with_states), tmp_path, variant, validate=True)
    counts = result.report.tflite["op_counts"]
    assert counts.get("TRANSPOSE", 0) == 0  # time-major or batch-first, the layers read torch's layout
    directions = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    assert counts.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == directions  # the LSTM: fused ops
    assert counts.get("WHILE") == 3 * directions  # GRU and both RNNs: one loop per layer and direction


class Cells(nn.Module):
    """LSTMCell, GRUCell and RNNCell stepped over a short sequence, states carried by hand."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTMCell(FEATURES, HIDDEN)
        self.gru = nn.GRUCell(FEATURES, HIDDEN)
        self.rnn = nn.RNNCell(FEATURES, HIDDEN, nonlinearity="relu")

    def forward(self, x, h):
        hl, cl = self.lstm(x[0])  # no state given: zeros
        hg, hr = self.gru(x[0], h), self.rnn(x[0])
        for t in range(1, x.shape[0]):
            hl, cl = self.lstm(x[t], (hl, cl))
            hg, hr = self.gru(x[t], hg), self.rnn(x[t], hr)
        return hl, cl, hg, hr


def test_cells_match_torch(tmp_path):
    torch.manual_seed(0)
    _check(Cells(), (torch.randn(2, BATCH, FEATURES), torch.randn(BATCH, HIDDEN)), tmp_path, "cells")


class TwoLayerLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.head(out[:, -1]), h


def test_two_layer_lstm_is_two_fused_ops(tmp_path):
    torch.manual_seed(0)
    result = _check(TwoLayerLSTM(), (torch.randn(1, 10, 16),), tmp_path, "lstm2")
    counts = result.report.tflite["op_counts"]
    assert counts.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2
    assert "WHILE" not in counts
    # per layer: 4 ops making the fresh zero states and the fused op; then the head and h's stacking
    assert result.report.tflite["ops"] <= 16, counts


class FinalCellState(nn.Module):
    """An encoder whose final (h, c) start a decoder: the final cell state of a fused LSTM is used."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.LSTM(FEATURES, HIDDEN, bidirectional=True)
        self.decoder = nn.LSTM(FEATURES, HIDDEN, bidirectional=True)

    def forward(self, x, y):
        _, (h, c) = self.encoder(x)
        out, (h2, c2) = self.decoder(y, (h, c))
        return out, c2 + h


def test_encoder_state_starts_decoder(tmp_path):
    torch.manual_seed(0)
    result = _check(FinalCellState(), (torch.randn(STEPS, BATCH, FEATURES), torch.randn(3, BATCH, FEATURES)),
                    tmp_path, "enc_dec")
    assert result.report.tflite["op_counts"].get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 4


class StateReadAfterLSTM(nn.Module):
    """The given initial states are read again after the LSTM ran (the fused op must not clobber them)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, HIDDEN, batch_first=True)

    def forward(self, x, h0, c0):
        out, _ = self.lstm(x, (h0, c0))
        return out[:, -1] * h0[0] + c0[0]


def test_initial_states_are_not_clobbered(tmp_path):
    torch.manual_seed(0)
    _check(StateReadAfterLSTM(), (torch.randn(BATCH, STEPS, FEATURES), torch.randn(1, BATCH, HIDDEN),
                                  torch.randn(1, BATCH, HIDDEN)), tmp_path, "clobber")


class TwoLSTMsOneInput(nn.Module):
    """Two LSTMs read one input (and one pair of states): their fused ops need distinct state buffers."""

    def __init__(self):
        super().__init__()
        self.a = nn.LSTM(FEATURES, HIDDEN, batch_first=True)
        self.b = nn.LSTM(FEATURES, HIDDEN, batch_first=True)

    def forward(self, x, h0, c0):
        return self.a(x)[0] + self.b(x)[0], self.a(x, (h0, c0))[0] - self.b(x, (h0, c0))[0]


def test_two_lstms_on_one_input(tmp_path):
    torch.manual_seed(0)
    inputs = (torch.randn(BATCH, STEPS, FEATURES), torch.randn(1, BATCH, HIDDEN), torch.randn(1, BATCH, HIDDEN))
    result = _check(TwoLSTMsOneInput(), inputs, tmp_path, "two_lstms")
    assert result.report.tflite["op_counts"].get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 4


def test_large_cell_state_is_not_clipped(tmp_path):
    """The converter clips fused LSTM cells at +-10; torch does not, and neither does our file."""
    torch.manual_seed(0)
    model = Recurrent(nn.LSTM, batch_first=True)
    with torch.no_grad():  # input and forget gates open, candidate +1: c grows by ~1 per step
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0[:2 * HIDDEN] = 20.0
        model.rnn.bias_hh_l0[2 * HIDDEN:3 * HIDDEN] = 20.0
    x = torch.randn(BATCH, 16, FEATURES) * 0.1
    with torch.no_grad():
        _, (_, c) = model(x)
    assert float(c.abs().max()) > 12
    _check(model, (x,), tmp_path, "unclipped")


def test_saved_lstm_reloads_without_torch(tmp_path):
    torch.manual_seed(0)
    model = Recurrent(nn.LSTM, num_layers=2, bidirectional=True).eval()
    x = torch.randn(STEPS, BATCH, FEATURES)
    result = torch2keras.compile(model, (x,), validate="outputs")
    ref = _flat(model(x))
    keras_path = result.save(str(tmp_path / "lstm.keras"))
    [outs] = run_saved({"lstm": (keras_path, [result.keras_inputs([x.numpy()])])}, tmp_path)["lstm"]
    for o, r in zip(result.torch_outputs(outs), ref, strict=True):
        assert max_abs_error(o, r) < ATOL


@pytest.mark.slow  # (tests/tflite/test_deploy.py runs a .keras file on JAX by default)
def test_layers_give_the_same_numbers_on_jax(tmp_path):
    """Other Keras backends run the parent Keras layers (with the torch options applied around them)."""
    pytest.importorskip("jax")
    torch.manual_seed(0)
    kwargs = dict(bidirectional=True)  # time-major, reversed, with states: every option of the layers
    model = AllKinds(**kwargs).eval()
    inputs = _inputs(kwargs, with_states=True)
    result = torch2keras.compile(model, inputs, validate="outputs")
    ref = _flat(model(*inputs))
    keras_path = result.save(str(tmp_path / "model.keras"))
    feed = result.keras_inputs([t.numpy() for t in inputs])
    [outs] = run_saved({"model": (keras_path, [feed])}, tmp_path, backend="jax", forbid_torch=False)["model"]
    for o, r in zip(result.torch_outputs(outs), ref, strict=True):
        assert max_abs_error(o, r) < ATOL


def test_projection_is_refused_with_its_reason():
    model = nn.LSTM(FEATURES, HIDDEN, proj_size=4).eval()
    with pytest.raises(torch2keras.Torch2KerasError, match="proj_size"):
        torch2keras.compile(model, (torch.randn(STEPS, BATCH, FEATURES),))
