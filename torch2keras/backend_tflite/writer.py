"""Write layout-annotated IR graphs (graphs after the default pass pipeline) as a ``.tflite``
file: one subgraph per graph, each with a signature named with the graph's input and output
names, every op a TFLite builtin chosen by the emitter table. Several graphs in one file share
their equal constants (one buffer each, ``builder.ModelBuilder.buffer``).

Inputs and outputs are stored as the IR stores them (``TensorType.layout``): a model compiled
with ``input_layouts="channels_last"`` takes NHWC arrays, as its Keras model does.
"""

from __future__ import annotations

import time
from typing import Mapping, Optional

import attrs

from ..ir import Graph, Node
from . import emitters  # noqa: F401 - registers the emitters
from .builder import ModelBuilder, WriteProgress
from .context import EMITTERS, Context, DirectExportError, _name
from .dynamic_batch import add_batch_signature, batch_symbol
from .peephole import simplify
from .plan import Plan, plan_graph
from .quantized import (emit_quantized_layer, integer_input, propagate_quantization, quantization_of,
                        warn_float_between_integers)
from .weight_quantization import WeightQuantization, warn_if_blockwise

__all__ = ["Subgraphs", "WriteResult", "add_signature", "build_model", "build_signatures", "write_signatures",
           "write_tflite"]

SIGNATURE_KEY = "serving_default"


@attrs.define
class WriteResult:
    """What ``write_tflite`` wrote: the path, its size, op counts, per-stage seconds, and the IR
    node behind each tensor name prefix (``tensor_nodes``: a tensor ``name`` or ``name/...``
    was written for node ``tensor_nodes[name]``)."""

    path: str
    bytes: int
    op_counts: dict[str, int]
    timings: dict[str, float]
    tensor_nodes: dict[str, Node]


def write_tflite(graph: Graph, path: str, fp16: bool = False, signature_key: str = SIGNATURE_KEY,
                 description: str = "torch2keras direct", integer_io: bool = False,
                 weights: Optional[WeightQuantization] = None, progress: Optional[WriteProgress] = None
                 ) -> WriteResult:
    """Write ``graph`` (layouts assigned) to ``path``; ``fp16``: float weights stored as float16,
    read through DEQUANTIZE ops; ``weights``: int8 / int4 weights of the layers it quantizes
    (``weight_quantization.py``); ``integer_io``: a quantized model's inputs and outputs are its
    integers (``integer_input``; outputs dequantized from integers) instead of float. Raises
    ``DirectExportError`` naming the first node that has no TFLite builtin form here. progress:
    called with (bytes of weights written, of all) as the weights are written."""
    start = time.perf_counter()
    model, tensor_nodes = build_model(graph, fp16=fp16, signature_key=signature_key, description=description,
                                      integer_io=integer_io, weights=weights)
    built = time.perf_counter()
    size = model.write(path, progress=progress)
    warn_if_blockwise(model.subgraphs, path)
    warn_float_between_integers(graph, path)
    return WriteResult(str(path), size, model.op_counts(), {"build": built - start, "write": time.perf_counter() - built},
                       tensor_nodes)


def build_model(graph: Graph, fp16: bool = False, signature_key: str = SIGNATURE_KEY,
                description: str = "torch2keras direct", integer_io: bool = False,
                weights: Optional[WeightQuantization] = None) -> tuple[ModelBuilder, dict[str, Node]]:
    """The TFLite model of ``graph``, not yet written, and its tensor names' nodes."""
    model = ModelBuilder(description)
    return model, add_signature(model, graph, signature_key, fp16=fp16, integer_io=integer_io, weights=weights)


def build_signatures(graphs: Mapping[str, Graph], fp16: bool = False, description: str = "torch2keras direct",
                     weights: Optional[WeightQuantization] = None) -> tuple[ModelBuilder, dict[str, dict[str, Node]]]:
    """One model with a subgraph and a signature per graph (keyed as ``graphs``); constants of
    equal content, such as the weights the graphs share, are stored once."""
    model = ModelBuilder(description)
    return model, {key: add_signature(model, graph, key, fp16=fp16, weights=weights) for key, graph in graphs.items()}


