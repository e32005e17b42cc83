"""PyTorch frontend: capture a model and lower each traced call into IR nodes."""

from .capture import KEEP_WHOLE, Captured, capture
from .lower import find_unsupported, lower
from .registry import LOWERINGS, LoweringContext, lowering

__all__ = ["Captured", "KEEP_WHOLE", "LOWERINGS", "LoweringContext", "capture", "find_unsupported", "lower", "lowering"]
