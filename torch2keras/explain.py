"""``torch2keras.explain(op)``: which code converts ``op``, where it lives, and its source.

``op`` may be an aten op overload (``torch.ops.aten.hardsigmoid.default``) or packet
(``torch.ops.aten.hardsigmoid``), its name as a string (``"aten.hardsigmoid.default"``), a torch
function (``torch.relu``, ``F.hardsigmoid``) or an ``nn.Module`` class (``nn.Conv2d``), or
anything registered with ``torch2keras.converter``.

User converters come first. Otherwise functions and module classes are mapped to the aten ops
they are captured as: by name (``F.gelu`` -> ``aten.gelu``, ``nn.Conv2d`` -> ``aten.conv2d``,
``nn.LayerNorm`` -> ``aten.layer_norm``), or through a table for the names that differ
(``nn.BatchNorm2d``, ``F.interpolate``, ...). The mapping is static: a function whose capture
decomposes differently (inside a particular model) may be lowered through other ops.

For each aten overload it prints the lowering (qualified name, file:line and source), and the
IR ops it declares it may emit with their Keras emitters; an op with no lowering gets the stub that
``UnsupportedOpError`` would print.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from typing import Any, Callable

import torch

__all__ = ["explain", "aten_candidates"]

aten = torch.ops.aten

# functions / module classes whose aten ops are not found by their name
_TABLE: dict[str, list[str]] = {
    "batch_norm": ["_native_batch_norm_legit_no_training", "batch_norm"],
    "batchnorm1d": ["_native_batch_norm_legit_no_training"], "batchnorm2d": ["_native_batch_norm_legit_no_training"],
    "batchnorm3d": ["_native_batch_norm_legit_no_training"],
    "interpolate": ["upsample_nearest2d", "upsample_bilinear2d", "upsample_bicubic2d", "upsample_nearest1d"],
    "upsample": ["upsample_nearest2d", "upsample_bilinear2d"], "upsamplingnearest2d": ["upsample_nearest2d"],
    "upsamplingbilinear2d": ["upsample_bilinear2d"],
    "softmax": ["softmax", "_softmax"], "log_softmax": ["log_softmax", "_log_softmax"],
    "logsoftmax": ["log_softmax", "_log_softmax"],
    "leakyrelu": ["leaky_relu"], "relu6": ["relu6", "hardtanh"], "hardtanh": ["hardtanh"],
    "maxpool1d": ["max_pool1d"], "maxpool2d": ["max_pool2d", "max_pool2d_with_indices"],
    "max_pool2d": ["max_pool2d", "max_pool2d_with_indices"],
    "avgpool2d": ["avg_pool2d"], "adaptiveavgpool2d": ["adaptive_avg_pool2d"],
    "convtranspose1d": ["conv_transpose1d"], "convtranspose2d": ["conv_transpose2d"],
    "convtranspose3d": ["conv_transpose3d"],
    "multiheadattention": ["scaled_dot_product_attention", "linear"],
    "flatten": ["view", "reshape"], "unflatten": ["view"],
    "dropout": [], "dropout1d": [], "dropout2d": [], "identity": [],
    "prelu": ["prelu", "_prelu_kernel"],
    "rnn": ["rnn_tanh", "rnn_relu"],  # the cells decompose into linear layers and elementwise ops
    "lstmcell": ["linear", "sigmoid", "tanh"], "grucell": ["linear", "sigmoid", "tanh"],
    "rnncell": ["linear", "tanh", "relu"],
}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def aten_candidates(target: Any) -> list:
    """The aten op packets a function or module class is (statically) expected to capture as."""
    if isinstance(target, torch._ops.OpOverloadPacket):
        return [target]
    name = getattr(target, "__name__", "")
    keys = [name.rstrip("_").lower(), _snake(name).rstrip("_")]
    found: list = []
    for key in keys:
        for packet_name in _TABLE.get(key, [key, f"_{key}"] if key not in _TABLE else []):
            packet = getattr(aten, packet_name, None)
            if isinstance(packet, torch._ops.OpOverloadPacket) and packet not in found:
                found.append(packet)
        if key in _TABLE:
            break
    return found


def _resolve_string(text: str) -> Any:
    parts = text.split(".")
    if parts[0] == "torch" and parts[1:2] == ["ops"]:
        parts = parts[2:]
    if len(parts) < 2:
        raise ValueError(f"expected an op name like 'aten.relu.default', got {text!r}")
    obj: Any = torch.ops
    for p in parts:
        obj = getattr(obj, p, None)
        if obj is None:
            raise ValueError(f"no torch op named {text!r}")
    return obj


def _where(fn: Callable) -> str:
    fn = inspect.unwrap(fn)
    try:
        file = inspect.getsourcefile(fn) or "?"
        line = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        return "<source not available>"
    return f"{file}:{line}"


def _source(fn: Callable) -> str:
    try:
        return textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
    except (OSError, TypeError):
        return "<source not available>\n"


def _qualname(fn: Callable) -> str:
    module = getattr(fn, "__module__", None) or "torch"
    qualname = getattr(fn, "__qualname__", repr(fn))
    if qualname.startswith("_VariableFunctionsClass.") or module.startswith("torch._C"):
        return f"torch.{qualname.rsplit('.', 1)[-1]}"
    return f"{module}.{qualname}"


def _ir_ops(fn: Callable) -> list[str]:
    """The IR ops the lowering declares it may emit (``@lowering(..., emits=...)``)."""
    return list(getattr(fn, "emits", None) or ())


def _explain_overload(op: Any, lines: list[str]) -> None:
    from .backend_keras.emitters import EMITTERS
    from .frontend_torch import LOWERINGS
    from .frontend_torch.stubs import converter_stub
    from .ir.ops import SCHEMAS

    lines.append(f"{op}  ({op._schema})")
    fn = LOWERINGS.get(op)
    if fn is None:
        lines.append("  no lowering: calls of it raise UnsupportedOpError. A stub to fill:")
        lines.extend("    " + s for s in converter_stub(op).rstrip().splitlines())
        return
    from . import converters

    conv = converters.find_converter(op)
    if conv is not None:
        lines.append(f"  user converter {_qualname(conv.fn)} (layout {conv.layout!r}), replacing the built-in lowering")
        lines.append(f"  source: {_where(conv.fn)}")
        lines.extend("    " + s for s in _source(conv.fn).rstrip().splitlines())
        return
    lines.append(f"  lowering: {_qualname(fn)}")
    lines.append(f"  source:   {_where(fn)}")
    for ir_op in _ir_ops(fn):
        em = EMITTERS.get(ir_op)
        where = f"{_qualname(em)} ({_where(em)})" if em else "no Keras emitter"
        lines.append(f"  emits IR op {ir_op!r} (layout class {SCHEMAS[ir_op].layout}); Keras emitter: {where}")
    lines.extend("    " + s for s in _source(fn).rstrip().splitlines())


def _control_flow_op(op: Any) -> Any:
    """The higher-order op that ``op`` (``torch.cond``, torch's while_loop/scan/map, or the
    higher-order op itself) is captured as, else None."""
    from torch._higher_order_ops.map import map as torch_map
    from torch._higher_order_ops.scan import scan as torch_scan
    from torch._higher_order_ops.while_loop import while_loop as torch_while_loop

    hop = torch.ops.higher_order
    if isinstance(op, torch._ops.HigherOrderOperator):
        return op
    table = {torch.cond: hop.cond, torch_while_loop: hop.while_loop, torch_scan: hop.scan, torch_map: hop.map_impl}
    return next((h for f, h in table.items() if op is f), None)


def _explain_control_flow(op: Any, hop: Any, lines: list[str]) -> None:
    from .backend_keras.emitters import EMITTERS
    from .frontend_torch import LOWERINGS
    from .ir.ops import SCHEMAS

    label = _qualname(op) if not isinstance(op, torch._ops.HigherOrderOperator) else f"torch.ops.higher_order.{op}"
    lines.append(f"{label} is captured as torch.ops.higher_order.{hop}: its branches/bodies become IR regions, "
                 "lowered with the same lowerings")
    fn = LOWERINGS[hop]
    lines.append(f"  lowering: {_qualname(fn)}")
    lines.append(f"  source:   {_where(fn)}")
    for ir_op in _ir_ops(fn) or [str(hop).replace("map_impl", "map")]:
        em = EMITTERS.get(ir_op)
        where = f"{_qualname(em)} ({_where(em)})" if em else "no Keras emitter"
        regions = [k for k, spec in SCHEMAS[ir_op].attrs.items() if spec.kind == "graph"]
        lines.append(f"  emits IR op {ir_op!r} with regions {regions} (layout class {SCHEMAS[ir_op].layout}); "
                     f"Keras emitter: {where}")
    lines.extend("    " + s for s in _source(fn).rstrip().splitlines())


def explain(op: Any, file=None) -> str:
    """Print (to ``file``, default stdout) and return how ``op`` is converted."""
    from . import converters
    from .backend_keras import emitters  # noqa: F401  (registers the emitters)

    if isinstance(op, str):
        op = _resolve_string(op)
    lines: list[str] = []
    conv = converters.find_converter(op) if not isinstance(op, torch._ops.OpOverload) else None
    if conv is not None:
        lines.append(f"{conv.name}: user converter {_qualname(conv.fn)} ({conv.kind}, layout {conv.layout!r}); "
                     "captured as one opaque op, converted by:")
        lines.append(f"  source: {_where(conv.fn)}")
        lines.extend("    " + s for s in _source(conv.fn).rstrip().splitlines())
    elif isinstance(op, torch._ops.OpOverload):
        _explain_overload(op, lines)
    elif _control_flow_op(op) is not None:
        _explain_control_flow(op, _control_flow_op(op), lines)
    else:
        label = _qualname(op) if callable(op) else repr(op)
        packets = aten_candidates(op)
        if not packets:
            lines.append(f"{label}: no aten op known for it (modules like Dropout/Identity vanish in eval mode; "
                         "otherwise capture a model using it and read the IR dump's source column)")
        else:
            lines.append(f"{label} is captured as {', '.join(str(p) for p in packets)}")
        from .frontend_torch import LOWERINGS

        for packet in packets:
            overloads = [getattr(packet, o) for o in packet.overloads()]
            lowered = [o for o in overloads if o in LOWERINGS]
            for o in lowered or overloads[:1]:
                lines.append("")
                _explain_overload(o, lines)
    text = "\n".join(lines) + "\n"
    print(text, end="", file=file or sys.stdout)
    return text
