"""The drawing context op kinds use: the values drawn so far, the random source, and the
attributes (submodules, constant buffers) and model inputs an op adds."""

from __future__ import annotations

from typing import Callable, Optional

import attrs
import numpy as np
import torch

from .model import InputSpec

__all__ = ["Candidate", "Draw", "NoFit", "Value"]


class NoFit(Exception):
    """The op kind cannot be drawn on the values there are (the generator draws another kind)."""


@attrs.define(eq=False)
class Value:
    """A value of the model being drawn, with its example tensor.

    exact: both frameworks compute it without rounding (inputs, shape ops, relu, max, ...), so a
    discontinuous op (floor, comparisons, integer division) gives the same result in both.
    distinct: its elements are pairwise different along every axis (no ties for argmax, sort's
    indices, ...)."""

    name: str
    tensor: torch.Tensor
    exact: bool = False
    distinct: bool = False

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)

    @property
    def rank(self) -> int:
        return self.tensor.dim()

    @property
    def is_float(self) -> bool:
        return self.tensor.dtype == torch.float32

    @property
    def is_int(self) -> bool:
        return self.tensor.dtype == torch.int64

    @property
    def is_bool(self) -> bool:
        return self.tensor.dtype == torch.bool


@attrs.define
class Candidate:
    """What an op kind drew: ``expr`` over ``args`` (``{0}``, ...), and the output's flags."""

    expr: str
    args: list[Value]
    exact: bool = False
    distinct: bool = False


class Draw:
    """Random choices for one op: operands among the values, sizes, attributes, new inputs."""

    def __init__(self, rng: np.random.Generator, values: list[Value], index: int, inputs: list[InputSpec],
                 max_inputs: int = 3) -> None:
        self.r = rng
        self.values = values
        self.index = index
        self.inputs = inputs
        self.max_inputs = max_inputs
        self.init: list[str] = []
        self.new_inputs: list[tuple[InputSpec, Value]] = []
        self._consts = 0

    # -- random numbers
    def int(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return int(self.r.integers(low, high + 1))

    def coin(self, p: float = 0.5) -> bool:
        return bool(self.r.random() < p)

    def choice(self, options):
        return options[int(self.r.integers(len(options)))]

    def axis(self, v: Value, negative: bool = True) -> int:
        a = self.int(0, v.rank - 1)
        return a - v.rank if negative and self.coin(0.3) else a

    # -- operands
    def pick(self, ok: Callable[[Value], bool]) -> Value:
        """A random value satisfying ``ok`` (later values are likelier: the model grows deep)."""
        found = [v for v in self.values if ok(v)]
        if not found:
            raise NoFit()
        weights = np.arange(1, len(found) + 1, dtype=np.float64)
        return found[int(self.r.choice(len(found), p=weights / weights.sum()))]

    def float(self, ranks=range(0, 6), exact: bool = False, distinct: bool = False, min_size: int = 1,
              ok: Optional[Callable[[Value], bool]] = None) -> Value:
        return self.pick(lambda v: v.is_float and v.rank in ranks and (v.exact or not exact)
                         and (v.distinct or not distinct) and min(v.shape, default=1) >= min_size
                         and (ok is None or ok(v)))

    # -- attributes of the module
    def attr(self, suffix: str = "") -> str:
        return f"m{self.index}{suffix}"

    def module(self, source: str, *after: str) -> str:
        """``self.mK = source`` (plus statements ``after``, with ``{m}`` the attribute); the
        expression text ``self.mK``."""
        name = self.attr()
        self.init.append(f"self.{name} = {source}")
        self.init.extend(a.format(m=f"self.{name}") for a in after)
        return f"self.{name}"

    def const(self, shape: tuple, source: Optional[str] = None) -> str:
        """A constant buffer (``torch.randn(shape)`` unless ``source``); its expression text."""
        name = f"c{self.index}_{self._consts}"
        self._consts += 1
        self.init.append(f"self.register_buffer({name!r}, {source or f'torch.randn({tuple(shape)!r})'})")
        return f"self.{name}"

    def new_input(self, shape: tuple, dtype: str = "float32", high: int = 0) -> Value:
        """A further model input (refused past ``max_inputs``)."""
        if len(self.inputs) + len(self.new_inputs) >= self.max_inputs:
            raise NoFit()
        name = f"x{len(self.inputs) + len(self.new_inputs)}"
        spec = InputSpec(name=name, shape=tuple(shape), dtype=dtype, high=high)
        g = torch.Generator().manual_seed(int(self.r.integers(1 << 30)))
        t = torch.randint(0, high, shape, generator=g) if dtype == "int64" else torch.randn(shape, generator=g)
        value = Value(name, t, exact=True, distinct=dtype != "int64")
        self.new_inputs.append((spec, value))
        return value

    def broadcast_shape(self, shape: tuple) -> tuple:
        """A shape that broadcasts against ``shape``: some axes 1, maybe fewer leading axes."""
        out = [1 if self.coin(0.4) else d for d in shape]
        drop = self.int(0, len(out)) if self.coin(0.3) else 0
        return tuple(out[drop:])
