"""Keras 3 backend: emit a functional model from the annotated IR, and export it."""

from .emit import emit_model
from .emitters import EMITTERS, EmitContext, emitter
from .layers import CUSTOM_OBJECTS, ConstantOutput, TorchOp

__all__ = ["CUSTOM_OBJECTS", "ConstantOutput", "EMITTERS", "EmitContext", "TorchOp", "emit_model", "emitter"]
