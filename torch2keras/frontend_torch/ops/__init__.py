"""Lowerings, one module per op family; importing this package registers them all."""

from . import creation, elementwise, nn, reduction, rnn, shape  # noqa: F401
