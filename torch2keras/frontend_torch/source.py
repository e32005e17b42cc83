"""Source locations of captured calls: the module path and the user's file:line."""

from __future__ import annotations

import os
import re
from typing import Optional

import torch

from ..ir import SourceLoc

__all__ = ["source_loc", "user_frame"]

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
        if not path.startswith(_TORCH_DIR) and not path.startswith(_OWN_DIR):
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
