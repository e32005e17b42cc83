"""Lowerings of torch's control-flow operators into IR ops with regions.

``torch.cond``, ``torch._higher_order_ops.while_loop``, ``scan`` and ``map`` reach the exported
graph as higher-order ops whose branches and bodies are fx sub-graphs (``get_attr`` submodules)
taking every value they use as an explicit operand (parameters included: export lifts them).
Each sub-graph is lowered, with the same lowering registry, into a *region* of the IR node
(``ir/regions.py`` states the signatures). Operands that are constants (weights) and that a
region reads unchanged on every run are sunk into the region as constants, so the ops inside
see their weights as the enclosing graph's ops do (a conv inside a branch keeps its Conv2D).

Inside a region, values carry no source line of their own (torch records the generated
sub-graph's code): they inherit the control-flow call's module path and file:line
(``source.region_loc``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from ...ir import Graph, SourceLoc, TensorType, Value
from ...ir.regions import row_type
from ..calls import get_attr_value, lower_call
from ..registry import LoweringContext, lowering, tensor_type
from ..source import region_loc

__all__ = ["lower_region"]

HOP = torch.ops.higher_order


def _is_const(v: Any) -> bool:
    return isinstance(v, Value) and v.producer.op == "constant"


def _placeholders(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "placeholder"]


def _flat_outputs(gm: torch.fx.GraphModule) -> list[Any]:
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _lower_body(ctx: LoweringContext, gm: torch.fx.GraphModule, env: dict, parent: Optional[SourceLoc],
                *, record: bool) -> list[Any]:
    """Lower ``gm``'s calls into ``ctx.graph`` (placeholders already in ``env``); its outputs."""
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            env[node] = get_attr_value(ctx.graph, node, {})
        elif node.op == "call_function":
            env[node] = lower_call(node, ctx, env, region_loc(node, parent), record=record)
    return [env[o] if isinstance(o, torch.fx.Node) else o for o in _flat_outputs(gm)]


def _check_input(ctx: LoweringContext, ph: torch.fx.Node, want: TensorType, what: str) -> None:
    val = ph.meta.get("val")
    if isinstance(val, torch.Tensor):
        got = tensor_type(val)
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise ctx.fail(f"{what}: sub-graph input {ph.name} is {got}, the operand gives {want}")


def lower_region(ctx: LoweringContext, gm: torch.fx.GraphModule, operands: Sequence[Any], kept: Sequence[int],
                 input_types: Sequence[TensorType], name: str) -> Graph:
    """Lower fx sub-graph ``gm`` (one placeholder per operand) into a region of ``ctx.graph``.

    ``kept`` are the positions of the operands that stay operands of the node: each becomes a
    region input of type ``input_types[i]``; every other operand is a constant (or a Python
    number) and becomes a constant inside the region.
    """
    placeholders = _placeholders(gm)
    if len(placeholders) != len(operands):
        raise ctx.fail(f"{name}: the sub-graph takes {len(placeholders)} inputs, the call passes {len(operands)}")
    region = ctx.graph.new_region(f"{ctx.name}_{name}")
    rctx = LoweringContext(region)
    env: dict = {}
    for i, (ph, v) in enumerate(zip(placeholders, operands)):
        if i in kept:
            _check_input(ctx, ph, input_types[i], name)
            env[ph] = region.add_input(ph.name, input_types[i])
        elif isinstance(v, Value):
            env[ph] = region.add_constant(v.producer.value, name=v.name_hint, dtype=v.type.dtype)
        else:
            env[ph] = v  # a Python number: lowerings take it as they take a literal
    parent = ctx.loc
    outs = _lower_body(rctx, gm, env, parent, record=False)
    values = []
    for k, o in enumerate(outs):
        if not isinstance(o, Value):
            if not isinstance(o, (bool, int, float)):
                raise ctx.fail(f"{name}: output {k} is a {type(o).__name__}, not a tensor")
            o = region.add_constant(np.asarray(o), name=f"output_{k}_const")
        values.append(o)
    region.set_outputs([f"output_{k}" for k in range(len(values))], values)
    return region


