"""Checks of arrays and files at a converted model's boundary (runners, exporters, ``load_model``),
run before any work starts; each refusal names the problem and the fix. Imports no torch:
``load_model`` runs without it."""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Any, Sequence

import numpy as np

__all__ = ["check_keras_file", "check_run_inputs", "check_suffix", "check_tflite_feed", "check_writable"]


def check_run_inputs(input_names: Sequence[str], shapes: Sequence[tuple], arrays: Sequence[Any], what: str) -> None:
    """Arrays (PyTorch layout) fed to a converted model: one per input, of the input's shape
    (``None`` or a str in ``shapes`` marks a run-time size)."""
    if hasattr(arrays, "shape"):  # one array for a one-input model
        arrays = [arrays]
    if len(arrays) != len(input_names):
        raise ValueError(f"{what} takes {len(input_names)} input(s) {list(input_names)}, got {len(arrays)}: pass "
                         f"one array per input, in order")
    for name, shape, x in zip(input_names, shapes, arrays):
        got = tuple(np.shape(x))
        want = tuple(None if isinstance(d, str) else d for d in shape)
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
            raise ValueError(f"{what}: input {name!r} has shape {got}, the model takes {want} (PyTorch's layout; "
                             f"None: any size)")


def check_tflite_feed(path: str, signature: dict[str, list[int]], feed: dict[str, np.ndarray]) -> None:
    """Arrays fed to a ``.tflite`` file against its signature (``-1``: any size)."""
    for name, x in feed.items():
        want = signature.get(name)
        if want is None:
            continue
        got = tuple(np.shape(x))
        if len(got) != len(want) or any(w != -1 and g != w for g, w in zip(got, want)):
            raise ValueError(f"{path} was exported with input {name!r} of static shape {tuple(want)} (its stored "
                             f"layout) and cannot run shape {got}; export with dynamic_shapes=... (e.g. "
                             f"{{{name!r}: {{0: 'batch'}}}}) to run other sizes, or feed that shape")


def check_suffix(path: str, suffixes: tuple[str, ...], method: str, other: str = "") -> None:
    if not str(path).endswith(suffixes):
        raise ValueError(f"{method} writes a {' or '.join(suffixes)} file; got {str(path)!r}{other}")


def check_writable(path: str) -> None:
    """New files can be made where ``path`` goes: its folder, or the nearest existing folder
    above it (the exporters make the missing ones), takes a test file. Nothing is left behind."""
    directory = os.path.dirname(os.path.abspath(str(path)))
    while not os.path.exists(directory):
        directory = os.path.dirname(directory)
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".torch2keras-write-check-"):
            pass
    except OSError as e:
        raise PermissionError(f"cannot write {str(path)!r}: the directory {directory!r} is not writable "
                              f"({e.strerror or type(e).__name__}); choose another output path") from None


def check_keras_file(path: str) -> None:
    """``path`` is an existing, readable ``.keras`` archive."""
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    if path.endswith(".keras"):
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(f"{path!r} is not a valid .keras file ({e}): it is corrupt or truncated; save the "
                             f"model again (CompileResult.save)") from None
        if "config.json" not in names or bad is not None:
            raise ValueError(f"{path!r} is not a valid .keras file (" + ("no config.json" if bad is None else
                             f"damaged member {bad}") + "): save the model again (CompileResult.save)")
