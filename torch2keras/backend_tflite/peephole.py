"""Peephole clean-up of a written subgraph, before it goes to the file.

Emitters write each IR node on its own, so two nodes that are each a plain reshape of the stored
bytes (a free permute, a reshape, a relayout moving 1-sized axes) come out as two RESHAPEs. This
pass leaves:

* no RESHAPE reading a RESHAPE's result that nothing else reads (it reads the first one's input);
* no RESHAPE to the shape its input already has (its readers read the input), unless it writes a
  graph output from a graph input or constant;
* no two ops of one kind with the same inputs and options (the second one's readers read the
  first one's results), unless they write variables or graph outputs or touch a resource
  variable's handle -- two IR nodes can stand for one transpose (a free permute and a relayout
  of the same input);
* no op whose results nobody reads (graph outputs and variable tensors count as read; an op
  without results, such as ``ASSIGN_VARIABLE`` or ``CALL_ONCE``, is kept for its effect).

Tensors and buffers stay (unreferenced ones cost a table entry each).
"""

from __future__ import annotations

import numpy as np

from .builder import SubgraphBuilder
from .schema import fb

__all__ = ["simplify"]

_RESHAPE = fb.BuiltinOperator.RESHAPE


def _code(sub: SubgraphBuilder, op) -> int:
    return sub.model.operator_code(op.opcodeIndex)


def _uses(sub: SubgraphBuilder) -> dict[int, int]:
    uses: dict[int, int] = {}
    for op in sub.operators:
        for t in op.inputs:
            uses[int(t)] = uses.get(int(t), 0) + 1
    for t in sub.outputs:
        uses[int(t)] = uses.get(int(t), 0) + 1
    return uses


def _merge_reshapes(sub: SubgraphBuilder) -> bool:
    producer = {int(t): op for op in sub.operators for t in op.outputs}
    uses = _uses(sub)
    changed = False
    for op in sub.operators:
        if _code(sub, op) != _RESHAPE:
            continue
        inner = producer.get(int(op.inputs[0]))
        if inner is not None and _code(sub, inner) == _RESHAPE and uses[int(op.inputs[0])] == 1:
            op.inputs[0] = inner.inputs[0]
            changed = True
    return changed


def _drop_noop_reshapes(sub: SubgraphBuilder) -> bool:
    keep = set(int(t) for t in sub.outputs)
    alias: dict[int, int] = {}
    for op in sub.operators:
        if _code(sub, op) == _RESHAPE and int(op.outputs[0]) not in keep \
                and sub.shape(int(op.inputs[0])) == sub.shape(int(op.outputs[0])):
            alias[int(op.outputs[0])] = int(op.inputs[0])
    _rewire(sub, alias)
    return bool(alias)


def _options_key(options) -> tuple:
    if options is None:
        return ()
    return tuple(sorted((k, tuple(np.asarray(v).ravel().tolist()) if isinstance(v, (list, np.ndarray)) else v)
                        for k, v in vars(options).items()))


def _rewire(sub: SubgraphBuilder, alias: dict[int, int]) -> None:
    """Make every op read ``alias[t]`` instead of tensor ``t``."""
    for op in sub.operators:
        for k in range(len(op.inputs)):
            while int(op.inputs[k]) in alias:
                op.inputs[k] = alias[int(op.inputs[k])]


def _merge_duplicates(sub: SubgraphBuilder) -> bool:
    variable = {k for k, t in enumerate(sub.tensors) if t.isVariable or t.type == fb.TensorType.RESOURCE}
    keep = set(int(t) for t in sub.outputs)
    seen: dict[tuple, object] = {}
    alias: dict[int, int] = {}
    for op in sub.operators:
        touched = [int(t) for t in (*op.inputs, *op.outputs)]
        if any(t in variable for t in touched) or any(int(t) in keep for t in op.outputs) or not len(op.outputs):
            continue
        key = (op.opcodeIndex, tuple(int(t) for t in op.inputs), _options_key(op.builtinOptions))
        if key in seen:
            alias.update({int(d): int(f) for d, f in zip(op.outputs, seen[key].outputs)})
        else:
            seen[key] = op
    if alias:
        _rewire(sub, alias)
    return bool(alias)


def _drop_dead(sub: SubgraphBuilder) -> bool:
    variable = {k for k, t in enumerate(sub.tensors) if t.isVariable}
    uses = _uses(sub)
    live = [op for op in sub.operators if not len(op.outputs) or any(uses.get(int(t), 0) for t in op.outputs)
            or any(int(t) in variable for t in op.inputs)]
    dropped = len(live) != len(sub.operators)
    sub.operators[:] = live
    return dropped


def simplify(sub: SubgraphBuilder) -> None:
    """Apply the rewrites of the module docstring until none applies."""
    while _merge_duplicates(sub) | _merge_reshapes(sub) | _drop_noop_reshapes(sub) | _drop_dead(sub):
        pass
