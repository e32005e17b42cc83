"""Compare every converted value with its PyTorch counterpart and locate where the error starts.

Torch side: the captured fx graph is run once on the example inputs (``run_fx``), keeping the
result of each call that some IR value stands for. Keras side: one extra Keras model whose
outputs are the tensors of those IR values (``ctx.tensors[value.id]``, stored in the value's
physical layout, transposed back to the logical one before comparing).

Which values: those the lowering tagged with their fx node (``value.meta["torch_node"]``, see
``frontend_torch/lower.py``) that passes kept (folding or fusing may replace them) and whose
logical shape still equals torch's (symbolic dims match the example's sizes). Tolerance per
value: ``atol + rtol * max|ref|`` (as for the outputs). The first mismatch is, in topological
order, the first value above its tolerance whose nearest compared ancestors are all within
theirs: where the error *starts*, not where it is largest.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree

from .frontend_torch.capture import Captured
from .frontend_torch.calls import fetch_attr
from .ir import Graph, Value
from .ir.compare import output_errors
from .ir.printer import Namer
from .ir.types import invert
from .report import NodeCheck

__all__ = ["run_fx", "keras_values", "compare", "locate", "validate_values"]

log = logging.getLogger(__name__)

_aten = torch.ops.aten
# ops returning indices of values that may be equal (ties): their torch input is kept as well, and
# an index that differs from torch's but selects an equal value is not a mismatch
_TIE_PRONE_TARGETS = ("sort", "topk", "argmax", "argmin", "max.dim", "min.dim", "kthvalue")
_TIE_PRONE_OPS = {"sort": "axis", "topk": "axis", "argreduce": "axes"}
_INPUT = ":input"
# ops returning uninitialised memory: the lowering fills them with zeros (frontend_torch/ops/creation.py),
# and so does the torch run, so that values computed from them (a pad built by slice_scatter into
# an empty tensor) compare with what the conversion computes instead of with stale memory
UNINITIALISED = frozenset({_aten.empty.memory_format, _aten.empty_like.default, _aten.new_empty.default,
                           _aten.empty_permuted.default, _aten.empty_strided.default,
                           _aten.new_empty_strided.default})


def run_fx(captured: Captured, user_inputs: Sequence[torch.Tensor], keep: set[str]) -> dict[str, Any]:
    """Run the captured graph on ``user_inputs`` (in ``captured.user_inputs`` order); return the
    results of the call nodes named in ``keep``. Intermediates are freed after their last use;
    uninitialised memory (``UNINITIALISED``) is zero-filled, as in the conversion."""
    graph = captured.graph
    feed = dict(zip(captured.user_inputs, user_inputs))
    remaining = {n: len(n.users) for n in graph.nodes}
    env: dict[torch.fx.Node, Any] = {}
    kept: dict[str, Any] = {}

    def arg(a):
        return env[a] if isinstance(a, torch.fx.Node) else a

    with torch.no_grad():
        for node in graph.nodes:
            if node.op == "placeholder":
                env[node] = feed[node.name].clone() if node.name in feed else captured.constants.get(node.name)
            elif node.op == "get_attr":  # a constant, or the sub-graph of a control-flow op
                env[node] = captured.constants[node.name] if node.name in captured.constants else fetch_attr(node)
            elif node.op == "call_function":
                env[node] = node.target(*pytree.tree_map(arg, node.args), **pytree.tree_map(arg, node.kwargs))
                if node.target in UNINITIALISED:
                    env[node] = torch.zeros_like(env[node])
                if node.name in keep:
                    kept[node.name] = env[node]
                    if any(name in str(node.target) for name in _TIE_PRONE_TARGETS):
                        kept[node.name + _INPUT] = arg(node.args[0])
            elif node.op == "output":
                break
            for src in node.all_input_nodes:
                remaining[src] -= 1
                if remaining[src] == 0:
                    env.pop(src, None)
    return kept


def _tagged(graph: Graph) -> list[Value]:
    return [v for n in graph.topo_order() if n.op not in ("input", "constant") for v in n.outputs
            if "torch_node" in v.meta]


def keras_values(keras_model, emit_ctx, values: Sequence[Value], feed: dict) -> dict[int, np.ndarray]:
    """The Keras model's result for each of ``values`` (by value id), in logical layout."""
    import keras

    inputs = list(keras_model.inputs)
    tensors, index, direct = [], {}, {}
    for v in values:
        t = emit_ctx.tensors.get(v.id)
        if t is None:
            continue
        fed = next((name for name, i in zip(emit_ctx.graph.input_names, inputs) if t is i), None)
        if fed is not None:  # emitted as the model input itself (a physically free op)
            direct[v.id] = np.asarray(feed[fed])
            continue
        pos = next((k for k, u in enumerate(tensors) if u is t), None)
        if pos is None:
            pos = len(tensors)
            tensors.append(t)
        index[v.id] = pos
    arrays = []
    if tensors:
        probe = keras.Model(inputs=inputs, outputs=tensors, name=f"{keras_model.name}_probe")
        outs = probe(feed, training=False)
        arrays = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
    result = {}
    for v in values:
        a = arrays[index[v.id]] if v.id in index else direct.get(v.id)
        if a is not None:
            result[v.id] = np.transpose(a, invert(v.type.layout)) if v.type.layout else a
    return result


