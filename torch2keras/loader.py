"""Build a model from ``package.module:factory`` or ``path/to/file.py:factory``, and load its weights.

    from torch2keras.loader import load_factory, load_weights
    model = load_factory("torchvision.models:resnet18")()
    load_weights(model, "resnet18.pt")

Model zoos whose compiled ops do not match the installed torch (torchvision built for another
torch: one of the commonest install problems) still give their pure-Python model definitions.
Such a package dies on import while registering fake kernels for its compiled ops
(``RuntimeError: operator torchvision::nms does not exist``); the loader declares each op
named that way -- with its real schema where known, else ``(...) -> ...`` -- whose only kernel
raises ``MissingCompiledOpError``, drops the half-imported package and imports again, with one
``CompiledOpsWarning``. Models that call those ops (``torchvision.ops.nms``, detection heads)
fail when run; ``missing_kernel_message`` turns that failure into one line saying so.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import sys
import traceback
import types
import warnings
from typing import Any, Callable, Mapping, NoReturn, Optional

import torch

from .model_spec import FactorySpec, parse

__all__ = ["CompiledOpsWarning", "MissingCompiledOpError", "WeightsError", "declared_ops", "import_file",
           "import_module", "load_factory", "load_weights", "missing_kernel_message"]

_MISSING_OP = re.compile(r"operator ([A-Za-z_]\w*)::([A-Za-z_]\w*) does not exist")
# Real schemas of ops known to block their package's import (torchvision/_meta_registrations.py)
_KNOWN_SCHEMAS = {
    "torchvision::nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "torchvision::qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_MAX_DECLARED = 32  # ops declared for one import before giving up
_LIBRARIES: dict[str, "torch.library.Library"] = {}  # namespace -> the declarations (alive while referenced)
_DECLARED: dict[str, list[str]] = {}  # namespace -> ops declared without a kernel


class CompiledOpsWarning(UserWarning):
    """A package's compiled ops do not load against this torch; its pure-Python code was loaded."""


class MissingCompiledOpError(RuntimeError):
    """A compiled op whose package's extension did not load against this torch was called."""


class WeightsError(ValueError):
    """A weights file that is no state_dict, or one for another model (the message is one line)."""


def declared_ops() -> dict[str, list[str]]:
    """Namespace -> the ops the loader declared without kernels in this process."""
    return {ns: list(ops) for ns, ops in _DECLARED.items()}


# ----------------------------------------------------------------------------- factories


def load_factory(spec: "str | FactorySpec") -> Callable:
    """The callable a ``module:factory`` / ``file.py:factory`` spec names (a dotted ``factory``
    walks attributes: ``net.py:Net.from_config``), made as tolerant as the import: a zoo the
    factory imports only when called (``def build(): import torchvision ...``) loads too."""
    spec = parse(spec) if isinstance(spec, str) else spec
    module = import_file(spec.path) if spec.path else import_module(spec.module)
    target = module
    for depth, part in enumerate(spec.attr.split(".")):
        try:
            target = getattr(target, part)
        except AttributeError:
            owner = spec.source if depth == 0 else f"{spec.source}:{'.'.join(spec.attr.split('.')[:depth])}"
            raise AttributeError(f"{owner} has no attribute {part!r}") from None
    if not callable(target):
        raise TypeError(f"{spec.text} is a {type(target).__name__}, not a callable that builds the model")
    return _tolerant_calls(target)


def _tolerant_calls(factory: Callable) -> Callable:
    """``factory`` whose calls retry after declaring the compiled ops an import inside it lacks."""
    if isinstance(factory, type):
        return factory  # a class: its __init__ imports nothing new in practice, and isinstance must keep working

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> Any:
        return _tolerant(lambda: factory(*args, **kwargs))

    return build


