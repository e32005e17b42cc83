"""Keras recurrent layers with PyTorch's semantics and a TFLite-friendly TensorFlow path (no torch here).

``TorchLSTM``, ``TorchGRU`` and ``TorchSimpleRNN`` subclass ``keras.layers.LSTM`` / ``GRU`` /
``SimpleRNN``: same weights (``kernel`` [in, gates * units], ``recurrent_kernel``, ``bias``; LSTM
gates i, f, c, o; GRU z, r, h with ``reset_after=True``, bias [2, 3 * units]) and same math. They
add what one direction of one torch layer needs:

* ``time_major``: inputs and sequence outputs are [time, batch, features] (torch's default);
* ``reverse``: run from the last step to the first, with the outputs kept aligned with the
  inputs (torch's backward direction; Keras's ``go_backwards`` returns them reversed).

On the TensorFlow backend the layers run their own code, written for the TFLite converter:

* LSTM: a ``tf.function`` carrying ``api_implements="lstm_<id>"`` and ``time_major`` with the
  signature of Keras 2's ``standard_lstm`` -- (inputs, init_h, init_c, kernel, recurrent_kernel,
  bias) -> (last_output, outputs, h, c, runtime) -- which the converter replaces with one fused
  ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (tensorflow/compiler/mlir/lite/transforms/
  prepare_composite_functions_tf.cc). Two properties of that op shape the code around it: it
  writes its final state back into its state inputs (so they are always fresh tensors that
  nothing else reads, never constants, which would make the model stateful across invocations),
  and callers may only read its outputs (so the final cell state is computed from the outputs,
  see ``_lstm_final_cell``). :func:`unclip_lstm_cells` removes the converter's cell clipping.
* GRU and SimpleRNN: one loop (a TFLite ``WHILE``) that reads and writes steps in place in the
  given layout, with the input projection hoisted out of the loop; no transposes.

Other backends run the parent Keras implementation (with transposes and flips for the options).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from typing import Any, Callable, Optional, Sequence

import keras
from keras import ops

__all__ = ["TorchLSTM", "TorchGRU", "TorchSimpleRNN", "RECURRENT_LAYERS", "unclip_lstm_cells"]


def _on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


class _TorchRecurrent:
    """What the three layers share: the torch options, the shapes, and the choice of path."""

    time_major: bool
    reverse: bool

    def _init_torch_options(self, time_major: bool, reverse: bool) -> None:
        if self.go_backwards:
            raise ValueError(f"{type(self).__name__}: use reverse=True (outputs aligned with the inputs), "
                             "not go_backwards")
        self.time_major = bool(time_major)
        self.reverse = bool(reverse)

    def _batch_major(self, shape) -> tuple:
        shape = tuple(shape)
        return (shape[1], shape[0], *shape[2:]) if self.time_major else shape

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(self._batch_major(sequences_shape), initial_state_shape)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shapes = super().compute_output_shape(self._batch_major(sequences_shape), initial_state_shape)
        if not (self.time_major and self.return_sequences):
            return shapes
        if self.return_state:
            return (self._batch_major(shapes[0]), *shapes[1:])
        return self._batch_major(shapes)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if not (_on_tensorflow() and self._tf_path_applies(mask, training)):
            return self._parent_call(sequences, initial_state, mask, training)
        if initial_state is not None and not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        last, outputs, states = self._tf_forward(sequences, initial_state)
        output = outputs if self.return_sequences else last
        return (output, *states) if self.return_state else output

    def _tf_path_applies(self, mask, training) -> bool:
        dropout = training and (self.cell.dropout or self.cell.recurrent_dropout)
        return mask is None and not self.stateful and not self.unroll and not dropout

    def _parent_call(self, sequences, initial_state, mask, training):
        """The Keras implementation, with the inputs turned batch-major and into processing order."""
        x = ops.transpose(sequences, (1, 0, 2)) if self.time_major else sequences
        if self.reverse:
            x = ops.flip(x, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)
        result = super().call(x, initial_state=initial_state, mask=mask, training=training)
        if not self.return_sequences:
            return result
        seq = result[0] if self.return_state else result
        if self.reverse:
            seq = ops.flip(seq, axis=1)
        if self.time_major:
            seq = ops.transpose(seq, (1, 0, 2))
        return (seq, *result[1:]) if self.return_state else seq

    def _weights(self, bias_shape: Sequence[int]):
        """(kernel, recurrent_kernel, bias) as TensorFlow tensors (zeros for a layer without bias)."""
        import tensorflow as tf

        cell = self.cell
        bias = cell.bias if cell.use_bias else tf.zeros(tuple(bias_shape), cell.compute_dtype)
        return [tf.convert_to_tensor(w) for w in (cell.kernel, cell.recurrent_kernel, bias)]

    def _tf_forward(self, x, initial_state):
        """(last output, outputs aligned with ``x``, final states) on TensorFlow; each layer has its own."""
        raise NotImplementedError

    def get_config(self) -> dict:  # the Keras layer's config plus the torch options
        return {**super().get_config(), "time_major": self.time_major, "reverse": self.reverse}


# ---------------------------------------------------------------------------------------------- the loop


def _time_axis(time_major: bool) -> int:
    return 0 if time_major else 1


def _step_input(projected, t, time_major: bool):
    """projected[t] (time-major) or projected[:, t] (batch-major), as [batch, gates]: one gather."""
    import tensorflow as tf

    return tf.gather(projected, t, axis=_time_axis(time_major))


def _scan(projected, states: list, step: Callable, units: int, time_major: bool, backwards: bool):
    """Run ``step(p_t, *states) -> (h, new_states)`` over the time axis of ``projected``.

    Iteration ``i`` reads step ``t = i`` (``T-1-i`` when ``backwards``) and writes ``h`` at ``t``,
    so the outputs stay aligned with the inputs. Returns (outputs, final states). The loop
    updates the output buffer in place: no stacking, no transposes.
    """
    axis = _time_axis(time_major)
    steps, batch = _dim(projected, axis), _dim(projected, 1 - axis)
    out_shape = (steps, batch, units) if time_major else (batch, steps, units)
    out = ops.zeros(out_shape, projected.dtype)

    def body(i, carry):
        *state, out = carry
        t = steps - 1 - i if backwards else i
        h, state = step(_step_input(projected, t, time_major), *state)
        piece = ops.expand_dims(h, axis)
        out = ops.slice_update(out, [t, 0, 0] if time_major else [0, t, 0], piece)
        return (*state, out)

    *final, out = ops.fori_loop(0, steps, body, (*states, out))
    return out, final


def _last_step(outputs, time_major: bool):
    return outputs[-1] if time_major else outputs[:, -1]


def _dim(x, axis: int):
    """x's size along ``axis``: static when known, else a tensor."""
    return x.shape[axis] if x.shape[axis] is not None else ops.shape(x)[axis]


