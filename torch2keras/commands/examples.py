"""The example inputs of ``convert``, matched against the built model's ``forward``.

From ``--inputs FILE.npz`` (real arrays, any dtype; keys are forward's argument names, or
``arr_0``, ``arr_1``, ... by position) or from ``--input-shape`` with ``--input-dtype``
(seeded random values: normal floats, booleans, and integers in ``[0, n)`` where ``n`` is the
smallest ``nn.Embedding``'s size, else 10). Also what depends on the inputs' names: the
calibration/hold-out samples, the per-name layouts and ``--dynamic``. Every mismatch is a
``UsageError`` naming forward's arguments.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import attrs
import numpy as np
import torch

from .exits import UsageError
from .preflight import Plan, split_samples

__all__ = ["Example", "dynamic_shapes", "layouts", "make_example", "samples_for"]

_INT_DEFAULT_HIGH = 10


@attrs.define
class Example:
    """The model's example call: ``model(*args, **kwargs)``; ``names`` in compile's input order."""

    args: tuple
    kwargs: dict
    names: list[str]
    notes: list[str] = attrs.field(factory=list)  # how random inputs were drawn

    @property
    def tensors(self) -> list[torch.Tensor]:
        return [*self.args, *self.kwargs.values()]

    def describe(self) -> str:
        return ", ".join(f"{n} {_dtype_name(t)}{list(t.shape)}" for n, t in zip(self.names, self.tensors))


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _parameters(model: torch.nn.Module) -> tuple[list[inspect.Parameter], bool]:
    """forward's named parameters, and whether it takes ``*args``."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return [], True
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return named, any(p.kind == p.VAR_POSITIONAL for p in params)


def _signature(model: torch.nn.Module) -> str:
    params, var = _parameters(model)
    return f"{type(model).__name__}.forward({', '.join([p.name for p in params] + (['*args'] if var else []))})"


def make_example(model: torch.nn.Module, plan: Plan, seed: int) -> Example:
    if plan.samples is not None:
        return _from_arrays(model, plan.samples)
    return _random(model, plan, seed)


def _from_arrays(model: torch.nn.Module, arrays: dict[str, np.ndarray]) -> Example:
    tensors = {}
    for key, a in arrays.items():
        try:
            tensors[key] = torch.from_numpy(np.ascontiguousarray(a))
        except TypeError:
            raise UsageError(f"--inputs: array {key!r} has dtype {a.dtype}, which torch has no tensor type for") \
                from None
    if all(k.startswith("arr_") for k in tensors):
        args = tuple(tensors[f"arr_{i}"] for i in range(len(tensors)))
        return Example(args, {}, _positional_names(model, len(args)))
    params, _ = _parameters(model)
    by_name = {p.name: p for p in params}
    unknown = [k for k in tensors if k not in by_name]
    if unknown:
        raise UsageError(f"--inputs: array {unknown[0]!r} is no argument of {_signature(model)}")
    missing = [p.name for p in params if p.name not in tensors and p.default is p.empty
               and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise UsageError(f"--inputs lacks {missing[0]!r}, an argument of {_signature(model)}")
    args, kwargs, leading = [], {}, True
    for p in params:
        if p.name not in tensors:
            leading = False
        elif leading and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            args.append(tensors[p.name])
        else:
            kwargs[p.name] = tensors[p.name]
    names = [p.name for p in params if p.name in tensors]
    return Example(tuple(args), kwargs, names)


def _positional_names(model: torch.nn.Module, count: int) -> list[str]:
    params, var = _parameters(model)
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if count > len(positional) and not var:
        raise UsageError(f"{count} inputs given, but {_signature(model)} takes {len(positional)}")
    required = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                            p.POSITIONAL_OR_KEYWORD)]
    if count < len(required):
        raise UsageError(f"{count} input(s) given, but {_signature(model)} needs {len(required)}: add "
                         f"--input-shape for {', '.join(required[count:])}")
    return [positional[i] if i < len(positional) else f"input_{i}" for i in range(count)]


