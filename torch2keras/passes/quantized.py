"""Quantized models (PT2E's ``quantize -> dequantize -> float op -> quantize`` graphs): data movement
moved onto the integers, a flatten before a linear layer folded into its weights, and the layers
that compute in integers marked for an integer backend.

``MoveDataOntoIntegers``: ``quantize(op(dequantize(q)))`` where ``op`` only moves or selects
elements (a reshape, a transpose, max pooling, a concat, a slice, ...) and both quantizations
have the same per-tensor parameters is ``op(q)``: the op runs on the integers themselves (exact,
as the affine map is monotone and the same on both sides); float readers of the op's result
read ``dequantize(op(q))``, the same values.

``AnnotateQuantized``: marks (``Node.meta["quantized"]``) each layer that reads ``dequantize``
results of per-tensor int8 values and whose result is read only by a per-tensor int8
``quantize``: a ``conv`` / ``linear`` (its weights a ``dequantize`` of a constant with zero
points 0, per output channel or per tensor; its bias a float constant), an ``add`` / ``sub`` /
``mul``, a global average pool (``adaptive_avg_pool`` to 1x1) or a mean over the spatial axes of
a feature map (``reduce``), an average pool without padding whose input and result have the same
parameters (TFLite's int8 AVERAGE_POOL_2D does not rescale), a ``relu``, a ``clamp`` to [0, 6],
[-1, 1] or [0, inf), a ``hardswish``, a ``hardsigmoid``, and a ``sigmoid`` whose result is quantized with scale
1/256 and zero point -128 (the only parameters TFLite's int8 LOGISTIC writes). A conv, linear,
add, sub or mul may reach its quantize through one relu / relu6 / clamp(-1, 1) (fused). The
layer writes that quantize's integers itself (``{"result": quantize id, "activation": TFLite
activation name or None}``), the quantize and the fused activation are written by it
(``{"written_by": layer id}``), and a ``dequantize`` that only such layers (or requantizing
quantizes) read is written as nothing (``{"unused": True}``). Convolutions without an int8
TFLite kernel (grouped, 1-d, transposed) and the ops not listed (e.g. ``tanh``) stay float
between a DEQUANTIZE and a QUANTIZE.

``DynamicRangeLinear``: a linear layer of a dynamically quantized model (int8 weights, its
input quantized with the parameters torch's ``choose_qparams`` picks at run time) reading a
one-row input reads the float input itself, marked ``meta["dynamic_input"]``: the integer
backend writes it as TFLite's dynamic-range FULLY_CONNECTED, which quantizes its input itself.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.ops.elementwise import fused_activation
from .dce import DeadCodeElimination
from .manager import Pass, register_pass
from .rewrite import Any, Match, Op, RewritePass, describe
from .signed_activations import SignedActivations

__all__ = ["AnnotateQuantized", "DynamicRangeLinear", "FoldFlattenIntoQuantizedLinear", "INT8_RANGE", "MoveDataOntoIntegers",
           "QUANTIZED_LAYERS", "float_between_integers", "integer_passes_after_layout", "integer_refusal", "is_quantized",
           "one_step_effect", "quant_params"]

# ops that move or select elements: they commute with a monotone per-tensor affine map
DATA_MOVEMENT = frozenset({"reshape", "relayout", "permute", "max_pool", "adaptive_max_pool", "concat", "slice",
                           "flip", "expand", "tile"})
QUANTIZED_LAYERS = frozenset({"conv", "linear", "add", "sub", "mul", "adaptive_avg_pool", "reduce", "avg_pool",
                              "relu", "clamp", "hardswish", "hardsigmoid", "sigmoid"})
_BINARY = ("add", "sub", "mul")
_FUSES_ACTIVATION = ("conv", "linear") + _BINARY
_UNARY = ("relu", "clamp", "hardswish", "hardsigmoid", "sigmoid")
LOGISTIC_SCALE, LOGISTIC_ZERO_POINT = 1.0 / 256, -128  # TFLite's int8 LOGISTIC writes only these
INT8_RANGE = (-128, 127)  # what TFLite's int8 kernels clamp their results to (besides a fused activation)


def quant_params(node: Node) -> tuple:
    """A quantize's or dequantize's parameters: (scales, zero points, axis, qmin, qmax)."""
    a = node.attrs
    return (tuple(float(s) for s in a["scale"]), tuple(int(z) for z in a["zero_point"]), a["axis"],
            int(a["qmin"]), int(a["qmax"]))


def _integer_source(v: Value) -> Optional[Value]:
    """The integers ``v`` is the per-tensor dequantization of, else None."""
    d = v.producer
    if d.op != "dequantize" or d.attrs["axis"] is not None:
        return None
    return d.inputs[0]


def _single_reader(graph: Graph, v: Value) -> Optional[Node]:
    """The one node reading ``v`` (once), unless ``v`` is a graph output."""
    users = graph.users(v)
    if len(users) != 1 or len(graph.uses(v)) != 1 or graph.is_output(v):
        return None
    return users[0]


@register_pass
@dataclasses.dataclass(frozen=True)
class MoveDataOntoIntegers(Pass):
    """Invariant afterwards: no data-movement op (``DATA_MOVEMENT``) reads only per-tensor
    dequantizations and is read by a quantize, all with the same parameters (see the module
    docstring): such an op reads the integers, its result is the quantizes', and its float
    readers read that result dequantized (the same values)."""

    name = "move_data_onto_integers"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.topo_order():
            if node not in graph or node.op not in DATA_MOVEMENT or len(node.outputs) != 1:
                continue
            changed |= self._move(graph, node)
        return changed

    def _move(self, graph: Graph, node: Node) -> bool:
        readers = graph.users(node.output)
        quantizes = [r for r in readers if r.op == "quantize"]
        sources = [_integer_source(v) for v in node.inputs]
        if not quantizes or not node.inputs or any(s is None for s in sources):
            return False
        params = quant_params(quantizes[0])
        if params[2] is not None or any(quant_params(q) != params or q.output.type.dtype != sources[0].type.dtype
                                        for q in quantizes):
            return False
        if any(s.type.dtype != sources[0].type.dtype for s in sources):
            return False
        differ = [k for k, v in enumerate(node.inputs) if quant_params(v.producer) != params]
        if differ and node.op != "concat":
            return False
        # (a concat's inputs quantized otherwise are requantized to the result's parameters)
        sources = [_requantized(graph, node.inputs[k], quantizes[0]) if k in differ else x
                   for k, x in enumerate(sources)]
        moved = graph.add_node(node.op, sources, attrs=dict(node.attrs), types=[quantizes[0].output.type],
                               loc=node.loc, name=node.output.name_hint).output
        for q in quantizes:
            graph.replace_all_uses(q.output, moved)
            graph.erase(q)
        if differ:  # (float readers keep reading the exact float op)
            return True
        if graph.users(node.output) or graph.is_output(node.output):  # float readers: the same values
            attrs = {k: v for k, v in quantizes[0].attrs.items() if k != "dtype"}
            dequantized = graph.add_node("dequantize", [moved], attrs=attrs, loc=node.loc, name=node.output.name_hint)
            graph.replace_all_uses(node.output, dequantized.output)
        graph.erase(node)
        return True


def _requantized(graph: Graph, v: Value, like: Node) -> Value:
    """``quantize(v)`` with the parameters of quantize ``like`` (``v``: a dequantization)."""
    return graph.add_node("quantize", [v], attrs=dict(like.attrs), types=[v.type.replace(dtype=like.output.type.dtype)],
                          loc=v.producer.loc, name=f"{v.name_hint}_requantized").output


def _weights(graph: Graph, node: Node) -> bool:
    """A layer's weights are a dequantized integer constant with zero points 0 (per tensor or
    per output channel) and its bias, if any, a float constant."""
    if len(node.inputs) < 2:
        return False
    w = node.inputs[1].producer
    if w.op != "dequantize" or w.inputs[0].producer.op != "constant" or any(z != 0 for z in w.attrs["zero_point"]):
        return False
    if w.attrs["axis"] not in (None, 0):
        return False
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    return bias is None or bias.producer.op == "constant"


def _shape_refusal(graph: Graph, node: Node) -> Optional[str]:
    """Why ``node``'s own attributes fit no TFLite int8 kernel (see the module docstring), else None."""
    x = node.inputs[0].type
    if node.op == "conv" and node.attrs["transposed"]:
        return "a transposed convolution has no int8 TFLite kernel here"
    if node.op == "conv" and (x.rank != 4 or node.attrs["groups"] not in (1, x.shape[1])):
        return "a grouped or 1-d convolution has no int8 TFLite kernel"
    if node.op in ("conv", "linear") and not _weights(graph, node):
        return "its weights are not a dequantized integer constant with zero points 0 (and a float bias)"
    if node.op == "adaptive_avg_pool" and not (x.rank == 4 and all(o == 1 for o in node.attrs["output_size"])):
        return "an adaptive average pool to more than 1x1 has no int8 TFLite kernel"
    if node.op == "reduce":
        axes = node.attrs["axes"]
        if not (node.attrs["kind"] == "mean" and x.rank == 4 and axes is not None and sorted(a % 4 for a in axes) == [2, 3]):
            return "only a mean over the spatial axes of a feature map is written in int8"
    if node.op == "avg_pool":
        a = node.attrs
        if x.rank != 4 or any(a["padding"]) or a["ceil_mode"] or a["divisor_override"]:
            return "TFLite's int8 AVERAGE_POOL_2D counts no padding (a padded or ceil-mode pool)"
    if node.op in ("relu", "clamp") and fused_activation(node) is None:
        return "only a clamp to [0, 6], [-1, 1] or [0, inf) has an int8 TFLite form"
    return None


