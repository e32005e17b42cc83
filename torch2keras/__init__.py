"""torch2keras: compile PyTorch models to Keras 3, TensorFlow SavedModel and TFLite through a typed graph IR.

    import torch2keras
    result = torch2keras.compile(model, example_input, input_layouts="channels_last")
    result.save("model.keras"); result.export_tflite("model.tflite"); print(result.report)
"""

from .api import CompileResult, compile, count_transposes
from .backend_keras import layers as _layers  # noqa: F401  (registers the serializable layers)
from .frontend_torch import lowering
from .ir import Graph, Torch2KerasError, UnsupportedOpError
from .passes import Pass, PassManager, register_pass
from .report import Report

__version__ = "0.1.0"

__all__ = ["CompileResult", "Graph", "Pass", "PassManager", "Report", "Torch2KerasError", "UnsupportedOpError",
           "compile", "count_transposes", "lowering", "register_pass", "__version__"]
