"""Read a ``.tflite`` file's structure: ops, tensors (shape, shape signature, dtype,
quantization) and subgraphs.

The flatbuffer is read with the schema module that ships with ``ai_edge_litert`` (no
interpreter), so files holding Flex or custom ops that no interpreter here can load are read
too. Tensor names are TensorFlow's op names (``Model/layer_1/Conv2D;Model/relu_1/Relu`` for a
fused op); ``layer_names_in`` maps them back to the Keras layers they came from.
"""

from __future__ import annotations

import mmap
import re
from typing import Iterable, Optional

import attrs
import numpy as np

__all__ = ["TFLiteFile", "TFLiteOp", "TFLiteTensor", "blockwise_tensors", "dequantize", "layer_names_in", "op_counts",
           "read_metadata", "read_tflite"]

_DTYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
                7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
                13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16"}


@attrs.define
class TFLiteTensor:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dimension only known at run time
    constant: bool  # holds data in the file (weights, shape operands)
    scale: Optional[float] = None  # per-tensor quantization (first scale when per-channel)
    zero_point: Optional[int] = None
    per_channel: bool = False

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.dtype in ("int8", "uint8", "int16")


@attrs.define
class TFLiteOp:
    index: int
    subgraph: int
    name: str  # builtin op name (CONV_2D, ...), or the custom code (FlexConv2D, ...)
    custom: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@attrs.define
class TFLiteFile:
    path: str
    size: int
    ops: list[TFLiteOp]  # every subgraph's ops; subgraph 0 is the main graph
    tensors: list[list[TFLiteTensor]]  # per subgraph
    num_subgraphs: int
    signatures: dict[str, dict[str, dict[str, int]]]  # key -> inputs/outputs -> name -> tensor index

    def tensor(self, index: int, subgraph: int = 0) -> TFLiteTensor:
        return self.tensors[subgraph][index]

    def main_ops(self) -> list[TFLiteOp]:
        return [op for op in self.ops if op.subgraph == 0]

    def producers(self, subgraph: int = 0) -> dict[int, TFLiteOp]:
        """Tensor index -> the op that writes it."""
        return {t: op for op in self.ops if op.subgraph == subgraph for t in op.outputs}

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
        return dict(sorted(counts.items()))

    def op_dtypes(self) -> dict[str, dict[str, int]]:
        """Main-graph op name -> {the dtype of its first result: how many}: which ops compute in
        integers and which in float."""
        counts: dict[str, dict[str, int]] = {}
        for op in self.main_ops():
            dtype = self.tensor(op.outputs[0]).dtype if op.outputs else "none"
            per = counts.setdefault(op.name, {})
            per[dtype] = per.get(dtype, 0) + 1
        return dict(sorted(counts.items()))

    def float_ops_between_quantized(self) -> list[TFLiteOp]:
        """The main-graph ops (other than QUANTIZE / DEQUANTIZE) writing float32 downstream of a
        DEQUANTIZE of computed integers and upstream of a QUANTIZE: float computation inside the
        quantized part of the file (ops are stored in execution order)."""
        ops = self.main_ops()
        readers: dict[int, list[TFLiteOp]] = {}
        for op in ops:
            for i in op.inputs:
                readers.setdefault(i, []).append(op)
        after = {op.index for op in ops if op.name == "DEQUANTIZE" and not self.tensor(op.inputs[0]).constant}
        for op in ops:
            if op.index in after:
                after.update(r.index for t in op.outputs for r in readers.get(t, []))
        before: set[int] = set()
        for op in reversed(ops):
            if op.name == "QUANTIZE" or any(r.index in before for t in op.outputs for r in readers.get(t, [])):
                before.add(op.index)
        return [op for op in ops if op.index in after and op.index in before
                and op.name not in ("QUANTIZE", "DEQUANTIZE") and any(self.tensor(t).dtype == "float32"
                                                                      for t in op.outputs)]

    @property
    def flex_ops(self) -> list[str]:
        """TensorFlow ops kept as Flex (custom) ops: they need the Flex delegate at run time."""
        return sorted({op.name[len("Flex"):] for op in self.ops if op.custom and op.name.startswith("Flex")})

    @property
    def custom_ops(self) -> list[str]:
        return sorted({op.name for op in self.ops if op.custom and not op.name.startswith("Flex")})


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def read_tflite(path: str) -> TFLiteFile:
    """Parse ``path`` (ops, tensors, signatures) without building an interpreter."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        buf = f.read()
    model = schema.Model.GetRootAs(buf, 0)
    names = _builtin_names()
    codes = []
    for k in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(k)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append(((code.CustomCode() or b"CUSTOM").decode(), True))
        else:
            codes.append((names.get(builtin, f"BUILTIN_{builtin}"), False))
    has_data = []
    for b in range(model.BuffersLength()):
        buffer = model.Buffers(b)
        has_data.append(buffer.DataLength() > 0 or buffer.Size() > 0)
    ops, tensors = [], []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        sub = []
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
            signature = (tuple(int(d) for d in tensor.ShapeSignatureAsNumpy())
                         if tensor.ShapeSignatureLength() else shape)
            scale = zero_point = None
            per_channel = False
            q = tensor.Quantization()
            if q is not None and q.ScaleLength():
                scales = q.ScaleAsNumpy()
                scale = float(scales[0])
                zero_point = int(q.ZeroPointAsNumpy()[0]) if q.ZeroPointLength() else 0
                per_channel = len(scales) > 1
            sub.append(TFLiteTensor(t, (tensor.Name() or b"").decode(errors="replace"),
                                    _DTYPE_NAMES.get(tensor.Type(), f"type{tensor.Type()}"), shape, signature,
                                    bool(tensor.Buffer() and has_data[tensor.Buffer()]), scale, zero_point,
                                    per_channel))
        tensors.append(sub)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            name, custom = codes[op.OpcodeIndex()]
            ins = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
            outs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            ops.append(TFLiteOp(i, s, name, custom, ins, outs))
    signatures = {}
    for k in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(k)
        signatures[(sig.SignatureKey() or b"").decode()] = {
            "inputs": {(sig.Inputs(j).Name() or b"").decode(): sig.Inputs(j).TensorIndex()
                       for j in range(sig.InputsLength())},
            "outputs": {(sig.Outputs(j).Name() or b"").decode(): sig.Outputs(j).TensorIndex()
                        for j in range(sig.OutputsLength())},
        }
    return TFLiteFile(str(path), len(buf), ops, tensors, model.SubgraphsLength(), signatures)


_SUFFIX = re.compile(r"_\d+$")


def layer_names_in(tensor_name: str, layer_names: Iterable[str]) -> list[str]:
    """The Keras layers a TFLite tensor name mentions, the op that produces the value first.

    The converter names a tensor after the TensorFlow ops fused into it, ``;``-separated, each
    ``<model scope>/<layer scope>/<op>``; a layer's scope is its name with a ``_<n>`` suffix that
    TensorFlow adds to make scopes unique (``conv2d_1`` for the layer ``conv2d``, ``conv2d_1_2``
    for ``conv2d_1``)."""
    known = set(layer_names)
    found: list[str] = []
    for part in tensor_name.split(";"):
        scopes = part.split("/")
        for scope in scopes[1:-1] or scopes[:1]:
            stripped = _SUFFIX.sub("", scope)
            name = stripped if stripped in known else scope if scope in known else None
            if name is not None:
                if name not in found:
                    found.append(name)
                break
    return found


def dequantize(values: np.ndarray, tensor: TFLiteTensor) -> np.ndarray:
    """A quantized tensor's real values (float64)."""
    values = np.asarray(values)
    if tensor.scale is None or values.dtype.kind == "f":
        return values.astype(np.float64)
    return (values.astype(np.float64) - tensor.zero_point) * tensor.scale


