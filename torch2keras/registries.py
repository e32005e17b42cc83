"""The registries of all layers, checked against each other.

What the project knows about one op lives in one family file per layer: its IR schema
(``ir/ops/<family>.py``), its lowerings (``frontend_torch/ops/<family>.py``) and its emitter
(``backend_keras/emitters/<family>.py`` with its ``keras.ops`` kernels in
``backend_keras/kops/<family>.py``). ``problems()`` lists every way they disagree:

  - an IR op without an emitter, or without a reference implementation and a reason why not;
  - a family name an IR op uses that is not a module in every layer that has ops of it;
  - a dim attribute, TFLite op name or delegate note that names nothing;
  - a lowering that does not declare the IR ops it may emit, or declares unknown ones, or whose
    source emits an op it did not declare;
  - an emitter or kernel reference naming a kernel that ``KOPS`` lacks;
  - two ops giving different delegate notes for the same TFLite op and target.

``tests/test_registries.py`` asserts the list is empty (and that a half-defined op shows up).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Callable, Iterable, Optional

__all__ = ["problems", "tflite_builtin_names", "lowering_emits_in_source", "kernel_names_in_source"]

# ops every lowering may emit through the context's helpers (ctx.const, ctx.cast, ctx.reshape and
# the run-time sizes of dynamic shapes) without declaring them
AMBIENT_OPS = frozenset({"constant", "cast", "reshape", "dynamic_reshape", "dim", "add", "sub", "mul",
                         "floor_divide", "concat", "maximum", "minimum"})


def tflite_builtin_names() -> Optional[set[str]]:
    """Names of TFLite's builtin operators (from the schema ai-edge-litert ships), or None."""
    try:
        from ai_edge_litert import schema_py_generated as schema_fb
    except ImportError:  # pragma: no cover - the package is a dependency
        return None
    return {k for k in vars(schema_fb.BuiltinOperator) if k.isupper()}


def _source(fn: Callable) -> str:
    try:
        return textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
    except (OSError, TypeError):
        return ""


def _string_args(source: str, method_names: Iterable[str], position: int) -> set[str]:
    """String literals passed at ``position`` to calls of ``method_names`` in ``source``."""
    names = set(method_names)
    found: set[str] = set()
    if not source:
        return found
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        called = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
        if called in names and len(node.args) > position:
            arg = node.args[position]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def lowering_emits_in_source(fn: Callable) -> set[str]:
    """IR op names a lowering's own source passes to ``ctx.emit``."""
    return _string_args(_source(fn), ["emit"], 0)


def kernel_names_in_source(source: str) -> set[str]:
    """``KOPS`` names an emitter module's source uses (``ctx.op(node, NAME, ...)``,
    ``ctx.op_on(node, NAME, ...)``, ``TorchOp(NAME, ...)``)."""
    return _string_args(source, ["op", "op_on"], 1) | _string_args(source, ["TorchOp"], 0)


def _ir_problems(schemas: dict) -> list[str]:
    out = []
    builtins = tflite_builtin_names()
    notes: dict[tuple[str, str], tuple[str, str]] = {}
    for name, s in schemas.items():
        if s.reference is None and not s.no_reference:
            out.append(f"IR op {name!r} has no reference implementation and no reason (no_reference)")
        for key in s.dim_attrs:
            if key not in s.attrs:
                out.append(f"IR op {name!r}: dim attribute {key!r} is not an attribute")
        for op in s.tflite:
            if builtins is not None and op not in builtins:
                out.append(f"IR op {name!r}: {op!r} is not a TFLite builtin")
        for target, by_op in s.delegate_notes.items():
            for op, note in by_op.items():
                if builtins is not None and op not in builtins:
                    out.append(f"IR op {name!r}: delegate note for unknown TFLite op {op!r}")
                seen = notes.setdefault((target, op), (name, note))
                if seen[1] != note:
                    out.append(f"delegate notes for {target}/{op} differ between {seen[0]!r} and {name!r}")
    return out


def _family_modules(package: str) -> set[str]:
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    return {m.name for m in pkgutil.iter_modules(pkg.__path__)}


def _backend_problems(schemas: dict) -> list[str]:
    from .backend_keras.emitters import EMITTERS
    from .backend_keras.kops import KOPS

    out = []
    for name in schemas:
        if name not in ("input", "constant") and name not in EMITTERS:
            out.append(f"IR op {name!r} has no Keras emitter")
    modules = {fn.__module__ for fn in EMITTERS.values()}
    for module in sorted(modules):
        import sys

        source = inspect.getsource(sys.modules[module])
        for kernel in sorted(kernel_names_in_source(source) - set(KOPS)):
            out.append(f"{module} uses kernel {kernel!r}, which KOPS lacks")
    families = {s.family for s in schemas.values()}
    missing = families - _family_modules("torch2keras.backend_keras.emitters") - {"creation"}
    out += [f"backend_keras/emitters has no module for family {f!r}" for f in sorted(missing)]
    return out


def _frontend_problems(schemas: dict) -> list[str]:
    from .frontend_torch.registry import LOWERINGS

    out = []
    for target, fn in LOWERINGS.items():
        declared = getattr(fn, "emits", None)
        if declared is None:
            out.append(f"lowering {fn.__module__}.{fn.__name__} of {target} does not declare the IR ops it emits")
            continue
        unknown = set(declared) - set(schemas)
        if unknown:
            out.append(f"lowering of {target} declares unknown IR ops {sorted(unknown)}")
        undeclared = lowering_emits_in_source(fn) - set(declared) - AMBIENT_OPS
        if undeclared:
            out.append(f"lowering of {target} emits {sorted(undeclared)} without declaring them")
    return out


def problems() -> list[str]:
    """Every disagreement between the registries (empty when all is well)."""
    from .ir.ops import SCHEMAS

    return _ir_problems(SCHEMAS) + _backend_problems(SCHEMAS) + _frontend_problems(SCHEMAS)
