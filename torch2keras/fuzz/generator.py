"""Seeded generator of random, valid PyTorch models (``ModelSpec``): a small DAG of ops drawn
from the catalogue, each run in PyTorch as it is added and redrawn if PyTorch refuses it.

Invariant: ``generate(seed)`` is a function of ``seed`` alone, and the model it describes runs in
PyTorch on its example inputs and on fresh random inputs of the same shapes (and, when an input
is marked ``dynamic_batch``, on another batch size), with finite outputs.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .catalogue import CATALOGUE, FAMILIES
from .draw import Candidate, Draw, NoFit, Value
from .model import InputSpec, ModelSpec, OpSpec, build_model, make_inputs

__all__ = ["generate", "runs_in_torch", "CHECK_SEED_OFFSET", "MAX_ELEMENTS"]

MAX_ELEMENTS = 4096  # per value: keeps every model small and fast
MAX_MAGNITUDE = 1e4  # values beyond this make absolute tolerances meaningless
CHECK_SEED_OFFSET = 1_000_003  # the checker's inputs: make_inputs(spec, spec.seed + CHECK_SEED_OFFSET)
_FAMILY_NAMES = sorted(set(FAMILIES.values()))


def generate(seed: int, min_ops: int = 1, max_ops: int = 15, kinds: Optional[list[str]] = None) -> ModelSpec:
    """The random model of ``seed`` (1..15 ops by default; ``kinds`` restricts the op kinds)."""
    for attempt in range(20):
        rng = np.random.default_rng([seed, attempt])
        spec = _draw_model(rng, seed, int(rng.integers(min_ops, max_ops + 1)), kinds)
        if spec is not None and runs_in_torch(spec):
            return spec
    raise RuntimeError(f"no valid model drawn for seed {seed}")


def _draw_inputs(rng: np.random.Generator, seed: int) -> tuple[list[InputSpec], list[Value]]:
    specs, values = [], []
    batch = int(rng.integers(1, 4))
    for k in range(1 if rng.random() < 0.7 else 2):
        rank = int(rng.choice([1, 2, 3, 3, 4, 4, 4, 5]))
        shape = [batch] + [int(rng.integers(1, 9 if i == 0 else 11)) for i in range(rank - 1)]
        while int(np.prod(shape)) > 1024:
            shape[int(np.argmax(shape))] //= 2
        specs.append(InputSpec(name=f"x{k}", shape=tuple(shape)))
    tensors = make_inputs(ModelSpec(seed=seed, inputs=specs, ops=[], outputs=[]), seed)
    values = [Value(s.name, t, exact=True, distinct=True) for s, t in zip(specs, tensors)]
    return specs, values


def _draw_model(rng: np.random.Generator, seed: int, n_ops: int, kinds: Optional[list[str]]) -> Optional[ModelSpec]:
    inputs, values = _draw_inputs(rng, seed)
    holder = nn.Module()
    ops: list[OpSpec] = []
    pool = sorted(kinds or CATALOGUE)
    for _ in range(n_ops * 40):
        if len(ops) == n_ops:
            break
        kind = _pick_kind(rng, pool, kinds is not None)
        draw = Draw(rng, values, len(ops) + 1, inputs)
        try:
            candidate = CATALOGUE[kind](draw)
        except NoFit:
            continue
        out = _try(holder, draw, candidate)
        if out is None:
            continue
        name = f"v{len(ops) + 1}"
        ops.append(OpSpec(kind=kind, out=name, expr=candidate.expr, args=[v.name for v in candidate.args],
                          init=list(draw.init)))
        for spec, value in draw.new_inputs:
            inputs.append(spec)
            values.append(value)
        values.append(Value(name, out, exact=candidate.exact, distinct=candidate.distinct))
    if not ops:
        return None
    spec = ModelSpec(seed=seed, inputs=inputs, ops=ops, outputs=_outputs(rng, ops))
    _draw_options(rng, spec, {v.name: v for v in values})
    return spec


def _pick_kind(rng: np.random.Generator, pool: list[str], restricted: bool) -> str:
    """A family first, then a kind in it: every family is drawn about as often."""
    if restricted:
        return pool[int(rng.integers(len(pool)))]
    family = _FAMILY_NAMES[int(rng.integers(len(_FAMILY_NAMES)))]
    members = [k for k in pool if FAMILIES[k] == family]
    return members[int(rng.integers(len(members)))]


def _try(holder: nn.Module, draw: Draw, candidate: Candidate) -> Optional[torch.Tensor]:
    """The op's output on the example values, or None when PyTorch refuses it or the output is
    not a model output we can compare (tuple, empty, huge, non-finite, unsupported dtype)."""
    namespace = {"self": holder, "torch": torch, "nn": nn, "F": F}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(draw.index)
            for line in draw.init:
                exec(line, namespace)  # noqa: S102 - the catalogue's own statements
            args = [f"_a{k}" for k in range(len(candidate.args))]
            namespace.update({a: v.tensor for a, v in zip(args, candidate.args)})
            out = eval(candidate.expr.format(*args), namespace)  # noqa: S307
    except Exception:  # noqa: BLE001 - PyTorch refused the draw: the generator draws again
        return None
    if not isinstance(out, torch.Tensor) or out.dtype not in (torch.float32, torch.int64, torch.bool):
        return None
    if not 0 < out.numel() <= MAX_ELEMENTS or out.dim() > 5:
        return None
    if out.dtype != torch.bool and (not torch.isfinite(out.float()).all() or out.abs().max() > MAX_MAGNITUDE):
        return None
    return out.detach()


def _outputs(rng: np.random.Generator, ops: list[OpSpec]) -> list[str]:
    """The last op's value and up to two other values nothing reads."""
    used = {a for op in ops for a in op.args}
    sinks = [op.out for op in ops[:-1] if op.out not in used]
    rng.shuffle(sinks)
    return sinks[: int(rng.integers(0, 3))] + [ops[-1].out]


