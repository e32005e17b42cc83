"""Validation against PyTorch value by value: the first bad value is located in the user's source."""

from __future__ import annotations

import io
import json
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import torch2keras  # noqa: E402
from torch2keras import converters  # noqa: E402
from torch2keras.ir import Graph, TensorType  # noqa: E402
from torch2keras.report import NodeCheck, Report  # noqa: E402
from torch2keras.validate import locate  # noqa: E402


def _line_of(marker: str) -> int:
    """The line of this file holding ``marker`` (so the expected line survives edits)."""
    with open(__file__) as f:
        lines = [i for i, text in enumerate(f, start=1) if marker in text and "_line_of" not in text]
    assert len(lines) == 1, lines
    return lines[0]


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Planted(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(3, 4, 3, padding=1)
        self.block = Scale(2.0)
        self.post = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = torch.relu(self.pre(x))
        z = self.block(y)  # MARK-planted-module
        return self.post(z) * 8  # amplified: the largest error is downstream, not where it starts


class PlantedAten(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x) * 3
        y = F.hardsigmoid(y)  # MARK-planted-aten
        return y.mean(dim=1) * 100


@pytest.fixture
def wrong_scale():
    torch2keras.converter(Scale, layout="any")(lambda m, x: keras.ops.multiply(x, m.factor + 0.5))  # wrong on purpose
    yield
    converters.unregister(Scale)


@pytest.fixture
def wrong_hardsigmoid():
    target = torch.ops.aten.hardsigmoid.default
    torch2keras.converter(target, layout="any")(lambda x: keras.ops.clip(x / 5.0 + 0.5, 0.0, 1.0))  # 5, not 6
    yield
    converters.unregister(target)


def test_planted_module_converter_is_located_at_its_call(wrong_scale):
    torch.manual_seed(0)
    with pytest.raises(torch2keras.NumericalMismatchError) as info:
        torch2keras.compile(Planted().eval(), torch.randn(1, 3, 8, 8), on_mismatch="raise")
    result = info.value.result
    assert result is not None and result.keras_model is not None  # still there for inspection
    report = result.report
    assert not report.ok
    first = report.first_mismatch
    assert first is not None and first.status == "first"
    assert (first.op, first.module_path, first.module_type) == ("custom", "block", "Scale")
    assert first.torch_op.endswith("Scale")
    assert os.path.samefile(first.file, __file__) and first.line == _line_of("MARK-planted-module")
    assert "self.block(y)" in first.code
    assert first.input_shapes == ["f32[1,4,8,8]"] and first.shape == (1, 4, 8, 8)
    assert first.max_abs_error > 0.1 and first.max_rel_error == pytest.approx(0.25, rel=1e-3)  # 2.5x vs 2x
    # upstream values agree with torch, downstream ones inherit the error
    at = report.nodes.index(first)
    assert [c.op for c in report.nodes[:at]] == ["conv", "relu"] and all(c.ok for c in report.nodes[:at])
    assert report.nodes[at + 1:] and all(c.status == "mismatch" for c in report.nodes[at + 1:])
    assert first.max_abs_error < max(c.max_abs_error for c in report.nodes)  # first, not largest
    text = str(info.value)
    assert f"test_validation.py:{_line_of('MARK-planted-module')}" in text
    assert "FIRST MISMATCH" in text and "module 'block' (Scale)" in text


def test_planted_aten_converter_warns_with_the_source_line(wrong_hardsigmoid):
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="first mismatch") as record:
        result = torch2keras.compile(PlantedAten().eval(), torch.randn(1, 3, 6, 6))
    first = result.report.first_mismatch
    assert first.torch_op == "aten.hardsigmoid.default" and first.op == "custom"
    assert first.line == _line_of("MARK-planted-aten") and first.module_path == ""
    assert [c.status for c in result.report.nodes] == ["ok", "ok", "first", "mismatch", "mismatch"]
    assert first.max_abs_error < max(c.max_abs_error for c in result.report.nodes)  # first, not largest
    assert any(f"test_validation.py:{first.line}" in str(w.message) for w in record)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*differs from PyTorch")  # "ignore" must not warn
        again = torch2keras.compile(PlantedAten().eval(), torch.randn(1, 3, 6, 6), on_mismatch="ignore")
    assert not again.report.ok


class Clean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = F.hardsigmoid(self.norm(self.conv(x)))
        y = 1 - y[:, ::2] * y[:, 1::2]
        return self.fc(torch.cat([y, y], dim=1).mean(dim=(2, 3))).softmax(dim=-1)


