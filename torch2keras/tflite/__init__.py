"""TFLite: writing, reading, running and judging ``.tflite`` files.

  convert.py     Keras model -> SavedModel -> flatbuffer through TensorFlow's converter, per
                 quantization mode, with the refused ops named
  file.py        the flatbuffer read back (ops, tensors, quantization, signatures), no interpreter
  runtime.py     LiteRT interpreters, signature runners, quantized feeds, the XNNPACK probe
  quantize.py    calibration samples, and the per-layer check of an int8 file
  sources.py     a TFLite tensor or op -> Keras layers, IR op and the user's torch source line
  delegates.py   delegate readiness (XNNPACK measured; GPU and Edge TPU from their op lists)
  export.py      the export flow of a compiled model (what ``CompileResult.export_tflite`` runs)
"""

from .file import read_tflite
from .runtime import run_tflite, tflite_runner, tflite_signature_shapes

__all__ = ["read_tflite", "run_tflite", "tflite_runner", "tflite_signature_shapes"]
