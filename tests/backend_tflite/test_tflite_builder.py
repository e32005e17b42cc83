"""The TFLite model builder: buffers deduplicated by content and written once, 16-byte aligned,
inline or after the flatbuffer; op versions from operands and options; signatures (several may
share one weight set); the peephole clean-up; no TensorFlow, Keras or torch imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from torch2keras.backend_tflite.builder import ALIGNMENT, ModelBuilder
from torch2keras.backend_tflite.peephole import simplify
from torch2keras.backend_tflite.schema import fb
from torch2keras.tflite.file import read_metadata

W = np.arange(12, dtype=np.float32).reshape(3, 4) / 7


def _dense_model(signatures: int = 1) -> ModelBuilder:
    """y = x @ W.T + b in ``signatures`` subgraphs that all read the same constants."""
    model = ModelBuilder()
    for k in range(signatures):
        g = model.subgraph(f"fn{k}")
        x = g.tensor([2, 4], "f32", "x")
        y = g.tensor([2, 3], "f32", "y")
        g.operator("FULLY_CONNECTED", [x, g.constant(W.copy(), "w"), g.constant(np.ones(3, np.float32), "b")], [y],
                   fb.FullyConnectedOptionsT())
        g.inputs, g.outputs = [x], [y]
        model.signature("serving_default" if k == 0 else f"fn{k}", k, {"x": x}, {"y": y})
    return model


def _run(path, key="serving_default", **feed):
    return Interpreter(model_path=str(path)).get_signature_runner(key)(**feed)


def _buffer_offsets(path) -> list[int]:
    """File offsets of the inline buffers' data."""
    data = open(path, "rb").read()
    m = fb.Model.GetRootAs(data, 0)
    out = []
    for k in range(m.BuffersLength()):
        b = m.Buffers(k)
        if b.DataLength():
            out.append(b._tab.Vector(b._tab.Offset(4)))
    return out


@pytest.mark.parametrize("inline", [True, False])
def test_written_file_runs_and_buffers_are_aligned(tmp_path, inline):
    path = tmp_path / "dense.tflite"
    size = _dense_model().write(str(path), inline=inline)
    assert size == path.stat().st_size
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(_run(path, x=x)["y"], x @ W.T + 1, rtol=1e-6)
    m = fb.Model.GetRootAs(path.read_bytes(), 0)
    stored = [m.Buffers(k) for k in range(m.BuffersLength())]
    if inline:
        offsets = _buffer_offsets(path)
        assert len(offsets) == 2 and all(o % ALIGNMENT == 0 for o in offsets)
        assert not any(b.Offset() for b in stored)
    else:
        offsets = [b.Offset() for b in stored if b.Size()]
        assert len(offsets) == 2 and all(o % ALIGNMENT == 0 for o in offsets)
        assert not any(b.DataLength() for b in stored)


def test_equal_constants_are_stored_once_across_signatures(tmp_path):
    model = _dense_model(signatures=3)
    assert model.num_buffers == 3  # the empty buffer, W and b: once for all three subgraphs
    path = tmp_path / "shared.tflite"
    model.write(str(path))
    x = np.ones((2, 4), np.float32)
    for key in ("serving_default", "fn1", "fn2"):
        np.testing.assert_allclose(_run(path, key, x=x)["y"], x @ W.T + 1, rtol=1e-6)


def test_deduplication_compares_content_dtype_and_shape():
    model = ModelBuilder()
    a = model.buffer(np.zeros((2, 3), np.float32))
    assert model.buffer(np.zeros((2, 3), np.float32)) == a
    assert model.buffer(np.zeros((3, 2), np.float32)) != a  # same bytes, other shape
    assert model.buffer(np.zeros((2, 3), np.int32)) != a  # same bytes, other dtype
    big = np.arange(100_000, dtype=np.float32)
    changed = big.copy()
    changed[12_345] += 1  # between the sampled elements of the key: told apart by the full comparison
    assert model.buffer(changed) != model.buffer(big)


def _version(model: ModelBuilder, op: str) -> int:
    code = getattr(fb.BuiltinOperator, op)
    return next(c.version for c in model._opcodes if c.builtinCode == code)


