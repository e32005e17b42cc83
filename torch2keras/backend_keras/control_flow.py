"""``ControlFlow``: a serializable Keras layer running torch's control flow over Keras sub-models.

Each region of an IR control-flow node is one functional Keras model (built by ``emit_model``
like the enclosing model: built-in layers, ``TorchOp``s); the layer calls them through
``keras.ops.cond`` / ``keras.ops.while_loop`` / ``keras.ops.fori_loop`` (TensorFlow: ``tf.cond``,
``tf.while_loop``; TFLite: ``IF`` and ``WHILE`` with builtin ops inside). ``scan`` and ``map``
write each step's rows in place into preallocated outputs (``slice_update``), no TensorArrays.
The sub-models are saved in the layer's config and their weights with the layer, so a ``.keras``
file loads with ``safe_mode=True`` and without torch. No torch import here.

Tensors are in their stored (physical) layout, as everywhere in the emitted model; rows are taken
and stacked along stored axis 0, which the layout pass keeps logical axis 0.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import keras
from keras import ops

__all__ = ["ControlFlow"]


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _run(model: keras.Model, tensors: Sequence) -> list:
    out = model(list(tensors) if len(tensors) != 1 else tensors[0], training=False)
    return _as_list(out)


def _row(x, i):
    """``x[i]`` along axis 0 (a slice and a reshape: TFLite SLICE + RESHAPE)."""
    rest = tuple(x.shape[1:])
    return ops.reshape(ops.slice(x, [i] + [0] * len(rest), (1, *rest)), rest)


def _write_row(buffer, i, y):
    """``buffer`` with row ``i`` replaced by ``y`` (TFLite DYNAMIC_UPDATE_SLICE)."""
    return ops.slice_update(buffer, [i] + [0] * len(y.shape), ops.expand_dims(y, 0))


@keras.saving.register_keras_serializable(package="torch2keras")
class ControlFlow(keras.layers.Layer):
    """One torch control-flow op (``kind``: cond | while_loop | scan | map) over its regions.

    ``regions`` maps region names (in the IR op's order: ``then_branch, else_branch``;
    ``cond_fn, body_fn``; ``combine_fn``; ``body_fn``) to functional Keras models.
    ``output_specs`` lists ``[shape, dtype]`` per result. Inputs are the node's operands, in
    order: ``cond``: the predicate, then the operands; ``while_loop``: ``num_carried`` carried
    values, then the extra inputs; ``scan``: ``num_init`` carries, ``num_xs`` scanned inputs, the
    extra inputs; ``map``: ``num_xs`` mapped inputs, the extra inputs.
    """

    KINDS = ("cond", "while_loop", "scan", "map")

    def __init__(self, kind: str, regions: dict, output_specs: Sequence, num_carried: int = 0, num_init: int = 0,
                 num_xs: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            raise ValueError(f"unknown control-flow kind {kind!r}; expected one of {self.KINDS}")
        self.kind = kind
        self.region_names = list(regions)
        self.region_models = [regions[n] for n in self.region_names]
        self.output_specs = [[list(shape), str(dtype)] for shape, dtype in output_specs]
        self.num_carried = int(num_carried)
        self.num_init = int(num_init)
        self.num_xs = int(num_xs)

    def region(self, name: str) -> keras.Model:
        return self.region_models[self.region_names.index(name)]

    def build(self, input_shape=None) -> None:
        self.built = True

    # ------------------------------------------------------------------ the four kinds

    def _cond(self, xs: list) -> list:
        pred, operands = ops.reshape(xs[0], ()), xs[1:]
        then_model, else_model = self.region("then_branch"), self.region("else_branch")
        out = ops.cond(pred, lambda: tuple(_run(then_model, operands)), lambda: tuple(_run(else_model, operands)))
        return _as_list(out)

    def _while_loop(self, xs: list) -> list:
        carried, extra = xs[: self.num_carried], xs[self.num_carried:]
        cond_model, body_model = self.region("cond_fn"), self.region("body_fn")

        def cond(*state):
            return ops.reshape(_run(cond_model, [*state, *extra])[0], ())

        def body(*state):
            return tuple(_run(body_model, [*state, *extra]))

        return _as_list(ops.while_loop(cond, body, tuple(carried)))

    def _stacked(self, model: keras.Model, carries: list, seqs: list, extra: list) -> list:
        """Run ``model(*carries, *rows of seqs, *extra)`` for every row; the final carries and the
        other outputs stacked on axis 0."""
        n = len(carries)
        length = int(seqs[0].shape[0])
        buffers = [ops.zeros(tuple(shape), dtype) for shape, dtype in self.output_specs[n:]]

        def step(i, state):
            state = list(state)
            outs = _run(model, [*state[:n], *(_row(x, i) for x in seqs), *extra])
            new_carries, ys = outs[:n], outs[n:]
            return (*new_carries, *(_write_row(b, i, y) for b, y in zip(state[n:], ys)))

        if length == 0:
            return [*carries, *buffers]
        return list(ops.fori_loop(0, length, step, (*carries, *buffers)))

    def _scan(self, xs: list) -> list:
        n_init, n_xs = self.num_init, self.num_xs
        return self._stacked(self.region("combine_fn"), xs[:n_init], xs[n_init:n_init + n_xs], xs[n_init + n_xs:])

    def _map(self, xs: list) -> list:
        return self._stacked(self.region("body_fn"), [], xs[: self.num_xs], xs[self.num_xs:])

    # ------------------------------------------------------------------ Layer API

    def call(self, inputs):
        outs = getattr(self, f"_{self.kind}")(_as_list(inputs))
        return tuple(outs) if len(outs) != 1 else outs[0]

    def compute_output_spec(self, inputs):
        specs = [keras.KerasTensor(tuple(shape), dtype=dtype) for shape, dtype in self.output_specs]
        return tuple(specs) if len(specs) != 1 else specs[0]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            kind=self.kind,
            regions={n: keras.saving.serialize_keras_object(m) for n, m in zip(self.region_names, self.region_models)},
            output_specs=self.output_specs, num_carried=self.num_carried, num_init=self.num_init,
            num_xs=self.num_xs)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: Optional[dict] = None) -> "ControlFlow":
        config = dict(config)
        config["regions"] = {n: keras.saving.deserialize_keras_object(c, custom_objects=custom_objects)
                             for n, c in config["regions"].items()}
        return cls(**config)