def _zeros_state(x, units: int, time_major: bool):
    return ops.zeros((_dim(x, 1 if time_major else 0), units), x.dtype)


# ---------------------------------------------------------------------------------------------- LSTM


def _fresh_lstm_states(x, states: Optional[list], units: int, time_major: bool, salt: float):
    """Two new [batch, units] tensors holding the initial h and c, computed from ``x`` at run time.

    The fused TFLite op overwrites its state inputs with the final state: a constant there (what
    the converter makes of zeros) would carry one invocation's state into the next, and a tensor
    some other op reads would be clobbered. ``min(relu(x[first step, :, :1] * salt), 0)`` is zero
    for every input but NaN, and no rewrite of the converter's proves it (``x * 0`` it folds to a
    constant); ``salt`` (a number of the layer's own) keeps two layers reading one input from
    sharing the result, and the split gives each state its own buffer. Four ops (the multiply
    and the relu fuse).
    """
    import tensorflow as tf

    seed = x[0, :, :1] if time_major else x[:, 0, :1]
    fresh = tf.minimum(tf.nn.relu(seed * salt), tf.zeros((1, 2 * units), x.dtype))
    if states is not None:
        fresh = fresh + tf.concat(list(states), axis=1)
    return tf.split(fresh, 2, axis=1)


