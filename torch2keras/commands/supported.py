"""``torch2keras supported``: the ops that have a lowering, by op family, or the ones deliberately not lowered.

The listing comes from the lowering registry (``frontend_torch.LOWERINGS``; a family is the
module a lowering lives in, titled by that module's docstring) and from
``frontend_torch.unsupported``. Reading them means importing torch and every lowering (seconds),
so the listing is stored, keyed by torch's version and a hash of the frontend's source: the
package ships the listing of its pinned torch (``torch2keras/data/supported.json``, written by
``make supported-list``; a test fails when it is stale), and any other torch or a changed
lowering gets its listing computed once and kept in the user's cache folder. Either way the call
answers without importing torch.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import textwrap
from typing import Any, Optional

__all__ = ["SHIPPED", "cache_path", "listing", "op_name", "remember", "run", "write_shipped"]

_FRONTEND = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "frontend_torch")
_FORMAT = 1  # bump when the cached listing's layout changes
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "supported.json")


def run(args: argparse.Namespace) -> int:
    data = _stored() or _refresh()
    if args.pattern:
        return _search(data, args.pattern)
    if args.unsupported:
        print(f"{len(data['unsupported'])} Core ATen ops are deliberately not lowered:")
        for name, reason in sorted(data["unsupported"].items()):
            print(f"  {name}: {reason}")
        return 0
    total = sum(len(f["ops"]) for f in data["families"])
    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    print(f"torch2keras lowers {total} ops, by family. Names are ATen's (aten.NAME.OVERLOAD; torch.NAME and "
          "the nn modules call them); add.Scalar/Tensor lists two overloads.")
    print("`torch2keras supported NAME` looks one up; `--unsupported` lists the Core ATen ops deliberately not "
          "lowered.")
    for family in data["families"]:
        print(f"\n{family['title']} ({len(family['ops'])})")
        print(textwrap.fill(", ".join(_compact(family["ops"])), width=width, initial_indent="  ",
                            subsequent_indent="  ", break_on_hyphens=False))
    return 0


def _search(data: dict, pattern: str) -> int:
    needle = pattern.lower()
    hits = [(op, f["title"]) for f in data["families"] for op in f["ops"] if needle in op.lower()]
    refused = [(op, reason) for op, reason in data["unsupported"].items() if needle in op.lower()]
    for op, title in sorted(hits):
        print(f"  {op:<44} lowered ({title})")
    for op, reason in sorted(refused):
        print(f"  {op:<44} not lowered: {reason}")
    if not hits and not refused:
        print(f"no op matching {pattern!r} has a lowering; torch2keras.explain(op) shows the stub of a converter "
              "for it")
        return 1
    return 0


def _compact(ops: list[str]) -> list[str]:
    """["aten.add.Scalar", "aten.add.Tensor", "aten.abs.default"] -> ["abs", "add.Scalar/Tensor"]."""
    overloads: dict[str, list[str]] = {}
    for op in ops:
        if op.startswith("aten."):
            name, _, overload = op[len("aten."):].rpartition(".")
            overloads.setdefault(name, []).append(overload)
        else:
            overloads.setdefault(op, [])
    out = []
    for name, found in sorted(overloads.items()):
        found = sorted(found, key=lambda o: (o != "default", o))
        out.append(name if found in ([], ["default"]) else f"{name}.{'/'.join(found)}")
    return out


# ----------------------------------------------------------------------------- the listing and its cache


def listing() -> dict[str, Any]:
    """The listing from the live registries (imports torch and every lowering)."""
    import torch

    from ..frontend_torch import LOWERINGS
    from ..frontend_torch.unsupported import UNSUPPORTED

    families: dict[str, list[str]] = {}
    for target, fn in LOWERINGS.items():
        if not op_name(target).startswith("torch2keras."):  # (our own op for converter calls, no torch op)
            families.setdefault(fn.__module__, []).append(op_name(target))
    ordered = sorted(families.items(), key=lambda item: (-len(item[1]), item[0]))
    return {"torch": torch.__version__,
            "families": [{"title": _title(module), "ops": sorted(set(ops))} for module, ops in ordered],
            "unsupported": {op_name(op): reason for op, reason in UNSUPPORTED.items()}}


def op_name(target: Any) -> str:
    """A readable name: ``aten.add.Tensor``, ``operator.add``, ``torch.sym_max``, ``higher_order.cond``."""
    if type(target).__name__ == "OpOverload":
        return str(target)
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__name__", None)
    if module == "torch.ops.higher_order" or type(target).__module__.startswith("torch._higher_order_ops"):
        return f"higher_order.{target.name() if callable(getattr(target, 'name', None)) else name}"
    if module in ("_operator", "operator"):
        return f"operator.{name}"
    return f"{module}.{name}" if module and name else str(name or target)


def _title(module: str) -> str:
    """The first clause of the lowering module's docstring (``Elementwise ops``)."""
    doc = (sys.modules[module].__doc__ or "").strip() if module in sys.modules else ""
    first = doc.splitlines()[0] if doc else module.rsplit(".", 1)[-1]
    for stop in (":", ". "):
        first = first.split(stop)[0]
    return first.rstrip(".")


def cache_path() -> str:
    """Where the listing for this torch and this frontend source is kept."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "torch2keras", f"supported-{_key()}.json")


def _key() -> str:
    digest = hashlib.sha256(f"{_FORMAT} {_torch_version()}".encode())
    for folder, dirs, files in sorted(os.walk(_FRONTEND)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, _FRONTEND).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:20]


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _stored() -> Optional[dict]:
    """The listing for this torch and frontend: the package's own, else the user's cached one."""
    key = _key()
    for path in (SHIPPED, cache_path()):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if data.get("key", key) == key:  # (cached files are named by their key and carry none)
            return data
    return None


def write_shipped(path: str = SHIPPED) -> dict:
    """Write the package's listing (``make supported-list``): the live registries with their key."""
    data = {"key": _key(), **listing()}
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    return data


def _refresh() -> dict:
    data = listing()
    remember(data)
    return data


def remember(data: dict) -> None:
    """Write the listing to the cache; old listings are removed. Failing to write (a read-only
    home) is no error."""
    path = cache_path()
    try:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
            json.dump(data, f)
        os.replace(f.name, path)
        for old in os.listdir(folder):
            if old.startswith("supported-") and old.endswith(".json") and os.path.join(folder, old) != path:
                os.remove(os.path.join(folder, old))
    except OSError:
        pass


if __name__ == "__main__":
    print(f"wrote {SHIPPED}: {sum(len(f['ops']) for f in write_shipped()['families'])} ops")
