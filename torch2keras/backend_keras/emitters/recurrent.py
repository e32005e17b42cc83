"""Emitters of the recurrent family (``lstm``, ``gru``, ``rnn``): one Keras layer per layer and direction.

Each layer and direction of the torch module becomes a ``TorchLSTM`` / ``TorchGRU`` /
``TorchSimpleRNN`` (``backend_keras/rnn_layers.py``) holding torch's weights in Keras's form:

* kernel = w_ih^T, recurrent_kernel = w_hh^T (LSTM gates i, f, g, o are Keras's i, f, c, o);
* LSTM and RNN bias = b_ih + b_hh;
* GRU: torch's gate blocks r, z, n reordered to Keras's z, r, h, and bias = [b_ih; b_hh]
  ([2, 3H], ``reset_after=True``: the reset gate multiplies (h w_hn^T + b_hn), as in torch).

The layers read the sequence in torch's layout (``time_major`` when not ``batch_first``) and the
backward direction runs with ``reverse=True`` (outputs aligned with the inputs), so the only
glue is the concatenation of the two directions and the stacking of the final states into
torch's [layers * directions, batch, hidden].
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import EmissionError, Node, Value
from ..layers import ConstantOutput
from ..rnn_layers import TorchGRU, TorchLSTM, TorchSimpleRNN
from .context import EmitContext, emitter

__all__ = ["emit_recurrent", "keras_recurrent_weights"]


def keras_recurrent_weights(mode: str, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Optional[np.ndarray],
                            b_hh: Optional[np.ndarray]) -> list[np.ndarray]:
    """torch's (w_ih, w_hh, b_ih, b_hh) of one layer and direction as the Keras layer's weights."""
    hidden = w_hh.shape[1]
    if mode == "gru":
        def order(w):  # r, z, n -> z, r, n along the gate axis
            return np.concatenate([w[hidden:2 * hidden], w[:hidden], w[2 * hidden:]], axis=0)

        w_ih, w_hh = order(w_ih), order(w_hh)
        bias = None if b_ih is None else np.stack([order(b_ih), order(b_hh)])
    else:
        bias = None if b_ih is None else b_ih + b_hh
    weights = [w_ih.T, w_hh.T] + ([bias] if bias is not None else [])
    return [np.ascontiguousarray(w, dtype=np.float32) for w in weights]


def _layer(mode: str, hidden: int, nonlinearity: str, **common):
    if mode == "lstm":
        return TorchLSTM(hidden, **common)
    if mode == "gru":
        return TorchGRU(hidden, reset_after=True, **common)
    return TorchSimpleRNN(hidden, activation=nonlinearity, **common)


def _initial_states(ctx: EmitContext, node: Node, states: list[Value], index: int, hidden: int):
    """The initial states of layer-direction ``index`` as Keras tensors, or None when all are zero."""
    if all(ctx.is_const(s) and not np.any(ctx.const(s)[index]) for s in states):
        return None
    out = []
    for k, s in enumerate(states):
        if ctx.is_const(s):
            value = np.ascontiguousarray(ctx.const(s)[index], dtype=np.float32)
            layer = ConstantOutput(value.shape, "float32", name=ctx.name(node, f"_init{k}_{index}"))
            out.append(layer(ctx.any_input))
            layer.set_weights([value])
        else:
            piece = ctx.op_on(node, "slice", [ctx.tensor(s)], f"_init{k}_{index}", axis=0, start=index,
                              end=index + 1, step=1)
            out.append(ctx.op_on(node, "reshape", [piece], f"_init{k}_{index}_2d", shape=[-1, hidden]))
    return out


@emitter("lstm", "gru", "rnn")
def emit_recurrent(ctx: EmitContext, node: Node, x: Value, *rest: Value):
    a = node.attrs
    mode, hidden, dirs = node.op, a["hidden_size"], 2 if a["bidirectional"] else 1
    n_states = 2 if mode == "lstm" else 1
    states, weights = list(rest[:n_states]), rest[n_states:]
    if not all(ctx.is_const(w) for w in weights):
        raise EmissionError(f"{mode} with weights computed at run time is not supported ({node.loc})")
    arrays = [ctx.const(w) for w in weights]
    per = 4 if a["has_biases"] else 2
    sequence = ctx.tensor(x)
    finals: list[list] = []  # per layer and direction: its final states
    for layer_index in range(a["num_layers"]):
        outputs = []
        for d in range(dirs):
            index = layer_index * dirs + d
            w = arrays[index * per:(index + 1) * per]
            biases = (w[2], w[3]) if a["has_biases"] else (None, None)
            layer = _layer(mode, hidden, a.get("nonlinearity", "tanh"), return_sequences=True, return_state=True,
                           time_major=not a["batch_first"], reverse=d == 1, use_bias=a["has_biases"],
                           name=ctx.name(node, f"_l{layer_index}" + ("_reverse" if d else "")))
            init = _initial_states(ctx, node, states, index, hidden)
            seq, *last = layer(sequence, initial_state=init) if init is not None else layer(sequence)
            layer.set_weights(keras_recurrent_weights(mode, w[0], w[1], *biases))
            ctx.layer_nodes[layer.name] = node
            outputs.append(seq)
            finals.append(last)
        sequence = outputs[0] if dirs == 1 else ctx.op_on(node, "concat", outputs, f"_cat_l{layer_index}", axis=-1)
    results = [sequence]
    for k in range(n_states):
        parts = [f[k] for f in finals]
        results.append(ctx.op_on(node, "reshape", parts, f"_state{k}", shape=[1, -1, hidden]) if len(parts) == 1
                       else ctx.op_on(node, "stack", parts, f"_state{k}", axis=0))
    return tuple(results)
