"""The lowering registry's contract: one family module per IR family, declared emits checked at
each emit and in the sources, the ops capture keeps whole, and imports that run one way."""

from __future__ import annotations

import ast
import io
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import torch2keras  # noqa: E402
from torch2keras import registries  # noqa: E402
from torch2keras.frontend_torch import KEEP_WHOLE, LOWERINGS, LoweringContext, capture, lower, lowering  # noqa: E402
from torch2keras.frontend_torch.decompositions import decomposition_table  # noqa: E402
from torch2keras.frontend_torch.registry import AMBIENT_OPS  # noqa: E402
from torch2keras.ir import Graph, LoweringError, TensorType  # noqa: E402
from torch2keras.ir.ops import SCHEMAS, families  # noqa: E402

aten = torch.ops.aten
OPS_DIR = pathlib.Path(torch2keras.__file__).parent / "frontend_torch" / "ops"


def test_frontend_registries_agree():
    assert registries._frontend_problems(SCHEMAS) == []


def test_every_lowering_declares_known_ir_ops():
    for target, fn in LOWERINGS.items():
        assert fn.emits is not None, target
        assert set(fn.emits) <= set(SCHEMAS), (target, fn.emits)


def test_keep_whole_is_the_registered_set():
    assert set(KEEP_WHOLE) == {
        aten.linear.default, aten.conv1d.default, aten.conv2d.default, aten.conv3d.default,
        aten.conv_transpose1d.default, aten.conv_transpose2d.input, aten.conv_transpose3d.input,
        aten.layer_norm.default, aten.group_norm.default,
        aten.hardswish.default, aten.hardsigmoid.default, aten.gelu.default, aten.silu.default, aten.mish.default,
        aten.scaled_dot_product_attention.default, aten.embedding.default,
        aten.adaptive_avg_pool1d.default, aten.adaptive_avg_pool2d.default,
        aten.upsample_nearest2d.vec, aten.upsample_bilinear2d.vec,
        aten.pixel_shuffle.default, aten.pixel_unshuffle.default,
        aten.softmax.int, aten.log_softmax.int,
        aten.gru.input, aten.lstm.input, aten.rnn_tanh.input, aten.rnn_relu.input,
        aten.max_pool1d.default, aten.max_pool2d.default, aten.max_pool3d.default,
        aten.take_along_dim.default,
    }
    assert len(KEEP_WHOLE) == 32  # each once
    decomposed = set(decomposition_table().keys())
    assert not decomposed & set(KEEP_WHOLE)
    assert aten.conv2d.padding in decomposed and aten.relu6.default in decomposed  # the rest decompose


def _context(emits):
    graph = Graph("g")
    x = graph.add_input("x", TensorType([2, 3], "f32"))

    def lower_probe(ctx, x):
        return x

    lower_probe.emits = emits
    ctx = LoweringContext(graph)
    ctx.lowering = lower_probe
    return ctx, x


def test_emit_refuses_an_undeclared_op_and_names_the_lowering():
    ctx, x = _context(("relu",))
    ctx.emit("relu", [x])
    with pytest.raises(LoweringError, match=r"lower_probe emitted IR op 'sigmoid', which it does not declare"):
        ctx.emit("sigmoid", [x])


def test_ambient_ops_need_no_declaring():
    ctx, x = _context(())
    y = ctx.reshape(ctx.cast(x, "f16"), [3, 2])
    assert [n.op for n in ctx.graph.topo_order() if n.op != "input"] == ["cast", "reshape"]
    assert y.type == TensorType([3, 2], "f16")
    with pytest.raises(ValueError, match="'relu' is not an ambient op"):
        ctx.emit_ambient("relu", [x])
    assert "relu" not in AMBIENT_OPS and {"constant", "cast", "reshape", "dim"} <= AMBIENT_OPS


def test_compile_reports_an_undeclared_emit(monkeypatch):
    def lower_relu_wrongly(ctx, x):
        return ctx.emit("sigmoid", [x])

    lower_relu_wrongly.emits = ("relu",)
    monkeypatch.setitem(LOWERINGS, aten.relu.default, lower_relu_wrongly)
    with pytest.raises(LoweringError) as info:
        torch2keras.compile(torch.nn.ReLU(), torch.randn(2, 3), validate=False)
    assert "lower_relu_wrongly emitted IR op 'sigmoid'" in str(info.value)


def test_lowering_refuses_unknown_or_conflicting_emits():
    with pytest.raises(ValueError, match=r"unknown IR ops \['no_such_op'\]"):
        lowering(aten.relu.default, emits=("no_such_op",))

    def lower_twice(ctx, x):
        return x

    lowering(emits=("relu",))(lower_twice)  # (no targets: registers nothing)
    with pytest.raises(ValueError, match="declares emits"):
        lowering(emits=("sigmoid",))(lower_twice)


def test_problems_report_undeclared_emits_and_stray_modules(monkeypatch):
    def lower_sloppy(ctx, x):
        return ctx.emit("tanh", [ctx.emit("relu", [x])])

    lower_sloppy.emits = ("relu",)
    monkeypatch.setitem(LOWERINGS, "sloppy_target", lower_sloppy)
    found = registries._family_modules
    monkeypatch.setattr(registries, "_family_modules", lambda package: found(package) | {"nn_extra"})
    problems = registries._frontend_problems(SCHEMAS)
    assert "lowering of sloppy_target emits ['tanh'] without declaring them" in problems
    assert any("frontend_torch/ops/nn_extra.py is not named after an IR family" in p for p in problems)


def test_family_modules_are_ir_families_and_import_only_the_helpers():
    modules = {p.stem for p in OPS_DIR.glob("*.py")} - {"__init__"}
    assert modules - {"common"} <= set(families())
    for path in OPS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):  # (imports inside functions too)
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported = [node.module] if node.module else [a.name for a in node.names]
                allowed = {"common"} | (modules if path.stem == "__init__" else set())
                assert set(imported) <= allowed, (path.name, imported)


def test_explain_lists_the_declared_emits():
    text = torch2keras.explain(aten.pad.default, file=io.StringIO())
    listed = [line.split("'")[1] for line in text.splitlines() if line.startswith("  emits IR op")]
    assert listed == list(LOWERINGS[aten.pad.default].emits) == ["pad", "slice", "expand", "concat"]


def test_kept_whole_ops_reach_their_lowerings_whole():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Hardswish()).eval()
    x = torch.randn(1, 3, 8, 8)
    graph = lower(capture(model, (x,)))
    counts = graph.op_counts()
    assert {op: n for op, n in counts.items() if op not in ("input", "constant")} == {"conv": 1, "hardswish": 1}
    result = torch2keras.compile(model, x, validate=False)
    with torch.no_grad():
        ref = model(x).numpy()
    assert float(np.max(np.abs(result.run_keras([x.numpy()])[0] - ref))) < 1e-4
