"""Evaluate one IR op on logical numpy arrays with its schema's reference implementation.

``evaluate(op, arrays, attrs)`` returns the list of results, or raises ``NotImplementedError``
for ops without a reference (or inputs their reference does not cover): constant folding then
leaves the node alone.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .ops.schema import schema

__all__ = ["evaluate"]


def evaluate(op: str, args: Sequence[np.ndarray], attrs: dict) -> list[np.ndarray]:
    fn = schema(op).reference
    if fn is None:
        raise NotImplementedError(f"{op}: {schema(op).no_reference or 'no reference implementation'}")
    out = fn(*args, **attrs)
    if isinstance(out, tuple):
        return [np.asarray(o) for o in out]
    return [np.asarray(out)]