def _result_quantize(graph: Graph, node: Node) -> Optional[tuple[Node, Optional[Node]]]:
    """(the per-tensor int8 quantize reading ``node``'s result, the fused activation between)."""
    reader = _single_reader(graph, node.output)
    act = None
    if node.op in _FUSES_ACTIVATION and reader is not None and fused_activation(reader) is not None \
            and reader.output.type.layout == node.output.type.layout:
        act, reader = reader, _single_reader(graph, reader.output)
    if reader is None or reader.op != "quantize" or reader.attrs["axis"] is not None or \
            reader.output.type.dtype != "i8":
        return None
    return reader, act


def integer_refusal(graph: Graph, node: Node) -> Optional[str]:
    """None when ``node`` (an op of ``QUANTIZED_LAYERS``) computes in integers (see the module
    docstring), else why it stays float."""
    return _integer_layer(graph, node)[0]


def _integer_layer(graph: Graph, node: Node) -> tuple[Optional[str], Optional[tuple[Node, Optional[Node]]]]:
    """(why ``node`` stays float, None) or (None, the quantize writing its integers and the
    activation between)."""
    if node.op not in QUANTIZED_LAYERS:
        return f"{node.op} has no int8 TFLite kernel here", None
    refusal = _shape_refusal(graph, node)
    if refusal is not None:
        return refusal, None
    activations = node.inputs[:2] if node.op in _BINARY else node.inputs[:1]
    for v in activations:
        source = _integer_source(v)
        if source is None:
            return "an input is not a per-tensor dequantization (computed in float)", None
        if source.type.dtype != "i8":
            return f"an input is quantized as {source.type.dtype} (int8 kernels read int8)", None
    if node.op in _BINARY and (activations[0].type.rank != activations[1].type.rank
                               or activations[0].type.perm != activations[1].type.perm):
        return "its inputs differ in rank or layout", None
    found = _result_quantize(graph, node)
    if found is None:
        return "its result is not quantized to int8 per tensor (by a quantize it alone reads)", None
    q = found[0]
    if (q.attrs["qmin"], q.attrs["qmax"]) != INT8_RANGE:
        return (f"its result is clamped to [{q.attrs['qmin']}, {q.attrs['qmax']}], which TFLite's int8 kernels do not "
                f"clamp to (they write {list(INT8_RANGE)})"), None
    if node.op == "avg_pool" and quant_params(q) != quant_params(node.inputs[0].producer):
        return "TFLite's int8 AVERAGE_POOL_2D keeps its input's scale and zero point; these differ", None
    if node.op == "sigmoid" and (np.float32(quant_params(q)[0][0]) != np.float32(LOGISTIC_SCALE)
                                 or quant_params(q)[1][0] != LOGISTIC_ZERO_POINT):
        return "TFLite's int8 LOGISTIC writes scale 1/256 and zero point -128 only", None
    return None, found


