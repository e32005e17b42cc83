"""The Keras side of model state (no torch import here): one serializable layer that owns a
non-trainable variable per state, and helpers to reset or read the state of a model.

``ModelState`` is called several times in one functional model: ``layer(x, read=NAME)`` returns
the variable's current value (``x``, any model input, only ties the call into the graph);
``layer([*new_values, *outputs], write=[NAMES])`` assigns the new values and returns the
outputs unchanged. The write call takes every model output, so it runs on every call, after
every read (each read feeds an output or a new value): a call sees the previous call's state,
eagerly, under ``tf.function``, in a SavedModel and in TFLite (resource variables:
``VAR_HANDLE``/``READ_VARIABLE``/``ASSIGN_VARIABLE``, initialised once by ``CALL_ONCE``).

The layer also stores each state's initial value, so ``reset_state(model)`` works on a model
loaded from a ``.keras`` file too.

A state may be *stored* in another order than PyTorch's (a frame buffer read by channels-last
convs is kept channels-last: its ``layout`` lists the logical axes in stored order, as IR
layouts do). The variables then hold the stored form; every value this module takes or returns
(``initialize``, ``values``, ``get_state``, ``set_state``) is in PyTorch's order and converted
on the way.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, Optional, Sequence

import keras
import numpy as np

__all__ = ["ModelState", "initial_state", "state_layers", "reset_state", "get_state", "set_state"]


def _weight_name(name: str) -> str:
    return re.sub(r"\W", "_", name) or "state"


@keras.saving.register_keras_serializable(package="torch2keras")
class ModelState(keras.layers.Layer):
    """States ``[[name, shape, dtype, layout], ...]`` (``shape`` in PyTorch's order, ``layout``
    the stored order of its axes, omitted or ``None`` for PyTorch's own): their current values and
    their initial values, held in stored order."""

    def __init__(self, states: Sequence[Sequence[Any]], **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.states = []
        for name, shape, dtype, *rest in states:
            shape = [int(d) for d in shape]
            layout = [int(a) for a in rest[0]] if rest and rest[0] is not None else list(range(len(shape)))
            if sorted(layout) != list(range(len(shape))):
                raise ValueError(f"state {name!r}: layout {layout} is not a permutation of {len(shape)} axes")
            self.states.append([str(name), shape, str(dtype), layout])
        self._current: dict[str, Any] = {}
        self._initial: dict[str, Any] = {}

    @property
    def names(self) -> list[str]:
        return [s[0] for s in self.states]

    def _spec(self, name: str) -> list:
        return next(s for s in self.states if s[0] == name)

    def stored_shape(self, name: str) -> tuple[int, ...]:
        _, shape, _, layout = self._spec(name)
        return tuple(shape[a] for a in layout)

    def to_stored(self, name: str, value) -> np.ndarray:
        """A value in PyTorch's order -> the stored order."""
        _, shape, dtype, layout = self._spec(name)
        return np.transpose(np.asarray(value, dtype=dtype).reshape(shape), layout)

    def from_stored(self, name: str, value) -> np.ndarray:
        """A stored value -> PyTorch's order."""
        layout = self._spec(name)[3]
        return np.transpose(np.asarray(value), np.argsort(layout))

    def build(self, input_shape=None) -> None:
        if self.built:
            return
        for name, _, dtype, _ in self.states:
            key, shape = _weight_name(name), self.stored_shape(name)
            self._current[name] = self.add_weight(name=key, shape=shape, dtype=dtype, trainable=False,
                                                  initializer="zeros")
            self._initial[name] = self.add_weight(name=f"{key}_initial", shape=shape, dtype=dtype,
                                                  trainable=False, initializer="zeros")
        self.built = True

    def call(self, inputs, read: Optional[str] = None, write: Optional[Sequence[str]] = None):
        if read is not None:  # a snapshot: a variable passed on as such would show later assignments
            return keras.ops.copy(self._current[read])
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        new, outputs = inputs[: len(write)], inputs[len(write):]
        for name, value in zip(write, new):
            self._current[name].assign(value)
        return tuple(outputs) if len(outputs) != 1 else outputs[0]

    def compute_output_spec(self, inputs, read: Optional[str] = None, write: Optional[Sequence[str]] = None):
        if read is not None:
            return keras.KerasTensor(self.stored_shape(read), dtype=self._spec(read)[2])
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = [keras.KerasTensor(t.shape, dtype=t.dtype) for t in inputs[len(write):]]
        return tuple(outputs) if len(outputs) != 1 else outputs[0]

    @property
    def output(self):
        """The outputs of this layer's call that returns the most tensors (the write call).

        Keras checks that a functional model's outputs connect to its inputs by giving every call
        of a layer ``len(flatten(layer.output))`` placeholders, ``output`` being the first call's;
        here that is a read (one tensor), and a write call passing two or more model outputs on
        would leave all but the first unconnected."""
        outputs = [node.output_tensors for node in self._inbound_nodes]
        if not outputs:
            return super().output
        widest = max(outputs, key=lambda t: len(keras.tree.flatten(t)))
        return widest if len(widest) != 1 else widest[0]

    # -- values
    def initialize(self, values: dict[str, np.ndarray]) -> None:
        """Set the initial (and current) value of each state (values in PyTorch's order)."""
        self.build()
        for name, value in values.items():
            stored = self.to_stored(name, value)
            self._initial[name].assign(stored)
            self._current[name].assign(stored)

    def reset(self) -> None:
        """Every state back to its initial value."""
        for name in self.names:
            self._current[name].assign(self._initial[name])

    def stored_values(self) -> dict[str, np.ndarray]:
        """The current value of each state as its variable holds it (stored order)."""
        return {name: keras.ops.convert_to_numpy(self._current[name]) for name in self.names}

    def values(self) -> dict[str, np.ndarray]:
        """The current value of each state in PyTorch's order."""
        return {name: self.from_stored(name, value) for name, value in self.stored_values().items()}

    def set_values(self, values: dict[str, np.ndarray]) -> None:
        """Set the current value of the named states (values in PyTorch's order)."""
        for name, value in values.items():
            self._current[name].assign(self.to_stored(name, value))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(states=self.states)
        return config


def state_layers(model: keras.Model) -> list[ModelState]:
    """The ``ModelState`` layers of ``model`` (and of the models nested in it)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, ModelState):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(state_layers(layer))
    return found


def reset_state(model: keras.Model) -> None:
    """Put every state of ``model`` back to its initial value (the buffers' values when the
    model was converted): the next call behaves like the first one."""
    for layer in state_layers(model):
        layer.reset()


def get_state(model: keras.Model) -> dict[str, np.ndarray]:
    """The current value of each state, by the buffer's qualified name, in PyTorch's layout
    (whatever layout the variable stores it in)."""
    values: dict[str, np.ndarray] = {}
    for layer in state_layers(model):
        values.update(layer.values())
    return values


def set_state(model: keras.Model, values: dict[str, np.ndarray]) -> None:
    """Set the current value of the named states, given in PyTorch's layout (unknown names raise
    ``KeyError``)."""
    layers = {name: layer for layer in state_layers(model) for name in layer.names}
    for name, value in values.items():
        if name not in layers:
            raise KeyError(f"the model has no state {name!r} (states: {sorted(layers)})")
        layers[name].set_values({name: value})


@contextlib.contextmanager
def initial_state(model: keras.Model) -> Iterator[None]:
    """Inside the block the model holds its initial state; afterwards its current state again
    (exporters write a stateful model as it starts, whatever calls came before)."""
    layers = state_layers(model)
    saved = [layer.stored_values() for layer in layers]
    for layer in layers:
        layer.reset()
    try:
        yield
    finally:
        for layer, values in zip(layers, saved):
            for name, value in values.items():
                layer._current[name].assign(value)
