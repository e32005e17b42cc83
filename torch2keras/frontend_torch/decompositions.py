"""The decomposition onto Core ATen that capture runs, and what makes it cheap to repeat.

``decomposition_table()`` is torch's Core ATen table (``torch.export.default_decompositions``)
minus the ops the lowerings keep whole (``KEEP_WHOLE``). ``decompose(exported)`` runs it.

Every ``run_decompositions`` call in torch enumerates the composite-implicit (CIA) operators of
every ``torch.ops`` namespace, twice, and each enumeration re-walks the C++ dispatcher's CIA
registrations once per namespace: about 0.1 s of CPU per capture of any model, a tenth of a
small model's whole conversion. The set only changes when operators are registered, so it is
computed once per *registry fingerprint* (the namespaces and the C++ CIA registrations) and
reused while the fingerprint holds (so is the table). Invariant: the decomposition is exactly torch's; only the
enumeration is memoised, and a newly registered operator (a new namespace or CIA kernel)
changes the fingerprint and recomputes it.

The same call then patches the Python kernels of each of those operators (thousands), and each
patch evaluates the type annotations of a function torch defines inside ``py_impl``
(``collections.abc.Callable[...]`` subscripted anew every time): more than half of what is left.
While decomposing, ``torch._ops``'s ``Callable`` is one whose subscription is free and whose
``isinstance`` is ``callable`` (what the annotations and the one runtime check there need).
"""

from __future__ import annotations

import collections.abc
import contextlib
import importlib
from typing import Iterator

import torch

from .registry import KEEP_WHOLE

__all__ = ["decompose", "decomposition_table"]

# the modules of torch that call the enumeration (each imported it by name)
_CALLERS = ("torch.export.exported_program", "torch.export.decomp_utils")
_ENUMERATION = "_collect_all_valid_cia_ops"
_memo: dict = {}


def decomposition_table() -> dict:
    """Core ATen's decompositions, without those of the ops the lowerings keep whole."""
    key = (_fingerprint(), frozenset(KEEP_WHOLE))
    if _memo.get("table_key") != key:
        with _memoised_cia_enumeration():
            table = torch.export.default_decompositions()
            for op in KEEP_WHOLE:
                table.pop(op, None)
            _memo["table"], _memo["table_key"] = dict(table.items()), key
    return dict(_memo["table"])


def decompose(exported: "torch.export.ExportedProgram") -> "torch.export.ExportedProgram":
    """``exported`` decomposed onto Core ATen (the ops kept whole stay)."""
    table = decomposition_table()
    with _memoised_cia_enumeration(), _annotations_evaluated_cheaply():
        return exported.run_decompositions(table)


def _fingerprint() -> tuple:
    registrations = torch._C._dispatch_get_registrations_for_dispatch_key("CompositeImplicitAutograd")
    return tuple(torch.ops._dir), len(registrations), hash(tuple(registrations))


@contextlib.contextmanager
def _memoised_cia_enumeration() -> Iterator[None]:
    """Within the block, torch's CIA enumeration answers from the memo (see the module docstring).
    Where this torch has no such function, the block changes nothing."""
    modules = [importlib.import_module(name) for name in _CALLERS]
    modules = [m for m in modules if hasattr(m, _ENUMERATION)]
    if not modules:
        yield
        return
    original = getattr(modules[0], _ENUMERATION)

    def enumerate_cia_ops() -> set:
        key = _fingerprint()
        if _memo.get("key") != key:
            _memo["ops"], _memo["key"] = frozenset(original()), key
        return set(_memo["ops"])

    saved = [(m, getattr(m, _ENUMERATION)) for m in modules]
    for module, _ in saved:
        setattr(module, _ENUMERATION, enumerate_cia_ops)
    try:
        yield
    finally:
        for module, function in saved:
            setattr(module, _ENUMERATION, function)


class _CallableForAnnotations(type):
    def __getitem__(cls, parameters):
        return collections.abc.Callable

    def __instancecheck__(cls, instance) -> bool:
        return callable(instance)


class _Callable(metaclass=_CallableForAnnotations):
    """``collections.abc.Callable`` as ``torch._ops`` uses it: in annotations and ``isinstance``."""


@contextlib.contextmanager
def _annotations_evaluated_cheaply() -> Iterator[None]:
    """Within the block, ``torch._ops.Callable`` is ``_Callable`` (see the module docstring)."""
    module = importlib.import_module("torch._ops")
    if getattr(module, "Callable", None) is not collections.abc.Callable:
        yield
        return
    module.Callable = _Callable
    try:
        yield
    finally:
        module.Callable = collections.abc.Callable
