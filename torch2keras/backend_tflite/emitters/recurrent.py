"""The ``lstm``, ``rnn`` and ``gru`` emitters: one UNIDIRECTIONAL_SEQUENCE_LSTM (Elman RNN:
UNIDIRECTIONAL_SEQUENCE_RNN, tanh or relu fused) per layer and direction; a GRU (no builtin) as
a WHILE loop over its steps per layer and direction: the input projection of every step at
once, then a body running one step (a FULLY_CONNECTED of the state and the gates in elementwise
builtins). An LSTM or GRU the ``unroll_lstm`` / ``unroll_gru`` passes unrolled (``to_tflite``
and the direct export run them where the unrolled file measured faster, ``passes/recurrent.py``)
reaches the writer as linear and elementwise nodes instead: this module writes what is left.

torch's gates i, f, g, o are the op's input, forget, cell and output gates; the weights are split
per gate as they are ([hidden, features] blocks of w_ih and w_hh), the two biases summed. The
backward direction reads the sequence reversed along time (REVERSE_V2) and its outputs are
reversed back; the two directions are concatenated on the features.

State. The op keeps its state in two variable tensors that it overwrites with the final state,
so a state tensor must be written afresh before every invocation (a variable that nothing
writes would carry one call's final state into the next). One SPLIT per ``lstm`` node writes
every layer's and direction's initial h and c from a constant (zeros, or the given constant
states) or from the given state tensors, each call. The final hidden state of a direction is
its output at its last step (a STRIDED_SLICE of the sequence: a real data dependency), except
for ``fc(out[:, -1])`` (``Plan.last_step``): that FULLY_CONNECTED reads the last layer's h
variable itself, so a 2-layer LSTM + linear is 4 ops (states, LSTM x2, FULLY_CONNECTED). The
final cell state, which only the overwritten variable holds, is a PACK of the layers' c
variables after the fused ops, where LiteRT runs that read after them (``plan.state_readable``:
a forward-only LSTM reading a model input); elsewhere it is refused with an error naming it
(the converter path computes it).
"""

from __future__ import annotations

import numpy as np

from ...ir import Node
from ..context import Context, DirectExportError, emitter
from ...ir.ops.shape import XNNPACK_SPLIT_MAX_PIECES
from ..plan import state_readable
from ..schema import fb
from .control import counter_cond
from .shape import strided_slice

__all__: list[str] = []


