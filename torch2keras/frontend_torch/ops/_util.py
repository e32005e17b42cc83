"""Small helpers shared by the lowering modules."""

from __future__ import annotations

from typing import Iterable

import torch

aten = torch.ops.aten


def overloads(name: str, *overload_names: str) -> list:
    """``aten.<name>.<overload>`` and, where it exists, the functional ``<name>_copy`` twin
    (what functionalization emits for views)."""
    found = []
    for base in (name, f"{name}_copy"):
        packet = getattr(aten, base, None)
        if packet is None:
            continue
        for ov in overload_names:
            op = getattr(packet, ov, None)
            if op is not None:
                found.append(op)
    return found


def norm_axis(axis: int, rank: int) -> int:
    return axis % rank if rank else 0


def norm_axes(axes: Iterable[int], rank: int) -> list[int]:
    return sorted({norm_axis(a, rank) for a in axes})


def static_value(v, depth: int = 8):
    """The array behind an IR value computed from constants only (a constant, or a short chain of
    ops on constants that the numpy evaluator covers), else None."""
    from ...ir.evaluate import evaluate

    node = v.producer
    if node.op == "constant":
        return node.value
    if depth == 0 or node.op == "input" or not node.inputs:
        return None
    args = [static_value(i, depth - 1) for i in node.inputs]
    if any(a is None for a in args):
        return None
    try:
        return evaluate(node.op, args, node.attrs)[v.index]
    except NotImplementedError:
        return None
