"""Build a TFLite model -- tensors, constant buffers, operator codes, subgraphs, signatures -- and
write it as a ``.tflite`` flatbuffer, streaming the weights from their arrays into the file.

Constant buffers are deduplicated by content (dtype, shape and bytes): an array added twice is
stored once, whichever subgraph or signature reads it, so several signatures can share one set
of weights. A buffer may also be arrays stacked along their first axis (``Stacked``: the filter
of several linear layers run as one), written part after part, never concatenated in memory.
Operator codes carry the highest version any of their uses asked for.

Resource variables (``SubgraphBuilder.variable``: a model's state) are TFLite's: a subgraph
reads and writes a variable through the handle of a ``VAR_HANDLE`` op whose ``shared_name`` is
the variable's name, so every subgraph naming it -- each signature of the file -- reaches the
same variable of an interpreter. Their initial values are assigned by one initialisation
subgraph, written last, that every subgraph using a variable calls first (``CALL_ONCE``, its
first op): it runs once per interpreter, whichever signature runs first. A value whose
elements are all equal is made by a ``FILL`` there rather than stored (an empty cache).

The file is written in two parts: the flatbuffer's tables (small, built with the schema's object
API), then the buffers' bytes, each 16-byte aligned, written straight from the arrays (no copy
of the weights is made). Below 2 GB the buffers are ordinary flatbuffer vectors at the end of
the file, referenced from their ``Buffer`` tables (what every TFLite runtime reads); a larger
model, beyond the flatbuffer limit, stores them after the flatbuffer with ``Buffer.offset`` /
``Buffer.size`` (what the TFLite converter does for large models, read by LiteRT).
"""

from __future__ import annotations

import hashlib
import os
import weakref
from typing import Any, BinaryIO, Callable, Optional, Sequence

import attrs
import flatbuffers
import numpy as np

from .schema import builtin_code, fb, options_type, tflite_type
from .versions import op_version

__all__ = ["ALIGNMENT", "FLATBUFFER_LIMIT", "INIT_SUBGRAPH", "ModelBuilder", "Quantization", "Stacked",
           "SubgraphBuilder"]

ALIGNMENT = 16  # bytes: where every buffer's data starts (SIMD kernels read weights in place)
FLATBUFFER_LIMIT = (1 << 31) - (1 << 20)  # a flatbuffer's offsets are 32-bit signed: keep clear of 2 GB
WriteProgress = Callable[[int, int], None]  # (bytes written, bytes to write)
_SAMPLE = 4096  # elements of an array hashed for its deduplication key (equal keys compare in full)
INIT_SUBGRAPH = "init_variables"  # the subgraph assigning the variables' initial values
_FILLED = (np.float32, np.int32, np.int64)  # dtypes whose uniform initial values FILL makes (FILL version 1)


def _content_key(array: np.ndarray) -> tuple:
    """A key equal for arrays of equal content; arrays with equal keys are compared in full."""
    flat = array.reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    sample = np.ascontiguousarray(flat[::step]).tobytes() + flat[-16:].tobytes()
    return array.dtype.str, array.shape, hashlib.blake2b(sample, digest_size=16).digest()


@attrs.frozen(eq=False)
class Stacked:
    """Arrays of one dtype and trailing shape stacked along axis 0, as a buffer's contents: the
    stacked array's bytes (C order) are each part's in turn, so the buffer is written from the
    parts themselves (no stacked copy is made)."""

    parts: tuple[np.ndarray, ...] = attrs.field(
        converter=lambda parts: tuple(np.ascontiguousarray(p) for p in parts))

    def __attrs_post_init__(self) -> None:
        first = self.parts[0]
        if any(p.ndim < 1 or p.dtype != first.dtype or p.shape[1:] != first.shape[1:] for p in self.parts):
            raise ValueError(f"cannot stack arrays of shapes {[p.shape for p in self.parts]} and dtypes "
                             f"{sorted({p.dtype.str for p in self.parts})} along axis 0")

    @property
    def dtype(self) -> np.dtype:
        return self.parts[0].dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (sum(p.shape[0] for p in self.parts), *self.parts[0].shape[1:])

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def key(self) -> tuple:
        return ("stacked", *(_content_key(p) for p in self.parts))

    def same(self, other: Any) -> bool:
        if not isinstance(other, Stacked) or len(other.parts) != len(self.parts):
            return False
        return all(a.shape == b.shape and (_same_memory(a, b) or np.array_equal(a, b))
                   for a, b in zip(self.parts, other.parts))


