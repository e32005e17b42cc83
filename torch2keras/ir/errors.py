"""Error classes shared by every layer of the compiler."""

from __future__ import annotations

__all__ = ["Torch2KerasError", "VerificationError", "UnsupportedOpError", "LoweringError", "PassError", "EmissionError",
           "ExportError", "NumericalMismatchError"]


class Torch2KerasError(Exception):
    """Base class of every error the compiler raises on purpose."""


class VerificationError(Torch2KerasError):
    """The IR broke an invariant (the message carries the dump with the node marked)."""


class UnsupportedOpError(Torch2KerasError):
    """Ops with no lowering; ``ops`` lists (op name, source location) for each occurrence;
    ``view`` is the captured graph as drawn (``torch2keras.draw.draw_graph(err.view, "x.html")``),
    the calls without a lowering marked with their stubs."""

    def __init__(self, message: str, ops=(), view=None):
        super().__init__(message)
        self.ops = list(ops)
        self.view = view


class LoweringError(Torch2KerasError):
    """A lowering failed on a particular call of an op."""


class PassError(Torch2KerasError):
    """A pass failed; the message names it and the passes run before it."""


class EmissionError(Torch2KerasError):
    """The Keras backend could not emit a node."""


class ExportError(Torch2KerasError):
    """An exporter could not write the requested file (TensorFlow ops without a TFLite builtin
    kernel, ops without an int8 kernel, ...); the message names the ops and their source lines."""

    def __init__(self, message: str, ops=()):
        super().__init__(message)
        self.ops = list(ops)


class NumericalMismatchError(Torch2KerasError):
    """The converted model differs from PyTorch beyond the tolerance (``compile(on_mismatch="raise")``).

    ``result`` is the ``CompileResult`` all the same, for inspection; its report locates the
    first value whose error jumps above the tolerance.
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result
