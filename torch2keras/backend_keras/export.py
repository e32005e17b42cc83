"""Exporters of the Keras model: .keras files and TensorFlow SavedModels (named signature)."""

from __future__ import annotations

import os
from typing import Any, Sequence

import keras

__all__ = ["save_keras", "export_saved_model", "outputs_in_order"]


def outputs_in_order(outputs: Any, names: Sequence[str]) -> list:
    """The model's outputs as a list in ``names`` order: a dict-returning model's by key, a
    list's as they come, a single tensor as a one-element list."""
    if isinstance(outputs, dict):
        return [outputs[n] for n in names]
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def save_keras(model: keras.Model, path: str) -> str:
    """A ``.keras`` file (or a legacy ``.h5`` one, for tools that still read HDF5)."""
    if not str(path).endswith((".keras", ".h5")):
        raise ValueError(f"a Keras model file must end in .keras (or .h5): {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
    return str(path)


def export_saved_model(model: keras.Model, directory: str, input_names: Sequence[str],
                       output_names: Sequence[str]) -> str:
    """A SavedModel whose ``serving_default`` signature takes and returns the given names."""
    import tensorflow as tf

    specs = [tf.TensorSpec(tuple(t.shape), t.dtype, name=n) for n, t in zip(input_names, model.inputs)]
    names = list(output_names)

    def serve(*args):
        outs = model(list(args) if len(args) > 1 else args[0], training=False)
        return dict(zip(names, outputs_in_order(outs, names)))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=specs)
    archive.write_out(str(directory), verbose=False)
    return str(directory)