def _random(model: torch.nn.Module, plan: Plan, seed: int) -> Example:
    names = _positional_names(model, len(plan.shapes))
    dtypes = _dtypes(plan, names)
    generator = torch.Generator().manual_seed(seed)
    high = _int_high(model)
    tensors, notes = [], []
    for name, shape, dtype in zip(names, plan.shapes, dtypes):
        if dtype == torch.bool:
            tensors.append(torch.randint(0, 2, shape, generator=generator).bool())
        elif dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=generator).to(dtype))
        else:
            tensors.append(torch.randint(0, high[0], shape, generator=generator, dtype=dtype))
            notes.append(f"random {name} in [0, {high[0]}) ({high[1]}; --inputs FILE.npz for real values)")
    return Example(tuple(tensors), {}, names, notes)


def _dtypes(plan: Plan, names: list[str]) -> list[torch.dtype]:
    chosen = ["float32"] * len(names)
    unnamed = [d for key, d in plan.dtypes if key is None]
    if len(unnamed) == 1:
        chosen = [unnamed[0]] * len(names)
    elif unnamed:
        chosen = list(unnamed)
    for key, d in plan.dtypes:
        if key is None:
            continue
        index = int(key) if key.isdigit() else names.index(key) if key in names else None
        if index is None:
            raise UsageError(f"--input-dtype {key}={d}: no input named {key!r}; the inputs are {', '.join(names)}")
        chosen[index] = d
    return [getattr(torch, d) for d in chosen]


def _int_high(model: torch.nn.Module) -> tuple[int, str]:
    sizes = [m.num_embeddings for m in model.modules() if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))]
    if sizes:
        return min(sizes), "the smallest nn.Embedding's size"
    return _INT_DEFAULT_HIGH, "the model has no nn.Embedding"


# ----------------------------------------------------------------------------- what depends on input names


def samples_for(arrays: dict[str, np.ndarray], example: Example, option: str) -> list[tuple[np.ndarray, ...]]:
    """Calibration/hold-out arrays -> samples (tuples in input order, PyTorch's layout)."""
    per_input = []
    for i, (name, t) in enumerate(zip(example.names, example.tensors)):
        key = name if name in arrays else f"arr_{i}" if f"arr_{i}" in arrays else None
        if key is None and len(arrays) == 1 and len(example.names) == 1:
            key = next(iter(arrays))
        if key is None:
            raise UsageError(f"{option} has no array {name!r} (nor arr_{i}); it has {', '.join(arrays)}")
        try:
            per_input.append(split_samples(arrays[key], tuple(t.shape)))
        except ValueError:
            raise UsageError(f"{option}: array {key!r} has shape {list(arrays[key].shape)}; expected "
                             f"[samples, {', '.join(map(str, t.shape))}]") from None
    return list(zip(*per_input))


def layouts(plan: Plan, input_names: list[str], output_names: list[str]) -> tuple[Any, Any]:
    """compile's (input_layouts, output_layouts) from --channels-last and --layout NAME=LAYOUT."""
    if not plan.layouts:
        return ("channels_last", "channels_last") if plan.channels_last else (None, None)
    default = "channels_last" if plan.channels_last else None
    ins = {n: default for n in input_names}
    outs = {n: default for n in output_names}
    for name, layout in plan.layouts:
        value = layout if layout == "channels_last" else None
        if name in ins:
            ins[name] = value
        elif name in outs:
            outs[name] = value
        else:
            raise UsageError(f"--layout {name}={layout}: no input or output named {name!r} (inputs: "
                             f"{', '.join(input_names)}; outputs: {', '.join(output_names)})")
    return ins, outs


def dynamic_shapes(plan: Plan, example: Example) -> Optional[Any]:
    """compile's ``dynamic_shapes`` from the --dynamic options (inputs and axes checked)."""
    if not plan.dynamic:
        return None
    ranks = {n: t.dim() for n, t in zip(example.names, example.tensors)}
    named = {}
    for name, dims in plan.dynamic:
        key = name if name is not None else example.names[0]
        if key not in ranks:
            raise UsageError(f"--dynamic {name}:...: no input named {name!r}; the inputs are {', '.join(ranks)}")
        bad = [a for a in dims if a >= ranks[key]]
        if bad:
            raise UsageError(f"--dynamic axis {bad[0]}: input {key!r} has {ranks[key]} axes (0..{ranks[key] - 1})")
        if name is None:
            return [dims]
        named[name] = dims
    return named