def compare(graph: Graph, torch_results: dict[str, Any], keras_results: dict[int, np.ndarray],
            atol: float, rtol: float) -> list[NodeCheck]:
    """A NodeCheck per tagged value that both sides produced with the same logical shape."""
    namer = Namer()
    checks = []
    for node in graph.topo_order():
        names = [namer(v) for v in node.outputs]  # same names as the IR dump
        for v, name in zip(node.outputs, names):
            if node.op in ("input", "constant") or "torch_node" not in v.meta or v.id not in keras_results:
                continue
            ref = torch_results.get(v.meta["torch_node"])
            if v.meta.get("torch_index") is not None and isinstance(ref, (tuple, list)):
                ref = ref[v.meta["torch_index"]]
            if not isinstance(ref, torch.Tensor):
                continue
            ref = ref.detach().cpu()
            ref = (ref.float() if ref.dtype == torch.bfloat16 else ref).numpy()
            out = keras_results[v.id]
            if not _fits(ref.shape, v.type.shape) or tuple(out.shape) != tuple(ref.shape):
                continue
            err, rel, ref_max = output_errors(out, ref)
            if err and node.op in _TIE_PRONE_OPS and _tied(node, out, ref, torch_results.get(v.meta["torch_node"] + _INPUT),
                                                           atol, rtol):
                err = rel = 0.0
            loc = node.loc
            source_op = node.attrs["converter"] if node.op == "custom" else (loc.op if loc else "")
            checks.append(NodeCheck(
                value=name, value_id=v.id, op=node.op, torch_op=source_op,
                module_path=loc.module_path if loc else "", module_type=loc.module_type if loc else "",
                file=loc.file if loc else "", line=loc.line if loc else 0, code=loc.code if loc else "",
                input_shapes=[_type_text(u) for u in node.inputs], shape=tuple(v.type.shape), dtype=v.type.dtype,
                max_abs_error=err, max_rel_error=rel, max_abs_reference=ref_max,
                tolerance=atol + rtol * ref_max))
    return checks


def _tied(node, out: np.ndarray, ref: np.ndarray, source: Any, atol: float, rtol: float) -> bool:
    """Whether the indices ``out`` (of a sort, top-k or arg-reduction of ``source``, torch's
    input) select the same values as torch's indices ``ref``, within the tolerance of ``source``
    (atol + rtol * max |source|): they differ only among ties, or values one rounding apart
    (which the conversion, computing its input in another order, may rank the other way)."""
    if not isinstance(source, torch.Tensor) or not np.issubdtype(out.dtype, np.integer):
        return False
    x = source.detach().cpu().float().numpy()
    axis = node.attrs[_TIE_PRONE_OPS[node.op]]
    axis = (axis[0] if isinstance(axis, (list, tuple)) else axis) % max(x.ndim, 1)
    if node.op == "argreduce" and not node.attrs["keepdim"]:
        out, ref = np.expand_dims(out, axis), np.expand_dims(ref, axis)
    if out.shape != ref.shape or out.ndim != x.ndim or out.min(initial=0) < 0 or out.max(initial=0) >= x.shape[axis]:
        return False
    picked, wanted = (np.take_along_axis(x, i.astype(np.int64), axis) for i in (out, ref))
    finite = np.abs(x[np.isfinite(x)])
    tolerance = atol + rtol * (float(finite.max()) if finite.size else 0.0)
    close = np.isclose(picked, wanted, rtol=0.0, atol=tolerance, equal_nan=True) | (picked == wanted)
    return bool(close.all())


def _fits(shape: tuple, dims: tuple) -> bool:
    """Whether a concrete shape is one of the IR shape's (a symbolic dim takes any size)."""
    return len(shape) == len(dims) and all(isinstance(d, str) or d == s for s, d in zip(shape, dims))


def _type_text(v: Value) -> str:
    return f"{v.type.dtype}[{','.join(str(d) for d in v.type.shape)}]"


def locate(graph: Graph, checks: list[NodeCheck]) -> Optional[NodeCheck]:
    """Set each check's status and return the first mismatch (see the module docstring)."""
    by_value = {c.value_id: c for c in checks}
    nearest: dict[int, frozenset[int]] = {}  # value id -> ids of the nearest compared values at or above it
    for node in graph.topo_order():
        upstream = frozenset().union(*(nearest.get(u.id, frozenset()) for u in node.inputs))
        for v in node.outputs:
            check = by_value.get(v.id)
            if check is not None:
                if check.ok:
                    check.status = "ok"
                else:
                    check.status = "first" if all(by_value[u].ok for u in upstream) else "mismatch"
                nearest[v.id] = frozenset([v.id])
            else:
                nearest[v.id] = upstream
    first = next((c for c in checks if c.status == "first"), None)
    return first or next((c for c in checks if not c.ok), None)


def validate_values(graph: Graph, captured: Captured, keras_model, emit_ctx, torch_inputs: Sequence[torch.Tensor],
                    feed: dict, atol: float, rtol: float) -> tuple[list[NodeCheck], Optional[NodeCheck]]:
    """Compare every tagged value of ``graph`` with torch: (checks in graph order, first mismatch)."""
    values = _tagged(graph)
    torch_results = run_fx(captured, torch_inputs, {v.meta["torch_node"] for v in values})
    keras_results = keras_values(keras_model, emit_ctx, values, feed)
    checks = compare(graph, torch_results, keras_results, atol, rtol)
    first = locate(graph, checks)
    log.debug("compared %d values, first mismatch %s", len(checks), first and first.value)
    return checks, first
