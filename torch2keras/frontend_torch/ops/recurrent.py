"""Recurrent layers kept whole: nn.GRU, nn.LSTM and nn.RNN (tanh and relu) become one IR node each.

The node reads the input as torch holds it (``batch_first`` or time-major), so no permutes are
added. The cells (nn.LSTMCell, nn.GRUCell, nn.RNNCell) are not kept whole: torch.export turns
them into two linear layers and a few elementwise ops, which is already what they compute.
"""

from __future__ import annotations

from ..registry import LoweringContext, lowering
from .common import aten


def _rnn(ctx: LoweringContext, mode: str, x, states, params, has_biases, num_layers, dropout, train, bidirectional,
         batch_first, **extra):
    if train and dropout:
        raise ctx.fail(f"{mode.upper()} dropout in training mode: call model.eval() first")
    if x.type.rank != 3:
        raise ctx.fail(f"{mode.upper()} input of rank {x.type.rank}: expected a batched 3-D sequence")
    dirs = 2 if bidirectional else 1
    per = 4 if has_biases else 2
    if len(params) != num_layers * dirs * per:
        raise ctx.fail(f"{mode.upper()} with {len(params)} weight tensors for {num_layers} layer(s) x {dirs} "
                       f"direction(s): projections (LSTM proj_size) are not supported")
    hidden = params[1].type.shape[-1]  # w_hh: [gates * hidden, hidden]
    return ctx.emit(mode, [x, *states, *params], mode=mode, hidden_size=hidden, num_layers=num_layers,
                    bidirectional=bool(bidirectional), has_biases=bool(has_biases), batch_first=bool(batch_first),
                    **extra)


@lowering(aten.gru.input, keep_whole=True, emits=("gru",))
def lower_gru(ctx, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _rnn(ctx, "gru", x, [hx], params, has_biases, num_layers, dropout, train, bidirectional, batch_first)


@lowering(aten.lstm.input, keep_whole=True, emits=("lstm",))
def lower_lstm(ctx, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _rnn(ctx, "lstm", x, list(hx), params, has_biases, num_layers, dropout, train, bidirectional, batch_first)


@lowering(aten.rnn_tanh.input, keep_whole=True, emits=("rnn",))
def lower_rnn_tanh(ctx, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _rnn(ctx, "rnn", x, [hx], params, has_biases, num_layers, dropout, train, bidirectional, batch_first,
                nonlinearity="tanh")


@lowering(aten.rnn_relu.input, keep_whole=True, emits=("rnn",))
def lower_rnn_relu(ctx, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _rnn(ctx, "rnn", x, [hx], params, has_biases, num_layers, dropout, train, bidirectional, batch_first,
                nonlinearity="relu")