def write_signatures(graphs: Mapping[str, Graph], path: str, fp16: bool = False,
                     description: str = "torch2keras direct", weights: Optional[WeightQuantization] = None,
                     progress: Optional[WriteProgress] = None, metadata: Optional[Mapping[str, bytes]] = None
                     ) -> WriteResult:
    """Write ``build_signatures(graphs)`` to ``path`` (``WriteResult.op_counts``: of the first
    subgraph; ``tensor_nodes``: keyed ``"signature:tensor"``), with ``metadata`` entries
    (``Model.metadata``: name -> bytes)."""
    start = time.perf_counter()
    model, nodes = build_signatures(graphs, fp16=fp16, description=description, weights=weights)
    for name, data in (metadata or {}).items():
        model.metadata(name, data)
    built = time.perf_counter()
    size = model.write(path, progress=progress)
    warn_if_blockwise(model.subgraphs, path)
    tensor_nodes = {f"{key}:{name}": node for key, names in nodes.items() for name, node in names.items()}
    return WriteResult(str(path), size, model.op_counts(), {"build": built - start, "write": time.perf_counter() - built},
                       tensor_nodes)


def add_signature(model: ModelBuilder, graph: Graph, signature_key: str, fp16: bool = False,
                  integer_io: bool = False, weights: Optional[WeightQuantization] = None) -> dict[str, Node]:
    """Write ``graph`` as a new subgraph of ``model`` with signature ``signature_key``; returns
    its tensor names' nodes. A graph whose one run-time size is its batch (the stored leading
    axis) is written with that size dynamic (``dynamic_batch.py``)."""
    if not graph.meta.get("layouts_assigned"):
        raise ValueError("write_tflite expects a graph after the layout pass (the default pass pipeline)")
    symbol = batch_symbol(graph)
    if symbol is not None:
        return add_batch_signature(model, graph, symbol, lambda m: _add_signature(
            m, graph, signature_key, fp16=fp16, integer_io=integer_io, weights=weights))
    return _add_signature(model, graph, signature_key, fp16=fp16, integer_io=integer_io, weights=weights)


def _add_signature(model: ModelBuilder, graph: Graph, signature_key: str, fp16: bool = False,
                   integer_io: bool = False, weights: Optional[WeightQuantization] = None) -> dict[str, Node]:
    index = len(model.subgraphs)
    sub = model.subgraph("main" if index == 0 else _name(signature_key))
    ctx = Context(graph, model, sub, plan_graph(graph), fp16=fp16, weights=weights)
    ctx.subgraphs = Subgraphs
    inputs = {}
    for v in graph.inputs:
        name = v.producer.attrs["name"]
        quantize = integer_input(graph, v) if integer_io else None
        shape = [_static_dim(v, d) for d in v.type.physical_shape]
        if quantize is None:
            ctx.tensors[v.id] = sub.tensor(shape, v.type.dtype, _name(name))
        else:  # the integers are the input: its quantizes are written as nothing
            ctx.tensors[v.id] = sub.tensor(shape, quantize.output.type.dtype, _name(name),
                                           quantization=quantization_of(quantize, quantize.output))
            for reader in graph.users(v):
                ctx.tensors[reader.output.id] = ctx.tensors[v.id]
        inputs[name] = ctx.tensors[v.id]
    for node in graph.topo_order():
        _emit_node(ctx, node)
    ctx.write_last_ops()
    outputs = _output_tensors(ctx, graph, integer_io)
    sub.inputs, sub.outputs = list(inputs.values()), list(outputs.values())
    propagate_quantization(sub)
    simplify(sub)
    model.signature(signature_key, index, inputs, outputs)
    return ctx.tensor_nodes


