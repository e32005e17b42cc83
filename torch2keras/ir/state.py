"""State in the IR: values a model keeps from one call to the next (buffers forward() mutates).

A state is a ``state`` source node (``{name, value}``: the buffer's qualified name and its
initial value) whose result is what the state holds when a call starts, and at most one
``state_update(%new) {name}`` node, an effect that makes ``%new`` the value the next call
starts from. Reads therefore always see the previous call's state, whatever the order of the
ops in between, and a graph without state nodes is a pure function of its inputs.

Passes treat ``state`` like an input (never folded into a constant: its value changes between
calls) and ``state_update`` like a graph output (never erased, merged or folded).

A state and its update are one stored variable: the layout pass stores both in one layout (the
one its readers and writer prefer, e.g. channels-last for a conv's frame buffer), and the
verifier checks they agree. The ``value`` attribute stays in PyTorch's order.
"""

from __future__ import annotations

from typing import Callable, Optional

from .core import GraphBase, Node

__all__ = ["state_nodes", "state_updates", "has_state", "check_state"]


def state_nodes(graph: GraphBase) -> dict[str, Node]:
    """The ``state`` nodes by state name, in topological order."""
    return {n.attrs["name"]: n for n in graph.nodes_by_op("state")}


def state_updates(graph: GraphBase) -> dict[str, Node]:
    """The ``state_update`` nodes by state name, in topological order."""
    return {n.attrs["name"]: n for n in graph.nodes_by_op("state_update")}


def has_state(graph: GraphBase) -> bool:
    return bool(graph.nodes_by_op("state"))


def check_state(graph: GraphBase, fail: Callable[[Optional[Node], str], None]) -> None:
    """Each state is declared once and updated at most once, with a value of its own type and layout."""
    declared: dict[str, Node] = {}
    for node in graph.nodes_by_op("state"):
        name = node.attrs["name"]
        if name in declared:
            fail(node, f"state {name!r} is declared twice")
        declared[name] = node
    updated: set[str] = set()
    for node in graph.nodes_by_op("state_update"):
        name = node.attrs["name"]
        if name in updated:
            fail(node, f"state {name!r} is updated twice in one call")
        updated.add(name)
        state = declared.get(name)
        if state is None:
            fail(node, f"update of undeclared state {name!r}")
            continue
        new, old = node.inputs[0].type, state.output.type
        if tuple(new.shape) != tuple(old.shape) or new.dtype != old.dtype:
            fail(node, f"state {name!r} is {old}, its update is {new}")
        elif new.layout != old.layout:  # one variable: read and written in one layout
            fail(node, f"state {name!r} is stored as {old}, its update as {new}")