def _quantized_layer(graph: Graph, node: Node) -> Optional[tuple[Node, Optional[Node]]]:
    """(the quantize writing the layer's integers, the activation between, if any) when ``node``
    computes in integers (see the module docstring), else None."""
    return _integer_layer(graph, node)[1]


def _requantizes(node: Node) -> bool:
    """A per-tensor quantize of a per-tensor dequantization: integers to other parameters (an
    integer backend reads the integers)."""
    return node.op == "quantize" and node.attrs["axis"] is None and node.inputs[0].producer.op == "dequantize" \
        and node.inputs[0].producer.attrs["axis"] is None


@register_pass
@dataclasses.dataclass(frozen=True)
class AnnotateQuantized(Pass):
    """Invariant afterwards: a node has ``meta["quantized"]`` exactly when it is a layer
    computing in integers, the quantize or activation it writes, or a dequantize only such
    layers read (see the module docstring); a node computing in float between integers
    (``float_between_integers``) has ``meta["float_between_integers"]``, the reason it is not
    an integer layer (``integer_refusal``). Run after layout assignment (it reads the final
    graph); it changes no node, only their ``meta``."""

    name = "annotate_quantized"
    idempotent = True

    def run(self, graph: Graph) -> bool:
        before = {n.id: (n.meta.get("quantized"), n.meta.get("float_between_integers")) for n in graph}
        for node in graph:
            node.meta.pop("quantized", None)
            node.meta.pop("float_between_integers", None)
        layers: set[int] = set()
        for node in graph.topo_order():
            if node.op == "linear" and node.meta.get("dynamic_input") and _weights(graph, node):
                node.meta["quantized"] = {"result": None, "dynamic": True, "activation": None}
                layers.add(node.id)
                continue
            if node.op not in QUANTIZED_LAYERS:
                continue
            found = _quantized_layer(graph, node)
            if found is None:
                continue
            q, act = found
            node.meta["quantized"] = {"result": q.id, "activation": None if act is None else fused_activation(act)}
            q.meta["quantized"] = {"written_by": node.id}
            if act is not None:
                act.meta["quantized"] = {"written_by": node.id}
            layers.add(node.id)
        for node in graph.nodes_by_op("dequantize"):
            readers = graph.users(node.output)
            if not graph.is_output(node.output) and readers and \
                    all(u.id in layers or _requantizes(u) for u in readers):
                node.meta["quantized"] = {"unused": True}
        for node in float_between_integers(graph):
            node.meta["float_between_integers"] = integer_refusal(graph, node)
        return {n.id: (n.meta.get("quantized"), n.meta.get("float_between_integers")) for n in graph} != before