class Subgraphs:
    """What control-flow emitters (``emitters/control.py``) write subgraphs with, handed to them
    as ``Context.subgraphs`` (the emitters do not import the writer)."""

    @staticmethod
    def open(parent: Context, name: str, graph: Optional[Graph] = None) -> tuple[Context, int]:
        """A new subgraph of ``parent``'s model (an IF branch, a WHILE condition or body), with a
        context of its own for ``graph`` (a region; None: ops the caller writes); its index."""
        model = parent.model
        index = len(model.subgraphs)
        sub = model.subgraph(_name(name))
        own = graph is not None
        ctx = Context(graph if own else parent.graph, model, sub, plan_graph(graph) if own else Plan(),
                      fp16=parent.fp16, weights=parent.weights)
        ctx.tensor_nodes, ctx.subgraphs = parent.tensor_nodes, Subgraphs  # (tensor names unique in the file)
        return ctx, index

    @staticmethod
    def emit(ctx: Context) -> list[int]:
        """Emit every node of ``ctx.graph`` (its inputs already in ``ctx.tensors``); the tensors
        of its outputs, each a distinct computed tensor."""
        for node in ctx.graph.topo_order():
            _emit_node(ctx, node)
        ctx.write_last_ops()
        return list(_output_tensors(ctx, ctx.graph).values())

    @staticmethod
    def close(ctx: Context, inputs: list[int], outputs: list[int]) -> None:
        ctx.sub.inputs, ctx.sub.outputs = list(inputs), list(outputs)
        propagate_quantization(ctx.sub)
        simplify(ctx.sub)

    @staticmethod
    def region(parent: Context, graph: Graph, name: str, passthrough: int = 0) -> int:
        """Region ``graph`` written as a subgraph (inputs: its inputs; outputs: its outputs, then
        its last ``passthrough`` inputs unchanged, as a WHILE body returns its loop invariants);
        its index."""
        ctx, index = Subgraphs.open(parent, name, graph)
        inputs = []
        for v in graph.inputs:
            inputs.append(ctx.sub.tensor([_static_dim(v, d) for d in v.type.physical_shape], v.type.dtype,
                                         _name(f"{name}/{v.producer.attrs.get('name', 'input')}")))
            ctx.tensors[v.id] = inputs[-1]
        outputs = Subgraphs.emit(ctx)
        Subgraphs.close(ctx, inputs, outputs + (inputs[len(inputs) - passthrough:] if passthrough else []))
        return index


def _static_dim(v, d) -> int:
    if isinstance(d, str):
        raise DirectExportError(v.producer, f"has a run-time size ({v.type}); the direct backend writes static "
                                            f"shapes only")
    return int(d)


def _emit_node(ctx: Context, node: Node) -> None:
    if node.op in ("input", "constant") or (node.outputs and all(v.id in ctx.tensors for v in node.outputs)):
        return  # (a sibling's emitter wrote it: a piece of a SPLIT)
    quantized = node.meta.get("quantized")
    if quantized is not None and "result" not in quantized:
        return  # written by an int8 layer, or read by int8 layers only (``annotate_quantized``)
    if node.id in ctx.plan.absorbed:  # fused into its producer: the same tensor
        ctx.tensors[node.output.id] = ctx.tensors[node.inputs[0].id]
        return
    fn = emit_quantized_layer if quantized is not None else EMITTERS.get(node.op)
    if fn is None:
        raise DirectExportError(node, "has no emitter in the direct TFLite backend")
    if node.op != "cast" and any(v.type.dtype == "f64" for v in (*node.inputs, *node.outputs)):
        raise DirectExportError(node, "computes in float64, which TFLite's kernels do not (cast the model to "
                                      "float32: model.float())")
    ctx.node = node
    try:
        result = fn(ctx, node)
    except DirectExportError:
        raise
    except Exception as e:  # noqa: BLE001 - an emitter bug: named with the node
        raise DirectExportError(node, f"failed to emit: {type(e).__name__}: {e}") from e
    results = result if isinstance(result, (tuple, list)) else (result,)
    for v, tensor in zip(node.outputs, results):
        want = list(v.type.physical_shape)
        if node.id not in ctx.plan.into_reshape and list(ctx.shape(tensor)) != want:
            raise DirectExportError(node, f"was emitted with shape {list(ctx.shape(tensor))}, expected {want}")
        ctx.tensors[v.id] = tensor


def _output_tensors(ctx: Context, graph: Graph, integer_io: bool = False) -> dict[str, int]:
    """Output name -> tensor; an output that is also an input, a constant or another output gets a
    copy of its own (a signature maps each name to a distinct computed tensor). ``integer_io``:
    an output dequantized from integers is those integers (its DEQUANTIZE is left dead)."""
    outputs: dict[str, int] = {}
    taken = set(ctx.sub.inputs) | {ctx.tensors[v.id] for v in graph.inputs}
    for name, v in zip(graph.output_names, graph.outputs):
        if integer_io and v.producer.op == "dequantize" and v.producer.attrs["axis"] is None \
                and not ctx.is_const(v.producer.inputs[0]):
            v = v.producer.inputs[0]
        tensor = ctx.tensor(v)
        if tensor in taken or ctx.sub.is_constant(tensor):
            ctx.node = v.producer
            copy = ctx.sub.tensor(ctx.shape(tensor), ctx.dtype(tensor), _name(f"{name}/copy"))
            tensor = ctx.reshape(tensor, ctx.shape(tensor), out=copy)
        taken.add(tensor)
        outputs[name] = tensor
    return outputs

