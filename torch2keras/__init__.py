"""torch2keras: compile PyTorch models to Keras 3, TensorFlow SavedModel and TFLite through a typed graph IR.

    import torch2keras
    result = torch2keras.compile(model, example_input, input_layouts="channels_last")
    result.save("model.keras"); result.export_tflite("model.tflite"); print(result.report)

The package imports torch lazily: loading a saved model needs only
``torch2keras.load_model(path)`` (or ``import torch2keras.backend_keras.layers`` and then
``keras.models.load_model(path)``), with no torch installed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "compile": "torch2keras.api", "CompileResult": "torch2keras.api", "count_transposes": "torch2keras.api",
    "lowering": "torch2keras.frontend_torch", "Graph": "torch2keras.ir", "Torch2KerasError": "torch2keras.ir",
    "UnsupportedOpError": "torch2keras.ir", "Pass": "torch2keras.passes", "PassManager": "torch2keras.passes",
    "register_pass": "torch2keras.passes", "Report": "torch2keras.report",
    "converter": "torch2keras.converters", "explain": "torch2keras.explain",
    "NumericalMismatchError": "torch2keras.ir", "ExportError": "torch2keras.ir",
    "RewritePass": "torch2keras.passes.rewrite", "reset_state": "torch2keras.backend_keras.state",
    "to_tflite": "torch2keras.direct", "to_tflite_signatures": "torch2keras.signatures",
    "WeightQuantization": "torch2keras.backend_tflite.weight_quantization",
    "BlockwiseInt4Warning": "torch2keras.backend_tflite.weight_quantization",
}

__all__ = sorted([*_LAZY, "load_model", "__version__"])


def load_model(path: str, **kwargs):
    """Load a ``.keras`` file written by torch2keras (safe mode on; torch is not imported)."""
    import keras

    from .backend_keras import layers  # noqa: F401  (registers the serializable layers)
    from .io_checks import check_keras_file

    check_keras_file(path)

    if str(path).endswith(".h5"):  # legacy HDF5: no safe mode there; the layers come by name
        kwargs.setdefault("custom_objects", layers.CUSTOM_OBJECTS)
        return keras.models.load_model(path, **kwargs)
    kwargs.setdefault("safe_mode", True)
    return keras.models.load_model(path, **kwargs)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'torch2keras' has no attribute {name!r}")
