"""Signatures of the control-flow ops' regions: what each region takes and returns.

A control-flow node owns *regions*: sub-graphs held in its attributes of kind ``graph``. A
region sees nothing of the enclosing graph: every value it uses comes in as one of its inputs,
and its inputs correspond, in order, to (some of) the node's operands. This module says, per op,
which types each region's inputs and outputs must have given the node's operand types, and what
the node returns; the schema table (``ops.py``) infers result types with it and the verifier
checks regions against it. Region inputs and outputs are stored in PyTorch's order (the layout
pass pins them there).

  cond(pred, *operands)         then_branch, else_branch: operands -> results (the same types)
  while_loop(*carried, *extra)  cond_fn: carried + extra -> bool[]; body_fn: carried + extra ->
                                carried (``num_carried`` operands are carried); results: carried
  scan(*init, *xs, *extra)      combine_fn: carry + one slice of each x (along axis 0) + extra ->
                                next carry + ys; results: final carry, then each y stacked on a new
                                axis 0 (torch.ops.higher_order.scan semantics)
  map(*xs, *extra)              body_fn: one slice of each x (axis 0) + extra -> ys; results: the
                                ys stacked on a new axis 0
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .types import TensorType

__all__ = ["REGION_OPS", "RegionSignature", "region_signature", "result_types", "row_type", "stacked_type"]

# (inputs each region must take, outputs it must return: None where the region decides)
RegionSignature = dict[str, tuple[list[TensorType], "list[TensorType] | None"]]


def _plain(t: TensorType) -> TensorType:
    return t.replace(layout=None)


def row_type(t: TensorType) -> TensorType:
    """The type of one slice of ``t`` along axis 0."""
    if t.rank == 0:
        raise ValueError(f"cannot slice a scalar {t} along axis 0")
    return TensorType(t.shape[1:], t.dtype)


def stacked_type(t: TensorType, length: Any) -> TensorType:
    """``length`` values of type ``t`` stacked on a new axis 0."""
    return TensorType((length, *t.shape), t.dtype)


def _outputs(region: Any) -> list[TensorType]:
    return [_plain(v.type) for v in region.outputs]


def _cond(types: Sequence[TensorType], a: dict) -> tuple[RegionSignature, list[TensorType]]:
    ins = [_plain(t) for t in types[1:]]
    results = _outputs(a["then_branch"])
    return {"then_branch": (ins, results), "else_branch": (ins, results)}, results


def _while(types: Sequence[TensorType], a: dict) -> tuple[RegionSignature, list[TensorType]]:
    ins = [_plain(t) for t in types]
    carried = ins[: a["num_carried"]]
    return {"cond_fn": (ins, [TensorType((), "bool")]), "body_fn": (ins, carried)}, carried


def _scan(types: Sequence[TensorType], a: dict) -> tuple[RegionSignature, list[TensorType]]:
    n_init, n_xs = a["num_init"], a["num_xs"]
    init = [_plain(t) for t in types[:n_init]]
    xs = list(types[n_init:n_init + n_xs])
    extra = [_plain(t) for t in types[n_init + n_xs:]]
    length = xs[0].shape[0] if xs else 0
    outs = _outputs(a["combine_fn"])
    ys = outs[n_init:]
    sig = {"combine_fn": ([*init, *(row_type(x) for x in xs), *extra], [*init, *ys])}
    return sig, [*init, *(stacked_type(y, length) for y in ys)]


def _map(types: Sequence[TensorType], a: dict) -> tuple[RegionSignature, list[TensorType]]:
    n_xs = a["num_xs"]
    xs = list(types[:n_xs])
    extra = [_plain(t) for t in types[n_xs:]]
    length = xs[0].shape[0]
    outs = _outputs(a["body_fn"])
    return {"body_fn": ([*(row_type(x) for x in xs), *extra], None)}, [stacked_type(y, length) for y in outs]


REGION_OPS: dict[str, Callable[[Sequence[TensorType], dict], tuple[RegionSignature, list[TensorType]]]] = {
    "cond": _cond, "while_loop": _while, "scan": _scan, "map": _map,
}


def region_signature(op: str, types: Sequence[TensorType], attrs: dict) -> RegionSignature:
    """Per region name: (the input types it must take, the output types it must return or None)."""
    return REGION_OPS[op](types, attrs)[0]


def result_types(op: str, types: Sequence[TensorType], attrs: dict) -> list[TensorType]:
    """The node's result types (the schema's inference rule of every control-flow op)."""
    return REGION_OPS[op](types, attrs)[1]
