"""Integer layers of quantized models: the nodes the ``annotate_quantized`` pass marked
(``Node.meta["quantized"]``) written as int8 CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD,
SUB, MUL, AVERAGE_POOL_2D (also a global average pool whose input and result share parameters)
or MEAN (a mean over the spatial axes), RELU, RELU6, RELU_N1_TO_1, HARD_SWISH, LOGISTIC and
hardsigmoid (an ADD with a fused RELU6 and a MUL), with the model's own scales and zero points
(the int8 kernels rescale from their inputs' parameters to their result's); a dynamically
quantized one-row linear layer as TFLite's dynamic-range FULLY_CONNECTED.

A marked layer reads the int8 tensors its inputs' ``dequantize`` nodes read, its weights as the
int8 constant behind their ``dequantize`` (per output channel: TFLite's quantized dimension is
the output-channel axis of its filter layout), its bias as int32 with scale
``input scale * weight scale`` and zero point 0, and writes the int8 tensor of the ``quantize``
that reads it (through its fused relu). ``propagate_quantization`` gives the results of data
movement ops (RESHAPE, TRANSPOSE, MAX_POOL_2D, PAD, ...) on int8 tensors their input's
parameters: those ops run on the integers (``move_data_onto_integers``).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Optional

import numpy as np

from ..ir import Graph, Node, Value
from .builder import Quantization, SubgraphBuilder
from .context import Context, DirectExportError
from .emitters.common import Window, binary, padding_mode
from .emitters.nn import _as_2d, fully_connected
from .emitters.pool import _VALID, _pool_op
from ..ir.ops.elementwise import fused_activation
from .schema import fb

__all__ = ["FloatBetweenIntegersWarning", "emit_quantized_layer", "integer_input", "propagate_quantization",
           "quantization_of", "warn_float_between_integers"]

class FloatBetweenIntegersWarning(UserWarning):
    """Ops of a quantized model written in float32 between a DEQUANTIZE and a QUANTIZE."""


SHOWN = 8  # ops the warning names


def warn_float_between_integers(graph: Graph, path: str) -> None:
    """A ``FloatBetweenIntegersWarning`` naming the ops the ``annotate_quantized`` pass found
    computing in float between integers (``meta["float_between_integers"]``: why), with their
    source lines: the file is correct there, but not int8."""
    nodes = [n for n in graph.topo_order() if "float_between_integers" in n.meta]
    if not nodes:
        return
    lines = [f"  {n.op} ({n.loc.short() if n.loc is not None else n.output.name_hint}): "
             f"{n.meta['float_between_integers']}" for n in nodes[:SHOWN]]
    more = [f"  ... and {len(nodes) - SHOWN} more"] if len(nodes) > SHOWN else []
    warnings.warn(FloatBetweenIntegersWarning(
        f"{path}: {len(nodes)} op(s) of the quantized model compute in float32 between a DEQUANTIZE and a QUANTIZE "
        f"(correct, but not int8):\n" + "\n".join(lines + more)), stacklevel=_callers_level())


def _callers_level() -> int:
    """The ``stacklevel`` of the first frame outside this package (who called the converter)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


_ACTIVATION = {None: fb.ActivationFunctionType.NONE, "RELU": fb.ActivationFunctionType.RELU,
               "RELU6": fb.ActivationFunctionType.RELU6, "RELU_N1_TO_1": fb.ActivationFunctionType.RELU_N1_TO_1}
# ops whose result holds elements of their first input: the same quantization
_DATA_MOVEMENT = ("RESHAPE", "TRANSPOSE", "MAX_POOL_2D", "PAD", "PADV2", "SLICE", "STRIDED_SLICE", "CONCATENATION",
                  "SPLIT", "GATHER", "SQUEEZE", "EXPAND_DIMS", "TILE", "BROADCAST_TO", "REVERSE_V2")


def quantization_of(node: Node, value: Optional[Value] = None) -> Quantization:
    """The TFLite parameters of a quantize's or dequantize's ``attrs``; a per-channel axis maps to
    where ``value`` (default: the node's first input) stores it."""
    a = node.attrs
    value = node.inputs[0] if value is None else value
    axis = 0 if a["axis"] is None else value.type.physical_axis(a["axis"])
    return Quantization(a["scale"], a["zero_point"], axis)


