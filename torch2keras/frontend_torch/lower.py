"""Lower a captured FX graph into an IR graph, one registered lowering per call.

Buffers forward() mutates become ``state`` nodes (holding a copy of the initial value) and
``state_update`` nodes of their final values (``ir/state.py``)."""

from __future__ import annotations

import logging
import operator
from typing import Any, Iterator, Optional

import numpy as np
import torch
import torch.utils._pytree as pytree

from ..ir import Graph, LoweringError, SourceLoc, Torch2KerasError, UnsupportedOpError, Value
from ..ir.symbolic import shapes_agree
from .capture import Captured
from .registry import LOWERINGS, LoweringContext, tensor_type, torch_dtype
from .source import region_loc, source_loc
from . import ops  # noqa: F401  (registers the lowerings)

__all__ = ["lower", "find_unsupported", "fetch_attr", "get_attr_value", "iter_calls", "lower_call", "to_numpy"]

log = logging.getLogger(__name__)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """The tensor's data as numpy, sharing memory where the layout allows."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    if not t.is_contiguous():
        t = t.contiguous()
    return t.cpu().numpy()


def _op_name(target: Any) -> str:
    return str(target)


def iter_calls(fx_graph: torch.fx.Graph, parent: Optional[SourceLoc] = None) -> Iterator[tuple[torch.fx.Node, SourceLoc]]:
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


def find_unsupported(fx_graph: torch.fx.Graph) -> list[tuple[str, SourceLoc]]:
    """Calls without a lowering, in the graph and in the sub-graphs of its control flow."""
    return [(_op_name(node.target), loc) for node, loc in iter_calls(fx_graph)
            if node.target is not operator.getitem and node.target not in LOWERINGS]


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
    args = pytree.tree_map(arg, node.args)
    kwargs = pytree.tree_map(arg, node.kwargs)
    try:
        result = LOWERINGS[node.target](ctx, *args, **kwargs)
    except Torch2KerasError:
        raise
    except Exception as e:  # noqa: BLE001 - reported with the call's location
        raise LoweringError(f"lowering {node.target} failed: {type(e).__name__}: {e}\n  at {ctx.loc}") from e
    _check_result(ctx.graph, node, result, ctx.loc)
    if record:
        _record_torch_node(node, result)
    return result


def unsupported_message(missing: list[tuple[str, SourceLoc]]) -> str:
    ops = sorted({op for op, _ in missing})
    lines = [f"{len(missing)} call(s) of {len(ops)} op(s) have no lowering: {', '.join(ops)}"]
    for op, loc in missing:
        lines.append(f"  - {op} at {loc}")
    lines.append("Register a lowering with @torch2keras.frontend_torch.lowering(<op>) to convert them.")
    return "\n".join(lines)


def lower(captured: Captured, name: str = "model") -> Graph:
    missing = find_unsupported(captured.graph)
    if missing:
        from .fx_view import captured_view
        from .stubs import unsupported_stubs

        raise UnsupportedOpError(unsupported_message(missing) + unsupported_stubs(captured.graph, LOWERINGS), missing,
                                 view=captured_view(captured, LOWERINGS, name))

    graph = Graph(name)
    ctx = LoweringContext(graph)
    env: dict[torch.fx.Node, Any] = {}
    public = dict(zip(captured.user_inputs, captured.input_names))
    mutated = {m.placeholder: m for m in captured.mutated_buffers}

    for node in captured.graph.nodes:
        if node.op == "placeholder":
            if node.name in public:
                env[node] = graph.add_input(public[node.name], tensor_type(node.meta["val"]))
                ctx.sizes.register_input(env[node], node.meta["val"])
            elif node.name in mutated:
                env[node] = _state(graph, mutated[node.name].target, captured.constants[node.name])
            elif node.name in captured.constants:
                env[node] = graph.add_constant(to_numpy(captured.constants[node.name]), name=node.name)
            else:
                env[node] = None  # a non-tensor user input (specialised by capture)
        elif node.op == "get_attr":
            env[node] = get_attr_value(graph, node, captured.constants)
        elif node.op == "call_function":
            env[node] = lower_call(node, ctx, env, source_loc(node))
        elif node.op == "output":
            outs = []
            for o in captured.user_outputs:
                v = env[o] if isinstance(o, torch.fx.Node) else o
                if not isinstance(v, Value):
                    v = graph.add_constant(np.asarray(v), name="output_const")
                outs.append(v)
            graph.set_outputs(captured.output_names, outs)
            for m in captured.mutated_buffers:
                _state_update(graph, m.target, env[m.new_value], source_loc(m.new_value))
    graph.meta["capture_method"] = captured.method
    dim_names = getattr(captured, "dim_names", None) or {}
    if dim_names:
        from ..ir.symbolic import rename_dims

        rename_dims(graph, dim_names)
    return graph


def _state(graph: Graph, target: str, initial: torch.Tensor) -> Value:
    """The value buffer ``target`` holds when a call starts (initially a copy of ``initial``:
    the buffer's later changes in PyTorch do not reach the IR)."""
    value = np.array(to_numpy(initial), copy=True)
    dtype = torch_dtype(initial.dtype)
    return graph.add_node("state", attrs={"name": target, "value": value, "dtype": dtype},
                          types=[tensor_type(initial)], name=target).output


def _state_update(graph: Graph, target: str, new: Any, loc: SourceLoc) -> None:
    if not isinstance(new, Value):
        raise LoweringError(f"buffer {target!r} is set to {new!r}, not a tensor computed by the model\n  at {loc}")
    graph.add_node("state_update", [new], {"name": target}, loc=loc, name=f"{target}_update")


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