def op_counts(path: str) -> dict[str, int]:
    """How many ops of each kind the file's main graph holds."""
    import collections

    return dict(sorted(collections.Counter(op.name for op in read_tflite(path).main_ops()).items()))


def read_metadata(path: str) -> dict[str, bytes]:
    """The file's ``Model.metadata`` entries (name -> bytes), read from the mapped file without
    loading it (a buffer stored inline or at an offset after the flatbuffer)."""
    from ai_edge_litert import schema_py_generated as schema

    entries = {}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        model, entry, buffer = schema.Model.GetRootAs(buf, 0), None, None
        for k in range(model.MetadataLength()):
            entry = model.Metadata(k)
            buffer = model.Buffers(entry.Buffer())
            if buffer.Offset() > 1:
                data = bytes(buf[buffer.Offset():buffer.Offset() + buffer.Size()])
            else:
                data = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
            entries[(entry.Name() or b"").decode(errors="replace")] = data
        del model, entry, buffer  # (the mapping closes only once nothing reads it)
    return entries


def blockwise_tensors(path: str) -> list[str]:
    """Names of the tensors of ``path`` quantized in blocks (``BlockwiseQuantization``: int4
    weights with one scale per block of inputs), read from the mapped file without loading it."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        model = schema.Model.GetRootAs(buf, 0)
        names = []
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            for t in range(graph.TensorsLength()):
                tensor = graph.Tensors(t)
                q = tensor.Quantization()
                if q is not None and q.DetailsType() == schema.QuantizationDetails.BlockwiseQuantization:
                    names.append((tensor.Name() or b"").decode(errors="replace"))
        del model, graph, tensor, q  # (the mapping closes only once nothing reads it)
    return names
