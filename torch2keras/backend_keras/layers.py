"""Serializable Keras layers for ops without a built-in layer (no torch import here).

``TorchOp`` applies one entry of ``kops.KOPS`` to its tensor inputs, with constant operands
stored as (non-trainable) weights so that ``.keras`` files carry them. ``ConstantOutput``
returns a stored constant (for graph outputs that are constants).

Load a saved model with ``import torch2keras.backend_keras.layers`` and then
``keras.models.load_model(path)`` (``safe_mode=True`` works: there is no Lambda).
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np

from .kops import FORMAT_VERSION, KOPS, resolve
from .rnn_layers import RECURRENT_LAYERS

__all__ = ["TorchOp", "ConstantOutput", "CUSTOM_OBJECTS"]


def _tensor_list(inputs) -> list:
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


@keras.saving.register_keras_serializable(package="torch2keras")
class TorchOp(keras.layers.Layer):
    """``KOPS[fn](*operands, **params)`` where operands interleave inputs and stored constants.

    ``consts`` lists ``[position, shape, dtype]`` for every constant operand; the remaining
    positions are filled, in order, by the layer's tensor inputs. ``version`` is the format of the
    config the layer is built from (``kops.FORMAT_VERSION``; older names and parameters are
    translated); the layer always saves the current format.
    """

    def __init__(self, fn: str, params: Optional[dict] = None, consts: Optional[list] = None,
                 num_outputs: int = 1, version: int = FORMAT_VERSION, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if callable(fn):  # the legacy .h5 loader turns a name like "add" into Keras's function of that name
            fn = getattr(fn, "__name__", fn)
        self.fn = resolve(fn, version)  # the kernel's current name (a config may hold a former one)
        self.params = dict(params or {})
        self.consts = [list(c) for c in (consts or [])]
        self.num_outputs = num_outputs
        self._const_vars: list = []

    def build(self, input_shape=None) -> None:
        self._const_vars = [
            self.add_weight(name=f"const{pos}", shape=tuple(shape), dtype=dtype, trainable=False,
                            initializer="zeros")
            for pos, shape, dtype in self.consts
        ]
        self.built = True

    def call(self, inputs):
        tensors = iter(_tensor_list(inputs))
        by_pos = {c[0]: var for c, var in zip(self.consts, self._const_vars)}
        total = len(self.consts) + len(_tensor_list(inputs))
        operands = [by_pos[i] if i in by_pos else next(tensors) for i in range(total)]
        operands = [keras.ops.convert_to_tensor(o) for o in operands]
        out = KOPS[self.fn](*operands, **self.params)
        return tuple(out) if isinstance(out, (list, tuple)) else out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(fn=self.fn, params=self.params, consts=self.consts, num_outputs=self.num_outputs,
                      version=FORMAT_VERSION)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "TorchOp":
        """A layer from a saved config; a config without ``version`` was written before the format
        had a number: format 1 (``docs/keras_format.md``)."""
        return super().from_config({"version": 1, **config})


@keras.saving.register_keras_serializable(package="torch2keras")
class ConstantOutput(keras.layers.Layer):
    """Returns a stored constant; the (unused) input only ties it into the functional graph."""

    def __init__(self, shape, dtype_name: str = "float32", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shape_ = tuple(shape)
        self.dtype_name = dtype_name

    def build(self, input_shape=None) -> None:
        self.value = self.add_weight(name="value", shape=self.shape_, dtype=self.dtype_name, trainable=False,
                                     initializer="zeros")
        self.built = True

    def call(self, inputs):
        return keras.ops.convert_to_tensor(self.value)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.shape_, dtype=self.dtype_name)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(shape=list(self.shape_), dtype_name=self.dtype_name)
        return config


from .control_flow import ControlFlow  # noqa: E402  (registered with the others: loading needs it)
from .state import ModelState  # noqa: E402  (registers the state layer for load_model)

CUSTOM_OBJECTS = {"torch2keras>TorchOp": TorchOp, "torch2keras>ConstantOutput": ConstantOutput,
                  "torch2keras>ControlFlow": ControlFlow, "torch2keras>ModelState": ModelState,
                  **RECURRENT_LAYERS}