def test_op_versions_follow_operands_and_options():
    model = ModelBuilder()
    g = model.subgraph("main")
    x = g.tensor([1, 2, 3, 4, 5], "f32", "x")
    g.operator("TRANSPOSE", [x, g.constant(np.array([4, 3, 2, 1, 0], np.int32), "p")],
               [g.tensor([5, 4, 3, 2, 1], "f32", "t")])
    options = fb.FullyConnectedOptionsT()
    options.keepNumDims = True
    rows = g.tensor([2, 3, 4], "f32", "rows")
    g.operator("FULLY_CONNECTED", [rows, g.constant(W, "w"), g.constant(np.zeros(3, np.float32), "b")],
               [g.tensor([2, 3, 3], "f32", "fc")], options)
    image = g.tensor([1, 5, 5, 4], "f32", "image")
    g.operator("CONV_2D", [image, g.constant(np.zeros((6, 1, 1, 2), np.float32), "f"),
                           g.constant(np.zeros(6, np.float32), "cb")], [g.tensor([1, 5, 5, 6], "f32", "c")],
               fb.Conv2DOptionsT())
    assert (_version(model, "TRANSPOSE"), _version(model, "FULLY_CONNECTED"), _version(model, "CONV_2D")) == (4, 5, 6)
    g.operator("FULLY_CONNECTED", [rows, g.constant(W, "w"), -1], [g.tensor([2, 3, 3], "f32", "fc2")], options)
    assert _version(model, "FULLY_CONNECTED") == 6  # (no bias: the highest use counts)


def test_peephole_merges_reshapes_and_duplicates_and_drops_dead_ops():
    model = ModelBuilder()
    g = model.subgraph("main")
    x = g.tensor([2, 6], "f32", "x")

    def reshape(src, shape, name):
        out = g.tensor(shape, "f32", name)
        g.operator("RESHAPE", [src, g.constant(np.array(shape, np.int32), f"{name}/shape")], [out])
        return out

    a = reshape(reshape(x, [3, 4], "a"), [12], "b")  # a chain: one RESHAPE of x is left
    neg1, neg2 = g.tensor([12], "f32", "n1"), g.tensor([12], "f32", "n2")
    g.operator("NEG", [a], [neg1])
    g.operator("NEG", [a], [neg2])  # the same op twice
    y = g.tensor([12], "f32", "y")
    g.operator("ADD", [neg1, neg2], [y], fb.AddOptionsT())
    g.operator("ABS", [x], [g.tensor([2, 6], "f32", "unused")])  # read by nothing
    g.inputs, g.outputs = [x], [y]
    simplify(g)
    names = [model._opcodes[op.opcodeIndex].builtinCode for op in g.operators]
    assert names == [fb.BuiltinOperator.RESHAPE, fb.BuiltinOperator.NEG, fb.BuiltinOperator.ADD]
    assert int(g.operators[0].inputs[0]) == x and list(g.operators[2].inputs) == [neg1, neg1]


def _counter_model(size: int, start: float) -> ModelBuilder:
    """Signatures ``add`` (y = v + x; v = y) and ``read`` (y = v) over one variable ``v``
    [size] starting at ``start``; ``add`` also sets a variable ``log`` [2] (from 0, 1) to its
    input ``tag``, which nothing reads."""
    model = ModelBuilder()
    for key in ("add", "read"):
        g = model.subgraph(key)
        handle = g.variable("v", np.full(size, start, np.float32))
        value, y = g.tensor([size], "f32", "value"), g.tensor([size], "f32", "y")
        g.operator("READ_VARIABLE", [handle], [value])
        inputs = {}
        if key == "add":
            inputs = {"x": g.tensor([size], "f32", "x"), "tag": g.tensor([2], "f32", "tag")}
            g.operator("ADD", [value, inputs["x"]], [y], fb.AddOptionsT())
            g.operator("ASSIGN_VARIABLE", [handle, y], [])
            g.operator("ASSIGN_VARIABLE", [g.variable("log", np.arange(2, dtype=np.float32)), inputs["tag"]], [])
        else:
            g.operator("RESHAPE", [value, g.constant(np.array([size], np.int32), "shape")], [y])
        g.inputs, g.outputs = list(inputs.values()), [y]
        simplify(g)  # (keeps the assignments, which no op reads)
        model.signature(key, len(model.subgraphs) - 1, inputs, {"y": y})
    return model


def test_variables_are_shared_by_signatures_and_initialised_once_per_interpreter(tmp_path):
    size = 1 << 18  # 1 MB of equal values: made by a FILL, not stored
    path = tmp_path / "counter.tflite"
    model = _counter_model(size, 0.25)
    assert model.variables == {"v": ("<f4", (size,)), "log": ("<f4", (2,))}
    assert model.write(str(path)) < 4096
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(path.read_bytes(), 0))
    init = len(m.subgraphs) - 1
    assert m.subgraphs[init].name == b"init_variables" and len(m.subgraphs) == 3
    for sub in m.subgraphs[:init]:  # each signature calls the initialisation first
        first = sub.operators[0]
        assert m.operatorCodes[first.opcodeIndex].builtinCode == fb.BuiltinOperator.CALL_ONCE
        assert first.builtinOptions.initSubgraphIndex == init
        assert len(sub.operators) == (7 if sub.name == b"add" else 4)  # (2 VAR_HANDLE, 2 ASSIGN_VARIABLE in add)
    tflite = Interpreter(model_path=str(path))
    add, read = tflite.get_signature_runner("add"), tflite.get_signature_runner("read")
    x, tag = np.random.default_rng(0).standard_normal(size).astype(np.float32), np.ones(2, np.float32)
    once = np.float32(0.25) + x
    np.testing.assert_array_equal(read()["y"], np.full(size, 0.25, np.float32))
    np.testing.assert_array_equal(add(x=x, tag=tag)["y"], once)
    np.testing.assert_array_equal(add(x=x, tag=tag)["y"], once + x)
    np.testing.assert_array_equal(read()["y"], once + x)  # the other signature sees it
    fresh = Interpreter(model_path=str(path)).get_signature_runner("add")
    np.testing.assert_array_equal(fresh(x=x, tag=tag)["y"], once)  # a new interpreter starts afresh


