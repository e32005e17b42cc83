"""The TFLite file through TensorFlow's converter (Keras model -> SavedModel -> flatbuffer), set up per
quantization mode, with clear errors for ops that
have no TFLite builtin (or no int8) kernel.

Modes (``quantize``):

* ``None``: float32 weights and activations.
* ``"fp16"``: float16 weights (half the file), dequantized to float32 when the model loads; the
  GPU delegate runs them in float16.
* ``"dynamic_int8"``: int8 weights (a quarter of the file); conv/matmul kernels quantize their
  activations on the fly (dynamic range), everything else runs in float.
* ``"int8"``: full integer: weights and activations int8, activation ranges from a
  representative dataset; inputs/outputs ``int8``, ``uint8`` or ``float32`` (``io_dtype``).

Only builtin TFLite ops are allowed unless ``allow_flex``: then TensorFlow ops without a
builtin become Flex ops (the app must link the Flex delegate) and a warning names them.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from typing import Callable, Iterable, Optional, Sequence

import keras

from ..backend_keras.export import export_saved_model
from ..backend_keras.rnn_layers import unclip_lstm_cells

__all__ = ["IO_DTYPES", "QUANTIZE_MODES", "ConverterFailure", "NonBuiltinOps", "calibrate_saved_model", "check_options", "convert_saved_model", "float_depthwise_filters", "keras_to_tflite", "quantize_calibrated",
           "warn_flex"]

QUANTIZE_MODES = (None, "fp16", "dynamic_int8", "int8")
IO_DTYPES = ("int8", "uint8", "float32")


class ConverterFailure(Exception):
    """The converter failed for another reason than missing kernels (an internal error of its
    own); ``ops`` maps the TF / TFLite ops its error lines name to their TF scopes, ``headline``
    is the first error line without MLIR locations."""

    def __init__(self, ops: dict[str, list[str]], headline: str, detail: str) -> None:
        super().__init__(headline)
        self.ops = ops
        self.headline = headline
        self.detail = detail


class NonBuiltinOps(Exception):
    """The converter refused TensorFlow ops; ``ops`` maps each op to the TF scopes it came from
    (``Model_1/layer_1/Op``), ``reason`` says which kernels are missing."""

    def __init__(self, reason: str, ops: dict[str, list[str]], detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ops = ops
        self.detail = detail


def check_options(quantize: Optional[str], io_dtype: str, calibrated: bool) -> None:
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    if io_dtype not in IO_DTYPES:
        raise ValueError(f"io_dtype must be one of {IO_DTYPES}, got {io_dtype!r}")
    if quantize == "int8" and not calibrated:
        raise ValueError('quantize="int8" needs calibration data (representative inputs): pass calibration=...')


def convert_saved_model(saved_model_dir: str, quantize: Optional[str] = None,
                        representative: Optional[Callable[[], Iterable[dict]]] = None, io_dtype: str = "int8",
                        allow_flex: bool = False, int8_fallback: bool = False,
                        resource_variables: bool = False) -> bytes:
    """Convert the SavedModel's ``serving_default`` signature to a TFLite flatbuffer.

    representative: a callable returning an iterable of ``{input name: array}`` samples (the
    exported model's layout), for ``quantize="int8"``. int8_fallback: let ops without an int8
    kernel stay float (with quantize/dequantize around them) instead of failing.
    resource_variables: keep the variables the model assigns (its state) as resource variables.
    Fused LSTMs get their cell clipping removed (torch never clips the cell state).
    Raises ``NonBuiltinOps`` when the converter refuses ops.
    """
    import tensorflow as tf

    check_options(quantize, io_dtype, representative is not None)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    fix = None
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        fix = float_depthwise_filters
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + ([tf.lite.OpsSet.TFLITE_BUILTINS] if int8_fallback else [])
        io = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io_dtype]
        converter.inference_input_type = io
        converter.inference_output_type = io
    if allow_flex:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    converter.experimental_enable_resource_variables = resource_variables
    try:
        with warnings.catch_warnings():  # calibration runs TF's own (deprecated) interpreter
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            data = converter.convert()
    except Exception as e:  # noqa: BLE001 - tf.lite's ConverterError (and friends): re-raised with the ops named
        refused = _refused_ops(str(e))
        if not refused and isinstance(e, (ValueError, TypeError)):
            raise  # an argument problem (e.g. a calibration sample of the wrong shape), already named
        if not refused:
            raise _failure(str(e)) from e
        if quantize == "int8" and "int8" in str(e).lower() and not int8_fallback:
            reason = "no int8 kernel"
        elif allow_flex:
            reason = "neither a TFLite builtin nor a Flex (TensorFlow) kernel"
        else:
            reason = "no TFLite builtin kernel"
        raise NonBuiltinOps(reason, refused, str(e)) from None
    data = unclip_lstm_cells(data)
    return fix(data) if fix is not None else data


def float_depthwise_filters(flatbuffer: bytes) -> bytes:
    """The dynamic-range file with each DEPTHWISE_CONV_2D that reads float activations and int8
    filters (a hybrid kernel) reading its filters dequantized to float32 instead.

    XNNPACK takes no hybrid depthwise convolution: LiteRT runs each on its built-in kernel, which
    splits XNNPACK's graph around it, and the model then alternates between two thread pools
    (mobilenet_v3_small, 8 hybrid depthwise convolutions, 2 threads: 35x slower than the float
    file). Depthwise filters are small (a few KB), so float32 costs little size; the convolution
    then computes with the int8-rounded weights in float, as the rest of the file's float ops."""
    from tensorflow.lite.python import schema_py_generated as schema
    import flatbuffers
    import numpy as np

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    codes = [k for k, c in enumerate(model.operatorCodes or [])
             if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.DEPTHWISE_CONV_2D]
    changed = False
    for graph in model.subgraphs or []:
        for op in graph.operators or []:
            if op.opcodeIndex not in codes or len(op.inputs) < 2:
                continue
            x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
            buffer = model.buffers[w.buffer]
            q = w.quantization
            if x.type != schema.TensorType.FLOAT32 or w.type != schema.TensorType.INT8 or buffer.data is None \
                    or q is None or q.scale is None:
                continue
            integers = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), np.int8).reshape(w.shape)
            shape = [1] * integers.ndim
            shape[q.quantizedDimension if len(q.scale) > 1 else 0] = -1
            values = integers.astype(np.float32) * np.asarray(q.scale, np.float32).reshape(shape)
            buffer.data = np.frombuffer(values.tobytes(), np.uint8)
            w.type, w.quantization = schema.TensorType.FLOAT32, None
            changed = True
    if not changed:
        return flatbuffer
    for k in codes:  # (the float kernel's version: 2 covers dilation)
        model.operatorCodes[k].version = min(model.operatorCodes[k].version, 2)
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def calibrate_saved_model(saved_model_dir: str, representative: Callable[[], Iterable[dict]],
                          resource_variables: bool = False) -> bytes:
    """The float TFLite model of the SavedModel carrying the activation ranges the converter
    observed on ``representative`` (its calibration), not yet quantized: ``quantize_calibrated``
    quantizes it, with any ops kept float, without calibrating again."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.experimental_enable_resource_variables = resource_variables
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # noqa: SLF001 - the documented selective-quantization route
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        return converter.convert()


def quantize_calibrated(calibrated: bytes, io_dtype: str = "int8", keep_float: Sequence[str] = ()) -> bytes:
    """Full-integer quantization of a calibrated model (``calibrate_saved_model``), the ops writing
    the tensors named in ``keep_float`` left in float32 (a DEQUANTIZE before them, a QUANTIZE
    after); ops without an int8 kernel also stay float. I/O as ``io_dtype``."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    io = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io_dtype]
    data = tf_convert.mlir_quantize(calibrated, fully_quantize=io_dtype != "float32", input_data_type=io,
                                    output_data_type=io, denylisted_nodes=list(keep_float) or None)
    return unclip_lstm_cells(data)


