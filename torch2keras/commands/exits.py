"""Exit codes of the command line and the exceptions that end a command with them."""

from __future__ import annotations

__all__ = ["CONVERSION_FAILED", "EXIT_CODES", "OK", "OUT_OF_TOLERANCE", "USAGE", "ConversionFailed", "UsageError"]

OK = 0
CONVERSION_FAILED = 1
USAGE = 2
OUT_OF_TOLERANCE = 3

EXIT_CODES = f"""exit codes:
  {OK}  converted, within tolerance
  {CONVERSION_FAILED}  the conversion failed (an op without a lowering, an export error, ...)
  {USAGE}  the command cannot run as given: bad arguments or files, a model that cannot be built,
     weights that do not fit it, inputs it rejects
  {OUT_OF_TOLERANCE}  converted and written, but the Keras model or the float .tflite differs from PyTorch by
     more than the tolerance, or (with --strict) code was specialised to the example (a Python `if`
     on tensor data)"""


class UsageError(Exception):
    """The command cannot run as given (exit 2); the message is one line saying what to fix."""


class ConversionFailed(Exception):
    """The conversion failed (exit 1); the message is a readable paragraph."""
