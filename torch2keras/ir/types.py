"""Tensor types of the IR: shape (ints and named symbolic dims), dtype and physical layout.

A value's *logical* shape is the one PyTorch sees. Its *layout* is a permutation of the logical
axes giving the order in which they are stored: ``layout[k]`` is the logical axis held in
physical position ``k``. ``None`` means the identity (PyTorch's own order).
"""

from __future__ import annotations

from typing import Sequence, Union

import attrs
import numpy as np

__all__ = [
    "DTYPES",
    "Dim",
    "Layout",
    "TensorType",
    "channels_last",
    "compose",
    "dtype_from_numpy",
    "dtype_to_numpy",
    "invert",
    "is_identity",
    "normalize_layout",
]

Dim = Union[int, str]
Layout = tuple[int, ...]

# IR dtype name -> numpy dtype name.
DTYPES: dict[str, str] = {
    "f16": "float16",
    "bf16": "float32",  # numpy has no bfloat16: stored widened
    "f32": "float32",
    "f64": "float64",
    "i8": "int8",
    "u8": "uint8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "bool": "bool",
}
_FROM_NUMPY = {v: k for k, v in DTYPES.items() if k != "bf16"}


def dtype_to_numpy(dtype: str) -> np.dtype:
    return np.dtype(DTYPES[dtype])


def dtype_from_numpy(dtype: np.dtype | str) -> str:
    return _FROM_NUMPY[np.dtype(dtype).name]


def is_float(dtype: str) -> bool:
    return dtype in ("f16", "bf16", "f32", "f64")


def normalize_layout(layout: Sequence[int] | None, rank: int) -> Layout | None:
    """Canonical form: ``None`` for the identity, else a tuple permutation of ``range(rank)``."""
    if layout is None:
        return None
    layout = tuple(int(a) for a in layout)
    if sorted(layout) != list(range(rank)):
        raise ValueError(f"layout {layout} is not a permutation of {rank} axes")
    return None if layout == tuple(range(rank)) else layout


def is_identity(layout: Sequence[int] | None) -> bool:
    return layout is None or tuple(layout) == tuple(range(len(layout)))


def full(layout: Sequence[int] | None, rank: int) -> Layout:
    return tuple(range(rank)) if layout is None else tuple(layout)


def invert(perm: Sequence[int]) -> Layout:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def compose(first: Sequence[int], second: Sequence[int]) -> Layout:
    """The permutation equal to applying ``first`` and then ``second`` (numpy transpose semantics)."""
    return tuple(first[s] for s in second)


def channels_last(rank: int) -> Layout | None:
    """Physical order with the channel axis (logical axis 1) moved last: (0, 2, ..., rank-1, 1)."""
    if rank < 3:
        return None
    return (0, *range(2, rank), 1)


def _fmt_dim(d: Dim) -> str:
    return str(d)


@attrs.frozen
class TensorType:
    """Type of an IR value: logical ``shape``, ``dtype`` (a key of DTYPES) and physical ``layout``."""

    shape: tuple[Dim, ...] = attrs.field(converter=lambda s: tuple(d if isinstance(d, str) else int(d) for d in s))
    dtype: str = "f32"
    layout: Layout | None = None

    def __attrs_post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}")
        object.__setattr__(self, "layout", normalize_layout(self.layout, len(self.shape)))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def perm(self) -> Layout:
        """The layout as a full permutation (identity spelled out)."""
        return full(self.layout, self.rank)

    @property
    def physical_shape(self) -> tuple[Dim, ...]:
        return tuple(self.shape[a] for a in self.perm)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            if not isinstance(d, int):
                raise ValueError(f"numel of a symbolic shape {self.shape}")
            n *= d
        return n

    def physical_axis(self, logical_axis: int) -> int:
        """Where logical axis ``logical_axis`` (may be negative) is stored."""
        if not -max(self.rank, 1) <= logical_axis < max(self.rank, 1):
            raise ValueError(f"axis {logical_axis} out of range for rank {self.rank}")
        axis = logical_axis % self.rank if self.rank else 0
        return self.perm.index(axis) if self.rank else 0

    def replace(self, **changes) -> "TensorType":
        return attrs.evolve(self, **changes)

    def __str__(self) -> str:
        dims = ",".join(_fmt_dim(d) for d in self.shape)
        text = f"{self.dtype}[{dims}]"
        if self.layout is not None:
            text += "{" + ",".join(str(a) for a in self.layout) + "}"
        return text