_NOT_COMPUTE = DATA_MOVEMENT | {"quantize", "dequantize", "constant", "input"}


def float_between_integers(graph: Graph) -> list[Node]:
    """The nodes computing in float between integers: reached from the dequantization of computed
    (not constant) integers and reaching a quantize, through nodes that are neither (data
    movement passed through, not listed), themselves not marked ``quantized``; in graph order."""
    def float_path(n: Node) -> bool:
        return n.op not in ("quantize", "dequantize", "constant", "input") and "quantized" not in n.meta

    forward: set[int] = set()
    frontier = [d for d in graph.nodes_by_op("dequantize")
                if d.inputs[0].producer.op != "constant" and "quantized" not in d.meta]
    while frontier:
        frontier = [u for n in frontier for u in graph.users(n.output) if float_path(u) and u.id not in forward]
        forward.update(u.id for u in frontier)
    backward: set[int] = set()
    frontier = [q for q in graph.nodes_by_op("quantize") if "quantized" not in q.meta]
    while frontier:
        frontier = [v.producer for n in frontier for v in n.inputs
                    if float_path(v.producer) and v.producer.id not in backward]
        backward.update(n.id for n in frontier)
    return [n for n in graph.topo_order() if n.id in forward and n.id in backward and n.op not in _NOT_COMPUTE]