@pytest.mark.parametrize("inline", [True, False])
def test_metadata_entries_are_read_back(tmp_path, inline):
    path = tmp_path / "dense.tflite"
    model = _dense_model()
    model.metadata("params", b'{"max_context": 64}')
    model.metadata("empty", b"")
    model.write(str(path), inline=inline)
    assert read_metadata(str(path)) == {"params": b'{"max_context": 64}', "empty": b""}
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(_run(path, x=x)["y"], x @ W.T + 1, rtol=1e-6)


def test_a_variable_declared_twice_must_agree():
    model = ModelBuilder()
    model.subgraph("a").variable("v", np.zeros(3, np.float32))
    model.subgraph("b").variable("v", np.ones(3, np.float32))  # (the first initial value is kept)
    with pytest.raises(ValueError, match="variable 'v' is declared as"):
        model.subgraph("c").variable("v", np.zeros(4, np.float32))


def test_backend_imports_no_framework():
    code = ("import sys, torch2keras.backend_tflite; "
            "print(sorted(m for m in ('torch', 'keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_model_above_2_gb_stores_its_buffers_after_the_flatbuffer(tmp_path):
    """Over the flatbuffer's 2 GB limit the weights go after it (``Buffer.offset``/``size``) and
    LiteRT reads them there: a 2.2 GB table (zeros but three rows: the zeros' pages are never
    allocated, the test's memory stays small) gathered at its first, middle and last rows."""
    rows, width = 540_000, 1024
    table = np.zeros((rows, width), np.float32)
    picked = np.array([0, 270_001, rows - 1], np.int32)
    table[picked] = np.arange(3 * width, dtype=np.float32).reshape(3, width) + 1
    model = ModelBuilder()
    g = model.subgraph("main")
    index = g.tensor([3], "i32", "index")
    out = g.tensor([3, width], "f32", "rows")
    options = fb.GatherOptionsT()
    options.axis = 0
    g.operator("GATHER", [g.constant(table, "table"), index], [out], options)
    g.inputs, g.outputs = [index], [out]
    model.signature("serving_default", 0, {"index": index}, {"rows": out})
    path = tmp_path / "big.tflite"
    assert model.write(str(path)) == path.stat().st_size > 2 ** 31
    with open(path, "rb") as f:
        m = fb.Model.GetRootAs(f.read(1 << 20), 0)  # the tables: at the start
    stored = [m.Buffers(k) for k in range(m.BuffersLength())]
    assert [b.Size() for b in stored if b.Size()] == [table.nbytes] and not any(b.DataLength() for b in stored)
    np.testing.assert_array_equal(_run(path, index=picked)["rows"], table[picked])
    np.testing.assert_array_equal(_run(path, index=picked[::-1].copy())["rows"], table[picked[::-1]])


def test_stacked_parts_are_one_buffer_written_part_after_part(tmp_path):
    """A ``Stacked`` constant (rows of several arrays) is stored as their concatenation without
    building it, once for every subgraph reading the same parts; the file computes with it."""
    from torch2keras.backend_tflite.builder import Stacked

    top, bottom = W[:2].copy(), W[2:].copy()
    model = ModelBuilder()
    for k in range(2):
        g = model.subgraph(f"fn{k}")
        x, y = g.tensor([2, 4], "f32", "x"), g.tensor([2, 3], "f32", "y")
        w = g.constant(Stacked([top, bottom]), "w")
        g.operator("FULLY_CONNECTED", [x, w, -1], [y], fb.FullyConnectedOptionsT())
        g.inputs, g.outputs = [x], [y]
        model.signature(f"fn{k}", k, {"x": x}, {"y": y})
    assert model.num_buffers == 2 and model.weight_bytes == W.nbytes
    path = tmp_path / "stacked.tflite"
    model.write(str(path))
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    for key in ("fn0", "fn1"):
        np.testing.assert_allclose(_run(path, key, x=x)["y"], x @ W.T, rtol=1e-6)
    with pytest.raises(ValueError, match="cannot stack"):
        Stacked([top, np.ones((1, 5), np.float32)])
