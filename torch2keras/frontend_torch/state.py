"""Buffers that forward() mutates: found in the captured graph, and kept intact by compile().

A model that changes its buffers (``self.count += 1``, ``self.cache.copy_(...)``,
``self.cache = torch.cat(...)``) is stateful: each call starts from what the previous one left.
Capture records, per mutated buffer, the placeholder that reads it and the fx node holding the
value forward() leaves in it (``MutatedBuffer``); lowering turns them into ``state`` /
``state_update`` IR nodes (``ir/state.py``).

* torch.export reports them itself (output specs of kind ``BUFFER_MUTATION``).
* The tracing fallback returns every buffer's value after the call as extra results (read by a
  forward hook, inside ``functional_call``'s reparametrisation, so reassigned buffers are seen
  too) and drops functionalization's ``copy_`` write-backs into inputs.

Mutated parameters and plain tensor attributes are refused: only buffers are state.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import attrs
import torch

from ..ir import LoweringError
from .source import source_loc

__all__ = ["MutatedBuffer", "BufferSnapshot", "export_mutations", "read_back", "trace_mutations"]

aten = torch.ops.aten


@attrs.define
class MutatedBuffer:
    """A buffer forward() changes: ``placeholder`` reads its value at the start of the call,
    ``new_value`` (an fx node) is the value it holds at the end; ``target`` is its qualified name."""

    placeholder: str
    target: str
    new_value: Any


def _refuse_parameters(names: Sequence[str]) -> None:
    if names:
        raise LoweringError(f"forward() mutates parameter(s) {', '.join(sorted(names))}: only buffers can be "
                            "state (register them with register_buffer)")


def export_mutations(ep: "torch.export.ExportedProgram", outputs: Sequence[Any]) -> list[MutatedBuffer]:
    """The buffer mutations of a (decomposed) exported program; ``outputs`` are its output node's args."""
    from torch.export.graph_signature import InputKind, OutputKind

    sig = ep.graph_signature
    placeholder = {spec.target: spec.arg.name for spec in sig.input_specs
                   if spec.kind in (InputKind.BUFFER, InputKind.PARAMETER)}
    _refuse_parameters([spec.target for spec in sig.output_specs if spec.kind == OutputKind.PARAMETER_MUTATION])
    return [MutatedBuffer(placeholder[spec.target], spec.target, out)
            for out, spec in zip(outputs, sig.output_specs) if spec.kind == OutputKind.BUFFER_MUTATION]


def _lookup(model: torch.nn.Module, name: str) -> Any:
    obj: Any = model
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@contextlib.contextmanager
def read_back(model: torch.nn.Module, names: Sequence[str]) -> Iterator[list]:
    """Yields a list that, once ``model`` has been called inside the block, holds the tensors
    found under ``names`` right at the end of forward() (a forward hook reads them)."""
    found: list = []

    def hook(module, args, output):
        found[:] = [_lookup(model, n) for n in names]

    handle = model.register_forward_hook(hook)
    try:
        yield found
    finally:
        handle.remove()


def trace_mutations(graph: torch.fx.Graph, placeholders: Sequence[torch.fx.Node], names: Sequence[str],
                    after: Sequence[Any], parameters: set[str]) -> list[MutatedBuffer]:
    """Mutated buffers of a functionalized trace whose ``after`` nodes are the values of the
    tensors ``names`` (read by ``placeholders``) at the end of the call; erases the trailing
    ``copy_`` write-backs into placeholders (the graph becomes a pure function)."""
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target is aten.copy_.default and node.args[0].op == "placeholder":
            node.replace_all_uses_with(node.args[1])
            graph.erase_node(node)
    _refuse_attribute_mutations(graph)
    changed = [(p, n, a) for p, n, a in zip(placeholders, names, after) if a is not p]
    _refuse_parameters([n for _, n, _ in changed if n in parameters])
    return [MutatedBuffer(p.name, n, a) for p, n, a in changed]


def _refuse_attribute_mutations(graph: torch.fx.Graph) -> None:
    """Functionalization leaves in-place ops on tensors the model closes over (plain tensor
    attributes): those would be state nobody restores, so they are refused."""
    for node in graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op == "call_function" and schema is not None and schema.is_mutable and \
                any(isinstance(a, torch.fx.Node) and a.op == "get_attr" for a in node.args):
            raise LoweringError(f"forward() mutates a tensor attribute that is not a registered buffer "
                                f"({node.target}); register it with register_buffer to make it state\n"
                                f"  at {source_loc(node)}")


class BufferSnapshot:
    """The model's buffers as they are now; ``restore()`` puts them back (values, and the
    tensor objects forward() may have replaced), so running forward() leaves no trace."""

    def __init__(self, model: torch.nn.Module) -> None:
        self._saved = []
        for module in model.modules():
            for name, buf in module._buffers.items():
                if buf is not None:
                    self._saved.append((module, name, buf, buf.detach().clone()))

    def restore(self) -> None:
        with torch.no_grad():
            for module, name, buf, value in self._saved:
                module._buffers[name] = buf
                if not torch.equal(buf, value):
                    buf.copy_(value)
