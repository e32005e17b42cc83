"""The registries of all layers, checked against each other.

What the project knows about one op lives in one family file per layer: its IR schema
(``ir/ops/<family>.py``), its lowerings (``frontend_torch/ops/<family>.py``) and its emitter
(``backend_keras/emitters/<family>.py`` with its ``keras.ops`` kernels in
``backend_keras/kops/<family>.py``) and, where the direct TFLite writer has one, its direct
emitter (``backend_tflite/emitters/<family>.py``). ``problems()`` lists every way they disagree:

  - an IR op without an emitter, or without a reference implementation and a reason why not;
  - a family name an IR op uses that is not a module in every layer that has ops of it;
  - a dim attribute, TFLite op name or delegate note that names nothing;
  - a lowering that does not declare the IR ops it may emit, or declares unknown ones, or whose
    source emits an op it did not declare; a module of ``frontend_torch/ops/`` that is neither a
    family nor the helpers module (``common``);
  - an emitter or kernel reference naming a kernel that ``KOPS`` lacks;
  - a module of ``backend_keras/emitters`` or ``backend_keras/kops`` named after no family (but
    their registries, ``context.py`` and ``registry.py``), or of ``backend_tflite/emitters`` (but
    its helpers module, ``common``);
  - an emitter of either backend registered for a name that is no IR op, or registered from
    another module than its op's family module (``.../emitters/<family>.py``);
  - two ops giving different delegate notes for the same TFLite op and target.

``tests/test_registries.py`` asserts the list is empty (and that a half-defined op shows up).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Callable, Iterable, Optional

__all__ = ["problems", "tflite_builtin_names", "lowering_emits_in_source", "kernel_names_in_source",
           "runs_op_as_kernel", "emitter_placement_problems"]

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
    """IR op names a lowering's own source passes to ``ctx.emit`` (or ``ctx.emit_node``)."""
    return _string_args(_source(fn), ["emit", "emit_node"], 0)


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


# the backend's packages of family modules, each with the modules it holds besides the families
BACKEND_PACKAGES = {"torch2keras.backend_keras.emitters": {"context"}, "torch2keras.backend_keras.kops": {"registry"}}
# the direct TFLite backend's package of family modules, and the module it holds besides them
DIRECT_EMITTERS_PACKAGE, DIRECT_SUPPORT_MODULES = "torch2keras.backend_tflite.emitters", {"common"}


def runs_op_as_kernel(fn: Callable) -> bool:
    """Whether an emitter's source runs the kernel named like the node's IR op
    (``ctx.op(node, node.op, ...)``): then every op it emits must be a ``KOPS`` name."""
    source = _source(fn)
    if not source:
        return False
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("op", "op_on") \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Attribute) and node.args[1].attr == "op":
            return True
    return False


def _kernel_problems(emitters: dict, kops: dict) -> list[str]:
    import importlib
    import sys

    out = []
    package = "torch2keras.backend_keras.emitters"
    modules = [f"{package}.{m}" for m in sorted(_family_modules(package))] + ["torch2keras.backend_keras.emit"]
    modules += sorted({fn.__module__ for fn in emitters.values()} - set(modules))  # (emitters registered elsewhere)
    for module in modules:
        source = inspect.getsource(sys.modules.get(module) or importlib.import_module(module))
        for kernel in sorted(kernel_names_in_source(source) - set(kops)):
            out.append(f"{module} uses kernel {kernel!r}, which KOPS lacks")
    for op, fn in sorted(emitters.items()):
        if op not in kops and runs_op_as_kernel(fn):
            out.append(f"{fn.__module__}.{fn.__name__} runs IR op {op!r} as the kernel of that name, which KOPS lacks")
    return out


def emitter_placement_problems(emitters: dict, schemas: dict, backend: str) -> list[str]:
    """Emitters (``op -> function``) of ``backend`` registered for a name that is no IR op, or
    defined outside the module of their op's family (a module path ending ``.emitters.<family>``)."""
    out = []
    for op, fn in sorted(emitters.items()):
        where = f"{fn.__module__}.{fn.__name__}"
        schema = schemas.get(op)
        if schema is None:
            out.append(f"{backend} emitter {where} is registered for {op!r}, which is no IR op")
        elif not fn.__module__.endswith(f".emitters.{schema.family}"):
            out.append(f"{backend} emitter {where} of IR op {op!r} is not in the module of the op's family "
                       f"(emitters/{schema.family}.py)")
    return out


def _backend_problems(schemas: dict) -> list[str]:
    from .backend_keras.emitters import EMITTERS
    from .backend_keras.kops import KOPS

    out = [f"IR op {name!r} has no Keras emitter" for name in schemas if name not in EMITTERS]
    out += emitter_placement_problems(EMITTERS, schemas, "Keras")
    out += _kernel_problems(EMITTERS, KOPS)
    families = {s.family for s in schemas.values()}
    missing = families - _family_modules("torch2keras.backend_keras.emitters")
    out += [f"backend_keras/emitters has no module for family {f!r}" for f in sorted(missing)]
    for package, support in BACKEND_PACKAGES.items():
        for module in sorted(_family_modules(package) - families - support):
            out.append(f"{package}.{module} is named after no op family (families: {', '.join(sorted(families))})")
    return out


def _direct_backend_problems(schemas: dict) -> list[str]:
    """The direct TFLite writer's emitters against the IR (it need not emit every op) and
    ``backend_tflite/emitters/`` against the family names."""
    from .backend_tflite import EMITTERS  # (importing the package registers every emitter)

    out = emitter_placement_problems(EMITTERS, schemas, "direct TFLite")
    families = {s.family for s in schemas.values()}
    for module in sorted(_family_modules(DIRECT_EMITTERS_PACKAGE) - families - DIRECT_SUPPORT_MODULES):
        out.append(f"{DIRECT_EMITTERS_PACKAGE}.{module} is named after no op family (nor the helpers module, common)")
    return out


def _frontend_problems(schemas: dict) -> list[str]:
    """Lowerings against their declared ``emits`` (the ops of the context's helpers,
    ``AMBIENT_OPS``, need no declaring), and ``frontend_torch/ops/`` against the family names."""
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
        undeclared = lowering_emits_in_source(fn) - set(declared)
        if undeclared:
            out.append(f"lowering of {target} emits {sorted(undeclared)} without declaring them")
    families = {s.family for s in schemas.values()}
    strays = _family_modules("torch2keras.frontend_torch.ops") - families - {"common"}
    out += [f"frontend_torch/ops/{m}.py is not named after an IR family (nor the helpers module, common)"
            for m in sorted(strays)]
    return out


def problems() -> list[str]:
    """Every disagreement between the registries (empty when all is well)."""
    from .ir.ops import SCHEMAS

    return _ir_problems(SCHEMAS) + _backend_problems(SCHEMAS) + _direct_backend_problems(SCHEMAS) + \
        _frontend_problems(SCHEMAS)
