"""Lower a captured FX graph into an IR graph, one registered lowering per call.

Buffers forward() mutates become ``state`` nodes (holding a copy of the initial value) and
``state_update`` nodes of their final values (``ir/state.py``)."""

from __future__ import annotations

import logging
import operator
from typing import Any

import numpy as np
import torch

from ..ir import Graph, LoweringError, SourceLoc, UnsupportedOpError, Value
from ..ir.symbolic import rename_dims
from . import ops  # noqa: F401  (registers the lowerings)
from .calls import get_attr_value, iter_calls, lower_call, to_numpy
from .capture import Captured
from .fx_view import captured_view
from .registry import LOWERINGS, LoweringContext, tensor_type, torch_dtype
from .source import source_loc
from .stubs import unsupported_stubs

__all__ = ["lower", "find_unsupported"]

log = logging.getLogger(__name__)


def find_unsupported(fx_graph: torch.fx.Graph) -> list[tuple[str, SourceLoc]]:
    """Calls without a lowering, in the graph and in the sub-graphs of its control flow."""
    return [(str(node.target), loc) for node, loc in iter_calls(fx_graph)
            if node.target is not operator.getitem and node.target not in LOWERINGS]


def unsupported_message(missing: list[tuple[str, SourceLoc]]) -> str:
    names = sorted({op for op, _ in missing})
    lines = [f"{len(missing)} call(s) of {len(names)} op(s) have no lowering: {', '.join(names)}"]
    for op, loc in missing:
        lines.append(f"  - {op} at {loc}")
    lines.append("Register a lowering with @torch2keras.frontend_torch.lowering(<op>) to convert them.")
    return "\n".join(lines)


def lower(captured: Captured, name: str = "model") -> Graph:
    missing = find_unsupported(captured.graph)
    if missing:
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
    if captured.outputs_are_dict:
        graph.meta["outputs_are_dict"] = True  # the Keras model returns a dict keyed by output_names
    dim_names = getattr(captured, "dim_names", None) or {}
    if dim_names:
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
