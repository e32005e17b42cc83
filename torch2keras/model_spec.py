"""Find the model factory a ``package.module:factory`` or ``path/to/file.py:factory`` names, without running code.

The command line checks its MODEL argument before torch is imported, so a typo costs a
second, not a traceback after the model zoo and torch have loaded:

* the module: ``importlib.util.find_spec`` on the *top-level* package only (finding
  ``a.b.c`` would execute ``a/__init__.py`` and ``a/b/__init__.py``, which for a model zoo
  imports torch), then file by file through the package's directories;
* the factory: the module's syntax tree (``ast``) -- names bound at module level by
  ``def``, ``class``, assignments, imports and ``global`` statements, with star imports from
  the same top-level package followed (honouring a literal ``__all__``).

When the tree cannot decide (a module-level ``__getattr__``, ``globals()`` or ``exec``, a
star import from another package, a compiled module), the name is accepted and the import
decides: the check never refuses a factory that exists.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.machinery
import importlib.util
import os
import pkgutil
import sys
from typing import Iterable, Optional

import attrs

__all__ = ["FactorySpec", "SpecError", "check", "module_source", "names_in_file", "parse"]

_EXAMPLE = "e.g. torchvision.models:resnet18 or path/to/net.py:build"


class SpecError(ValueError):
    """The MODEL argument names no module, file or factory; the message says what to write."""


@attrs.frozen
class FactorySpec:
    """A parsed MODEL argument: a dotted ``module`` or a ``path`` to a .py file, and the
    ``attr`` (possibly dotted, e.g. ``Net.from_config``) of the callable that builds the model."""

    text: str
    attr: str
    module: str = ""
    path: str = ""

    @property
    def source(self) -> str:
        """The module or file part, as the user wrote it."""
        return self.module or self.path


def parse(text: str) -> FactorySpec:
    """``MODULE:FACTORY`` or ``FILE.py:FACTORY`` -> a ``FactorySpec`` (syntax only)."""
    source, colon, attr = text.rpartition(":")
    if not colon:
        raise SpecError(_missing_colon(text))
    if not source:
        raise SpecError(f"MODEL {text!r} names no module or file before ':' ({_EXAMPLE})")
    if not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise SpecError(f"MODEL {text!r}: {attr!r} after ':' is not a Python name ({_EXAMPLE})")
    if source.endswith(".py") or os.sep in source or (os.altsep and os.altsep in source):
        return FactorySpec(text=text, attr=attr, path=source)
    if not all(part.isidentifier() for part in source.split(".")):
        raise SpecError(f"MODEL {text!r}: {source!r} is neither a dotted module name nor a .py file ({_EXAMPLE})")
    return FactorySpec(text=text, attr=attr, module=source)


def _missing_colon(text: str) -> str:
    if text.endswith(".py"):
        names = _factory_candidates(text) if os.path.isfile(text) else []
        defined = f" ({text} defines {', '.join(names[:6])})" if names else ""
        return f"MODEL {text!r} needs the factory's name: {text}:FACTORY{defined}"
    module, dot, attr = text.rpartition(".")
    if dot and module:
        return f"MODEL {text!r} needs a ':' between the module and the factory: {module}:{attr}?"
    return f"MODEL {text!r} needs the form MODULE:FACTORY ({_EXAMPLE})"


def _factory_candidates(path: str) -> list[str]:
    """Public functions and classes defined at the top of ``path`` (for hints)."""
    try:
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
    except (OSError, SyntaxError, ValueError):
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_")]


def check(spec: FactorySpec, search_path: Optional[list[str]] = None) -> None:
    """Raise ``SpecError`` when the module/file or the factory surely does not exist."""
    if spec.path:
        path = spec.path
        if not os.path.isfile(path):
            raise SpecError(_no_file(path, spec))
        package = ""
    else:
        path = module_source(spec.module, search_path)
        if path is None:  # compiled or otherwise opaque: the import decides
            return
        package = spec.module if os.path.basename(path) == "__init__.py" else spec.module.rpartition(".")[0]
    names, complete = names_in_file(path, package, search_path)
    first = spec.attr.split(".")[0]
    if first in names or not complete:
        return
    close = difflib.get_close_matches(first, sorted(names), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else _defined_hint(path)
    raise SpecError(f"{spec.source} has no {first!r}{hint}")


def _defined_hint(path: str) -> str:
    names = _factory_candidates(path)
    return f" ({os.path.basename(path)} defines {', '.join(names[:6])})" if names else ""


def _no_file(path: str, spec: FactorySpec) -> str:
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        return f"no folder {folder!r} (for MODEL {spec.text})"
    if os.path.isdir(path):
        return f"{path!r} is a folder: MODEL needs a .py file or a dotted module name ({_EXAMPLE})"
    files = [f for f in os.listdir(folder) if f.endswith(".py")]
    close = difflib.get_close_matches(os.path.basename(path), files, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(os.path.join(os.path.dirname(path), c) for c in close)}?)" if close else ""
    return f"no file {path!r} (for MODEL {spec.text}){hint}"


# ----------------------------------------------------------------------------- locating modules


def module_source(name: str, search_path: Optional[list[str]] = None) -> Optional[str]:
    """The .py file of module ``name`` (a package's ``__init__.py``), found without importing
    anything below the top-level package; ``None`` when it is not a .py file (compiled, frozen,
    a namespace package). Raises ``SpecError`` when there is no such module."""
    parts = name.split(".")
    origin, locations = _find_top(parts[0], search_path)
    for depth, part in enumerate(parts[1:], start=1):
        if locations is None:  # a plain module: only an attribute it binds (os.path) can follow
            if not (origin and origin.endswith(".py")) or _binds(origin, ".".join(parts[:depth - 1]), part):
                return None  # frozen/compiled (opaque), or an attribute the module binds
            raise SpecError(f"{'.'.join(parts[:depth])} is a module, not a package: it has no submodule {part!r}")
        origin, locations = _find_sub(parts[:depth], part, origin, locations)
    return origin if origin and origin.endswith(".py") else None


def _find_top(top: str, search_path: Optional[list[str]]) -> tuple[Optional[str], Optional[list[str]]]:
    spec = None
    if search_path is None:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
    else:
        spec = importlib.machinery.PathFinder.find_spec(top, search_path)
    if spec is None:
        names = {m.name for m in pkgutil.iter_modules(search_path)} | set(sys.builtin_module_names)
        close = difflib.get_close_matches(top, sorted(names), n=3, cutoff=0.8)
        hint = f" (did you mean {', '.join(close)}?)" if close else \
            f" (not installed here: pip install it, or run from the folder that holds {top}/ or {top}.py)"
        raise SpecError(f"no module named {top!r}{hint}")
    locations = list(spec.submodule_search_locations) if spec.submodule_search_locations is not None else None
    origin = spec.origin if spec.origin not in (None, "namespace", "built-in", "frozen") else None
    return origin, locations


def _find_sub(parents: list[str], part: str, parent_origin: Optional[str],
              locations: list[str]) -> tuple[Optional[str], Optional[list[str]]]:
    for folder in locations:
        package = os.path.join(folder, part)
        if os.path.isfile(os.path.join(package, "__init__.py")):
            return os.path.join(package, "__init__.py"), [package]
        if os.path.isfile(package + ".py"):
            return package + ".py", None
        if os.path.isdir(package) or _compiled(folder, part):
            return None, [package]  # namespace package or extension module: opaque
    if parent_origin and parent_origin.endswith(".py") and (
            _binds(parent_origin, ".".join(parents), part) or "__path__" in _read(parent_origin)):
        return None, []  # an attribute bound by the package, or a __path__ it extends: let the import decide
    children = sorted({m.name for m in pkgutil.iter_modules(locations)})
    close = difflib.get_close_matches(part, children, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise SpecError(f"{'.'.join(parents)} has no module {part!r}{hint}")


def _binds(path: str, package: str, name: str) -> bool:
    """Whether module ``path`` may bind ``name`` (bound, or not surely absent)."""
    names, complete = names_in_file(path, package)
    return name in names or not complete


def _compiled(folder: str, part: str) -> bool:
    try:
        return any(f.startswith(part + ".") and f.endswith((".so", ".pyd")) for f in os.listdir(folder))
    except OSError:
        return False


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


@functools.lru_cache(maxsize=256)
def _tree(path: str) -> ast.Module:
    return ast.parse(_read(path), path)


# ----------------------------------------------------------------------------- names a module binds

_OPAQUE_CALLS = {"globals", "exec", "vars", "__import__"}


@attrs.define
class _Names:
    """What one module binds: ``names``, its literal ``__all__`` (None: absent or computed),
    and ``complete`` -- False when code the tree cannot follow may bind more."""

    names: set[str] = attrs.field(factory=set)
    all_: Optional[list[str]] = None
    computed_all: bool = False
    complete: bool = True


def names_in_file(path: str, package: str = "", search_path: Optional[list[str]] = None) -> tuple[set[str], bool]:
    """(names the module in ``path`` binds at its top level, whether that set is complete).
    ``package`` is the module's package, for relative star imports."""
    key = (os.path.abspath(path), package, tuple(search_path) if search_path is not None else None)
    if key not in _NAMES:
        _NAMES[key] = _names_in_file(path, package, search_path, set())
    names, complete = _NAMES[key]
    return set(names), complete


_NAMES: dict[tuple, tuple[frozenset[str], bool]] = {}  # (path, package, search path) -> names_in_file's answer


def _names_in_file(path: str, package: str, search_path: Optional[list[str]],
                   seen: set[str]) -> tuple[frozenset[str], bool]:
    seen.add(os.path.abspath(path))
    try:
        tree = _tree(path)
    except SyntaxError as e:
        raise SpecError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    found = _Names()
    for stmt in _top_statements(tree.body):
        _bind(stmt, found, package, search_path, seen)
    found.complete = found.complete and not _opaque(tree)
    if os.path.basename(path) == "__init__.py":  # submodules become attributes once imported
        found.names |= {m.name for m in pkgutil.iter_modules([os.path.dirname(path)])}
    return frozenset(found.names), found.complete


def _exported(path: str, package: str, search_path: Optional[list[str]], seen: set[str]) -> tuple[set[str], bool]:
    """The names ``from module import *`` brings: its literal ``__all__``, else (also when
    ``__all__`` is computed: a superset) its public names."""
    try:
        tree = _tree(path)
    except (SyntaxError, OSError):
        return set(), False
    found = _Names()
    for stmt in _top_statements(tree.body):
        _bind(stmt, found, package, search_path, seen)
    complete = found.complete and not _opaque(tree)
    if found.all_ is not None and not found.computed_all:
        return set(found.all_), complete
    return {n for n in found.names if not n.startswith("_")}, complete


def _top_statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Module-level statements, looking inside if/try/with/for/while blocks (not defs)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _top_statements(getattr(stmt, field, []) or [])
        for handler in getattr(stmt, "handlers", []) or []:
            yield from _top_statements(handler.body)
        for case in getattr(stmt, "cases", []) or []:
            yield from _top_statements(case.body)


def _bind(stmt: ast.stmt, found: _Names, package: str, search_path: Optional[list[str]], seen: set[str]) -> None:
    names = found.names
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.add(stmt.name)
        if stmt.name == "__getattr__" and not isinstance(stmt, ast.ClassDef):
            found.complete = False
        for node in ast.walk(stmt):  # `global x` inside a function binds x at module level
            if isinstance(node, ast.Global):
                names.update(node.names)
    elif isinstance(stmt, ast.Import):
        names.update(a.asname or a.name.split(".")[0] for a in stmt.names)
    elif isinstance(stmt, ast.ImportFrom):
        _bind_import_from(stmt, found, package, search_path, seen)
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            names.update(_target_names(target))
        _note_all(stmt, found)
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        names.update(_target_names(stmt.target))
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        for item in stmt.items:
            if item.optional_vars is not None:
                names.update(_target_names(item.optional_vars))
    elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
        names.update(h.name for h in stmt.handlers if h.name)
    elif isinstance(stmt, ast.Expr):
        _note_all_call(stmt.value, found)
    if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        for node in ast.walk(stmt):
            if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif type(node).__name__ in ("MatchAs", "MatchStar") and getattr(node, "name", None):
                names.add(node.name)


def _bind_import_from(stmt: ast.ImportFrom, found: _Names, package: str, search_path: Optional[list[str]],
                      seen: set[str]) -> None:
    for alias in stmt.names:
        if alias.name != "*":
            found.names.add(alias.asname or alias.name)
            continue
        target = _resolve_relative(stmt, package)
        if not target or not package or target.split(".")[0] != package.split(".")[0]:
            found.complete = False  # a star import from another package: not followed
            continue
        try:
            path = module_source(target, search_path)
        except SpecError:
            path = None
        if path is None or os.path.abspath(path) in seen:
            found.complete = found.complete and path is not None
            continue
        seen.add(os.path.abspath(path))
        sub_package = target if os.path.basename(path) == "__init__.py" else target.rpartition(".")[0]
        exported, complete = _exported(path, sub_package, search_path, seen)
        found.names |= exported
        found.complete = found.complete and complete


def _resolve_relative(stmt: ast.ImportFrom, package: str) -> str:
    if not stmt.level:
        return stmt.module or ""
    parts = package.split(".") if package else []
    if stmt.level - 1 > len(parts) or not package:
        return ""
    base = parts[: len(parts) - (stmt.level - 1)]
    return ".".join(base + ([stmt.module] if stmt.module else []))


def _target_names(target: ast.expr) -> set[str]:
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*[_target_names(t) for t in target.elts]) if target.elts else set()
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return set()


