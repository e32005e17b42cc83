"""Checks of what users pass to ``compile`` (model, example inputs, layouts, what forward returns),
run before any work starts: each refusal names what was given, what is expected, and how to fix it.

Files and arrays at a converted model's boundary are checked by ``io_checks`` (no torch there)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree

from .frontend_torch.capture import _input_names, flat_output_names  # the names compile gives inputs/outputs

__all__ = ["LAYOUT_NAMES", "call_error", "check_inputs", "check_layouts", "check_model", "check_output_layouts",
           "check_outputs"]

LAYOUT_NAMES = ("channels_last", "channels_first", "torch")  # and None: PyTorch's layout
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
           torch.int8, torch.uint8, torch.bool)


def _describe(obj: Any) -> str:
    if obj is None:
        return "None"
    if inspect.isclass(obj):
        return f"the class {obj.__module__}.{obj.__qualname__} (not an instance)"
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isbuiltin(obj):
        return f"the function {getattr(obj, '__qualname__', obj)!s}"
    if isinstance(obj, str):
        return f"a str ({obj[:60]!r})"
    if isinstance(obj, (bool, int, float, complex)):
        return f"a Python {type(obj).__name__} ({obj!r})"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


def check_model(model: Any) -> None:
    """``model`` must be a ``torch.nn.Module`` instance."""
    if isinstance(model, torch.nn.Module):
        return
    fix = {True: "instantiate it: pass MyModel(...) rather than MyModel"}.get(
        inspect.isclass(model) and issubclass(model, torch.nn.Module),
        "wrap the computation in a torch.nn.Module whose forward() does it" if callable(model) else
        "build or load the model first (e.g. model = MyModel(); model.load_state_dict(torch.load(path)))")
    raise TypeError(f"torch2keras.compile expects a torch.nn.Module instance as the model; got {_describe(model)}: "
                    f"{fix}")


def check_inputs(model: torch.nn.Module, args: tuple, kwargs: dict) -> None:
    """The example inputs: tensors of a supported dtype, as many as ``forward`` takes."""
    for k, leaf in enumerate(pytree.tree_flatten((args, kwargs))[0]):
        if isinstance(leaf, np.ndarray):
            raise TypeError(f"example input {k} is a numpy array {leaf.shape}: pass torch tensors "
                            f"(torch.from_numpy(array))")
        if isinstance(leaf, torch.Tensor) and leaf.dtype not in _DTYPES:
            raise ValueError(f"example input {k} has dtype {leaf.dtype}; supported: "
                             f"{', '.join(str(d).removeprefix('torch.') for d in _DTYPES)}")
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as e:
        raise ValueError(f"{type(model).__name__}.forward{signature} cannot take the example inputs "
                         f"({len(args)} positional{', keywords ' + ', '.join(kwargs) if kwargs else ''}): {e}; "
                         f"pass one example per parameter (a tuple for several inputs)") from None


def call_error(model: torch.nn.Module, args: tuple, error: Exception) -> ValueError:
    """The error for a model that raises on its example inputs (wrong rank, shape or dtype)."""
    shapes = ", ".join(f"{tuple(a.shape)} {str(a.dtype).removeprefix('torch.')}" if isinstance(a, torch.Tensor)
                       else type(a).__name__ for a in args)
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return ValueError(f"{type(model).__name__} raised on the example inputs [{shapes}]: {type(error).__name__}: "
                      f"{first}\nfix the inputs' count, shapes (rank) or dtypes to what forward() expects")


def _layout_error(option: str, what: str, value: Any, extra: str = "") -> ValueError:
    return ValueError(f"{option}: unknown layout {value!r} for {what}; allowed: 'channels_last' (channel axis "
                      f"last: NWC/NHWC/NDHWC), 'channels_first'/'torch'/None (PyTorch's layout){extra}")


def _check_layout_value(option: str, what: str, value: Any, rank: Optional[int], explicit: bool) -> None:
    if value is None or (isinstance(value, (tuple, list)) and all(isinstance(a, int) for a in value)):
        return
    if not isinstance(value, str) or value not in LAYOUT_NAMES:
        hint = " (for NHWC and the like, pass 'channels_last')" if isinstance(value, str) and \
            value.upper().startswith("N") and value.upper().endswith("C") else ""
        raise _layout_error(option, what, value, hint)
    if value == "channels_last" and explicit and rank is not None and rank < 3:
        raise ValueError(f"{option}: {what} has rank {rank}; 'channels_last' needs a channel axis and at least one "
                         f"spatial axis (rank 3 to 5): drop it for this {what.split()[0]} or pass None")


def _check_layout_spec(option: str, spec: Any, names: list[str], ranks: list[int], kind: str) -> None:
    """``spec`` is None, one layout for all, a dict {name: layout} or a list (one per position)."""
    if spec is None or isinstance(spec, str):
        if isinstance(spec, str):
            _check_layout_value(option, f"every {kind}", spec, None, explicit=False)
        return
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise ValueError(f"{option}: unknown {kind} name(s) {unknown}; the model's {kind}s are {names}")
        for name, value in spec.items():
            _check_layout_value(option, f"{kind} {name!r}", value, ranks[names.index(name)], explicit=True)
        return
    if isinstance(spec, (list, tuple)):
        if len(spec) > len(names):
            raise ValueError(f"{option}: {len(spec)} layouts given for {len(names)} {kind}(s) {names}; give at most "
                             f"one per {kind} (or a dict {{name: layout}})")
        for name, rank, value in zip(names, ranks, spec):
            _check_layout_value(option, f"{kind} {name!r}", value, rank, explicit=True)
        return
    raise TypeError(f"{option} must be None, a layout name, a dict {{name: layout}} or a list; got {_describe(spec)}")


def check_layouts(model: torch.nn.Module, args: tuple, kwargs: dict, input_layouts: Any) -> None:
    """``input_layouts`` against the model's input names and ranks."""
    tensors = [t for t in pytree.tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    names = [n for n, leaf in zip(_input_names(model, args, kwargs), pytree.tree_flatten((args, kwargs))[0])
             if isinstance(leaf, torch.Tensor)]
    _check_layout_spec("input_layouts", input_layouts, names, [t.dim() for t in tensors], "input")


def check_outputs(outputs: Any) -> None:
    """What ``forward`` returned: tensors (in tuples, lists or dicts) only."""
    if outputs is None:
        raise TypeError("the model's forward() returned None; torch2keras converts models that return tensors "
                        "(a tensor, or a tuple/list/dict of them): return the result")
    names = flat_output_names(outputs)
    leaves = pytree.tree_flatten(outputs)[0]
    if not leaves:
        raise TypeError(f"the model's forward() returned {_describe(outputs)} holding no tensor; torch2keras "
                        f"converts models that return tensors")
    for name, leaf in zip(names, leaves):
        if not isinstance(leaf, torch.Tensor):
            hint = " (drop .item() / float(): return the 0-d tensor)" if isinstance(leaf, (float, int, bool)) else ""
            raise TypeError(f"output {name!r} of the model is {_describe(leaf)}, not a tensor; supported outputs are "
                            f"tensors (a tensor, or a tuple/list/dict of them): return a tensor there{hint}")


def check_output_layouts(outputs: Any, output_layouts: Any) -> None:
    """``output_layouts`` against the model's output names and ranks."""
    leaves = pytree.tree_flatten(outputs)[0]
    _check_layout_spec("output_layouts", output_layouts, flat_output_names(outputs),
                       [t.dim() for t in leaves], "output")