_REFUSED = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_NOT_INT8 = re.compile(r"'tfl\.(\w+)' op (?:is not supported|.*quantiz)", re.IGNORECASE)
_LOC = re.compile(r'fused\["(\w+):", "([^"@]+)')


_FAILED_OP = re.compile(r"'(?:tfl?|mhlo|stablehlo)\.(\w+)' op (.*)")


def _failure(message: str) -> ConverterFailure:
    """The ops (with the TF scopes of the ops they were made from) and the first line of a
    converter error."""
    ops: dict[str, list[str]] = {}
    headline = ""
    for line in message.splitlines():
        m = _FAILED_OP.search(line) if "error:" in line else None
        if not m:
            continue
        headline = headline or f"'{m.group(1)}' op {m.group(2).strip()}"
        scopes = ops.setdefault(m.group(1), [])
        scopes += [scope for op, scope in _LOC.findall(line) if op != "PartitionedCall" and scope not in scopes]
    if not headline:
        lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
        errors = [ln.split("error:", 1)[1].strip() for ln in lines if "error:" in ln]
        headline = (errors or lines or ["(no message)"])[0][:300]
    return ConverterFailure(ops, headline, message)


def _refused_ops(message: str) -> dict[str, list[str]]:
    """Op name -> TF scopes, from the converter's error text."""
    found: dict[str, list[str]] = {}
    for line in message.splitlines():
        m = _REFUSED.search(line) or _NOT_INT8.search(line)
        if not m:
            continue
        scopes = found.setdefault(m.group(1), [])
        for op, scope in _LOC.findall(line):
            if op.lower() == m.group(1).lower() and scope not in scopes:
                scopes.append(scope)
    custom = re.search(r"(?:Custom|Flex) ops: ([\w, ]+)", message)
    if custom:
        for op in custom.group(1).split(","):
            found.setdefault(op.strip(), [])
    return found


