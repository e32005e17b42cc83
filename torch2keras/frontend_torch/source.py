"""Source locations of captured calls: the module path and the user's file:line."""

from __future__ import annotations

import os
import re
from typing import Optional

import torch

from ..ir import SourceLoc

__all__ = ["region_loc", "source_loc", "user_frame"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n(.*)')


def user_frame(stack_trace: Optional[str]) -> tuple[str, int, str]:
    """The innermost frame of ``stack_trace`` outside torch and this package: (file, line, code)."""
    if not stack_trace:
        return "", 0, ""
    frames = _FRAME.findall(stack_trace)
    for file, line, _fn, code in reversed(frames):
        path = os.path.abspath(file)
        if not path.startswith(_TORCH_DIR) and not path.startswith(_OWN_DIR) and not file.startswith("<"):
            return file, int(line), code.strip()
    if frames:
        file, line, _fn, code = frames[-1]
        return file, int(line), code.strip()
    return "", 0, ""


def source_loc(fx_node: torch.fx.Node) -> SourceLoc:
    meta = fx_node.meta
    stack = meta.get("nn_module_stack") or {}
    module_path, module_type = "", ""
    if stack:
        path, mtype = list(stack.values())[-1]
        module_path = str(path)
        module_type = mtype.__name__ if isinstance(mtype, type) else str(mtype).rsplit(".", 1)[-1]
    file, line, code = user_frame(meta.get("stack_trace"))
    return SourceLoc(module_path=module_path, module_type=module_type, file=file, line=line, code=code,
                     op=str(fx_node.target))


def region_loc(fx_node: torch.fx.Node, parent: Optional[SourceLoc]) -> SourceLoc:
    """The location of a call inside a control-flow sub-graph: its own where torch kept the
    user's file:line, else (torch records the generated sub-graph's code) the enclosing
    control-flow call's module path and file:line."""
    loc = source_loc(fx_node)
    if parent is None or (loc.file and not loc.file.startswith("<")):
        return loc
    return SourceLoc(module_path=loc.module_path or parent.module_path,
                     module_type=loc.module_type or parent.module_type,
                     file=parent.file, line=parent.line, code=parent.code, op=loc.op)