def import_module(name: str) -> types.ModuleType:
    """``importlib.import_module(name)`` (the current folder first on the path), tolerating
    packages whose compiled ops do not load against this torch (see the module docstring)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return _tolerant(lambda: importlib.import_module(name))


def import_file(path: str) -> types.ModuleType:
    """Execute ``path`` as a module named after the file (its folder first on the path, as for
    a script), tolerating packages whose compiled ops do not load against this torch."""
    path = os.path.abspath(path)
    folder, stem = os.path.dirname(path), os.path.splitext(os.path.basename(path))[0]
    if folder not in sys.path:
        sys.path.insert(0, folder)

    taken = sys.modules.get(stem)
    if taken is not None and os.path.abspath(getattr(taken, "__file__", "") or "") != path:
        stem = f"_torch2keras_model_{stem}"  # a file named like a loaded module (copy.py) must not replace it

    def run() -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[stem] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(stem, None)
            raise
        return module

    return _tolerant(run)


def _tolerant(do_import: Callable[[], Any]) -> Any:
    """``do_import()``, retried after declaring each compiled op whose missing registration
    stopped it (one warning per package)."""
    new: dict[str, list[str]] = {}
    try:
        for _ in range(_MAX_DECLARED):
            try:
                return do_import()
            except Exception as err:  # noqa: BLE001 - only a missing-op registration is handled
                missing = _missing_op(err)
                if missing is None or missing[1] in _DECLARED.get(missing[0], []):
                    raise
                _declare(*missing)
                new.setdefault(missing[0], []).append(missing[1])
                _forget(missing[0])
        raise ImportError(f"gave up after declaring {_MAX_DECLARED} missing compiled ops")
    finally:
        for namespace, ops in new.items():
            warnings.warn(CompiledOpsWarning(_mismatch_line(namespace, ops)), stacklevel=4)


def _missing_op(err: BaseException) -> Optional[tuple[str, str]]:
    while err is not None:
        match = _MISSING_OP.search(str(err))
        if match:
            return match.group(1), match.group(2)
        err = err.__cause__ or err.__context__
    return None


def _declare(namespace: str, op: str) -> None:
    library = _LIBRARIES.get(namespace)
    if library is None:
        library = _LIBRARIES[namespace] = torch.library.Library(namespace, "FRAGMENT")
    library.define(_KNOWN_SCHEMAS.get(f"{namespace}::{op}", f"{op}(...) -> ..."))
    library.impl(op, _kernel_missing(namespace, op), "CompositeExplicitAutograd")
    _DECLARED.setdefault(namespace, []).append(op)


def _kernel_missing(namespace: str, op: str) -> Callable:
    def kernel(*args: Any, **kwargs: Any) -> NoReturn:
        raise MissingCompiledOpError(f"{namespace}::{op} is one of {namespace}'s compiled ops, which did not load "
                                     f"against torch {torch.__version__}")

    return kernel


def _forget(package: str) -> None:
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            del sys.modules[name]


def _mismatch_line(namespace: str, ops: list[str]) -> str:
    return (f"{namespace}'s compiled ops do not load against torch {torch.__version__} ({namespace} was built for "
            f"another torch): loaded its pure-Python models; its compiled ops "
            f"({', '.join(f'{namespace}::{op}' for op in ops)}, ...) fail when called")


# ----------------------------------------------------------------------------- missing kernels at run time

_NO_EXTENSION = ("Couldn't load custom C++ ops", "did not load against torch")


def missing_kernel_message(err: BaseException) -> Optional[str]:
    """One line for a failure caused by calling a compiled op whose extension did not load
    (naming the package's function and the caller's line); None for any other failure."""
    text = " ".join(str(e) for e in _chain(err))
    called = [f"{ns}::{op}" for ns, ops in _DECLARED.items() for op in ops if f"{ns}::{op}" in text]
    if not called and not any(marker in text for marker in _NO_EXTENSION):
        return None
    frames = traceback.extract_tb(err.__traceback__)
    package = called[0].split("::")[0] if called else _package_of(frames)
    where, caller = _entry_frame(frames, package)
    what = where or (called[0] if called else f"a {package} function")
    return (f"the model calls {what}{caller}, which needs "
            f"{package}'s compiled ops; they do not load against torch {torch.__version__} ({package} was built for "
            f"another torch): install the {package} release built for this torch, or keep that call out of the "
            "model to convert")


def _chain(err: Optional[BaseException]) -> list[BaseException]:
    seen = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _package_of(frames: traceback.StackSummary) -> str:
    """The top-level package of the innermost frame outside torch (e.g. torchvision)."""
    for frame in reversed(frames):
        module = _module_name(frame.filename)
        if module and not module.startswith(("torch.", "torch2keras.")):
            return module.split(".")[0]
    return "a package"


def _entry_frame(frames: traceback.StackSummary, package: str) -> tuple[str, str]:
    """(the package function the model called, " (called at file:line)") -- the outermost
    frame inside ``package`` and the frame that called it."""
    for k, frame in enumerate(frames):
        module = _module_name(frame.filename)
        if module == package or module.startswith(package + "."):
            caller = frames[k - 1] if k else None
            at = f" (called at {os.path.basename(caller.filename)}:{caller.lineno})" if caller else ""
            return f"{module}.{frame.name}", at
    return "", ""


def _module_name(filename: str) -> str:
    """The dotted module of a file on sys.path (\"\" when none holds it)."""
    path = os.path.abspath(filename)
    best = ""
    for root in sys.path:
        root = os.path.abspath(root or os.getcwd())
        if path.startswith(root + os.sep) and len(root) > len(best):
            best = root
    if not best:
        return ""
    rel = os.path.splitext(os.path.relpath(path, best))[0].split(os.sep)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ".".join(rel)


# ----------------------------------------------------------------------------- weights


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Load a state_dict file (``torch.load(weights_only=True)``) into ``model``; accepts a
    checkpoint dict holding it under ``state_dict`` / ``model_state_dict`` / ``model`` and
    ``module.``-prefixed keys (DataParallel). Raises ``WeightsError`` naming what does not fit."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every refusal is reported in one line
        first = next((t.strip() for t in str(e).splitlines() if t.strip()), type(e).__name__)
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise WeightsError(f"{path} holds more than tensors (a pickled model?), which loading with "
                               f"weights_only=True refuses: save model.state_dict() with torch.save instead") from None
        raise WeightsError(f"{path} is not a file torch.save wrote ({type(e).__name__}: {first})") from None
    state = _unwrap(state)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state_dict ({{name: tensor}})")
    expected = model.state_dict()
    if all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in expected):
        state = {k[len("module."):]: v for k, v in state.items()}
    problem = _mismatch(state, expected)
    if problem:
        raise WeightsError(f"{path} does not fit the model: {problem}")
    model.load_state_dict(state)


def _unwrap(state: Any) -> Any:
    if isinstance(state, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                return state[key]
    return state


def _mismatch(state: Mapping, expected: Mapping) -> str:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {list(state[k].shape)}, model {list(expected[k].shape)}" for k in expected
              if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = []
    for label, keys in (("missing key(s)", missing), ("unexpected key(s)", unexpected),
                        ("tensor(s) of another shape", shapes)):
        if keys:
            shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
            parts.append(f"{len(keys)} {label} ({shown})")
    if not parts:
        return ""
    hint = " -- a state_dict for another model?" if missing and unexpected else ""
    return "; ".join(parts) + hint