def _literal_strings(node: ast.expr) -> Optional[list[str]]:
    if isinstance(node, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]
    return None


def _note_all(stmt: ast.stmt, found: _Names) -> None:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) or stmt.value is None:
        return
    values = _literal_strings(stmt.value)
    if values is None:
        found.computed_all = True
        found.all_ = found.all_ or []
    elif isinstance(stmt, ast.AugAssign):
        found.all_ = (found.all_ or []) + values
    else:
        found.all_ = values


def _note_all_call(node: ast.expr, found: _Names) -> None:
    """``__all__.extend([...])`` / ``__all__.append("x")``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "__all__"):
        return
    args = node.args[0] if node.args else None
    if node.func.attr == "append" and isinstance(args, ast.Constant) and isinstance(args.value, str):
        found.all_ = (found.all_ or []) + [args.value]
    elif node.func.attr == "extend" and args is not None and _literal_strings(args) is not None:
        found.all_ = (found.all_ or []) + _literal_strings(args)
    else:
        found.computed_all = True


def _opaque(tree: ast.Module) -> bool:
    """Whether the module may bind names the tree does not show (``globals()[...] = ``,
    ``exec``, ``sys.modules[__name__]``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _OPAQUE_CALLS \
                and (node.func.id != "vars" or not node.args):
            return True
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name) and node.slice.id == "__name__":
            return True
    return False