def _standard_lstm(time_major: bool) -> Callable:
    """The composite function's body: a forward LSTM (Keras gate order i, f, c, o)."""

    def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        import tensorflow as tf

        units = recurrent_kernel.shape[0]
        projected = ops.matmul(inputs, kernel) + bias

        def step(p, h, c):
            z = p + ops.matmul(h, recurrent_kernel)
            i, f, g, o = ops.split(z, 4, axis=-1)
            c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
            h = ops.sigmoid(o) * ops.tanh(c)
            return h, [h, c]

        outputs, (h, c) = _scan(projected, [init_h, init_c], step, units, time_major, False)
        runtime = tf.constant(0.0, tf.float32, name="runtime")  # Keras 2's runtime slot: a float scalar
        return _last_step(outputs, time_major), outputs, h, c, runtime

    return standard_lstm


class _FusedLSTMFunction:
    """Holds the layer's ``tf.function`` outside Keras's and TF's attribute tracking."""

    def __init__(self, time_major: bool) -> None:
        import tensorflow as tf

        self.fn = tf.function(_standard_lstm(time_major), autograph=False, reduce_retracing=False,
                              experimental_attributes={
                                  "api_implements": f"lstm_{uuid.uuid4().hex}",
                                  "api_preferred_device": "CPU",
                                  "time_major": bool(time_major),
                                  "go_backwards": False})


def _lstm_final_cell(x, outputs, h0, c0, kernel, recurrent_kernel, bias, time_major: bool):
    """The final cell state, from the inputs and the h outputs (both in processing order).

    With every h known, all gates are known: i, f, g at step t follow from x_t and h_{t-1}. The
    cell state is then the linear recurrence c_t = f_t c_{t-1} + i_t g_t, whose last value is
    sum_t i_t g_t prod_{s>t} f_s + c_0 prod_s f_s; the products are exp of reverse exclusive
    cumulative sums of log f (no subtraction, so no cancellation; a zero f gives log -inf and
    a zero weight). No loop: a few ops, pruned when the final cell state is unused.
    """
    import tensorflow as tf

    axis = _time_axis(time_major)
    units = recurrent_kernel.shape[0]
    if h0 is None:
        h0 = tf.zeros([_dim(outputs, 1 - axis), units], outputs.dtype)
    earlier = outputs[:-1] if time_major else outputs[:, :-1]
    previous = tf.concat([tf.expand_dims(h0, axis), earlier], axis=axis)  # h_{t-1} for every t
    gates = ops.matmul(x, kernel[:, :3 * units]) + ops.matmul(previous, recurrent_kernel[:, :3 * units]) \
        + bias[:3 * units]
    i, f, g = tf.split(gates, 3, axis=-1)
    log_f = tf.math.log(tf.sigmoid(f))
    decay = tf.exp(tf.math.cumsum(log_f, axis=axis, exclusive=True, reverse=True))
    c = tf.reduce_sum(tf.sigmoid(i) * tf.tanh(g) * decay, axis=axis)
    if c0 is not None:
        c = c + c0 * tf.exp(tf.reduce_sum(log_f, axis=axis))
    return c


