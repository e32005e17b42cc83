"""Source locations of captured calls: the module path and the user's own file:line.

"The user's own code" is any file outside the libraries: torch, this package, the standard
library, installed packages (site-packages, dist-packages: torchvision, timm, ...) and the
interpreter's scripts. For each call, in this order:

1. the innermost frame of the stack torch recorded for the call that is the user's (a
   ``forward`` the user wrote, calling ``self.features(x)``);
2. where the whole forward is library code (``nn.Sequential``, a torchvision model): the site
   set with ``call_site`` (the command line names the model factory);
3. else the user's line that called the compiler (``torch2keras.compile(model, x)``), found on
   the live stack;
4. else the innermost recorded frame, library or not.

The module path (``features.3.block.0``) says which module inside the library code it was.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import linecache
import os
import re
import site
import sys
import sysconfig
from typing import Iterator, Optional

import torch

from ..ir import SourceLoc

__all__ = ["call_site", "is_library", "region_loc", "source_loc", "user_frame"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n(.*)')
_PACKAGE_DIRS = {"site-packages", "dist-packages"}

Frame = tuple[str, int, str]  # (file, line, code)
_CALL_SITE: contextvars.ContextVar[Optional[Frame]] = contextvars.ContextVar("torch2keras_call_site", default=None)


def _library_roots() -> tuple[str, ...]:
    paths = {_TORCH_DIR, _OWN_DIR, *site.getsitepackages(), site.getusersitepackages()}
    paths.update(sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib", "scripts"))
    return tuple(os.path.join(os.path.abspath(p), "") for p in paths if p)


_LIBRARY_ROOTS = _library_roots()


@functools.lru_cache(maxsize=4096)
def is_library(file: str) -> bool:
    """Whether ``file`` belongs to torch, this package, the standard library or an installed
    package (anything but the user's own code); generated code (``<...>``) counts as library."""
    if not file or file.startswith("<"):
        return True
    path = os.path.abspath(file)
    if _PACKAGE_DIRS & set(path.split(os.sep)):
        return True
    return path.startswith(_LIBRARY_ROOTS)


def _frames(stack_trace: Optional[str]) -> list[Frame]:
    return [(file, int(line), code.strip()) for file, line, _fn, code in _FRAME.findall(stack_trace or "")]


def user_frame(stack_trace: Optional[str]) -> Frame:
    """The innermost frame of ``stack_trace`` in the user's code (else its innermost frame, else
    empty): (file, line, code)."""
    frames = _frames(stack_trace)
    own = next((f for f in reversed(frames) if not is_library(f[0])), None)
    return own or (frames[-1] if frames else ("", 0, ""))


@contextlib.contextmanager
def call_site(file: str, line: int, code: str = "") -> Iterator[None]:
    """Within the block, calls whose recorded stack has no frame of the user's code are located
    at ``file:line`` (e.g. the command line's model factory) instead of the compiler's caller."""
    token = _CALL_SITE.set((file, line, code))
    try:
        yield
    finally:
        _CALL_SITE.reset(token)


def _caller() -> Optional[Frame]:
    """The innermost frame of the live stack in the user's code: who called the compiler."""
    frame = sys._getframe(1)
    while frame is not None:
        file = frame.f_code.co_filename
        if not is_library(file):
            return file, frame.f_lineno, linecache.getline(file, frame.f_lineno).strip()
        frame = frame.f_back
    return None


def _module_scopes(fx_node: torch.fx.Node) -> tuple[tuple[str, str], ...]:
    """(module path, class name) of each module the call is in, outermost first, the root left out."""
    stack = (fx_node.meta.get("nn_module_stack") or {}).values()
    return tuple((str(path), _type_name(mtype)) for path, mtype in stack if str(path))


def _type_name(mtype) -> str:
    return mtype.__name__ if isinstance(mtype, type) else str(mtype).rsplit(".", 1)[-1]


def _traced_user_frame(fx_node: torch.fx.Node) -> tuple[Optional[Frame], Frame]:
    """(the innermost recorded frame in the user's code or None, the innermost recorded frame)."""
    frames = _frames(fx_node.meta.get("stack_trace"))
    own = next((f for f in reversed(frames) if not is_library(f[0])), None)
    return own, (frames[-1] if frames else ("", 0, ""))


def _loc(fx_node: torch.fx.Node, frame: Frame) -> SourceLoc:
    scopes = _module_scopes(fx_node)
    module_path, module_type = scopes[-1] if scopes else ("", "")
    if not scopes:  # a call of the root module itself: its class
        stack = list((fx_node.meta.get("nn_module_stack") or {}).values())
        module_type = _type_name(stack[-1][1]) if stack else ""
    file, line, code = frame
    return SourceLoc(module_path=module_path, module_type=module_type, file=file, line=line, code=code,
                     op=str(fx_node.target), scopes=scopes)


def source_loc(fx_node: torch.fx.Node) -> SourceLoc:
    """Where ``fx_node`` came from: its module path and the user's file:line (module docstring)."""
    own, innermost = _traced_user_frame(fx_node)
    frame = own or _CALL_SITE.get() or _caller() or innermost
    return _loc(fx_node, frame)


def region_loc(fx_node: torch.fx.Node, parent: Optional[SourceLoc]) -> SourceLoc:
    """The location of a call inside a control-flow sub-graph: its own where torch kept the
    user's file:line, else (torch records the generated sub-graph's code) the enclosing
    control-flow call's module path and file:line."""
    own, _ = _traced_user_frame(fx_node)
    if parent is None or own is not None:
        return source_loc(fx_node)
    loc = _loc(fx_node, (parent.file, parent.line, parent.code))
    return SourceLoc(module_path=loc.module_path or parent.module_path,
                     module_type=loc.module_type or parent.module_type,
                     file=parent.file, line=parent.line, code=parent.code, op=loc.op,
                     scopes=loc.scopes or parent.scopes)