def _fresh_states(ctx: Context, node: Node, count: int, batch: int, hidden: int) -> list[int]:
    """``count`` new variable [batch, hidden] tensors written by one SPLIT from the initial states
    (h of layer-direction 0, c of 0, h of 1, ...); by UNPACKs where the state variables are read
    after the fused ops (``Plan.last_step``, the final cell state; see ``_unpacked_states``)."""
    h0, c0 = node.inputs[1], node.inputs[2]
    outs = [ctx.sub.tensor([batch, hidden], np.float32, ctx.local_name(f"state{k}"), variable=True)
            for k in range(count)]
    if node.id in ctx.plan.last_step.values() or ctx.graph.num_uses(node.outputs[2]) \
            or ctx.graph.is_output(node.outputs[2]):
        return _unpacked_states(ctx, node, outs)
    options = fb.SplitOptionsT()
    options.numSplits = count
    if ctx.is_const(h0) and ctx.is_const(c0):
        h, c = ctx.const(h0).astype(np.float32), ctx.const(c0).astype(np.float32)
        pieces = [(h if k % 2 == 0 else c)[k // 2] for k in range(count)]
        source = ctx.constant(np.concatenate(pieces, axis=1), ctx.local_name("initial_states"))
        ctx.op("SPLIT", [ctx.ints(1, "state_axis"), source], outs, options)
        return outs
    stacked = ctx.temp([count // 2, 2, batch, hidden], np.float32, "states")
    pack = fb.PackOptionsT()
    pack.valuesCount, pack.axis = 2, 1
    ctx.op("PACK", [ctx.tensor(h0), ctx.tensor(c0)], [stacked], pack)
    rows = ctx.reshape(stacked, [count * batch, hidden], "state_rows")
    ctx.op("SPLIT", [ctx.ints(0, "state_axis"), rows], outs, options)
    return outs


def _unpacked_states(ctx: Context, node: Node, outs: list[int]) -> list[int]:
    """``outs`` (h, c of layer-direction 0, then 1, ...) written by UNPACKs: of one constant, or
    of h0 and of c0. A reader of a state variable after the fused op (``Plan.last_step``) has no
    data dependency on that op, only on the op writing the variable: LiteRT's XNNPACK delegate,
    which takes SPLIT, would run SPLIT and that reader in one partition ahead of the LSTMs. It
    does not take UNPACK, so the state write and the LSTMs run in one partition, in file order,
    before the reader (``plan.state_readable`` says where that holds)."""
    h0, c0 = node.inputs[1], node.inputs[2]
    options = fb.UnpackOptionsT()
    options.num, options.axis = len(outs), 0
    if ctx.is_const(h0) and ctx.is_const(c0):
        h, c = ctx.const(h0).astype(np.float32), ctx.const(c0).astype(np.float32)
        stacked = np.stack([(h if k % 2 == 0 else c)[k // 2] for k in range(len(outs))])
        ctx.op("UNPACK", [ctx.constant(stacked, ctx.local_name("initial_states"))], outs, options)
        return outs
    options.num = len(outs) // 2
    ctx.op("UNPACK", [ctx.cast(ctx.tensor(h0), np.float32, "h0")], outs[0::2], options)
    options = fb.UnpackOptionsT()
    options.num, options.axis = len(outs) // 2, 0
    ctx.op("UNPACK", [ctx.cast(ctx.tensor(c0), np.float32, "c0")], outs[1::2], options)
    return outs


def _fresh_hidden(ctx: Context, node: Node, count: int, batch: int, hidden: int) -> list[int]:
    """An Elman RNN's ``count`` variable [batch, hidden] states written by one SPLIT from h0 (as
    the LSTM's, without cell states)."""
    h0 = node.inputs[1]
    outs = [ctx.sub.tensor([batch, hidden], np.float32, ctx.local_name(f"state{k}"), variable=True)
            for k in range(count)]
    options = fb.SplitOptionsT()
    options.numSplits = count
    if ctx.is_const(h0):
        source = ctx.constant(np.concatenate(list(ctx.const(h0).astype(np.float32)), axis=1),
                              ctx.local_name("initial_states"))
        ctx.op("SPLIT", [ctx.ints(1, "state_axis"), source], outs, options)
        return outs
    rows = ctx.reshape(ctx.tensor(h0), [count * batch, hidden], "state_rows")
    ctx.op("SPLIT", [ctx.ints(0, "state_axis"), rows], outs, options)
    return outs


def _rnn_direction(ctx: Context, node: Node, seq: int, weights: list[np.ndarray], state: int, reverse: bool,
                   name: str) -> int:
    """One Elman layer-direction: UNIDIRECTIONAL_SEQUENCE_RNN, its hidden states aligned with the input."""
    a = node.attrs
    hidden = a["hidden_size"]
    time_axis = 1 if a["batch_first"] else 0
    if reverse:
        seq = _reverse(ctx, seq, time_axis, f"{name}/reversed_input")
    bias = weights[2] + weights[3] if a["has_biases"] else np.zeros(hidden, np.float32)
    shape = list(ctx.shape(seq))
    shape[-1] = hidden
    out = ctx.temp(shape, np.float32, f"{name}/sequence")
    options = fb.SequenceRNNOptionsT()
    options.timeMajor = not a["batch_first"]
    options.fusedActivationFunction = (fb.ActivationFunctionType.TANH if a["nonlinearity"] == "tanh"
                                       else fb.ActivationFunctionType.RELU)
    w_ih, w_hh = (ctx.constant(np.ascontiguousarray(w), ctx.local_name(f"{name}/{k}"), weight=True)
                  for k, w in (("w_ih", weights[0]), ("w_hh", weights[1])))
    ctx.op("UNIDIRECTIONAL_SEQUENCE_RNN", [seq, w_ih, w_hh, ctx.constant(bias, ctx.local_name(f"{name}/bias")), state],
           [out], options)
    return _reverse(ctx, out, time_axis, f"{name}/sequence_aligned") if reverse else out


@emitter("rnn")
def emit_rnn(ctx: Context, node: Node) -> tuple:
    a = node.attrs
    x = node.inputs[0]
    if x.type.dtype != "f32" or any(v.type.layout is not None for v in node.inputs[:2]):
        raise DirectExportError(node, f"on {x.type} (float32 in PyTorch's order only) is not supported")
    weights = node.inputs[2:]
    if not all(ctx.is_const(w) for w in weights):
        raise DirectExportError(node, "with weights computed by the model is not supported")
    arrays = [ctx.const(w).astype(np.float32) for w in weights]
    dirs, layers, hidden = 2 if a["bidirectional"] else 1, a["num_layers"], a["hidden_size"]
    per = 4 if a["has_biases"] else 2
    states = _fresh_hidden(ctx, node, layers * dirs, x.type.shape[0 if a["batch_first"] else 1], hidden)
    seq, finals = ctx.tensor(x), []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            index = layer * dirs + d
            name = f"l{layer}" + ("_reverse" if d else "")
            outs.append(_rnn_direction(ctx, node, seq, arrays[index * per:(index + 1) * per], states[index], d == 1,
                                       name))
            finals.append((outs[-1], d == 1))
        seq = outs[0] if dirs == 1 else _concat(ctx, outs, len(ctx.shape(outs[0])) - 1, f"l{layer}_directions")
    h_n = _final_hidden(ctx, node, finals) if ctx.graph.num_uses(node.outputs[1]) or \
        ctx.graph.is_output(node.outputs[1]) else ctx.result(node, 1)
    return seq, h_n


def _gate_blocks(ctx: Context, w: np.ndarray, name: str) -> list[int]:
    """The i, f, g, o blocks of a stacked [4 * hidden, ...] weight or bias, as constants."""
    hidden = w.shape[0] // 4
    return [ctx.constant(np.ascontiguousarray(w[k * hidden:(k + 1) * hidden]), ctx.local_name(f"{name}/gate{k}"),
                         weight=True)
            for k in range(4)]


def _reverse(ctx: Context, x: int, axis: int, suffix: str) -> int:
    out = ctx.temp(ctx.shape(x), np.float32, suffix)
    ctx.op("REVERSE_V2", [x, ctx.ints([axis], "time_axis")], [out])
    return out


def _direction(ctx: Context, node: Node, seq: int, weights: list[np.ndarray], states: tuple[int, int],
               reverse: bool, name: str) -> int:
    """One layer-direction: the sequence of its hidden states, aligned with the input."""
    a = node.attrs
    hidden = a["hidden_size"]
    time_axis = 1 if a["batch_first"] else 0
    if reverse:
        seq = _reverse(ctx, seq, time_axis, f"{name}/reversed_input")
    w_ih, w_hh = weights[0], weights[1]
    bias = weights[2] + weights[3] if a["has_biases"] else np.zeros(4 * hidden, np.float32)
    shape = list(ctx.shape(seq))
    shape[-1] = hidden
    out = ctx.temp(shape, np.float32, f"{name}/sequence")
    options = fb.UnidirectionalSequenceLSTMOptionsT()
    options.fusedActivationFunction = fb.ActivationFunctionType.TANH
    options.timeMajor = not a["batch_first"]
    inputs = [seq, *_gate_blocks(ctx, w_ih, f"{name}/w_ih"), *_gate_blocks(ctx, w_hh, f"{name}/w_hh"),
              -1, -1, -1, *_gate_blocks(ctx, bias, f"{name}/bias"), -1, -1, states[0], states[1], -1, -1, -1, -1]
    ctx.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [out], options)
    return _reverse(ctx, out, time_axis, f"{name}/sequence_aligned") if reverse else out


@emitter("lstm")
def emit_lstm(ctx: Context, node: Node) -> tuple:
    a = node.attrs
    x = node.inputs[0]
    if x.type.dtype != "f32" or any(v.type.layout is not None for v in node.inputs[:3]):
        raise DirectExportError(node, f"on {x.type} (float32 in PyTorch's order only) is not supported")
    cell_read = bool(ctx.graph.num_uses(node.outputs[2]) or ctx.graph.is_output(node.outputs[2]))
    if cell_read and not state_readable(node):
        raise DirectExportError(node, "whose final cell state is read is supported only for a forward-only LSTM "
                                      "reading a model input from constant or input states (the fused op keeps "
                                      "it in a variable that only such files read after the op in LiteRT); "
                                      "write it unrolled (compile(..., extra_passes=[\"unroll_lstm\"]), or "
                                      "to_tflite(..., lstm=\"unroll\")), or use backend=\"converter\"")
    weights = node.inputs[3:]
    if not all(ctx.is_const(w) for w in weights):
        raise DirectExportError(node, "with weights computed by the model is not supported")
    arrays = [ctx.const(w).astype(np.float32) for w in weights]
    dirs, layers, hidden = 2 if a["bidirectional"] else 1, a["num_layers"], a["hidden_size"]
    per = 4 if a["has_biases"] else 2
    batch = x.type.shape[0 if a["batch_first"] else 1]
    states = _fresh_states(ctx, node, 2 * layers * dirs, batch, hidden)
    seq, finals = ctx.tensor(x), []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            index = layer * dirs + d
            name = f"l{layer}" + ("_reverse" if d else "")
            outs.append(_direction(ctx, node, seq, arrays[index * per:(index + 1) * per],
                                   (states[2 * index], states[2 * index + 1]), d == 1, name))
            finals.append((outs[-1], d == 1))
        seq = outs[0] if dirs == 1 else _concat(ctx, outs, -1 + len(ctx.shape(outs[0])), f"l{layer}_directions")
    for piece, lstm in ctx.plan.last_step.items():  # out[:, -1] read by a linear: the last layer's h state
        if lstm == node.id:
            ctx.tensors[ctx.graph.node(piece).output.id] = states[2 * (layers - 1)]
    h_n = _final_hidden(ctx, node, finals) if ctx.graph.num_uses(node.outputs[1]) or \
        ctx.graph.is_output(node.outputs[1]) else ctx.result(node, 1)
    c_n = ctx.result(node, 2)
    if cell_read:  # the c variables after the fused ops: each layer's final cell state
        pack = fb.PackOptionsT()
        pack.valuesCount, pack.axis = layers, 0
        ctx.op("PACK", states[1::2], [c_n], pack)
    return seq, h_n, c_n


def _concat(ctx: Context, parts: list[int], axis: int, suffix: str) -> int:
    shape = list(ctx.shape(parts[0]))
    shape[axis] = sum(ctx.shape(p)[axis] for p in parts)
    out = ctx.temp(shape, np.float32, suffix)
    options = fb.ConcatenationOptionsT()
    options.axis = axis
    ctx.op("CONCATENATION", parts, [out], options)
    return out


def _final_hidden(ctx: Context, node: Node, finals: list[tuple[int, bool]]) -> int:
    """torch's h_n [layers * directions, batch, hidden]: each direction's output at its last
    processed step (the first one for the backward direction), stacked."""
    time_axis = 1 if node.attrs["batch_first"] else 0
    pieces = []
    for k, (seq, reverse) in enumerate(finals):
        shape = list(ctx.shape(seq))
        begin, end = [0, 0, 0], list(shape)
        begin[time_axis] = 0 if reverse else shape[time_axis] - 1
        end[time_axis] = begin[time_axis] + 1
        step_shape = list(shape)
        step_shape[time_axis] = 1
        step = ctx.temp(step_shape, np.float32, f"h_n{k}")
        ctx.op("STRIDED_SLICE", [seq, ctx.ints(begin, "h_begin"), ctx.ints(end, "h_end"),
                                 ctx.ints([1, 1, 1], "h_strides")], [step], fb.StridedSliceOptionsT())
        pieces.append(ctx.reshape(step, [1, shape[1 - time_axis], shape[2]], f"h_n{k}_rows"))
    out = ctx.result(node, 1)
    if len(pieces) == 1:
        return ctx.reshape(pieces[0], ctx.shape(out), out=out) if ctx.shape(pieces[0]) != ctx.shape(out) \
            else pieces[0]
    options = fb.ConcatenationOptionsT()
    options.axis = 0
    ctx.op("CONCATENATION", pieces, [out], options)
    return out


def _fc(ctx: Context, x: int, weight: np.ndarray, bias: np.ndarray, name: str) -> int:
    """x [rows, in] @ weight.T + bias (FULLY_CONNECTED), a new [rows, out] tensor."""
    out = ctx.temp([ctx.shape(x)[0], weight.shape[0]], np.float32, name)
    options = fb.FullyConnectedOptionsT()
    ctx.op("FULLY_CONNECTED", [x, ctx.constant(np.ascontiguousarray(weight), ctx.local_name(f"{name}/w"), weight=True),
                               ctx.constant(bias, ctx.local_name(f"{name}/b"), weight=True)], [out], options)
    return out


def _pieces(ctx: Context, x: int, axis: int, count: int, name: str) -> list[int]:
    """x split into ``count`` equal pieces along ``axis``: one SPLIT, or a STRIDED_SLICE each
    beyond ``XNNPACK_SPLIT_MAX_PIECES`` (XNNPACK takes those, not such a SPLIT)."""
    shape = list(ctx.shape(x))
    shape[axis] //= count
    outs = [ctx.temp(shape, np.float32, f"{name}{k}") for k in range(count)]
    if count > XNNPACK_SPLIT_MAX_PIECES:
        width = shape[axis]
        return [strided_slice(ctx, x, axis, k * width, (k + 1) * width, 1, out) for k, out in enumerate(outs)]
    options = fb.SplitOptionsT()
    options.numSplits = count
    ctx.op("SPLIT", [ctx.ints(axis, f"{name}_axis"), x], outs, options)
    return outs


def _elementwise(ctx: Context, op: str, inputs: list[int], name: str) -> int:
    out = ctx.temp(ctx.shape(inputs[0]), np.float32, name)
    ctx.op(op, inputs, [out], fb.AddOptionsT() if op == "ADD" else fb.MulOptionsT() if op == "MUL" else
           fb.SubOptionsT() if op == "SUB" else None)
    return out


def _gru_step(ctx: Context, gi: int, h: int, w_hh: np.ndarray, b_hh: np.ndarray, name: str) -> int:
    """h' = (1 - z) n + z h = n + z (h - n); r, z = sigmoid(gi + gh), n = tanh(gi_n + r gh_n)."""
    gh = _fc(ctx, h, w_hh, b_hh, f"{name}/gh")
    (i_r, i_z, i_n), (h_r, h_z, h_n) = _pieces(ctx, gi, 1, 3, f"{name}/gi"), _pieces(ctx, gh, 1, 3, f"{name}/gh_")
    r = _elementwise(ctx, "LOGISTIC", [_elementwise(ctx, "ADD", [i_r, h_r], f"{name}/r_in")], f"{name}/r")
    z = _elementwise(ctx, "LOGISTIC", [_elementwise(ctx, "ADD", [i_z, h_z], f"{name}/z_in")], f"{name}/z")
    n = _elementwise(ctx, "TANH", [_elementwise(ctx, "ADD", [i_n, _elementwise(ctx, "MUL", [r, h_n], f"{name}/rh")],
                                                f"{name}/n_in")], f"{name}/n")
    change = _elementwise(ctx, "MUL", [z, _elementwise(ctx, "SUB", [h, n], f"{name}/h_minus_n")], f"{name}/zh")
    return _elementwise(ctx, "ADD", [n, change], f"{name}/h")


def _gru_projection(ctx: Context, node: Node, seq: int, weights: list[np.ndarray], name: str) -> tuple:
    """The input projection of every step of one GRU layer-direction, one FULLY_CONNECTED over
    all rows: (the sequence's shape, its time axis, the hidden size, the projections shaped as the
    sequence with 3 * hidden features, the recurrent bias)."""
    a = node.attrs
    hidden, time_axis = a["hidden_size"], 1 if a["batch_first"] else 0
    shape = list(ctx.shape(seq))
    zeros = np.zeros(3 * hidden, np.float32)
    b_ih, b_hh = (weights[2], weights[3]) if a["has_biases"] else (zeros, zeros)
    rows = ctx.reshape(seq, [shape[0] * shape[1], shape[2]], f"{name}/rows")
    projected = _fc(ctx, rows, weights[0], b_ih, f"{name}/gi_all")
    return shape, time_axis, hidden, ctx.reshape(projected, [*shape[:2], 3 * hidden], f"{name}/gi_steps"), b_hh


def _gru_loop(ctx: Context, node: Node, seq: int, weights: list[np.ndarray], h: int, reverse: bool,
              name: str) -> tuple[int, int]:
    """One GRU layer-direction as a loop: the input projection of every step at once, then a
    WHILE whose body GATHERs step t's projection, runs the step and writes h into the sequence
    at t (loop variables: counter, h, sequence, projections)."""
    shape, time_axis, hidden, gi, b_hh = _gru_projection(ctx, node, seq, weights, name)
    steps, batch = shape[time_axis], shape[1 - time_axis]
    out_shape = [*shape[:2], hidden]
    loop_vars = [ctx.ints(0, f"{name}/counter"), h, ctx.constant(np.zeros(out_shape, np.float32),
                                                                   ctx.local_name(f"{name}/sequence0")), gi]
    scope = f"{ctx.scope(node)}/{name}"
    cond = counter_cond(ctx, steps, f"{scope}/cond", loop_vars[1:])
    body, index = ctx.subgraphs.open(ctx, f"{scope}/body")
    body.node = node
    k, state, sequence, steps_in = [body.sub.tensor(ctx.shape(t), ctx.dtype(t), f"{scope}/body/v{j}")
                                    for j, t in enumerate(loop_vars)]
    t = k
    if reverse:  # t = steps - 1 - k
        t = body.sub.tensor([], np.int32, f"{scope}/body/t")
        body.op("SUB", [body.constant(np.asarray(steps - 1, np.int32), f"{scope}/body/last"), k], [t], fb.SubOptionsT())
    gather = fb.GatherOptionsT()
    gather.axis = time_axis
    gi_t = body.sub.tensor([batch, 3 * hidden], np.float32, f"{scope}/body/gi_t")
    body.op("GATHER", [steps_in, t], [gi_t], gather)
    new_h = _gru_step(body, gi_t, state, weights[1], b_hh, "step")
    row = body.reshape(new_h, [batch, 1, hidden] if time_axis == 1 else [1, batch, hidden], "h_row")
    start = body.sub.tensor([3], np.int32, f"{scope}/body/start")
    body.op("PAD", [body.reshape(t, [1], "t_vector"),
                    body.constant(np.asarray([[time_axis, 2 - time_axis]], np.int32), f"{scope}/body/pad")],
            [start], fb.PadOptionsT())
    written = body.sub.tensor(out_shape, np.float32, f"{scope}/body/sequence")
    body.op("DYNAMIC_UPDATE_SLICE", [sequence, row, start], [written])
    next_k = body.sub.tensor([], np.int32, f"{scope}/body/next")
    body.op("ADD", [k, body.constant(np.asarray(1, np.int32), f"{scope}/body/one")], [next_k], fb.AddOptionsT())
    ctx.subgraphs.close(body, [k, state, sequence, steps_in], [next_k, new_h, written, steps_in])
    options = fb.WhileOptionsT()
    options.condSubgraphIndex, options.bodySubgraphIndex = cond, index
    outs = [ctx.temp(ctx.shape(v), ctx.dtype(v), f"{name}/loop{j}") for j, v in enumerate(loop_vars)]
    ctx.op("WHILE", loop_vars, outs, options)
    return outs[2], outs[1]


@emitter("gru")
def emit_gru(ctx: Context, node: Node) -> tuple:
    a = node.attrs
    x, h0 = node.inputs[0], node.inputs[1]
    if x.type.dtype != "f32" or any(v.type.layout is not None for v in node.inputs[:2]):
        raise DirectExportError(node, f"on {x.type} (float32 in PyTorch's order only) is not supported")
    weights = node.inputs[2:]
    if not all(ctx.is_const(w) for w in weights):
        raise DirectExportError(node, "with weights computed by the model is not supported")
    arrays = [ctx.const(w).astype(np.float32) for w in weights]
    dirs, layers = 2 if a["bidirectional"] else 1, a["num_layers"]
    per = 4 if a["has_biases"] else 2
    initial = _pieces(ctx, ctx.cast(ctx.tensor(h0), np.float32), 0, layers * dirs, "h0")
    seq, finals = ctx.tensor(x), []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            index = layer * dirs + d
            h = ctx.reshape(initial[index], ctx.shape(initial[index])[1:], f"h0_{index}")
            out, final = _gru_loop(ctx, node, seq, arrays[index * per:(index + 1) * per], h, d == 1,
                                   f"l{layer}" + ("_reverse" if d else ""))
            outs.append(out)
            finals.append(ctx.reshape(final, [1, *ctx.shape(final)], f"h_n{index}"))
        seq = outs[0] if dirs == 1 else _concat(ctx, outs, len(ctx.shape(outs[0])) - 1, f"l{layer}_directions")
    h_n = ctx.result(node, 1)
    if len(finals) == 1:
        return seq, ctx.reshape(finals[0], ctx.shape(h_n), out=h_n)
    options = fb.ConcatenationOptionsT()
    options.axis = 0
    ctx.op("CONCATENATION", finals, [h_n], options)
    return seq, h_n