@keras.saving.register_keras_serializable(package="torch2keras")
class TorchLSTM(_TorchRecurrent, keras.layers.LSTM):
    """``keras.layers.LSTM`` plus ``time_major`` and ``reverse``; a fused TFLite LSTM on TensorFlow."""

    def __init__(self, units: int, time_major: bool = False, reverse: bool = False, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self._init_torch_options(time_major, reverse)

    def _tf_path_applies(self, mask, training) -> bool:
        cell = self.cell
        standard = cell.activation is keras.activations.tanh and cell.recurrent_activation is keras.activations.sigmoid
        return standard and super()._tf_path_applies(mask, training)

    def _fused(self) -> Callable:
        holder = self.__dict__.get("_fused_lstm")
        if holder is None:
            holder = _FusedLSTMFunction(self.time_major)
            object.__setattr__(self, "_fused_lstm", holder)  # untracked: not a saved function
        return holder.fn

    def _tf_forward(self, x, initial_state):
        import tensorflow as tf

        units = self.cell.units
        kernel, recurrent_kernel, bias = self._weights([4 * units])
        axis = _time_axis(self.time_major)
        if self.reverse:
            x = tf.reverse(x, [axis])
        salt = 1.0 + (zlib.crc32(self.name.encode()) & 0xFFFFFF) / float(1 << 24)
        h_in, c_in = _fresh_lstm_states(x, initial_state, units, self.time_major, salt)
        last, outputs, _, _, _ = self._fused()(x, h_in, c_in, kernel, recurrent_kernel, bias)
        h0, c0 = initial_state if initial_state is not None else (None, None)
        c = _lstm_final_cell(x, outputs, h0, c0, kernel, recurrent_kernel, bias, self.time_major)
        if self.reverse:
            outputs = tf.reverse(outputs, [axis])
        return last, outputs, [last, c]


# ---------------------------------------------------------------------------------------------- GRU, RNN


@keras.saving.register_keras_serializable(package="torch2keras")
class TorchGRU(_TorchRecurrent, keras.layers.GRU):
    """``keras.layers.GRU`` (``reset_after=True``: torch's GRU) plus ``time_major`` and ``reverse``."""

    def __init__(self, units: int, time_major: bool = False, reverse: bool = False, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self._init_torch_options(time_major, reverse)

    def _tf_path_applies(self, mask, training) -> bool:
        return self.cell.reset_after and super()._tf_path_applies(mask, training)

    def _tf_forward(self, x, initial_state):
        cell = self.cell
        units = cell.units
        kernel, recurrent_kernel, bias = self._weights([2, 3 * units])
        act, rec_act = cell.activation, cell.recurrent_activation
        projected = ops.matmul(x, kernel) + bias[0]

        def step(p, h):
            pz, pr, ph = ops.split(p, 3, axis=-1)
            hz, hr, hh = ops.split(ops.matmul(h, recurrent_kernel) + bias[1], 3, axis=-1)
            z = rec_act(pz + hz)
            n = act(ph + rec_act(pr + hr) * hh)
            h = n + z * (h - n)  # (1 - z) n + z h
            return h, [h]

        h0 = initial_state[0] if initial_state is not None else _zeros_state(x, units, self.time_major)
        outputs, (h,) = _scan(projected, [h0], step, units, self.time_major, self.reverse)
        return h, outputs, [h]


@keras.saving.register_keras_serializable(package="torch2keras")
class TorchSimpleRNN(_TorchRecurrent, keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN`` (torch's RNN with tanh or relu) plus ``time_major`` and ``reverse``."""

    def __init__(self, units: int, time_major: bool = False, reverse: bool = False, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self._init_torch_options(time_major, reverse)

    def _tf_forward(self, x, initial_state):
        cell = self.cell
        units = cell.units
        kernel, recurrent_kernel, bias = self._weights([units])
        projected = ops.matmul(x, kernel) + bias

        def step(p, h):
            h = cell.activation(p + ops.matmul(h, recurrent_kernel))
            return h, [h]

        h0 = initial_state[0] if initial_state is not None else _zeros_state(x, units, self.time_major)
        outputs, (h,) = _scan(projected, [h0], step, units, self.time_major, self.reverse)
        return h, outputs, [h]


RECURRENT_LAYERS = {"torch2keras>TorchLSTM": TorchLSTM, "torch2keras>TorchGRU": TorchGRU,
                    "torch2keras>TorchSimpleRNN": TorchSimpleRNN}


# ---------------------------------------------------------------------------------------------- TFLite


def unclip_lstm_cells(flatbuffer: bytes) -> bytes:
    """Set ``cell_clip`` of every ``UNIDIRECTIONAL_SEQUENCE_LSTM`` in a .tflite flatbuffer to 0 (off).

    The converter writes 10.0 for Keras LSTMs; torch never clips the cell state. The field is a
    float32 in the op's options table, overwritten in place (the file's layout is unchanged).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = bytearray(flatbuffer)
    model = schema.Model.GetRootAs(data, 0)
    lstm_codes = set()
    for k in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(k)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM:
            lstm_codes.add(k)
    if not lstm_codes:
        return flatbuffer
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            if op.OpcodeIndex() not in lstm_codes:
                continue
            table = op.BuiltinOptions()
            options = schema.UnidirectionalSequenceLSTMOptions()
            options.Init(table.Bytes, table.Pos)
            field = options._tab.Offset(6)  # vtable slot of cell_clip
            if field:
                struct.pack_into("<f", data, table.Pos + field, 0.0)
    return bytes(data)
