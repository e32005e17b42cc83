"""The package's layering, read from the source (AST): which layer may import what, and no
import cycles (imports inside functions count; ``if TYPE_CHECKING:`` blocks do not).

  backend_keras/  no torch, no frontend: only itself and ``torch2keras.ir``
  passes/         no torch, no keras (nor tensorflow): only itself and ``torch2keras.ir``
  backend_tflite/ no torch, no keras (nor tensorflow): only itself and ``torch2keras.ir``
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator, Optional

import networkx as nx
import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "torch2keras"
PACKAGE = "torch2keras"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, type_checking: bool = False) -> Iterator[ast.AST]:
    """Every import statement (at any depth, in functions too) and ``import_module``/``__import__``
    call, leaving out the bodies of ``if TYPE_CHECKING:`` unless ``type_checking``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imported(module: str, node: ast.AST) -> list[str]:
    """The dotted names an import node of ``module`` imports (relative imports made absolute;
    ``from X import y`` names ``X.y`` when that is a module of the package, else ``X``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.Call):
        return [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _own_module(name: str) -> Optional[str]:
    """The package's module ``name`` lives in (``torch2keras.ir.Graph`` -> ``torch2keras.ir``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, type_checking: bool = False) -> list[tuple[int, str]]:
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    return [(node.lineno, name) for node in _import_nodes(tree, type_checking) for name in _imported(module, node)]


def _import_graph(type_checking: bool = False) -> nx.DiGraph:
    """Module -> module imports of the package (``type_checking``: type-only imports too)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for module in MODULES:
        for _, name in _imports(module, type_checking):
            target = _own_module(name) if name.split(".")[0] == PACKAGE else None
            if target is not None and target != module:
                graph.add_edge(module, target)
    return graph


def _violations(layer: str, forbidden_roots: set[str], allowed_internal: tuple[str, ...]) -> list[str]:
    """Imports of the modules of ``layer`` that reach a forbidden package or leave the allowed
    parts of torch2keras."""
    out = []
    modules = [m for m in MODULES if m == layer or m.startswith(layer + ".")]
    assert len(modules) > 3, f"found no modules of {layer}"
    for module in modules:
        for line, name in _imports(module):
            root = name.split(".")[0]
            where = f"{module}:{line}"
            if root in forbidden_roots:
                out.append(f"{where} imports {name}")
            elif root == PACKAGE and not any(name == a or name.startswith(a + ".") for a in allowed_internal):
                out.append(f"{where} imports {name} (only {', '.join(allowed_internal)} may be imported)")
    return out


def test_the_walk_sees_imports_in_functions_and_skips_type_checking_blocks():
    source = textwrap.dedent("""
        from typing import TYPE_CHECKING
        from . import sibling
        if TYPE_CHECKING:
            import torch
        def f():
            from ..ir import Graph
            import keras
        """)
    nodes = list(_import_nodes(ast.parse(source)))
    names = [n for node in nodes for n in _imported("torch2keras.passes.dce", node)]
    assert sorted(names) == ["keras", "torch2keras.ir", "torch2keras.passes", "typing"]
    assert "torch2keras.passes.dce" in MODULES  # (the module the names were resolved from)


def test_backend_keras_imports_neither_torch_nor_the_frontend():
    assert _violations("torch2keras.backend_keras", {"torch", "torchvision"},
                       ("torch2keras.backend_keras", "torch2keras.ir")) == []


def test_passes_import_neither_torch_nor_keras():
    assert _violations("torch2keras.passes", {"torch", "torchvision", "keras", "tensorflow"},
                       ("torch2keras.passes", "torch2keras.ir")) == []


def test_backend_tflite_imports_only_the_ir():
    assert _violations("torch2keras.backend_tflite", {"torch", "torchvision", "keras", "tensorflow"},
                       ("torch2keras.backend_tflite", "torch2keras.ir")) == []


def test_a_forbidden_import_is_reported(tmp_path, monkeypatch):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch\n    from ..frontend_torch import lower\n")
    monkeypatch.setitem(MODULES, "torch2keras.backend_keras.bad", bad)
    found = _violations("torch2keras.backend_keras", {"torch"}, ("torch2keras.backend_keras", "torch2keras.ir"))
    assert sorted(found) == [
        "torch2keras.backend_keras.bad:2 imports torch",
        "torch2keras.backend_keras.bad:3 imports torch2keras.frontend_torch.lower (only torch2keras.backend_keras, "
        "torch2keras.ir may be imported)"]


def test_backend_keras_loads_without_torch():
    code = ("import sys\nimport torch2keras.backend_keras, torch2keras.backend_keras.export\n"
            "import torch2keras.tflite.file, torch2keras.tflite.runtime\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch2keras'))\n")
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _cycles(graph: nx.DiGraph) -> list[list[str]]:
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def test_backend_keras_is_in_no_import_cycle():
    graph = _import_graph()
    assert graph.number_of_edges() > 100  # the walk did see the package's imports
    assert [c for c in _cycles(graph) if any(m.startswith("torch2keras.backend_keras") for m in c)] == []


def test_a_cycle_into_the_backend_is_found():
    graph = _import_graph()
    graph.add_edge("torch2keras.ir", "torch2keras.backend_keras.emit")  # as if ir imported the backend
    assert any("torch2keras.backend_keras.emit" in c for c in _cycles(graph))


def test_the_package_has_no_import_cycle():
    """Not even through type-only (``if TYPE_CHECKING:``) imports: the layers are a true order."""
    assert _cycles(_import_graph(type_checking=True)) == []


def test_to_tflite_loads_neither_keras_nor_tensorflow():
    """``torch2keras.to_tflite`` (the direct path) promises a conversion without TensorFlow."""
    code = ("import sys, torch2keras, torch2keras.direct\n"
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))\n")
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


MAX_FUNCTION_LINES = 60


def _long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions of ``path`` whose code (docstring excluded) spans more than ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str) and len(body) > 1:
            body = body[1:]
        lines = body[-1].end_lineno - body[0].lineno + 1 + (body[0].lineno - node.lineno if body is node.body else 0)
        if lines > limit:
            where = path.relative_to(PACKAGE_DIR.parent) if path.is_relative_to(PACKAGE_DIR.parent) else path.name
            found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_60_lines():
    """Long functions are split into named steps (a docstring does not count)."""
    assert [f for p in MODULES.values() for f in _long_functions(p)] == []


def test_a_long_function_is_reported(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    bad = tmp_path / "long.py"
    bad.write_text(f'def f():\n    """Doc."""\n{body}\n\n\ndef g():\n    """Doc."""\n    return 1\n')
    assert [s.split(" ", 1)[1] for s in _long_functions(bad, 60)] == ["f (61 lines)"]
