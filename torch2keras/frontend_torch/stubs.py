"""Ready-to-fill converter stubs for ops that have no lowering (appended to UnsupportedOpError).

For each distinct unsupported op of a captured graph, two stubs that a user can paste and fill:
an IR lowering (``@torch2keras.lowering``) with the op's signature from its schema, and the
Keras-side alternative (``@torch2keras.converter``) with the layout it must declare. Each stub
quotes the op's schema and the shapes of its first call, so the missing semantics are visible.
"""

from __future__ import annotations

import keyword
import operator
import re
from typing import Any, Mapping

import torch

from .calls import iter_calls
from .registry import _DTYPES

__all__ = ["converter_stub", "unsupported_stubs", "describe_arg"]


def _pyname(name: str) -> str:
    name = re.sub(r"\W", "_", name) or "arg"
    return name + "_" if keyword.iskeyword(name) else name


def describe_arg(a: Any) -> str:
    """A short description of one call argument: tensors as ``dtype[shape]``, the rest as repr."""
    if isinstance(a, torch.fx.Node):
        val = a.meta.get("val")
        return _tensor_text(val) if isinstance(val, torch.Tensor) else f"%{a.name}"
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(describe_arg(x) for x in a) + "]"
    text = repr(a)
    return text if len(text) <= 40 else text[:37] + "..."


def _signature(op: torch._ops.OpOverload) -> tuple[list[str], str, str]:
    """(python parameter list, the schema text, the returns text) of an aten overload."""
    schema = op._schema
    params, kw_started = [], False
    for arg in schema.arguments:
        name = _pyname(arg.name)
        if arg.kwarg_only and not kw_started:
            params.append("*")
            kw_started = True
        if arg.has_default_value():
            name += f"={arg.default_value!r}"
        params.append(name)
    returns = ", ".join(str(r.type) for r in schema.returns) or "()"
    return params, str(schema), returns


def _example(node: torch.fx.Node | None) -> str:
    if node is None:
        return ""
    parts = [describe_arg(a) for a in node.args] + [f"{k}={describe_arg(v)}" for k, v in node.kwargs.items()]
    val = node.meta.get("val")
    vals = [val] if isinstance(val, torch.Tensor) else list(val) if isinstance(val, (tuple, list)) else []
    shown = [_tensor_text(v) for v in vals if isinstance(v, torch.Tensor)]
    out = f" -> {', '.join(shown)}" if shown else ""
    return f"({', '.join(parts)}){out}"


def _tensor_text(t: torch.Tensor) -> str:
    dtype = _DTYPES.get(t.dtype, str(t.dtype).replace("torch.", ""))
    return f"{dtype}[{','.join(str(d) for d in t.shape)}]"


def converter_stub(op: Any, node: torch.fx.Node | None = None) -> str:
    """The two stubs (lowering and Keras converter) for ``op``; ``node`` is one call of it."""
    if not isinstance(op, torch._ops.OpOverload):
        return f"# no stub for {op!r}: not an aten/torch.library op overload\n"
    packet, overload = op._schema.name.split("::")[-1], op._overloadname
    namespace = op.namespace
    target = f"torch.ops.{namespace}.{packet}.{overload}"
    fn = _pyname(packet)
    params, schema, returns = _signature(op)
    example = _example(node)
    tensors = [_pyname(a.name) for a in op._schema.arguments if str(a.type) == "Tensor"]
    first = tensors[0] if tensors else "..."
    lines = [
        f"@torch2keras.lowering({target})",
        f"def lower_{fn}(ctx, {', '.join(params)}):",
        f"    # {schema}",
    ]
    if example:
        lines.append(f"    # first call: {packet}{example}")
    lines += [
        "    # tensors arrive as IR values in PyTorch's logical order; each IR op you emit declares",
        "    # the layout it needs in its schema (torch2keras/ir/ops/), the layout pass does the rest",
        f"    # return ctx.emit(\"<ir op>\", [{first}], <attr>=...)  -> {returns}",
        f"    raise NotImplementedError(\"lower {op}\")",
        "",
        "# or with Keras ops, on tensors stored in the layout you declare (\"torch\": PyTorch's order;",
        "# \"channels_last\": a per-channel op on NC... data; \"any\": elementwise):",
        f"@torch2keras.converter({target}, layout=\"torch\")",
        f"def convert_{fn}({', '.join(params)}):",
        f"    # return keras.ops.<op>({first}, ...)  -> Keras tensor(s) for {returns}",
        f"    raise NotImplementedError(\"convert {op}\")",
    ]
    return "\n".join(lines) + "\n"


def unsupported_stubs(fx_graph: torch.fx.Graph, lowerings: Mapping) -> str:
    """A stub per distinct op of ``fx_graph`` without a lowering, in order of first call."""
    first: dict[Any, torch.fx.Node] = {}
    for node, _ in iter_calls(fx_graph):  # (control-flow sub-graphs included)
        if node.target is not operator.getitem and node.target not in lowerings:
            first.setdefault(node.target, node)
    if not first:
        return ""
    parts = ["", "", "Stubs to fill (one per op):", ""]
    for op, node in first.items():
        parts.append(converter_stub(op, node))
    return "\n".join(parts)