def _flatten_of_channels_last(graph: Graph, d: Node) -> Optional[tuple[Node, Node, Value]]:
    """(the reshape, the relayout, the channels-last integers) when dequantize ``d`` reads
    ``reshape(relayout(x))`` flattening a channels-last [N, C, H, W] ``x`` to [N, C * H * W], each
    read once."""
    reshape = d.inputs[0].producer
    if reshape.op != "reshape" or _single_reader(graph, reshape.output) is not d:
        return None
    relayout = reshape.inputs[0].producer
    if relayout.op != "relayout" or _single_reader(graph, relayout.output) is not reshape:
        return None
    x = relayout.inputs[0]
    n, c, h, w = x.type.shape if x.type.rank == 4 and x.type.is_static else (0, 0, 0, 0)
    if x.type.perm != (0, 2, 3, 1) or reshape.output.type.shape != (n, c * h * w) or reshape.output.type.layout:
        return None
    return reshape, relayout, x


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldFlattenIntoQuantizedLinear(Pass):
    """After layout assignment: a linear layer with dequantized constant weights reading a
    channels-last [N, C, H, W] feature map flattened in PyTorch's order (a relayout to NCHW, a
    reshape to [N, C * H * W], a dequantize) reads it flattened in its stored order
    ([N, H * W * C]: a permute that moves no bytes, a reshape) with its weights' columns
    permuted alike (exact: the same products, summed in another order). Invariant afterwards:
    no such linear layer reads a flatten through a relayout."""

    name = "fold_flatten_into_quantized_linear"

    def run(self, graph: Graph) -> bool:
        changed = False
        for linear in graph.nodes_by_op("linear"):
            d, wq = linear.inputs[0].producer, linear.inputs[1].producer
            if d.op != "dequantize" or wq.op != "dequantize" or wq.inputs[0].producer.op != "constant" \
                    or wq.attrs["axis"] not in (None, 0) or graph.num_uses(linear.inputs[1]) != 1:
                continue
            found = _flatten_of_channels_last(graph, d)
            if found is None:
                continue
            self._fold(graph, linear, d, wq, *found)
            changed = True
        return changed

    def _fold(self, graph: Graph, linear: Node, d: Node, wq: Node, reshape: Node, relayout: Node, x: Value) -> None:
        n, c, h, w = x.type.shape
        nhwc = graph.add_node("permute", [x], attrs={"perm": [0, 2, 3, 1]},
                              types=[x.type.replace(shape=(n, h, w, c), layout=None)], loc=relayout.loc,
                              name=f"{x.name_hint}_nhwc")
        flat = graph.add_node("reshape", [nhwc.output], attrs={"shape": [n, h * w * c]},
                              types=[reshape.output.type], loc=reshape.loc, name=reshape.output.name_hint)
        graph.set_input(d, 0, flat.output)
        integers = wq.inputs[0].producer.value
        columns = integers.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(integers.shape)
        weight = graph.add_constant(columns, name=f"{wq.output.name_hint}_nhwc")
        dequantized = graph.add_node("dequantize", [weight], attrs=dict(wq.attrs), types=[wq.output.type],
                                     loc=wq.loc, name=wq.output.name_hint)
        graph.set_input(linear, 1, dequantized.output)
        for dead in (reshape, relayout, wq):
            graph.erase(dead)


def _ancestors(v: Value, depth: int = 12) -> list[Node]:
    found, frontier = [], [v]
    for _ in range(depth):
        frontier = [x.producer for x in frontier if x.producer.op not in ("input", "constant")]
        found += frontier
        frontier = [i for n in frontier for i in n.inputs]
    return found


# torch's dynamic int8 round trip of x (the lowering of PT2E's choose_qparams /
# quantize_per_tensor.tensor / dequantize_per_tensor.tensor), read by a linear layer:
# (cast_f32(cast_i8(clamp(round(x / s) + z, -128, 127))) - z) * s
_INTEGERS = Op("clamp", Op("add", Op("round", Op("div", Any("x"), Any("divisor"))), Any("shift")), name="clamp")
_ROUND_TRIP = Op("mul", Op("sub", Op("cast", Op("cast", _INTEGERS, name="narrow"), name="wide"), Any("zero")),
                 Any("scale"))