def test_clean_model_compares_every_converted_value():
    torch.manual_seed(0)
    result = torch2keras.compile(Clean().eval(), torch.randn(1, 3, 16, 16), input_layouts="channels_last",
                                 on_mismatch="raise")
    report = result.report
    assert report.ok and report.first_mismatch is None
    assert all(c.ok and c.status == "ok" for c in report.nodes)
    ops = {c.op for c in report.nodes}
    assert {"conv", "group_norm", "hardsigmoid", "mul", "sub", "concat", "reduce", "linear", "softmax"} <= ops
    by_id = {v.id: v for n in result.ir.topo_order() for v in n.outputs}
    stored = [by_id[c.value_id].type.layout for c in report.nodes]
    assert (0, 2, 3, 1) in stored  # values stored channels-last were transposed back before comparing
    tagged = [v for v in by_id.values() if "torch_node" in v.meta and v.producer.op not in ("input", "constant")]
    assert len(report.nodes) == len(tagged)
    assert max(c.max_abs_error for c in report.nodes) < 1e-4
    assert "values compared with PyTorch" in report.summary()
    as_json = json.loads(report.to_json())
    assert len(as_json["nodes"]) == len(report.nodes) and as_json["first_mismatch"] is None
    outputs_only = torch2keras.compile(Clean().eval(), torch.randn(1, 3, 16, 16), validate="outputs")
    assert outputs_only.report.outputs and not outputs_only.report.nodes


def _check(graph_value, ok: bool) -> NodeCheck:
    return NodeCheck(value=graph_value.name_hint, value_id=graph_value.id, op=graph_value.producer.op, torch_op="",
                     module_path="", module_type="", file="", line=0, code="", input_shapes=[], shape=(2,),
                     max_abs_error=0.0 if ok else 1.0, max_rel_error=0.0 if ok else 1.0, max_abs_reference=1.0,
                     tolerance=1e-3)


def test_locate_picks_the_first_value_whose_inputs_were_fine():
    g = Graph("t")
    x = g.add_input("x", TensorType((2,)))
    a = g.add_node("relu", [x]).output            # ok
    r = g.add_node("relayout", [a], {"perm": [0]}).output  # not compared (no torch counterpart)
    b = g.add_node("exp", [r]).output             # bad, its compared input is ok: the first mismatch
    c = g.add_node("neg", [b]).output             # bad: inherited
    d = g.add_node("sin", [x]).output             # bad on an independent branch, later in order
    e = g.add_node("add", [c, d]).output          # bad: inherited from both
    g.set_outputs(["y"], [e])
    checks = [_check(a, True), _check(b, False), _check(c, False), _check(d, False), _check(e, False)]
    first = locate(g, checks)
    assert first is checks[1]
    assert [k.status for k in checks] == ["ok", "first", "mismatch", "first", "mismatch"]
    checks[1] = _check(b, True)
    checks[2] = _check(c, True)
    assert locate(g, checks) is checks[3]  # now the other branch is where it starts
    assert locate(g, [_check(a, True)]) is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_summary_is_a_table_coloured_only_on_a_terminal():
    bad = NodeCheck(value="conv", value_id=1, op="conv", torch_op="aten.conv2d.default", module_path="m.conv",
                    module_type="Conv2d", file="/x/model.py", line=12, code="y = self.conv(x)",
                    input_shapes=["f32[1,3,8,8]"], shape=(1, 4, 8, 8), max_abs_error=0.5, max_rel_error=0.1,
                    max_abs_reference=5.0, tolerance=1e-3, status="first", dtype="f32")
    report = Report(model="M", nodes=[bad], first_mismatch=bad)
    plain, tty = io.StringIO(), _Tty()
    report.print(file=plain)
    report.print(file=tty)
    assert "\033[" not in plain.getvalue() and "\033[" in tty.getvalue()
    text = plain.getvalue()
    assert "first mismatch: %conv = conv (from aten.conv2d.default) in module 'm.conv' (Conv2d), model.py:12" in text
    assert "/x/model.py:12: y = self.conv(x)" in text and "inputs f32[1,3,8,8] -> f32[1,4,8,8]" in text
    assert "FIRST MISMATCH" in text


def test_on_mismatch_is_checked():
    with pytest.raises(ValueError, match="on_mismatch"):
        torch2keras.compile(nn.ReLU(), torch.randn(2), on_mismatch="explode")


def test_numerical_mismatch_error_carries_the_result():
    err = torch2keras.NumericalMismatchError("boom", result="r")
    assert isinstance(err, torch2keras.Torch2KerasError) and err.result == "r"


