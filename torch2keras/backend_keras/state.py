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
    """States ``[[name, shape, dtype], ...]``: their current values and their initial values."""

    def __init__(self, states: Sequence[Sequence[Any]], **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.states = [[str(n), [int(d) for d in shape], str(dtype)] for n, shape, dtype in states]
        self._current: dict[str, Any] = {}
        self._initial: dict[str, Any] = {}

    @property
    def names(self) -> list[str]:
        return [s[0] for s in self.states]

    def build(self, input_shape=None) -> None:
        if self.built:
            return
        for name, shape, dtype in self.states:
            key = _weight_name(name)
            self._current[name] = self.add_weight(name=key, shape=tuple(shape), dtype=dtype, trainable=False,
                                                  initializer="zeros")
            self._initial[name] = self.add_weight(name=f"{key}_initial", shape=tuple(shape), dtype=dtype,
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
            _, shape, dtype = next(s for s in self.states if s[0] == read)
            return keras.KerasTensor(tuple(shape), dtype=dtype)
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = [keras.KerasTensor(t.shape, dtype=t.dtype) for t in inputs[len(write):]]
        return tuple(outputs) if len(outputs) != 1 else outputs[0]

    # -- values
    def initialize(self, values: dict[str, np.ndarray]) -> None:
        """Set the initial (and current) value of each state."""
        self.build()
        for name, value in values.items():
            self._initial[name].assign(np.asarray(value))
            self._current[name].assign(np.asarray(value))

    def reset(self) -> None:
        """Every state back to its initial value."""
        for name in self.names:
            self._current[name].assign(self._initial[name])

    def values(self) -> dict[str, np.ndarray]:
        return {name: keras.ops.convert_to_numpy(self._current[name]) for name in self.names}

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
    """The current value of each state, by the buffer's qualified name (PyTorch's layout)."""
    values: dict[str, np.ndarray] = {}
    for layer in state_layers(model):
        values.update(layer.values())
    return values


def set_state(model: keras.Model, values: dict[str, np.ndarray]) -> None:
    """Set the current value of the named states (unknown names raise ``KeyError``)."""
    layers = {name: layer for layer in state_layers(model) for name in layer.names}
    for name, value in values.items():
        if name not in layers:
            raise KeyError(f"the model has no state {name!r} (states: {sorted(layers)})")
        layers[name]._current[name].assign(np.asarray(value))


@contextlib.contextmanager
def initial_state(model: keras.Model) -> Iterator[None]:
    """Inside the block the model holds its initial state; afterwards its current state again
    (exporters write a stateful model as it starts, whatever calls came before)."""
    layers = state_layers(model)
    saved = [layer.values() for layer in layers]
    for layer in layers:
        layer.reset()
    try:
        yield
    finally:
        for layer, values in zip(layers, saved):
            for name, value in values.items():
                layer._current[name].assign(value)
