"""Signatures of the control-flow ops' regions: what each region takes and returns.

A control-flow node owns *regions*: sub-graphs held in its attributes of kind ``graph``. A
region sees nothing of the enclosing graph: every value it uses comes in as one of its inputs,
and its inputs correspond, in order, to (some of) the node's operands. This module says, per op,
which types each region's inputs and outputs must have given the node's operand types, and what
the node returns; the schema table (``ops.py``) infers result types with it and the verifier
checks regions against it.

Layouts. The layout pass chooses how the node's operands and results are stored, and each region's
inputs and outputs are then stored exactly as the node's operands and results they stand for
(``boundary_layouts``): a branch whose operand is NHWC sees an NHWC input. A carried value keeps
one layout in and out; ``scan`` and ``map`` slice and stack along axis 0, so their scanned inputs
and stacked results keep axis 0 physically first, and one row is stored as the rest of the axes.

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

from .types import Layout, TensorType

__all__ = ["REGION_OPS", "RegionSignature", "boundary_layouts", "region_signature", "result_types", "row_layout",
           "row_type", "stacked_layout", "stacked_type"]

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


# ----------------------------------------------------------------------------- layouts at the boundary


def row_layout(layout: Sequence[int]) -> Layout:
    """The layout of one slice along axis 0 of a value stored in ``layout`` (full form), which
    must keep axis 0 physically first (slicing a row is then a plain physical slice)."""
    if not layout or layout[0] != 0:
        raise ValueError(f"layout {tuple(layout)} does not store axis 0 first: rows along axis 0 are not contiguous")
    return tuple(a - 1 for a in layout[1:])


def stacked_layout(layout: Sequence[int]) -> Layout:
    """The layout of rows stored in ``layout`` stacked on a new, physically first axis 0."""
    return (0, *(a + 1 for a in layout))


Boundary = dict[str, tuple[list[Layout], list[Layout]]]


def boundary_layouts(op: str, operand_layouts: Sequence[Sequence[int]], result_layouts: Sequence[Sequence[int]],
                     attrs: dict) -> Boundary:
    """Per region name: the layouts (full form) its inputs and its outputs must have, given how the
    node's operands and results are stored. Raises ``ValueError`` where no region can match (a
    scanned input or stacked result without axis 0 first, a carried value stored unlike its result)."""
    ins = [tuple(x) for x in operand_layouts]
    outs = [tuple(x) for x in result_layouts]
    if op == "cond":
        return {"then_branch": (ins[1:], outs), "else_branch": (ins[1:], outs)}
    if op == "while_loop":
        carried = ins[: attrs["num_carried"]]
        if carried != outs:
            raise ValueError(f"carried values are stored {carried} but returned {outs}")
        return {"cond_fn": (ins, [()]), "body_fn": (ins, carried)}
    if op == "scan":
        n_init, n_xs = attrs["num_init"], attrs["num_xs"]
        init, xs, extra = ins[:n_init], ins[n_init:n_init + n_xs], ins[n_init + n_xs:]
        if init != outs[:n_init]:
            raise ValueError(f"scan carries are stored {init} but returned {outs[:n_init]}")
        rows = [row_layout(x) for x in xs]
        return {"combine_fn": ([*init, *rows, *extra], [*init, *(row_layout(y) for y in outs[n_init:])])}
    if op == "map":
        n_xs = attrs["num_xs"]
        rows = [row_layout(x) for x in ins[:n_xs]]
        return {"body_fn": ([*rows, *ins[n_xs:]], [row_layout(y) for y in outs])}
    raise KeyError(f"{op!r} is not a control-flow op")