def integer_input(graph: Graph, v: Value) -> Optional[Node]:
    """The quantize every reader of graph input ``v`` is (one set of per-tensor parameters), else
    None: with integer I/O the input is stored as those integers."""
    readers = graph.users(v)
    if not readers or graph.is_output(v) or any(r.op != "quantize" or r.attrs["axis"] is not None for r in readers):
        return None
    first = readers[0]
    if any(r.attrs != first.attrs for r in readers):
        return None
    return first


def _integers(ctx: Context, v: Value) -> tuple[int, Quantization]:
    """The int8 tensor a dequantized activation ``v`` comes from, and its parameters."""
    d = v.producer
    return ctx.tensor(d.inputs[0]), quantization_of(d)


def _result(ctx: Context, node: Node) -> tuple[int, Node]:
    """The int8 tensor the layer writes: its quantize's result."""
    q = ctx.graph.node(node.meta["quantized"]["result"])
    v = q.output
    tensor = ctx.sub.tensor([int(d) for d in v.type.physical_shape], "i8", ctx.scope(q),
                            quantization=quantization_of(q))
    ctx.tensors[v.id] = tensor
    return tensor, q


def _weights(ctx: Context, node: Node) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(int8 weights in torch's layout, their scale per output channel, float bias or None)."""
    w = node.inputs[1].producer
    integers = np.asarray(w.inputs[0].producer.value)
    if integers.dtype != np.int8:
        raise DirectExportError(node, f"has {integers.dtype} weights; int8 layers take int8 weights")
    out = integers.shape[0]
    scale = np.asarray(w.attrs["scale"], np.float64)
    scale = np.broadcast_to(scale, (out,)) if scale.size == 1 else scale
    b = node.inputs[2] if len(node.inputs) > 2 else None
    return integers, scale, None if b is None else np.asarray(b.producer.value, np.float64)


def _bias(ctx: Context, bias: Optional[np.ndarray], in_scale: float, w_scale: np.ndarray) -> int:
    """The bias as int32 in units of ``in_scale * w_scale`` (TFLite's int8 kernels' accumulator)."""
    scale = in_scale * w_scale
    values = np.zeros(w_scale.shape, np.float64) if bias is None else bias
    q = np.clip(np.round(values / scale), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
    return ctx.sub.constant(q, ctx.local_name("bias"), quantization=Quantization(scale, [0] * scale.size, 0))


def _filter(ctx: Context, kernel: np.ndarray, scale: np.ndarray, axis: int) -> int:
    return ctx.sub.constant(np.ascontiguousarray(kernel), ctx.local_name("filter"),
                            quantization=Quantization(scale, [0] * scale.size, axis))


def _conv(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    if x.type.rank != 4:
        raise DirectExportError(node, "an int8 convolution must be 2-d (1-d and 3-d are written in float)")
    tensor, q_in = _integers(ctx, x)
    integers, w_scale, bias = _weights(ctx, node)
    out, _ = _result(ctx, node)
    g = _as_2d(node)
    groups, in_ch, out_ch = node.attrs["groups"], ctx.shape(tensor)[3], integers.shape[0]
    window = Window(ctx.shape(tensor)[1:3], g["kernel"], g["stride"], g["pads"], g["dilation"], ctx.shape(out)[1:3])
    tensor, padding = padding_mode(ctx, tensor, window)
    if groups == in_ch and groups > 1:  # depthwise: [C * m, 1, kh, kw] -> [1, kh, kw, C * m]
        options: Any = fb.DepthwiseConv2DOptionsT()
        options.depthMultiplier = out_ch // in_ch
        kernel, axis, op = integers[:, 0].transpose(1, 2, 0)[None], 3, "DEPTHWISE_CONV_2D"
    elif groups == 1:
        options = fb.Conv2DOptionsT()
        kernel, axis, op = integers.transpose(0, 2, 3, 1), 0, "CONV_2D"  # [O, I, kh, kw] -> [O, kh, kw, I]
    else:
        raise DirectExportError(node, f"an int8 grouped convolution ({groups} groups) has no TFLite kernel")
    options.padding = padding
    options.strideH, options.strideW = g["stride"]
    options.dilationHFactor, options.dilationWFactor = g["dilation"]
    options.fusedActivationFunction = _ACTIVATION[node.meta["quantized"]["activation"]]
    inputs = [tensor, _filter(ctx, kernel, w_scale, axis), _bias(ctx, bias, q_in.scale[0], w_scale)]
    ctx.op(op, inputs, [out], options)
    return out


def _linear(ctx: Context, node: Node) -> int:
    x = node.inputs[0]
    if x.type.perm[-1] != x.type.rank - 1 or x.type.rank < 2:
        raise DirectExportError(node, f"an int8 linear layer on a value stored as {x.type} is not supported")
    tensor, q_in = _integers(ctx, x)
    integers, w_scale, bias = _weights(ctx, node)
    out, _ = _result(ctx, node)
    weight = _filter(ctx, integers, w_scale, 0)
    activation = _ACTIVATION[node.meta["quantized"]["activation"]]
    return fully_connected(ctx, tensor, weight, _bias(ctx, bias, q_in.scale[0], w_scale), out, x.type.rank > 2,
                           activation)


def _dynamic_linear(ctx: Context, node: Node) -> int:
    """A linear layer reading its float input (``dynamic_range_linear``): TFLite's dynamic-range
    FULLY_CONNECTED, int8 weights per output channel, float bias, the input quantized by the
    kernel per row with its own scale and zero point (``asymmetric_quantize_inputs``)."""
    x = node.inputs[0]
    integers, w_scale, bias = _weights(ctx, node)
    out = ctx.result(node)
    options = fb.FullyConnectedOptionsT()
    options.keepNumDims = x.type.rank > 2
    options.fusedActivationFunction = ctx.activation(node)
    options.asymmetricQuantizeInputs = True
    b = -1 if bias is None else ctx.constant(bias.astype(np.float32), ctx.local_name("bias"))
    ctx.op("FULLY_CONNECTED", [ctx.tensor(x), _filter(ctx, integers, w_scale, 0), b], [out], options)
    return out


def _binary(ctx: Context, node: Node) -> int:
    a, _ = _integers(ctx, node.inputs[0])
    b, _ = _integers(ctx, node.inputs[1])
    out, _ = _result(ctx, node)
    options = {"add": fb.AddOptionsT, "sub": fb.SubOptionsT, "mul": fb.MulOptionsT}[node.op]()
    options.fusedActivationFunction = _ACTIVATION[node.meta["quantized"]["activation"]]
    ctx.op(node.op.upper(), [a, b], [out], options)
    return out


def _spatial_mean(ctx: Context, node: Node) -> int:
    """A global average pool or a mean over the spatial axes. With the same parameters on both
    sides (XNNPACK's quantizer shares them) and the map stored channels-last: an int8
    AVERAGE_POOL_2D whose window is the whole map, exact (the integers' sum divided by the count,
    rounded half away from zero, no rescale), then a RESHAPE where the spatial axes are dropped.
    Otherwise MEAN over the stored spatial axes (its int8 kernel rescales through a fixed-point
    multiplier)."""
    x = node.inputs[0]
    tensor, q_in = _integers(ctx, x)
    out, q = _result(ctx, node)
    keep = node.op == "adaptive_avg_pool" or bool(node.attrs["keepdim"])
    if x.type.perm == (0, 2, 3, 1) and quantization_of(q) == q_in:
        n, h, w, c = ctx.shape(tensor)
        pooled = out if keep else ctx.sub.tensor([n, 1, 1, c], "i8", ctx.local_name("pool"), quantization=q_in)
        window = Window([h, w], [h, w], [1, 1], [0, 0, 0, 0], [1, 1], [1, 1])
        _pool_op(ctx, "AVERAGE_POOL_2D", tensor, window, _VALID, pooled)
        return out if keep else ctx.reshape(pooled, ctx.shape(out), out=out)
    options = fb.ReducerOptionsT()
    options.keepDims = keep
    axes = sorted(x.type.physical_axis(a) for a in range(2, x.type.rank))
    ctx.op("MEAN", [tensor, ctx.ints(axes, "axes")], [out], options)
    return out


def _average_pool(ctx: Context, node: Node) -> int:
    """An average pool without padding (input and result with the same parameters)."""
    x = node.inputs[0]
    if x.type.perm != (0, 2, 3, 1):
        raise DirectExportError(node, f"an int8 average pool on a value stored as {x.type} is not supported")
    tensor, _ = _integers(ctx, x)
    out, _ = _result(ctx, node)
    a = node.attrs
    window = Window(ctx.shape(tensor)[1:3], a["kernel"], a["stride"], [0, 0, 0, 0], [1, 1], ctx.shape(out)[1:3])
    return _pool_op(ctx, "AVERAGE_POOL_2D", tensor, window, _VALID, out)


_UNARY = {"hardswish": "HARD_SWISH", "sigmoid": "LOGISTIC"}


def _unary(ctx: Context, node: Node) -> int:
    """relu / relu6 / clamp(-1, 1) / hardswish / sigmoid: the int8 kernel rescales from the
    input's parameters to the result's."""
    tensor, _ = _integers(ctx, node.inputs[0])
    out, _ = _result(ctx, node)
    ctx.op(_UNARY.get(node.op) or fused_activation(node), [tensor], [out])
    return out


def _hardsigmoid(ctx: Context, node: Node) -> int:
    """hardsigmoid(x) = relu6(x + 3) / 6 in two int8 kernels. An ADD of 3 with a fused RELU6
    writes the result's integers already: its tensor has the result's zero point and 6 times its
    scale, so ``relu6(x + 3) / (6 * scale) = hardsigmoid(x) / scale`` (rounded once, as torch
    rounds). A MUL by 1/6 then carries those integers unchanged to the result's scale (the
    rescale multiplies by 1 up to float rounding, far below half a step)."""
    tensor, _ = _integers(ctx, node.inputs[0])
    out, q = _result(ctx, node)
    (scale,), (zero,) = q.attrs["scale"], q.attrs["zero_point"]
    shifted = ctx.sub.tensor(ctx.shape(out), "i8", ctx.local_name("add3"),
                             quantization=Quantization([6.0 * scale], [zero]))
    three = ctx.sub.constant(np.asarray([96], np.int8), ctx.local_name("three"),
                             quantization=Quantization([1.0 / 32], [0]))  # (3 exactly)
    binary(ctx, "ADD", tensor, three, shifted, fb.ActivationFunctionType.RELU6)
    sixth = ctx.sub.constant(np.asarray([127], np.int8), ctx.local_name("sixth"),
                             quantization=Quantization([1.0 / (6 * 127)], [0]))
    return binary(ctx, "MUL", shifted, sixth, out)


_LAYERS = {"conv": _conv, "linear": _linear, "add": _binary, "sub": _binary, "mul": _binary,
           "adaptive_avg_pool": _spatial_mean, "reduce": _spatial_mean, "avg_pool": _average_pool,
           "relu": _unary, "clamp": _unary, "hardswish": _unary, "sigmoid": _unary,
           "hardsigmoid": _hardsigmoid}


def emit_quantized_layer(ctx: Context, node: Node) -> int:
    """Write a marked layer (see the module docstring); returns the int8 tensor it writes (a
    dynamic-range linear layer: its float result)."""
    if node.meta["quantized"].get("dynamic"):
        return _dynamic_linear(ctx, node)
    return _LAYERS[node.op](ctx, node)


def propagate_quantization(sub: SubgraphBuilder) -> None:
    """Give an int8 result of a data-movement op without parameters its first input's, and the
    pad value of an int8 PADV2 (the integer it pads with) its input's too (TFLite's kernel
    wants the parameters of the value and of the result to be the same)."""
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if isinstance(v, int) and not k.startswith("_")}
    for op in sub.operators:
        name = names[sub.model.operator_code(op.opcodeIndex)]
        if name not in _DATA_MOVEMENT:
            continue
        source = sub.tensors[int(op.inputs[0])]
        for index in op.outputs:
            t = sub.tensors[int(index)]
            if t.type == fb.TensorType.INT8 and t.quantization is None and source.quantization is not None:
                t.quantization = source.quantization
        if name == "PADV2" and source.type == fb.TensorType.INT8 and source.quantization is not None:
            op.inputs[2] = _with_parameters(sub, int(op.inputs[2]), source.quantization)


def _with_parameters(sub: SubgraphBuilder, constant: int, table: Any) -> int:
    """Constant tensor ``constant`` carrying the quantization ``table`` (a copy of it if it
    carries other parameters or none)."""
    t = sub.tensors[constant]
    q = Quantization(table.scale, table.zeroPoint, table.quantizedDimension)
    if t.quantization is not None and Quantization(t.quantization.scale, t.quantization.zeroPoint,
                                                   t.quantization.quantizedDimension) == q:
        return constant
    return sub.constant(sub.model.array(t.buffer), f"{t.name}/quantized", quantization=q)
