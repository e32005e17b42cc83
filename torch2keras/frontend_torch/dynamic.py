"""Which input dims are dynamic: the user's ``dynamic_shapes`` read into torch.export's form, and
torch's size symbols named after the user's dims once the model is captured.

Accepted per input (a dict keyed by the input's name, or a list/tuple in input order):

* ``None``: every dim static (the example's);
* a dict ``{axis: spec}``, spec one of: a name (``"batch"``), ``None`` (dynamic, unnamed), a
  torch ``Dim("batch", min=, max=)`` or a hint ``Dim.AUTO`` / ``Dim.DYNAMIC`` / ``Dim.STATIC``;
* a tuple/list with one entry per axis: ``None`` marks a dynamic axis, an int a static one (it
  must equal the example's size), a name a named dynamic axis. (A tuple holding torch ``Dim``
  objects follows torch.export's own convention instead: ``None`` is a static axis.)

Every dynamic dim is exported as ``Dim.AUTO`` (with the range of a named ``Dim``): torch infers
the relations between dims (``h // 3``, two inputs of equal length) instead of rejecting the
model for them, and a dim the model's code fixes to one value is *specialised*, which is
reported with a warning naming the input and axis. torch.export also specialises dims whose
example size is 0 or 1; capture runs with ``backed_size_oblivious`` so that an example batch
of 1 still gives a dynamic batch (code comparing such a size with 0 or 1 is then captured for the
larger sizes; validation at the example size shows where that matters).
"""

from __future__ import annotations

import inspect
from typing import Any, Optional, Sequence

import attrs
import torch
import torch.utils._pytree as pytree

__all__ = ["DynamicDim", "DynamicSpec", "parse_dynamic_shapes", "name_symbols"]


@attrs.frozen
class DynamicDim:
    input: str  # the input's name (a parameter of forward)
    axis: int
    name: Optional[str]  # the user's name of the dim; None: torch's symbol names it


@attrs.frozen
class DynamicSpec:
    """The parsed request: what torch.export gets and which dims the user asked to be dynamic."""

    torch_spec: Any  # dict keyed by forward's parameter names, or a tuple in positional order
    dims: tuple[DynamicDim, ...]

    @property
    def is_dynamic(self) -> bool:
        return bool(self.dims)


def _is_torch_dim(d: Any) -> bool:
    from torch.export.dynamic_shapes import Dim, _DimHint

    return isinstance(d, (_DimHint, Dim))


def _auto(dim: Any = None):
    """Dim.AUTO, with a named torch Dim's range (torch's default ranges where none is given)."""
    from torch.export import Dim
    from torch.utils._sympy.numbers import int_oo

    if dim is None or not hasattr(dim, "min"):
        return Dim.AUTO
    low = dim.min if dim.min not in (None, 0) else None
    high = None if dim.max in (None, int_oo) else int(dim.max)
    return Dim.AUTO(min=low, max=high) if low is not None or high is not None else Dim.AUTO


def _param_names(model: torch.nn.Module, n_args: int) -> Optional[list[str]]:
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional[:n_args] if len(positional) >= n_args else None


def _axes(input_name: str, spec: Any, example: torch.Tensor) -> tuple[dict, list[DynamicDim]]:
    """One input's spec -> ({axis: torch dim}, requested dynamic dims)."""
    rank = example.dim()
    torch_axes: dict[int, Any] = {}
    dims: list[DynamicDim] = []

    def add(axis: Any, entry: Any) -> None:
        if not isinstance(axis, int) or not -rank <= axis < rank:
            raise ValueError(f"dynamic_shapes[{input_name!r}]: axis {axis!r} is not an axis of the input "
                             f"(shape {tuple(example.shape)})")
        axis %= rank
        from torch.export.dynamic_shapes import _DimHint, _DimHintType

        if isinstance(entry, _DimHint):
            torch_axes[axis] = entry
            if entry.type != _DimHintType.STATIC:
                dims.append(DynamicDim(input_name, axis, None))
            return
        if entry is not None and not isinstance(entry, str) and not _is_torch_dim(entry):
            raise ValueError(f"dynamic_shapes[{input_name!r}][{axis}]: {entry!r} is not a dim name, None or a "
                             "torch.export.Dim")
        name = entry if isinstance(entry, str) else getattr(entry, "__name__", None)
        if name is not None and not name.isidentifier():
            raise ValueError(f"dynamic_shapes[{input_name!r}][{axis}]: the dim name {name!r} is not an identifier")
        torch_axes[axis] = _auto(entry if _is_torch_dim(entry) else None)
        dims.append(DynamicDim(input_name, axis, name))

    if spec is None:
        return {}, []
    if isinstance(spec, dict):
        for axis, entry in spec.items():
            add(axis, entry)
    elif isinstance(spec, (list, tuple)):
        if len(spec) != rank:
            raise ValueError(f"dynamic_shapes[{input_name!r}] has {len(spec)} entries for an input of rank {rank} "
                             f"(shape {tuple(example.shape)})")
        torch_convention = any(_is_torch_dim(e) for e in spec)  # None = static, as torch.export reads it
        for axis, entry in enumerate(spec):
            if isinstance(entry, bool) or (isinstance(entry, int) and not _is_torch_dim(entry)):
                if entry != example.shape[axis]:
                    raise ValueError(f"dynamic_shapes[{input_name!r}][{axis}] = {entry} but the example's size is "
                                     f"{example.shape[axis]}")
                continue
            if entry is None and torch_convention:
                continue
            add(axis, entry)
    else:
        raise ValueError(f"dynamic_shapes[{input_name!r}]: expected None, a dict {{axis: name}} or a tuple with "
                         f"one entry per axis, got {type(spec).__name__}")
    return torch_axes, dims