def warn_flex(flex_ops: list[str], where: str = "") -> None:
    if flex_ops:
        warnings.warn(f"the TFLite file holds Flex (TensorFlow) ops {', '.join(flex_ops)}{where}: the app must "
                      f"link the Flex delegate (tensorflow-lite-select-tf-ops, several MB), and no GPU/NPU "
                      f"delegate runs them", stacklevel=3)


def keras_to_tflite(model: keras.Model, path: str, input_names: Sequence[str], output_names: Sequence[str],
                  quantize: Optional[str] = None, representative: Optional[Callable[[], Iterable[dict]]] = None,
                  io_dtype: str = "int8", allow_flex: bool = False, int8_fallback: bool = False,
                  float_path: Optional[str] = None, resource_variables: bool = False,
                  progress: Optional[Callable[[str], None]] = None, keep_float: Optional[Sequence[str]] = None,
                  calibrated_path: Optional[str] = None) -> str:
    """Write a ``.tflite`` file (see ``tflite_convert`` for the quantization modes).

    resource_variables: keep the variables the model assigns (its state) as TFLite resource
    variables, initialised once per interpreter and kept between invocations.

    float_path: also write the float32 conversion of the same SavedModel there (the per-layer
    quantization check compares the two; tensor names match because both come from one graph).
    Raises ``NonBuiltinOps`` when the converter refuses ops.
    progress: called with the name of each stage as it starts.
    keep_float: for ``"int8"``, TFLite tensor names whose ops stay float32: the model is
    calibrated, then quantized with those ops left out (``quantize_calibrated``); the calibrated
    model is also written to ``calibrated_path`` (to quantize it again with other ops kept float).
    """
    say = progress or (lambda message: None)
    check_options(quantize, io_dtype, representative is not None)
    with tempfile.TemporaryDirectory() as tmp:
        say("SavedModel for the TFLite converter")
        export_saved_model(model, tmp, input_names, output_names)
        say(f"TFLite converter ({quantize or 'float32'})")
        if quantize == "int8" and keep_float is not None:
            calibrated = calibrate_saved_model(tmp, representative, resource_variables)
            if calibrated_path is not None:
                _write(calibrated_path, calibrated)
            data = quantize_calibrated(calibrated, io_dtype, keep_float)
        else:
            data = convert_saved_model(tmp, quantize, representative, io_dtype, allow_flex, int8_fallback,
                                       resource_variables=resource_variables)
        if float_path is not None:
            say("TFLite converter (float32 file for the int8 check)")
            _write(float_path, convert_saved_model(tmp, None, allow_flex=allow_flex,
                                                   resource_variables=resource_variables))
    _write(path, data)
    return str(path)


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
