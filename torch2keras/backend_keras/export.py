"""Exporters: .keras, TensorFlow SavedModel (named signature) and TFLite, plus TFLite inspection."""

from __future__ import annotations

import collections
import os
import tempfile
from typing import Callable, Iterable, Optional, Sequence

import keras
import numpy as np

from .litert import interpreter  # part of this module's API (the runners below use it)

__all__ = ["save_keras", "export_saved_model", "export_tflite", "tflite_op_counts", "tflite_signature_shapes",
           "run_tflite", "tflite_runner", "interpreter", "quantized_feed", "quantize_array",
           "dequantize_array"]


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
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return {n: o for n, o in zip(names, outs)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=specs)
    archive.write_out(str(directory), verbose=False)
    return str(directory)


def export_tflite(model: keras.Model, path: str, input_names: Sequence[str], output_names: Sequence[str],
                  quantize: Optional[str] = None, representative: Optional[Callable[[], Iterable[dict]]] = None,
                  io_dtype: str = "int8", allow_flex: bool = False, int8_fallback: bool = False,
                  float_path: Optional[str] = None, resource_variables: bool = False) -> str:
    """Write a ``.tflite`` file (see ``tflite_convert`` for the quantization modes).

    resource_variables: keep the variables the model assigns (its state) as TFLite resource
    variables, initialised once per interpreter and kept between invocations.

    float_path: also write the float32 conversion of the same SavedModel there (the per-layer
    quantization check compares the two; tensor names match because both come from one graph).
    Raises ``tflite_convert.NonBuiltinOps`` when the converter refuses ops.
    """
    from .tflite_convert import check_options, convert_saved_model

    check_options(quantize, io_dtype, representative is not None)
    with tempfile.TemporaryDirectory() as tmp:
        export_saved_model(model, tmp, input_names, output_names)
        data = convert_saved_model(tmp, quantize, representative, io_dtype, allow_flex, int8_fallback,
                                   resource_variables=resource_variables)
        if float_path is not None:
            _write(float_path, convert_saved_model(tmp, None, allow_flex=allow_flex,
                                                   resource_variables=resource_variables))
    _write(path, data)
    return str(path)


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def tflite_op_counts(path: str) -> dict[str, int]:
    """How many ops of each kind the TFLite file's main graph holds (read from the file)."""
    from .tflite_file import read_tflite

    return dict(sorted(collections.Counter(op.name for op in read_tflite(path).main_ops()).items()))


def tflite_signature_shapes(path: str) -> dict[str, list[int]]:
    """The shape signature of every input and output of ``serving_default`` by name (-1 marks a
    run-time size; a model of static shapes has none)."""
    runner = interpreter(path, delegates=False).get_signature_runner("serving_default")
    details = {**runner.get_input_details(), **runner.get_output_details()}
    return {name: [int(d) for d in info["shape_signature"]] for name, info in details.items()}


def tflite_runner(path: str, delegates: bool = True, num_threads: Optional[int] = None):
    """The ``serving_default`` signature runner of a new LiteRT interpreter (a stateful model's
    state lives in the interpreter: it persists across the runner's calls)."""
    return interpreter(path, delegates=delegates, num_threads=num_threads).get_signature_runner("serving_default")


def run_tflite(path: str, inputs: dict[str, np.ndarray], num_threads: Optional[int] = None,
               delegates: bool = True) -> dict[str, np.ndarray]:
    """Run the ``serving_default`` signature with a new LiteRT interpreter (initial state; with its
    default XNNPACK delegate unless ``delegates=False``). Inputs of other sizes than the exported
    ones are resized to (dims -1 in the signature take any size). Float arrays fed to quantized
    (int8/uint8) inputs are quantized with the input's scale and zero point, and quantized outputs
    come back dequantized to float32."""
    runner = tflite_runner(path, delegates=delegates, num_threads=num_threads)
    outs = runner(**quantized_feed(runner.get_input_details(), inputs))
    details_out = runner.get_output_details()
    return {k: dequantize_array(np.asarray(v), details_out[k]) for k, v in outs.items()}


def quantized_feed(input_details: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``inputs`` for a signature runner: float arrays fed to a quantized (int8/uint8) input are
    quantized with its scale and zero point; the rest pass as they are."""
    feed = {}
    for name, x in inputs.items():
        x, d = np.asarray(x), input_details[name]
        quantized = np.dtype(d["dtype"]).kind in "iu" and x.dtype.kind == "f" and d["quantization"][0]
        feed[name] = quantize_array(x, d) if quantized else x
    return feed


def quantize_array(x: np.ndarray, detail: dict) -> np.ndarray:
    """Real values -> a quantized tensor's integers (round to nearest, saturate)."""
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(detail["dtype"])


def dequantize_array(q: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if q.dtype.kind not in "iu" or not scale:
        return q
    return ((q.astype(np.float64) - zero_point) * scale).astype(np.float32)