def _tensor_operands(ctx: LoweringContext, values: Sequence[Any], what: str) -> list[Value]:
    for v in values:
        if not isinstance(v, Value):
            raise ctx.fail(f"{what} must be tensors; got a {type(v).__name__} ({v!r}): make it a tensor "
                           f"(e.g. torch.tensor({v!r})) so that it can change at run time")
    return list(values)


def _kept(operands: Sequence[Any], sinkable: range) -> list[int]:
    """Positions that stay operands: all but the constants (and Python numbers) in ``sinkable``."""
    return [i for i, v in enumerate(operands) if not (i in sinkable and (_is_const(v) or not isinstance(v, Value)))]


def _emit(ctx: LoweringContext, op: str, operands: Sequence[Any], kept: Sequence[int], attrs: dict) -> tuple:
    return tuple(ctx.emit_node(op, [operands[i] for i in kept], **attrs).outputs)


@lowering(HOP.cond, emits=("cond",))
def lower_cond(ctx: LoweringContext, pred, true_gm, false_gm, operands):
    operands = list(operands)
    if not isinstance(pred, Value):  # (a Python bool is specialised by torch.cond itself)
        raise ctx.fail(f"torch.cond's predicate is a {type(pred).__name__}, not a tensor: write the "
                       "condition on tensor data (e.g. x.sum() > 0)")
    if pred.type.shape != ():
        pred = ctx.reshape(pred, [])
    pred = ctx.cast(pred, "bool")
    _tensor_operands(ctx, [v for v in operands if not isinstance(v, (bool, int, float))], "torch.cond operands")
    kept = _kept(operands, range(len(operands)))
    types = [v.type.replace(layout=None) if isinstance(v, Value) else None for v in operands]
    regions = {name: lower_region(ctx, gm, operands, kept, types, name)
               for name, gm in (("then_branch", true_gm), ("else_branch", false_gm))}
    return tuple(ctx.emit_node("cond", [pred, *(operands[i] for i in kept)], **regions).outputs)


@lowering(HOP.while_loop, emits=("while_loop",))
def lower_while_loop(ctx: LoweringContext, cond_gm, body_gm, carried, additional):
    carried = _tensor_operands(ctx, list(carried), "while_loop's carried values")
    operands = [*carried, *additional]
    kept = _kept(operands, range(len(carried), len(operands)))
    types = [v.type.replace(layout=None) if isinstance(v, Value) else None for v in operands]
    attrs = {"cond_fn": lower_region(ctx, cond_gm, operands, kept, types, "cond_fn"),
             "body_fn": lower_region(ctx, body_gm, operands, kept, types, "body_fn"),
             "num_carried": len(carried)}
    return _emit(ctx, "while_loop", operands, kept, attrs)


@lowering(HOP.scan, emits=("scan",))
def lower_scan(ctx: LoweringContext, combine_gm, init, xs, additional):
    init = _tensor_operands(ctx, list(init), "scan's initial carries")
    xs = _tensor_operands(ctx, list(xs), "scan's inputs")
    operands = [*init, *xs, *additional]
    kept = _kept(operands, range(len(init) + len(xs), len(operands)))
    types = [v.type.replace(layout=None) if isinstance(v, Value) else None for v in operands]
    for i in range(len(init), len(init) + len(xs)):
        types[i] = row_type(operands[i].type)
    attrs = {"combine_fn": lower_region(ctx, combine_gm, operands, kept, types, "combine_fn"),
             "num_init": len(init), "num_xs": len(xs)}
    return _emit(ctx, "scan", operands, kept, attrs)


@lowering(HOP.map_impl, emits=("map",))
def lower_map(ctx: LoweringContext, body_gm, xs, pos_args):
    xs = _tensor_operands(ctx, list(xs), "map's inputs")
    operands = [*xs, *pos_args]
    kept = _kept(operands, range(len(xs), len(operands)))
    types = [row_type(v.type) if i < len(xs) else (v.type.replace(layout=None) if isinstance(v, Value) else None)
             for i, v in enumerate(operands)]
    attrs = {"body_fn": lower_region(ctx, body_gm, operands, kept, types, "body_fn"), "num_xs": len(xs)}
    return _emit(ctx, "map", operands, kept, attrs)