class CircularPad(nn.Module):
    """A circular pad: torch writes the input and its wrapped edges into an ``empty`` tensor with
    ``slice_scatter``, so the first intermediate holds uninitialised memory outside the input."""

    def forward(self, x):
        return F.pad(x, (2, 6), mode="circular") * 2


def test_values_built_on_uninitialised_memory_compare_with_the_conversion():
    x = torch.randn(1, 6, 8)
    result = torch2keras.compile(CircularPad().eval(), x, on_mismatch="raise")
    report = result.report
    scatters = [c for c in report.nodes if c.op == "slice_scatter"]
    assert len(scatters) == 3, [c.op for c in report.nodes]
    assert report.first_mismatch is None and all(c.ok for c in report.nodes), report.summary()
    assert max(c.max_abs_error for c in report.nodes) == 0.0
    with torch.no_grad():
        want = CircularPad()(x).numpy()
    assert abs(result.run_keras([x.numpy()])[0] - want).max() == 0.0


def test_torch_run_zero_fills_uninitialised_memory():
    from torch2keras.frontend_torch.capture import capture
    from torch2keras.validate import run_fx

    class Empty(nn.Module):
        def forward(self, x):
            return torch.empty(64, 64) + x

    captured = capture(Empty().eval(), (torch.ones(1),))
    empties = [n.name for n in captured.graph.nodes if n.op == "call_function" and "empty" in str(n.target)]
    assert empties, captured.graph
    dirty = torch.full((64, 64), 7.0)  # freed just before: its memory is what ``empty`` most likely returns
    del dirty
    kept = run_fx(captured, [torch.ones(1)], set(empties))
    assert all(bool((kept[n] == 0).all()) for n in empties)


class Ties(nn.Module):
    """Indices of rounded values: ties everywhere, which PyTorch and TFLite/Keras break differently."""

    def forward(self, x):
        r = x.round()
        _, order = torch.sort(r, dim=-1, stable=True)
        top = torch.topk(r, 3, dim=1)
        return order, top.indices, torch.argmax(r, dim=1), top.values


def test_indices_that_differ_only_among_ties_are_not_mismatches():
    torch.manual_seed(0)
    x = torch.randn(3, 16) * 2
    result = torch2keras.compile(Ties().eval(), x)
    report = result.report
    indexed = [c for c in report.nodes if c.op in ("sort", "topk", "argreduce") and c.dtype == "i64"]
    assert len(indexed) >= 3, [(c.op, c.dtype) for c in report.nodes]
    assert report.first_mismatch is None and all(c.ok for c in report.nodes), report.summary()
    # the outputs are tie-broken differently: the values they select are equal
    got = result.run_keras([x.numpy()])
    r = x.round().numpy()
    with torch.no_grad():
        want = [t.numpy() for t in Ties()(x)]
    assert any((g != w).any() for g, w in zip(got[:3], want[:3])), "no tie was broken differently: the test tests nothing"
    for g, w in zip(got[:2], want[:2]):
        assert (np.take_along_axis(r, g.astype(np.int64), 1) == np.take_along_axis(r, w, 1)).all()


def test_indices_selecting_other_values_still_mismatch():
    from torch2keras.validate import _tied

    graph = Graph("g")
    x = graph.add_input("x", TensorType([2, 4], "f32"))
    sorted_node = graph.add_node("sort", [x], {"axis": 1, "descending": False})
    source = torch.tensor([[1.0, 1.0, 2.0, 3.0], [0.0, 5.0, 5.0, 4.0]])
    ref = np.array([[0, 1, 2, 3], [0, 3, 1, 2]])
    assert _tied(sorted_node, np.array([[1, 0, 2, 3], [0, 3, 2, 1]]), ref, source, 1e-4, 1e-4)  # ties swapped
    assert not _tied(sorted_node, np.array([[0, 2, 1, 3], [0, 3, 1, 2]]), ref, source, 1e-4, 1e-4)  # 1.0, 2.0 swapped
    # values one rounding apart (cosine similarities of a vector with itself: 1 +- 1 ulp) rank
    # either way: within the input's tolerance, not a mismatch; 1e-3 apart is one
    near = torch.tensor([[1.0, 1.0 - 6e-8, 1.0 + 1.2e-7, 0.5], [0.0, 0.999, 1.0, 4.0]])
    near_ref = np.array([[3, 1, 0, 2], [0, 1, 2, 3]])
    assert _tied(sorted_node, np.array([[3, 0, 1, 2], [0, 1, 2, 3]]), near_ref, near, 1e-4, 1e-4)
    assert not _tied(sorted_node, np.array([[3, 1, 0, 2], [0, 2, 1, 3]]), near_ref, near, 1e-4, 1e-4)
