"""Recurrent layers kept whole: GRU and LSTM (they become Keras GRU/LSTM layers)."""

from __future__ import annotations

from ..registry import LoweringContext, lowering
from ._util import aten
from .shape import permute


def _rnn(ctx: LoweringContext, mode, x, states, params, has_biases, num_layers, dropout, train, bidirectional,
         batch_first):
    if train and dropout:
        raise ctx.fail("recurrent dropout in training mode: call model.eval() first")
    if not batch_first:
        x = permute(ctx, x, [1, 0, 2])
    hidden = states[0].type.shape[-1]
    attrs = dict(mode=mode, hidden_size=hidden, num_layers=num_layers, bidirectional=bool(bidirectional),
                 has_biases=bool(has_biases))
    outs = ctx.emit(mode, [x, *states, *params], **attrs)
    if not batch_first:
        outs = (permute(ctx, outs[0], [1, 0, 2]), *outs[1:])
    return outs


@lowering(aten.gru.input)
def lower_gru(ctx, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _rnn(ctx, "gru", x, [hx], params, has_biases, num_layers, dropout, train, bidirectional, batch_first)


@lowering(aten.lstm.input)
def lower_lstm(ctx, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _rnn(ctx, "lstm", x, list(hx), params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
