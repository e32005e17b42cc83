"""A random model as plain data (``ModelSpec``): its Python source, the module it builds and its inputs.

A spec is a list of ops, each a Python expression over earlier values (``{0}``, ``{1}``, ...
stand for its operands) plus the ``__init__`` statements that create its submodules and
constant buffers. The module is built by executing the spec's own source, so a reproducer
written from the spec is exactly the model that was checked.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any, Optional

import attrs
import numpy as np
import torch

from .replay import random_inputs

__all__ = ["InputSpec", "OpSpec", "ModelSpec", "build_model", "make_inputs", "model_source"]


@attrs.define
class InputSpec:
    """One model input: name, PyTorch shape, dtype, value range (integer inputs) and conversion options."""

    name: str
    shape: tuple
    dtype: str = "float32"  # "float32" | "int64"
    high: int = 0  # integer inputs: values drawn from [0, high)
    layout: Optional[str] = None  # None | "channels_last"
    dynamic_batch: bool = False  # axis 0 is a run-time size


@attrs.define
class OpSpec:
    """One op: ``out = expr.format(*args)``; ``init`` creates the attributes ``expr`` uses."""

    kind: str
    out: str
    expr: str
    args: list[str]
    init: list[str] = attrs.field(factory=list)

    def call(self) -> str:
        return self.expr.format(*self.args)


@attrs.define
class ModelSpec:
    """A whole random model: inputs, ops in order, outputs (value names) and output layouts."""

    seed: int
    inputs: list[InputSpec]
    ops: list[OpSpec]
    outputs: list[str]
    output_layouts: list = attrs.field(factory=list)  # per output: None | "channels_last"

    @property
    def kinds(self) -> list[str]:
        return [op.kind for op in self.ops]

    def input_layouts(self) -> Optional[dict]:
        chosen = {i.name: i.layout for i in self.inputs if i.layout}
        return chosen or None

    def output_layout_list(self) -> Optional[list]:
        return list(self.output_layouts) if any(self.output_layouts) else None

    def dynamic_shapes(self) -> Optional[dict]:
        if not any(i.dynamic_batch for i in self.inputs):
            return None
        return {i.name: ({0: "batch"} if i.dynamic_batch else None) for i in self.inputs}

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        return cls(seed=d["seed"], inputs=[InputSpec(**{**i, "shape": tuple(i["shape"])}) for i in d["inputs"]],
                   ops=[OpSpec(**o) for o in d["ops"]], outputs=list(d["outputs"]),
                   output_layouts=list(d.get("output_layouts", [])))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


_HEADER = """\
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch2keras.fuzz.replay import random_inputs
"""


def model_source(spec: ModelSpec) -> str:
    """The spec as a standalone Python module defining ``FuzzModel``, ``make_model()`` and
    ``make_inputs(seed, batch=None)``."""
    init = [line for op in spec.ops for line in op.init] or ["pass"]
    body = [f"{op.out} = {op.call()}" for op in spec.ops]
    outs = ", ".join(spec.outputs) + ("," if len(spec.outputs) == 1 else "")
    returns = spec.outputs[0] if len(spec.outputs) == 1 else f"({outs})"
    args = ", ".join(i.name for i in spec.inputs)
    shapes = ", ".join(f"({i.name!r}, {tuple(i.shape)!r}, {i.dtype!r}, {i.high})" for i in spec.inputs)
    return _HEADER + f"""

class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
{textwrap.indent(chr(10).join(init), " " * 8)}

    def forward(self, {args}):
{textwrap.indent(chr(10).join(body), " " * 8)}
        return {returns}


INPUTS = [{shapes}]


def make_model():
    torch.manual_seed({spec.seed})
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    \"\"\"Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input.\"\"\"
    return random_inputs(INPUTS, seed, batch)
"""


def _namespace(spec: ModelSpec) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"fuzz_model_{spec.seed}"}
    exec(compile(model_source(spec), f"<fuzz model {spec.seed}>", "exec"), namespace)  # noqa: S102 - our own source
    return namespace


def build_model(spec: ModelSpec) -> torch.nn.Module:
    """The spec's module (eval mode, weights seeded by ``spec.seed``)."""
    return _namespace(spec)["make_model"]()


def make_inputs(spec: ModelSpec, seed: int, batch: Optional[int] = None) -> tuple[torch.Tensor, ...]:
    """Random inputs of the spec's shapes (axis 0 resized to ``batch`` if given), seeded by ``seed``."""
    return random_inputs([(i.name, tuple(i.shape), i.dtype, i.high) for i in spec.inputs], seed, batch)


def as_numpy(tensors) -> list[np.ndarray]:
    return [t.detach().numpy().copy() for t in tensors]
