"""Symbolic dimensions: arithmetic on dims that may be names, and the checks passes need.

A dim (``types.Dim``) is an ``int`` or a ``str`` naming a size known only at run time: a
user's name (``"batch"``), torch's symbol (``"s0"``) or an expression over them
(``"height - ((height//3))"``). The IR never evaluates such expressions; it only carries them
and compares them by text. Arithmetic here keeps ints exact and builds expression text
otherwise; where the text differs from torch's spelling, the frontend replaces it with
torch's at each lowered call (``frontend_torch/lower.py``).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from .types import Dim, TensorType

__all__ = [
    "NOMINAL_SIZE", "dim_add", "dim_floordiv", "dim_mul", "dim_sub", "dims_agree", "is_symbolic",
    "nominal_numel", "rename_dims", "shapes_agree", "unresolved_dims",
]

# What a symbolic dim counts for where a size is only an estimate (the layout pass's byte costs).
NOMINAL_SIZE = 64


def is_symbolic(d: Dim) -> bool:
    return isinstance(d, str)


def _term(d: Dim) -> str:
    text = str(d)
    return text if re.fullmatch(r"\w+|\(.*\)", text) and text.count("(") == text.count(")") else f"({text})"


def dim_add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if b == 0:
        return a
    if a == 0:
        return b
    if isinstance(b, int) and b < 0:
        return f"{a} - {-b}"
    return f"{a} + {b}"


def dim_sub(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    if b == 0:
        return a
    if a == b:
        return 0
    return f"{a} - {_term(b)}"


def dim_mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if a == 1:
        return b
    if b == 1:
        return a
    if a == 0 or b == 0:
        return 0
    return f"{_term(a)}*{_term(b)}"


def dim_floordiv(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if b == 1:
        return a
    return f"({_term(a)}//{_term(b)})"


def dims_agree(a: Dim, b: Dim) -> bool:
    """Whether two dims may be equal: equal ints or names, or any pair with a symbolic one
    (two spellings of one size cannot be told apart without evaluating them)."""
    return a == b or is_symbolic(a) or is_symbolic(b)


def shapes_agree(a: Sequence[Dim], b: Sequence[Dim]) -> bool:
    return len(a) == len(b) and all(dims_agree(x, y) for x, y in zip(a, b))


def nominal_numel(t: TensorType) -> int:
    """The element count, with ``NOMINAL_SIZE`` for each symbolic dim."""
    n = 1
    for d in t.shape:
        n *= NOMINAL_SIZE if is_symbolic(d) else d
    return n


def unresolved_dims(in_shape: Sequence[Dim], out_shape: Sequence[Dim]) -> list[int]:
    """Axes of ``out_shape`` whose symbolic dim does not appear in ``in_shape`` (each input dim
    matched at most once): the sizes a reshape cannot read from its input's run-time shape."""
    available = [d for d in in_shape if is_symbolic(d)]
    missing = []
    for axis, d in enumerate(out_shape):
        if not is_symbolic(d):
            continue
        if d in available:
            available.remove(d)
        else:
            missing.append(axis)
    return missing


_TOKEN = re.compile(r"[A-Za-z_]\w*")


def _rename(value, mapping: Mapping[str, str]):
    if isinstance(value, str):
        return _TOKEN.sub(lambda m: mapping.get(m.group(0), m.group(0)), value)
    if isinstance(value, tuple):
        return tuple(_rename(v, mapping) for v in value)
    if isinstance(value, list):
        return [_rename(v, mapping) for v in value]
    return value


def rename_dims(graph, mapping: Mapping[str, str]) -> None:
    """Rename symbols (whole identifiers inside dim expressions) in every value's type and in
    every shape-like attribute (lists holding symbolic dims), e.g. torch's ``s0`` -> ``batch``."""
    if not mapping:
        return
    for node in graph.topo_order():
        for v in node.outputs:
            if not v.type.is_static:
                graph.set_type(v, v.type.replace(shape=tuple(_rename(d, mapping) if is_symbolic(d) else d
                                                              for d in v.type.shape)))
        for key, value in list(node.attrs.items()):
            if isinstance(value, (list, tuple)) and any(isinstance(d, str) for d in value):
                node.attrs[key] = _rename(value, mapping)
            elif key in node.schema.dim_attrs and isinstance(value, str):
                node.attrs[key] = _rename(value, mapping)
