"""The IR's op set, one module per op family; importing this package defines them all.

Every op computes the PyTorch-logical function of its inputs; how values are physically stored
is the business of their ``TensorType.layout`` and of each op's layout rule
(``ir/layout_rules.py``). ``schema.py`` is the registry the families write into and says which
facets an op declares.

Families (the same names in ``frontend_torch/ops/`` and ``backend_keras/emitters/``):
creation, elementwise, reduction, scans, shape, indexing, nn, norm, pool, attention, recurrent,
control, state, dynamic, custom, quantization.
"""

from __future__ import annotations

from . import creation, elementwise, reduction, scans, shape, indexing, nn, norm, pool  # noqa: F401
from . import attention, recurrent, control, state, dynamic, custom, quantization  # noqa: F401
from .common import broadcast_shapes
from .elementwise import BINARY, COMPARE, UNARY
from .schema import REQUIRED, SCHEMAS, AttrSpec, OpSchema, define, families, schema

__all__ = ["AttrSpec", "BINARY", "COMPARE", "OpSchema", "REQUIRED", "SCHEMAS", "UNARY", "broadcast_shapes", "define",
           "families", "schema"]