def _static_structure(value: Any) -> Any:
    """``value``'s containers with None for each leaf: every size of it static."""
    if isinstance(value, (dict, list, tuple)) and value:
        return pytree.tree_map(lambda _: None, value)
    return None


def parse_dynamic_shapes(spec: Any, model: torch.nn.Module, args: Sequence, kwargs: dict) -> DynamicSpec:
    """Read ``spec`` (see the module docstring) against the example inputs."""
    params = _param_names(model, len(args))
    names = (params or [f"input_{i}" for i in range(len(args))]) + list(kwargs)
    values = list(args) + list(kwargs.values())
    tensors = [n for n, v in zip(names, values) if isinstance(v, torch.Tensor)]
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise ValueError(f"dynamic_shapes names unknown input(s) {unknown}; the model's inputs are {tensors}")
        per_input = {n: spec.get(n) for n in names}
    elif isinstance(spec, (list, tuple)):
        if len(spec) > len(tensors):
            raise ValueError(f"dynamic_shapes has {len(spec)} entries but the model has {len(tensors)} tensor "
                             f"input(s) {tensors}")
        per_input = dict(zip(tensors, spec))
    else:
        raise ValueError("dynamic_shapes must be a dict keyed by input name or a list/tuple in input order, "
                         f"got {type(spec).__name__}")
    torch_spec: dict[str, Any] = {}
    dims: list[DynamicDim] = []
    for name, value in zip(names, values):
        entry = per_input.get(name)
        if entry is not None and not isinstance(value, torch.Tensor):
            raise ValueError(f"dynamic_shapes[{name!r}]: dynamic shapes are supported for tensor inputs, "
                             f"{name!r} is a {type(value).__name__}")
        axes, found = _axes(name, entry, value) if isinstance(value, torch.Tensor) else ({}, [])
        # a container of tensors (a dict, a list) is static: torch.export wants its structure
        torch_spec[name] = (axes or None) if isinstance(value, torch.Tensor) else _static_structure(value)
        dims.extend(found)
    if params is None:  # forward's parameters are unknown (*args): torch.export's positional form
        return DynamicSpec(tuple(torch_spec[n] for n in names[: len(args)]), tuple(dims))
    return DynamicSpec(torch_spec, tuple(dims))


def name_symbols(spec: DynamicSpec, input_vals: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """After capture: torch's size symbols -> the user's dim names, and warnings for dims torch
    specialised (or related) against the request. ``input_vals``: input name -> fake tensor."""
    mapping: dict[str, str] = {}
    taken: dict[str, str] = {}  # user name -> symbol
    warnings: list[str] = []
    for d in spec.dims:
        fake = input_vals.get(d.input)
        if fake is None:
            continue
        size = fake.shape[d.axis]
        label = f"{d.input}.shape[{d.axis}]" + (f" ('{d.name}')" if d.name else "")
        if not isinstance(size, torch.SymInt) or size.node.expr.is_number:
            warnings.append(f"dynamic dim {label} was specialised by torch.export to {int(size)}: the model's code "
                            "fixes its size (e.g. a reshape or a comparison with a constant), so the converted "
                            "model accepts only that size there")
            continue
        expr = size.node.expr
        symbol = str(expr)
        if not expr.is_Symbol:
            warnings.append(f"torch.export expresses dynamic dim {label} as {symbol} (a relation with other dims "
                            "it found in the model's code)")
            continue
        if d.name is None:
            continue
        if symbol in mapping:
            if mapping[symbol] != d.name:
                warnings.append(f"torch.export found {label} equal to the dim named '{mapping[symbol]}': it keeps "
                                "that name")
            continue
        name = d.name
        if name in taken:
            k = 2
            while f"{name}_{k}" in taken:
                k += 1
            warnings.append(f"dims named '{name}' are independent in the captured model (torch.export found no "
                            f"equality between them): {label} is named '{name}_{k}'")
            name = f"{name}_{k}"
        taken[name] = symbol
        mapping[symbol] = name
    return mapping, warnings