class _StoredBuffer(fb.BufferT):
    """A ``Buffer`` table whose bytes live outside the flatbuffer builder: as a vector placed
    ``tail_position`` bytes after the tables (inline), or at an absolute file ``offset``."""

    def __init__(self, nbytes: int, tail_position: int, inline: bool, tables_size: int = 0) -> None:
        super().__init__()
        self.nbytes = nbytes
        self.tail_position = tail_position
        self.inline = inline
        self.tables_size = tables_size

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - the generated API's name
        if not self.nbytes:
            fb.BufferStart(builder)
            return fb.BufferEnd(builder)
        if self.inline:
            # a uoffset to a vector that follows the tables: relative offsets do not depend on
            # where the tables end, so a target past the builder's end is a negative position
            fb.BufferStart(builder)
            builder.PrependUOffsetTRelativeSlot(0, -self.tail_position, 1)
            return fb.BufferEnd(builder)
        fb.BufferStart(builder)
        fb.BufferAddOffset(builder, _aligned(self.tables_size) + self.tail_position)
        fb.BufferAddSize(builder, self.nbytes)
        return fb.BufferEnd(builder)


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` (of one dtype and shape) read the same bytes: views of one weight,
    such as the tensor two signatures' graphs hold, need no comparison element by element."""
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.strides == b.strides


def _aligned(n: int, alignment: int = ALIGNMENT) -> int:
    return -(-n // alignment) * alignment


@attrs.frozen
class Quantization:
    """Affine quantization of a tensor: real = (q - zero_point) * scale, one entry per tensor or
    one per index of stored axis ``axis`` (TFLite's ``quantized_dimension``)."""

    scale: tuple[float, ...] = attrs.field(converter=lambda v: tuple(float(x) for x in v))
    zero_point: tuple[int, ...] = attrs.field(converter=lambda v: tuple(int(x) for x in v))
    axis: int = 0

    def table(self) -> Any:
        q = fb.QuantizationParametersT()
        q.scale = np.asarray(self.scale, np.float32)
        q.zeroPoint = np.asarray(self.zero_point, np.int64)
        q.quantizedDimension = int(self.axis)
        return q


class SubgraphBuilder:
    """Tensors and operators of one subgraph; constants go to the model's shared buffers."""

    def __init__(self, model: "ModelBuilder", name: str) -> None:
        # a proxy, not a reference: no cycle with the model's subgraph list, so the model and the
        # weights it holds (an fp16 file's float16 copies) are freed as soon as it is dropped
        self.model = weakref.proxy(model)
        self.name = name
        self.tensors: list[Any] = []
        self.operators: list[Any] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self._constants: dict[Any, int] = {}  # buffer index (and quantization) -> the tensor holding it
        self._handles: dict[str, int] = {}  # variable name -> the resource tensor of its VAR_HANDLE

    def tensor(self, shape: Sequence[int], dtype: "str | np.dtype", name: str, *, buffer: int = 0,
               variable: bool = False, signature: Optional[Sequence[int]] = None,
               quantization: Optional[Quantization] = None) -> int:
        """A new tensor; returns its index. ``signature``: the shape with -1 at run-time sizes;
        ``quantization``: the affine parameters of an integer tensor standing for real values."""
        t = fb.TensorT()
        t.shape = np.asarray([int(d) for d in shape], np.int32)  # (arrays pack as one vector: fast)
        t.type = tflite_type(dtype)
        t.name = name
        t.buffer = buffer
        t.isVariable = variable
        if signature is not None and any(d < 0 for d in signature):
            t.shapeSignature = np.asarray([int(d) for d in signature], np.int32)
        if quantization is not None:
            t.quantization = quantization.table()
        self.tensors.append(t)
        return len(self.tensors) - 1

    def constant(self, array: "np.ndarray | Stacked", name: str, quantization: Optional[Quantization] = None) -> int:
        """A tensor holding ``array`` (its dtype and shape; or ``Stacked`` parts'); one tensor per
        distinct content and quantization."""
        array = array if isinstance(array, Stacked) else np.asarray(array)
        buffer = self.model.buffer(array)
        key = buffer if quantization is None else (buffer, quantization)
        if key in self._constants:
            return self._constants[key]
        index = self.tensor(array.shape, array.dtype, name, buffer=buffer, quantization=quantization)
        self._constants[key] = index
        return index

    def variable(self, name: str, initial: np.ndarray) -> int:
        """The handle (a resource tensor) of the model's variable ``name``, whose value is
        ``initial`` (its dtype and shape) when an interpreter starts: one ``VAR_HANDLE`` per
        subgraph, the first one preceded by the ``CALL_ONCE`` of the initialisation subgraph.
        Read it with ``READ_VARIABLE``, write it with ``ASSIGN_VARIABLE``."""
        if name not in self._handles:
            init = self.model.declare_variable(name, initial)
            if not self._handles:
                self.operators.insert(0, _operator(self.model.opcode("CALL_ONCE"), [], [], init))
            self._handles[name] = var_handle(self, name)
        return self._handles[name]

    def handle(self, name: str) -> Optional[int]:
        """The handle of variable ``name`` if ``variable`` made one in this subgraph, else None."""
        return self._handles.get(name)

    def operator(self, op: str, inputs: Sequence[int], outputs: Sequence[int], options: Any = None) -> int:
        """Append builtin ``op`` (e.g. ``"CONV_2D"``) reading ``inputs`` (-1: an omitted optional
        input) and writing ``outputs``; returns the operator's index. Its version follows from
        the operands and options (``versions.py``)."""
        version = op_version(op, [self._operand(i) for i in inputs], [self._operand(i) for i in outputs], options)
        self.operators.append(_operator(self.model.opcode(op, version), inputs, outputs, options))
        return len(self.operators) - 1

    def _operand(self, index: int) -> Optional[tuple[int, tuple[int, ...]]]:
        if index < 0:
            return None
        t = self.tensors[index]
        return t.type, tuple(t.shape)

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(self.tensors[index].shape)

    def type(self, index: int) -> int:
        return self.tensors[index].type

    def is_constant(self, index: int) -> bool:
        return self.tensors[index].buffer != 0

    def table(self) -> Any:
        g = fb.SubGraphT()
        g.tensors, g.operators, g.name = self.tensors, self.operators, self.name
        g.inputs, g.outputs = np.asarray(self.inputs, np.int32), np.asarray(self.outputs, np.int32)
        return g


def _operator(opcode: int, inputs: Sequence[int], outputs: Sequence[int], options: Any) -> Any:
    o = fb.OperatorT()
    o.opcodeIndex = opcode
    o.inputs = np.asarray([int(i) for i in inputs], np.int32)
    o.outputs = np.asarray([int(i) for i in outputs], np.int32)
    if options is not None:
        o.builtinOptionsType = options_type(options)
        o.builtinOptions = options
    return o


def _metadata_entry(name: str, buffer: int) -> Any:
    entry = fb.MetadataT()
    entry.name, entry.buffer = name, buffer
    return entry


def var_handle(sub: SubgraphBuilder, name: str) -> int:
    """A ``VAR_HANDLE`` of variable ``name`` (its ``shared_name``) in ``sub``; its resource tensor."""
    handle = sub.tensor([], "resource", f"{name}/handle")
    options = fb.VarHandleOptionsT()
    options.container, options.sharedName = "", name
    sub.operator("VAR_HANDLE", [], [handle], options)
    return handle


class ModelBuilder:
    """A TFLite model under construction (see the module docstring)."""

    def __init__(self, description: str = "torch2keras") -> None:
        self.description = description
        self.subgraphs: list[SubgraphBuilder] = []
        # buffer 0: the empty buffer of every non-constant
        self._arrays: list["Optional[np.ndarray | Stacked]"] = [None]
        self._by_key: dict[tuple, list[int]] = {}
        self._opcodes: list[Any] = []
        self._opcode_index: dict[int, int] = {}
        self._signatures: list[Any] = []
        self._metadata: dict[str, int] = {}  # Model.metadata: name -> buffer index
        # arrays computed from a source array (a weight's integers), shared by every subgraph that
        # reads it: (what, where the source's elements lie, ...) -> (source, result); the source is held
        # so that its memory is not reused while the model is built
        self.derived: dict[tuple, tuple[np.ndarray, Any]] = {}
        self._variables: dict[str, tuple[str, tuple[int, ...]]] = {}  # name -> (dtype, shape) of its value
        self._init: Optional[SubgraphBuilder] = None  # assigns the initial values; written last
        self._call_init = fb.CallOnceOptionsT()  # (every CALL_ONCE's; its subgraph index is set when packed)

    # ------------------------------------------------------------------ contents

    def subgraph(self, name: str) -> SubgraphBuilder:
        g = SubgraphBuilder(self, name)
        self.subgraphs.append(g)
        return g

    def buffer(self, array: "np.ndarray | Stacked") -> int:
        """The index of a buffer holding ``array``'s bytes (an existing one of equal content)."""
        if isinstance(array, Stacked):
            key = array.key()
            same = array.same
        else:
            array = np.asarray(array)
            array = np.ascontiguousarray(array).reshape(array.shape)  # (0-d arrays stay 0-d)
            key = _content_key(array)
            same = lambda other: _same_memory(other, array) or np.array_equal(other, array)  # noqa: E731
        for index in self._by_key.get(key, ()):
            if same(self._arrays[index]):
                return index
        self._arrays.append(array)
        self._by_key.setdefault(key, []).append(len(self._arrays) - 1)
        return len(self._arrays) - 1

    def declare_variable(self, name: str, initial: np.ndarray) -> Any:
        """Variable ``name`` starts as ``initial`` (assigned by the initialisation subgraph); a
        name declared again must have the same dtype and shape (the first initial value is
        kept). Returns the ``CALL_ONCE`` options calling the initialisation subgraph."""
        initial = np.asarray(initial)
        spec = (initial.dtype.str, tuple(initial.shape))
        if name in self._variables:
            if self._variables[name] != spec:
                raise ValueError(f"variable {name!r} is declared as {self._variables[name]} and as {spec}")
            return self._call_init
        self._variables[name] = spec
        if self._init is None:
            self._init = SubgraphBuilder(self, INIT_SUBGRAPH)
        init = self._init
        flat = initial.reshape(-1)
        if initial.dtype.type in _FILLED and flat.size > 1 and (flat == flat[0]).all():
            value = init.tensor(initial.shape, initial.dtype, f"{name}/initial")
            init.operator("FILL", [init.constant(np.asarray(initial.shape, np.int32), f"{name}/shape"),
                                   init.constant(flat[:1].reshape(()), f"{name}/fill")], [value])
        else:
            value = init.constant(initial, f"{name}/initial")
        init.operator("ASSIGN_VARIABLE", [var_handle(init, name), value], [])
        return self._call_init

    @property
    def variables(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """The declared variables: name -> (numpy dtype string, shape)."""
        return dict(self._variables)

    def array(self, buffer: int) -> np.ndarray:
        """The array buffer ``buffer`` holds."""
        return self._arrays[buffer]

    def opcode(self, op: str, version: int = 1) -> int:
        code = builtin_code(op)
        if code in self._opcode_index:
            entry = self._opcodes[self._opcode_index[code]]
            entry.version = max(entry.version, version)
            return self._opcode_index[code]
        entry = fb.OperatorCodeT()
        entry.builtinCode = code
        entry.deprecatedBuiltinCode = min(code, fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
        entry.version = version
        self._opcodes.append(entry)
        self._opcode_index[code] = len(self._opcodes) - 1
        return self._opcode_index[code]

    def operator_code(self, index: int) -> int:
        """The builtin code of operator code ``index``."""
        return self._opcodes[index].builtinCode

    def signature(self, key: str, subgraph: int, inputs: dict[str, int], outputs: dict[str, int]) -> None:
        """A signature def: names of the subgraph's input and output tensors (indices)."""
        sig = fb.SignatureDefT()
        sig.signatureKey = key
        sig.subgraphIndex = subgraph
        sig.inputs = [self._tensor_map(n, i) for n, i in inputs.items()]
        sig.outputs = [self._tensor_map(n, i) for n, i in outputs.items()]
        self._signatures.append(sig)

    def metadata(self, name: str, data: bytes) -> None:
        """A ``Model.metadata`` entry: ``data`` stored in a buffer under ``name`` (what a runtime
        reads besides the signatures, such as a file's generation parameters)."""
        self._metadata[name] = self.buffer(np.frombuffer(bytes(data), np.uint8))

    @staticmethod
    def _tensor_map(name: str, index: int) -> Any:
        m = fb.TensorMapT()
        m.name, m.tensorIndex = name, int(index)
        return m

    def op_counts(self, subgraph: int = 0) -> dict[str, int]:
        """Builtin op name -> how many ops of it the subgraph holds."""
        names = {v: k for k, v in vars(fb.BuiltinOperator).items() if isinstance(v, int) and not k.startswith("_")}
        counts: dict[str, int] = {}
        for op in self.subgraphs[subgraph].operators:
            name = names[self._opcodes[op.opcodeIndex].builtinCode]
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def weight_bytes(self) -> int:
        return sum(a.nbytes for a in self._arrays if a is not None)

    @property
    def num_buffers(self) -> int:
        return len(self._arrays)

    # ------------------------------------------------------------------ writing

    def write(self, path: str, inline: Optional[bool] = None, progress: Optional[WriteProgress] = None) -> int:
        """Write the ``.tflite`` file; returns its size. ``inline``: buffers as flatbuffer vectors
        (default below 2 GB) or after the flatbuffer at ``Buffer.offset`` (above). ``progress``:
        called with (bytes of weights written, of all) after each buffer."""
        positions, tail_size = self._tail_layout()
        if inline is None:
            inline = tail_size < FLATBUFFER_LIMIT - (64 << 20)
        tables = self._pack(positions, inline, 0)
        if not inline:  # the offsets count from the file start: pack again with the tables' size
            size = len(tables)
            tables = self._pack(positions, inline, size)
            if len(tables) != size:
                raise AssertionError("the flatbuffer tables changed size between passes")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(tables)
            if not inline:
                f.write(bytes(_aligned(len(tables)) - len(tables)))
            written = self._write_tail(f, positions, inline, tail_size, progress or (lambda done, total: None))
        return len(tables) + (0 if inline else _aligned(len(tables)) - len(tables)) + written

    def _tail_layout(self) -> tuple[list[int], int]:
        """Where each buffer starts after the tables: its length prefix (inline vectors) so that
        the data is 16-byte aligned; the tail's size."""
        positions, at = [0], 0
        for array in self._arrays[1:]:
            n = array.nbytes
            if not n:
                positions.append(0)
                continue
            data = _aligned(at + 4)  # (inline: a uint32 length precedes the data)
            positions.append(data - 4)
            at = data + n
        return positions, at

    def _pack(self, positions: list[int], inline: bool, tables_size: int) -> memoryview:
        model = fb.ModelT()
        model.version = 3
        model.description = self.description
        model.operatorCodes = self._opcodes
        self._call_init.initSubgraphIndex = len(self.subgraphs)
        model.subgraphs = [g.table() for g in self.subgraphs] + ([self._init.table()] if self._init else [])
        model.signatureDefs = self._signatures
        model.metadata = [_metadata_entry(name, buffer) for name, buffer in self._metadata.items()] or None
        model.buffers = [_StoredBuffer(0, 0, inline)] + [
            _StoredBuffer(a.nbytes, positions[i] + (0 if inline else 4), inline, tables_size)
            for i, a in enumerate(self._arrays[1:], start=1)]
        builder = flatbuffers.Builder(1 << 16)
        builder.Prep(ALIGNMENT, 0)  # the tables' size becomes a multiple of 16: the tail stays aligned
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return memoryview(builder.Bytes)[builder.Head():]

    def _write_tail(self, f: BinaryIO, positions: list[int], inline: bool, total: int, progress: WriteProgress
                    ) -> int:
        at = 0
        for array, start in zip(self._arrays[1:], positions[1:]):
            if not array.nbytes:
                continue
            f.write(bytes(start - at))
            if inline:
                f.write(np.uint32(array.nbytes).tobytes())
            else:
                f.write(bytes(4))
            for part in array.parts if isinstance(array, Stacked) else (array,):
                f.write(_raw(part))
            at = start + 4 + array.nbytes
            progress(at, total)
        return at


def _raw(array: np.ndarray) -> memoryview:
    """The array's bytes without a copy (little-endian, C order)."""
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return memoryview(array.reshape(-1)).cast("B")

