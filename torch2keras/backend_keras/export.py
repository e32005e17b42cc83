"""Exporters: .keras, TensorFlow SavedModel (named signature) and TFLite, plus TFLite inspection."""

from __future__ import annotations

import collections
import os
import tempfile
from typing import Optional, Sequence

import keras
import numpy as np

from .rnn_layers import unclip_lstm_cells

__all__ = ["save_keras", "export_saved_model", "export_tflite", "tflite_op_counts", "tflite_signature_shapes",
           "run_tflite", "tflite_runner"]


def save_keras(model: keras.Model, path: str) -> str:
    if not str(path).endswith(".keras"):
        raise ValueError(f"a Keras model file must end in .keras: {path}")
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
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return {n: o for n, o in zip(names, outs)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=specs)
    archive.write_out(str(directory), verbose=False)
    return str(directory)


def export_tflite(model: keras.Model, path: str, input_names: Sequence[str], output_names: Sequence[str],
                  resource_variables: bool = False) -> str:
    """``resource_variables``: keep the variables the model assigns (its state) as TFLite resource
    variables, initialised once per interpreter and kept between invocations."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        export_saved_model(model, tmp, input_names, output_names)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.experimental_enable_resource_variables = resource_variables
        data = converter.convert()
    data = unclip_lstm_cells(data)  # fused LSTMs: torch never clips the cell state
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _interpreter(path: str, delegates: bool = True, num_threads: Optional[int] = None):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {}
    if not delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if num_threads:
        kwargs["num_threads"] = num_threads
    return Interpreter(model_path=str(path), **kwargs)


def tflite_op_counts(path: str) -> dict[str, int]:
    """How many ops of each kind the TFLite file holds (read without delegates)."""
    interp = _interpreter(path, delegates=False)
    return dict(sorted(collections.Counter(d["op_name"] for d in interp._get_ops_details()).items()))


def tflite_signature_shapes(path: str) -> dict[str, list[int]]:
    """The shape signature of every input and output of ``serving_default`` by name (-1 marks a
    run-time size; a model of static shapes has none)."""
    runner = _interpreter(path, delegates=False).get_signature_runner("serving_default")
    details = {**runner.get_input_details(), **runner.get_output_details()}
    return {name: [int(d) for d in info["shape_signature"]] for name, info in details.items()}


def tflite_runner(path: str):
    """The ``serving_default`` signature runner of a new LiteRT interpreter (a stateful model's
    state lives in the interpreter: it persists across the runner's calls)."""
    return _interpreter(path).get_signature_runner("serving_default")


def run_tflite(path: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the ``serving_default`` signature with a new LiteRT interpreter (initial state; inputs
    of other sizes than the exported ones are resized to: dims -1 in the signature take any size)."""
    runner = tflite_runner(path)
    return {k: np.asarray(v) for k, v in runner(**inputs).items()}
