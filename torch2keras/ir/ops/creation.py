"""Sources of values: graph inputs and constants (weights live in constants)."""

from __future__ import annotations

import numpy as np

from ..types import TensorType, dtype_from_numpy
from .schema import define

__all__ = ["constant_type"]

FAMILY = "creation"


def constant_type(types, a):
    v = a["value"]  # an array, or an ElidedArray (values left out of an IR text): shape and dtype suffice
    if not (hasattr(v, "shape") and hasattr(v, "dtype")):  # a Python number or list
        v = np.asarray(v)
    return [TensorType(v.shape, a.get("dtype") or dtype_from_numpy(v.dtype))]


define("input", FAMILY, [], None, "source", {"name": ("str",)},
       no_reference="a source: the interpreter feeds it", doc="A graph input.")
define("constant", FAMILY, [], constant_type, "source", {"value": ("array",), "dtype": ("dtype", None)},
       no_reference="a source: its value is its attribute",
       doc="A constant tensor (weights live here, sharing memory with the torch parameter).")
