"""Recurrent layers with torch's semantics: GRU, LSTM and the Elman RNN (multi-layer, bidirectional)."""

from __future__ import annotations

import numpy as np

from ..types import TensorType
from .schema import define

FAMILY = "recurrent"


def _rnn_type(types, a):
    x, h0 = types[0], types[1]
    dirs = 2 if a["bidirectional"] else 1
    out = TensorType([*x.shape[:2], dirs * a["hidden_size"]], x.dtype)
    state = TensorType(h0.shape, x.dtype)
    return [out, state] + ([state] if a["mode"] == "lstm" else [])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cell(mode: str, x, h, c, w_ih, w_hh, b_ih, b_hh, nonlinearity: str):
    """One step of one layer and direction: (new h, new c)."""
    gi = x @ w_ih.T + (b_ih if b_ih is not None else 0.0)
    gh = h @ w_hh.T + (b_hh if b_hh is not None else 0.0)
    if mode == "gru":
        ir, iz, inn = np.split(gi, 3, axis=-1)
        hr, hz, hn = np.split(gh, 3, axis=-1)
        r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
        n = np.tanh(inn + r * hn)
        return (1 - z) * n + z * h, c
    if mode == "lstm":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c
    pre = gi + gh
    return (np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0.0)), c


def _recurrent(x, h0, *rest, mode, hidden_size, num_layers, bidirectional, has_biases, batch_first,
               nonlinearity="tanh"):
    """Reference of gru / lstm / rnn (see their docs)."""
    c0, weights = (rest[0], rest[1:]) if mode == "lstm" else (None, rest)
    seq = x.astype(np.float64) if batch_first else np.swapaxes(x, 0, 1).astype(np.float64)
    dirs, per = (2 if bidirectional else 1), (4 if has_biases else 2)
    h_out, c_out = [], []
    for layer in range(num_layers):
        outputs = []
        for d in range(dirs):
            k = layer * dirs + d
            w = list(weights[k * per:(k + 1) * per]) + [None, None]
            h, c = h0[k].astype(np.float64), (c0[k].astype(np.float64) if c0 is not None else None)
            steps = range(seq.shape[1])[::-1] if d == 1 else range(seq.shape[1])
            ys = [None] * seq.shape[1]
            for t in steps:
                h, c = _cell(mode, seq[:, t], h, c, w[0], w[1], w[2], w[3], nonlinearity)
                ys[t] = h
            outputs.append(np.stack(ys, axis=1))
            h_out.append(h)
            c_out.append(c)
        seq = np.concatenate(outputs, axis=-1)
    out = seq if batch_first else np.swapaxes(seq, 0, 1)
    results = [out.astype(x.dtype), np.stack(h_out).astype(x.dtype)]
    return tuple(results + ([np.stack(c_out).astype(x.dtype)] if mode == "lstm" else []))


_RNN = {"mode": ("str",), "hidden_size": ("int",), "num_layers": ("int", 1), "bidirectional": ("bool", False),
        "has_biases": ("bool", True), "batch_first": ("bool", True)}
_RNN_DOC = ("; x is [batch, time, features] (batch_first) or [time, batch, features]; states [layers * directions, "
            "batch, hidden]; weights per layer and direction: w_ih, w_hh[, b_ih, b_hh] in torch's form")
_LOOP_NOTE = {"all": {"WHILE": "a loop (GRU/LSTM layer or a scan) stays on the CPU; for short fixed sequences "
                               "unroll it"}}

define("gru", FAMILY, ["x", "h0", "*weights"], _rnn_type, "fixed", _RNN, num_outputs=2, reference=_recurrent,
       tflite=("WHILE", "FULLY_CONNECTED", "LOGISTIC", "TANH"), delegate_notes=_LOOP_NOTE, doc="torch's GRU (gates r, z, n)" + _RNN_DOC)
_LSTM_NOTE = {"all": {"UNIDIRECTIONAL_SEQUENCE_LSTM": "the fused LSTM runs on LiteRT's own kernel; unrolled (up to 64 "
                                                      "steps: to_tflite(..., lstm=\"unroll\"), or compile(..., "
                                                      "extra_passes=[\"unroll_lstm\"])) every delegate takes it"}}
define("lstm", FAMILY, ["x", "h0", "c0", "*weights"], _rnn_type, "fixed", _RNN, num_outputs=3, reference=_recurrent,
       tflite=("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM"), delegate_notes=_LSTM_NOTE,
       doc="torch's LSTM (gates i, f, g, o)" + _RNN_DOC)
define("rnn", FAMILY, ["x", "h0", "*weights"], _rnn_type, "fixed", {**_RNN, "nonlinearity": ("str", "tanh")},
       num_outputs=2, reference=_recurrent, tflite=("WHILE", "UNIDIRECTIONAL_SEQUENCE_RNN"), delegate_notes=_LOOP_NOTE,
       doc="torch's Elman RNN, h' = nonlinearity(x w_ih^T + b_ih + h w_hh^T + b_hh) (tanh or relu)" + _RNN_DOC)
