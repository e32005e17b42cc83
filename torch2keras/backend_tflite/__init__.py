"""Direct TFLite backend: the layout-annotated IR written as a ``.tflite`` flatbuffer, op by op.

No TensorFlow, Keras or torch here (numpy, flatbuffers and LiteRT's schema module): each IR op
has an emitter (``context.EMITTERS``, registered from ``emitters/<family>.py``, the IR op's
family) that writes TFLite builtins for the tensors in their stored layout, fusions are decided on the IR first (``plan.py``), and the model builder
(``builder.py``) deduplicates constants and streams the weights into the file.
"""

from .builder import ModelBuilder, SubgraphBuilder
from .context import EMITTERS, DirectExportError
from .writer import WriteResult, build_model, write_tflite

__all__ = ["DirectExportError", "EMITTERS", "ModelBuilder", "SubgraphBuilder", "WriteResult", "build_model",
           "write_tflite"]
