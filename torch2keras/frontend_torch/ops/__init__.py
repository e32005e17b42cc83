"""Lowerings, one module per op family; importing this package registers them all."""

from . import creation, elementwise, nn, reduction, shape  # noqa: F401
