"""Stand-ins for arrays an IR text leaves out: shape and dtype known, every numeric use refused.

The printed IR names a large constant by dtype and shape only (``<float32[64,3,3,3]>``); its
values travel in a side file (``storage.py``). A graph parsed without them holds an
``ElidedArray`` in the constant's ``value`` attribute, and ``graph.meta["elided_weights"]``
lists their printed names. The stand-in answers ``shape``, ``dtype``, ``ndim``, ``size`` (and
``np.shape``/``np.ndim``/``np.size``), so passes can look at types, printing and verification
work; anything that would read the values -- ``np.asarray``, ufuncs, numpy functions,
arithmetic, indexing, comparison, hashing, methods such as ``astype`` or ``tobytes`` -- raises
``ElidedWeightsError`` naming the constant and how to load its values.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from .errors import Torch2KerasError

__all__ = ["ElidedArray", "ElidedWeightsError"]


class ElidedWeightsError(Torch2KerasError):
    """A computation needed the values of a constant that an IR text left out."""


_METADATA_FUNCTIONS = {np.shape, np.ndim, np.size}


class ElidedArray:
    """The array of constant ``%key``, known by shape and dtype only (read-only, holds no data)."""

    __slots__ = ("key", "shape", "dtype")

    def __init__(self, key: str, shape: tuple[int, ...], dtype: "np.dtype | str") -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))
        object.__setattr__(self, "dtype", np.dtype(dtype))

    # -- what may be asked without the values
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def _spec(self) -> str:
        return f"{self.dtype.name}[{','.join(str(d) for d in self.shape)}]"

    def __repr__(self) -> str:
        return f"ElidedArray(%{self.key}: {self._spec()})"

    def __copy__(self) -> "ElidedArray":
        return self

    def __deepcopy__(self, memo: dict) -> "ElidedArray":
        return self

    def __reduce__(self):
        return ElidedArray, (self.key, self.shape, self.dtype.str)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{self!r} is read-only")

    # -- everything else would need the values
    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ElidedWeightsError(
            f"the values of constant %{self.key} ({self._spec()}) are not loaded: the IR "
            "text elides large constants and was parsed without its weights file. Load it with "
            "torch2keras.ir.load_ir(path) with path.npz next to it (compile(..., dump_ir=DIR, dump_weights=True) "
            "writes one per stage), or pass parse(text, weights={name: array})")

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):  # protocol probes (numpy's __array_interface__, copy's __getstate__...)
            raise AttributeError(name)
        self._refuse()

    def __array__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def __array_ufunc__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def __array_function__(self, func, types, args, kwargs):
        if func in _METADATA_FUNCTIONS and len(args) == 1 and not kwargs:
            return {np.shape: self.shape, np.ndim: self.ndim, np.size: self.size}[func]
        self._refuse()

    def __hash__(self) -> NoReturn:  # equal-valued constants cannot be told apart without the values
        self._refuse()


def _refusing(name: str):
    def method(self: ElidedArray, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    method.__name__ = name
    return method


for _name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__int__", "__float__",
              "__complex__", "__index__", "__iter__", "__getitem__", "__setitem__", "__contains__", "__neg__",
              "__pos__", "__abs__", "__invert__", "__add__", "__radd__", "__sub__", "__rsub__", "__mul__",
              "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__",
              "__pow__", "__rpow__", "__matmul__", "__rmatmul__", "__and__", "__rand__", "__or__", "__ror__",
              "__xor__", "__rxor__", "__lshift__", "__rshift__"):
    setattr(ElidedArray, _name, _refusing(_name))
del _name