@register_pass
@dataclasses.dataclass(frozen=True)
class DynamicRangeLinear(RewritePass):
    """Invariant afterwards: no linear layer with int8 constant weights (zero points 0) reads
    torch's dynamic round trip (``_ROUND_TRIP``, its scale and zero point from the min and the
    max of the whole value) of a one-row value; such a layer reads the value itself and carries
    ``meta["dynamic_input"]``: it quantizes its input as it runs.

    TFLite's dynamic-range FULLY_CONNECTED (``asymmetric_quantize_inputs``) quantizes each input
    row with its own scale and zero point, from that row's min and max (and 0); torch's
    ``choose_qparams`` picks one scale and zero point for the whole tensor. For one row they are
    the same quantization (up to the rounding of exact ties), so the kernel computes torch's
    integers and, accumulating in int32, torch's products exactly. For several rows the kernel
    would give each row finer parameters than torch's: other numbers, so multi-row layers keep
    the float arithmetic that matches torch."""

    name = "dynamic_range_linear"
    pattern = Op("linear", _ROUND_TRIP, rest=True, name="linear")

    def check(self, graph: Graph, m: Match) -> Optional[str]:
        node, x, clamp = m["linear"], m["x"], m["clamp"]
        if (m["wide"].output.type.dtype, m["narrow"].output.type.dtype) != ("f32", "i8") \
                or (clamp.attrs.get("min"), clamp.attrs.get("max")) != (-128.0, 127.0) \
                or m["shift"].id != m["zero"].id or m["divisor"].id != m["scale"].id:
            return f"{describe(node)} reads no dynamic int8 round trip"
        reduced = {n.attrs["kind"] for n in _ancestors(m["scale"]) + _ancestors(m["zero"])
                   if n.op == "reduce" and n.inputs[0].id == x.id and n.attrs.get("axes") is None}
        if reduced != {"min", "max"}:
            return f"{describe(node)}'s input quantization does not take the whole input's min and max"
        if not _weights(graph, node):
            return f"{describe(node)} has no int8 constant weights with zero points 0"
        if not x.type.is_static or x.type.perm[-1] != x.type.rank - 1:
            return f"{describe(node)} reads a value of run-time size or with its features not last"
        if int(np.prod(x.type.shape[:-1])) != 1:  # torch's per-tensor parameters, not the kernel's per-row ones
            return f"{describe(node)} reads several rows"
        return None

    def rewrite(self, graph: Graph, m: Match) -> None:
        graph.set_input(m["linear"], 0, m["x"])
        m["linear"].meta["dynamic_input"] = True


def one_step_effect(graph: Graph, v: Value) -> float:
    """How far one quantization step of the integers output ``v`` is computed from can move it
    (int8 kernels round unlike torch's float arithmetic, a step apart at most): the step of a
    dequantized output; for a ``linear`` / ``conv`` reading dequantized per-tensor integers with
    constant weights, the step times the largest sum of |weights| over one output unit (every
    input a step off); data movement passed through; else 0."""
    def through_data_movement(n: Node) -> Node:
        while n.op in DATA_MOVEMENT and len(n.inputs) == 1:
            n = n.inputs[0].producer
        return n

    node = through_data_movement(v.producer)
    if node.op == "dequantize":
        return float(max(node.attrs["scale"]))
    if node.op not in ("linear", "conv") or len(node.inputs) < 2:
        return 0.0
    source = through_data_movement(node.inputs[0].producer)
    weights = _constant_weights(graph, node.inputs[1])
    if source.op != "dequantize" or source.attrs["axis"] is not None or weights is None:
        return 0.0
    per_unit = np.abs(weights.astype(np.float64)).reshape(weights.shape[0], -1).sum(axis=1)
    return float(max(source.attrs["scale"])) * float(per_unit.max())


def _constant_weights(graph: Graph, w: Value) -> Optional[np.ndarray]:
    """A constant's value, or a dequantized constant's real values (per tensor or along axis 0)."""
    d = w.producer
    if d.op == "dequantize" and d.inputs[0].producer.op == "constant" and d.attrs["axis"] in (None, 0):
        q = d.inputs[0].producer.value.astype(np.float64)
        shape = (-1,) + (1,) * (q.ndim - 1)
        scale = np.asarray(d.attrs["scale"], np.float64).reshape(shape if d.attrs["axis"] == 0 else ())
        zero = np.asarray(d.attrs["zero_point"], np.float64).reshape(shape if d.attrs["axis"] == 0 else ())
        return (q - zero) * scale
    value = graph.constant_value(w)
    return None if value is None else np.asarray(value)


def is_quantized(graph: Graph) -> bool:
    """Whether ``graph`` holds quantized values (a PT2E model's ``quantize`` ops)."""
    return any(True for _ in graph.nodes_by_op("quantize"))


def integer_passes_after_layout() -> list[Pass]:
    """The passes that prepare a quantized graph already through the default pipeline (a
    compiled model's IR) for an integer TFLite file: uint8 activations as int8, data movement onto the integers (the
    dequantizes it leaves unread removed), a flatten folded into its linear layer's weights,
    the integer layers marked."""
    return [SignedActivations(), MoveDataOntoIntegers(), DynamicRangeLinear(), DeadCodeElimination(),
            FoldFlattenIntoQuantizedLinear(), AnnotateQuantized()]
