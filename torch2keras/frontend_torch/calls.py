"""Lower one captured fx call with its registered lowering, and walk a graph's calls (those of
its control-flow sub-graphs included).

``lower.py`` lowers a whole graph with these; the control-flow lowerings (``ops/control.py``)
lower their branches and loop bodies with them into IR regions.
"""

from __future__ import annotations

import operator
from typing import Any, Iterator, Optional

import numpy as np
import torch
import torch.utils._pytree as pytree

from ..ir import Graph, LoweringError, SourceLoc, Torch2KerasError, Value
from ..ir.symbolic import shapes_agree
from .registry import LOWERINGS, LoweringContext, tensor_type
from .source import region_loc

__all__ = ["fetch_attr", "get_attr_value", "iter_calls", "lower_call", "to_numpy"]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """The tensor's data as numpy, sharing memory where the layout allows."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    if not t.is_contiguous():
        t = t.contiguous()
    return t.cpu().numpy()


def iter_calls(fx_graph: torch.fx.Graph,
               parent: Optional[SourceLoc] = None) -> Iterator[tuple[torch.fx.Node, SourceLoc]]:
    """Every ``call_function`` node with its location, in the graph and, after each control-flow
    call, in its sub-graphs (branches, loop bodies), recursively."""
    for node in fx_graph.nodes:
        if node.op != "call_function":
            continue
        loc = region_loc(node, parent)
        yield node, loc
        for a in node.args:
            sub = fetch_attr(a) if isinstance(a, torch.fx.Node) and a.op == "get_attr" else None
            if isinstance(sub, torch.fx.GraphModule):
                yield from iter_calls(sub.graph, loc)


def fetch_attr(node: torch.fx.Node) -> Any:
    """What a ``get_attr`` node reads from the module owning its graph (None if unreachable):
    a tensor, or the GraphModule of a control-flow branch or body."""
    obj = node.graph.owning_module
    try:
        for part in str(node.target).split("."):
            obj = getattr(obj, part)
    except AttributeError:
        return None
    return obj


def get_attr_value(graph: Graph, node: torch.fx.Node, constants: dict) -> Any:
    """A ``get_attr`` node lowered: a constant for a tensor, the GraphModule itself for a sub-graph
    (control-flow lowerings take it as an argument)."""
    if node.name in constants:
        return graph.add_constant(to_numpy(constants[node.name]), name=node.name)
    obj = fetch_attr(node)
    if isinstance(obj, torch.fx.GraphModule):
        return obj
    if isinstance(obj, torch.Tensor):
        return graph.add_constant(to_numpy(obj), name=node.name)
    raise LoweringError(f"get_attr {node.target!r} reads a {type(obj).__name__}, not a tensor or a sub-graph")


def lower_call(node: torch.fx.Node, ctx: LoweringContext, env: dict, loc: SourceLoc, *, record: bool = True) -> Any:
    """Lower one ``call_function`` node with its registered lowering; its arguments are looked up
    in ``env``. ``record`` tags the results with the fx node (for validation)."""
    if node.target is operator.getitem:
        return env[node.args[0]][node.args[1]]

    def arg(a):
        return env[a] if isinstance(a, torch.fx.Node) else a

    ctx.loc = loc
    ctx.name = node.name
    ctx.meta_val = node.meta.get("val")
    ctx.lowering = LOWERINGS[node.target]
    args = pytree.tree_map(arg, node.args)
    kwargs = pytree.tree_map(arg, node.kwargs)
    try:
        result = ctx.lowering(ctx, *args, **kwargs)
    except Torch2KerasError:
        raise
    except Exception as e:  # noqa: BLE001 - reported with the call's location
        raise LoweringError(f"lowering {node.target} failed: {type(e).__name__}: {e}\n  at {ctx.loc}") from e
    _check_result(ctx.graph, node, result, ctx.loc)
    if record:
        _record_torch_node(node, result)
    return result


def _record_torch_node(node: torch.fx.Node, result: Any) -> None:
    """Tag each IR value a lowering returns with the fx node (and result index) it stands for:
    ``value.meta["torch_node"]``, ``value.meta["torch_index"]`` (None for a single result).
    Validation compares such values with torch's. A value returned again by a later call
    (an alias) keeps its first tag."""
    if isinstance(result, Value):
        result.meta.setdefault("torch_node", node.name)
        result.meta.setdefault("torch_index", None)
    elif isinstance(result, (tuple, list)):
        for i, r in enumerate(result):
            if isinstance(r, Value) and "torch_node" not in r.meta:
                r.meta["torch_node"], r.meta["torch_index"] = node.name, i


def _check_result(graph: Graph, node: torch.fx.Node, result: Any, loc: SourceLoc) -> None:
    """The lowering must produce what torch said the call produces (shape and dtype). Symbolic
    dims cannot be compared by value: where they are spelled differently, the result takes
    torch's spelling (so that every value standing for a torch call names its sizes as torch
    does)."""
    val = node.meta.get("val")
    pairs = []
    if isinstance(val, torch.Tensor):
        pairs = [(result, val)]
    elif isinstance(val, (tuple, list)) and isinstance(result, (tuple, list)):
        pairs = [(r, v) for r, v in zip(result, val) if isinstance(v, torch.Tensor) and r is not None]
    for r, v in pairs:
        if not isinstance(r, Value):
            raise LoweringError(f"lowering of {node.target} returned {type(r).__name__}, not an IR value\n  at {loc}")
        want = tensor_type(v)
        if not shapes_agree(r.type.shape, want.shape) or r.type.dtype != want.dtype:
            raise LoweringError(f"lowering of {node.target} produced {r.type}, torch produces {want}\n  at {loc}")
        if tuple(r.type.shape) != tuple(want.shape):
            graph.set_type(r, r.type.replace(shape=want.shape))
