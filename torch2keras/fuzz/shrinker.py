"""Reduce a failing model to the fewest ops that still fail the same way.

Reductions, each kept only if the model still runs in PyTorch and ``still_fails`` holds:
keep one value as the only output (dropping everything it does not depend on); replace an
op's value by a new model input of the same shape (cutting off everything upstream); bypass an
op whose operand has its output's shape and dtype; drop the conversion options (dynamic batch,
channels-last layouts). Greedy, smallest result first, until nothing applies or the budget of
checks is spent.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable, Iterator

import torch

from .generator import runs_in_torch
from .model import InputSpec, ModelSpec, build_model, make_inputs

__all__ = ["shrink", "value_tensors", "prune"]


def value_tensors(spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Every value of the model (inputs and op outputs) on its example inputs."""
    model = build_model(spec)
    namespace = {"self": model, "torch": torch, "nn": torch.nn, "F": torch.nn.functional}
    namespace.update({i.name: t for i, t in zip(spec.inputs, make_inputs(spec, spec.seed))})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for op in spec.ops:
            namespace[op.out] = eval(op.call(), namespace)  # noqa: S307 - the spec's own expressions
    return {k: v for k, v in namespace.items() if isinstance(v, torch.Tensor)}


def prune(spec: ModelSpec) -> ModelSpec:
    """The spec without the ops and inputs its outputs do not depend on (one input is kept)."""
    needed = set(spec.outputs)
    kept = []
    for op in reversed(spec.ops):
        if op.out in needed:
            kept.append(op)
            needed.update(op.args)
    inputs = [i for i in spec.inputs if i.name in needed] or spec.inputs[:1]
    layouts = list(spec.output_layouts) or [None] * len(spec.outputs)
    return ModelSpec(seed=spec.seed, inputs=inputs, ops=list(reversed(kept)), outputs=list(spec.outputs),
                     output_layouts=layouts)


def _single_outputs(spec: ModelSpec) -> Iterator[ModelSpec]:
    layouts = dict(zip(spec.outputs, spec.output_layouts or [None] * len(spec.outputs)))
    for op in spec.ops:
        yield prune(attrs_evolve(spec, outputs=[op.out], output_layouts=[layouts.get(op.out)]))


def _as_inputs(spec: ModelSpec, values: dict[str, torch.Tensor]) -> Iterator[ModelSpec]:
    """Each op's value replaced by a new input of its shape (float, or non-negative integers)."""
    for op in spec.ops:
        t = values[op.out]
        if t.dtype == torch.bool or (t.dtype == torch.int64 and int(t.min()) < 0):
            continue
        name = f"x{len(spec.inputs)}"
        dtype, high = ("int64", int(t.max()) + 1) if t.dtype == torch.int64 else ("float32", 0)
        for layout in (None, "channels_last") if 3 <= t.dim() <= 5 and dtype == "float32" else (None,):
            new = copy.deepcopy(spec)
            new.inputs.append(InputSpec(name=name, shape=tuple(t.shape), dtype=dtype, high=high, layout=layout))
            new.ops = [o for o in new.ops if o.out != op.out]
            for o in new.ops:
                o.args = [name if a == op.out else a for a in o.args]
            new.outputs = [name if a == op.out else a for a in new.outputs]
            if all(o != name for o in new.outputs):
                yield prune(new)


def _bypasses(spec: ModelSpec, values: dict[str, torch.Tensor]) -> Iterator[ModelSpec]:
    for op in spec.ops:
        out = values[op.out]
        for a in dict.fromkeys(op.args):
            src = values.get(a)
            if src is not None and src.shape == out.shape and src.dtype == out.dtype:
                new = copy.deepcopy(spec)
                new.ops = [o for o in new.ops if o.out != op.out]
                for o in new.ops:
                    o.args = [a if x == op.out else x for x in o.args]
                new.outputs = [a if x == op.out else x for x in new.outputs]
                if len(set(new.outputs)) == len(new.outputs):
                    yield prune(new)


def _simpler_options(spec: ModelSpec) -> Iterator[ModelSpec]:
    if any(i.dynamic_batch for i in spec.inputs):
        new = copy.deepcopy(spec)
        for i in new.inputs:
            i.dynamic_batch = False
        yield new
    if any(i.layout for i in spec.inputs):
        new = copy.deepcopy(spec)
        for i in new.inputs:
            i.layout = None
        yield new
    if any(spec.output_layouts):
        yield attrs_evolve(spec, output_layouts=[None] * len(spec.outputs))


def attrs_evolve(spec: ModelSpec, **changes) -> ModelSpec:
    new = copy.deepcopy(spec)
    for k, v in changes.items():
        setattr(new, k, v)
    return new


def _size(spec: ModelSpec) -> tuple:
    return (len(spec.ops), len(spec.inputs), len(spec.outputs), sum(bool(i.layout) or i.dynamic_batch
                                                                    for i in spec.inputs) + sum(map(bool, spec.output_layouts)))


def _candidates(spec: ModelSpec) -> list[ModelSpec]:
    """Every one-step reduction of ``spec``, smallest first (duplicates dropped)."""
    values = value_tensors(spec)
    found, seen = [], {spec.to_json()}
    for c in [*_single_outputs(spec), *_as_inputs(spec, values), *_bypasses(spec, values), *_simpler_options(spec)]:
        key = c.to_json()
        if key not in seen and _size(c) < _size(spec):
            seen.add(key)
            found.append(c)
    return sorted(found, key=_size)


def shrink(spec: ModelSpec, still_fails: Callable[[ModelSpec], bool], budget: int = 40) -> tuple[ModelSpec, int]:
    """The smallest reduction of ``spec`` found for which ``still_fails`` holds, and the number
    of checks spent (at most ``budget``)."""
    spent = 0
    best = spec
    improved = True
    while improved and spent < budget:
        improved = False
        for candidate in _candidates(best):
            if spent >= budget:
                break
            if not _valid(candidate):
                continue
            spent += 1
            if still_fails(candidate):
                best, improved = candidate, True
                break
    return best, spent


def _valid(spec: ModelSpec) -> bool:
    try:
        return bool(spec.ops) and runs_in_torch(copy.deepcopy(spec))
    except Exception:  # noqa: BLE001 - a reduction PyTorch refuses is simply not a candidate
        return False