def _draw_options(rng: np.random.Generator, spec: ModelSpec, values: dict[str, Value]) -> None:
    """Input/output layouts (channels-last where the rank allows it) and a dynamic batch."""
    for i in spec.inputs:
        if i.dtype == "float32" and 3 <= len(i.shape) <= 5 and rng.random() < 0.35:
            i.layout = "channels_last"
    spec.output_layouts = ["channels_last" if 3 <= values[o].rank <= 5 and rng.random() < 0.25 else None
                           for o in spec.outputs]
    batches = {i.shape[0] for i in spec.inputs if len(i.shape) >= 2}
    if rng.random() < 0.2 and len(batches) == 1 and min(batches) >= 2:
        for i in spec.inputs:
            i.dynamic_batch = len(i.shape) >= 2


def runs_in_torch(spec: ModelSpec) -> bool:
    """Whether the model runs with finite outputs on its example inputs and on the checker's
    inputs; a dynamic batch that does not run on another size is made static."""
    model = build_model(spec)
    feeds = [make_inputs(spec, spec.seed), make_inputs(spec, spec.seed + CHECK_SEED_OFFSET)]
    if not all(_finite_run(model, f) for f in feeds):
        return False
    if any(i.dynamic_batch for i in spec.inputs):
        batch = next(i.shape[0] for i in spec.inputs if i.dynamic_batch) + 1
        if not _finite_run(model, _resized(spec, spec.seed + CHECK_SEED_OFFSET, batch)):
            for i in spec.inputs:
                i.dynamic_batch = False
    return True


def _resized(spec: ModelSpec, seed: int, batch: int) -> tuple:
    """Inputs with axis 0 of the dynamic inputs resized to ``batch``."""
    full = make_inputs(spec, seed, batch)
    same = make_inputs(spec, seed)
    return tuple(f if i.dynamic_batch else s for i, f, s in zip(spec.inputs, full, same))


def _finite_run(model: nn.Module, inputs: tuple) -> bool:
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model(*inputs)
    except Exception:  # noqa: BLE001
        return False
    outs = out if isinstance(out, tuple) else (out,)
    return all(o.dtype == torch.bool or (torch.isfinite(o.float()).all() and o.abs().max() <= MAX_MAGNITUDE)
               for o in outs)
