"""Control flow: torch.cond / while_loop / scan / map become IR regions and a ControlFlow Keras layer.

End to end against PyTorch (Keras and TFLite, with inputs that take different branches or trip
counts on the same converted model), .keras reload with safe_mode=True in a process without
torch, the IR dump and verifier on regions, passes and the layout pass inside regions, and the
warning of the tracing fallback on a Python `if`.
"""

from __future__ import annotations

import collections
import inspect
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch._higher_order_ops.map import map as torch_map
from torch._higher_order_ops.while_loop import while_loop as torch_while_loop

import torch2keras
from fresh_process import run_saved
from models import ControlIf, ControlIfCond, ConvScan, DecayingSum, Halving
from torch2keras.ir import Graph, TensorType, VerificationError
from torch2keras.ir.types import channels_last
from torch2keras.passes import PassManager
from support import max_abs_error

ATOL = 1e-4
NHWC = channels_last(4)


def _torch(model, *inputs):
    with torch.no_grad():
        out = model(*[t.clone() for t in inputs])
    return [o.numpy() for o in torch.utils._pytree.tree_flatten(out)[0]]



def _tflite_ops(path: str) -> list[list[str]]:
    """The builtin op names of every subgraph of a .tflite file (0 is the main graph)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for sub in model.subgraphs:
        codes = [model.operatorCodes[op.opcodeIndex] for op in sub.operators]
        out.append([names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in codes])
    return out


def _check_runs(result, model, inputs_list, tmp_path, name, *, tflite=True):
    """Keras (and TFLite) of ``result`` on every input tuple of ``inputs_list`` vs PyTorch."""
    path = result.export_tflite(str(tmp_path / f"{name}.tflite")) if tflite else None
    for inputs in inputs_list:
        ref = _torch(model, *inputs)
        arrays = [t.numpy() for t in inputs]
        for got, want in zip(result.run_keras(arrays), ref):
            assert got.shape == want.shape
            assert max_abs_error(got, want) < ATOL, f"{name}: Keras differs from PyTorch by {max_abs_error(got, want)}"
        if path:
            for got, want in zip(result.run_tflite(path, arrays), ref):
                assert max_abs_error(got, want) < ATOL, f"{name}: TFLite differs from PyTorch by {max_abs_error(got, want)}"
    return path


# ----------------------------------------------------------------------------- models


class RowMLP(nn.Module):
    """map over rows: relu(linear(row)) * 2."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return torch_map(lambda row: torch.relu(self.lin(row)) * 2, x)


class SignedRows(nn.Module):
    """Nested control flow: a torch.cond per row, inside a map."""

    def forward(self, x):
        def per_row(row):
            return torch.cond(row.sum() > 0, lambda v: v * 2.0, lambda v: -v - 1.0, (row,))

        return torch_map(per_row, x)


def _inputs_on_both_sides(model: ControlIf):
    """Two inputs for which ``conv_pre(x).mean() > 0`` differs (the model's weights are seeded)."""
    torch.manual_seed(1)
    base = torch.randn(1, 3, 8, 8) * 0.1
    slope = model.conv_pre.weight.sum(dim=(1, 2, 3)).mean().item()  # d mean / d (a constant added to x)
    shift = 4.0 / slope
    x_pos, x_neg = base + shift, base - shift
    with torch.no_grad():
        preds = [bool(model.conv_pre(x).mean() > 0) for x in (x_pos, x_neg)]
    assert preds == [True, False]
    return x_pos, x_neg


@pytest.fixture(scope="module")
def control_if_cond():
    torch.manual_seed(0)
    model = ControlIfCond().eval()
    x_pos, x_neg = _inputs_on_both_sides(model)
    result = torch2keras.compile(model, x_pos, on_mismatch="raise")
    return model, result, x_pos, x_neg


# ----------------------------------------------------------------------------- end to end


def test_control_if_with_torch_cond_takes_both_branches(control_if_cond, tmp_path):
    model, result, x_pos, x_neg = control_if_cond
    assert result.report.capture_method == "export"
    assert not result.report.warnings
    refs = [_torch(model, x)[0] for x in (x_pos, x_neg)]
    assert max_abs_error(refs[0], refs[1]) > 0.1  # the two branches really differ
    assert min(float(np.abs(r).max()) for r in refs) > 0.1
    assert result.ir.op_counts()["cond"] == 1
    # conv_pre and conv_shared outside, two convs in each branch
    assert result.ir.op_counts(nested=False)["conv"] == 2
    assert result.ir.op_counts()["conv"] == result.report.ir_op_counts["conv"] == 6
    path = _check_runs(result, model, [(x_pos,), (x_neg,)], tmp_path, "control_if")
    ops = _tflite_ops(path)
    assert "IF" in ops[0]
    branch_ops = [sorted(collections.Counter(s).items()) for s in ops[1:]]
    assert all(dict(b).get("CONV_2D") == 2 for b in branch_ops), branch_ops
    assert {"TANH", "LOGISTIC"} <= {op for s in ops[1:] for op in s}
    # validation compared the cond's result with torch's (and did not trip on the regions)
    checked = {c.op for c in result.report.nodes}
    assert "cond" in checked and all(c.ok for c in result.report.nodes)


def test_python_if_falls_back_with_a_warning_naming_the_line():
    torch.manual_seed(0)
    model = ControlIf().eval()
    x_pos, x_neg = _inputs_on_both_sides(model)
    lines, start = inspect.getsourcelines(ControlIf.forward)
    line = start + next(i for i, text in enumerate(lines) if "CONTROL_IF_LINE" in text)
    where = f"{inspect.getsourcefile(ControlIf)}:{line}"
    with pytest.warns(UserWarning) as record:
        result = torch2keras.compile(model, x_pos)
    messages = [str(w.message) for w in record if "torch.export could not capture" in str(w.message)]
    assert messages, [str(w.message) for w in record]
    assert where in messages[0]
    assert "if x.mean() > 0:" in messages[0]
    assert "torch.cond(pred, true_fn, false_fn, (x,))" in messages[0]
    assert result.report.capture_method == "trace"
    # specialised: right for the example's branch, wrong for the other one (what torch.cond fixes)
    assert max_abs_error(result.run_keras([x_pos.numpy()])[0], _torch(model, x_pos)[0]) < ATOL
    assert max_abs_error(result.run_keras([x_neg.numpy()])[0], _torch(model, x_neg)[0]) > 0.1


def test_while_loop_trip_count_follows_the_data(tmp_path):
    torch.manual_seed(0)
    model = Halving().eval()
    x_long, x_short = torch.randn(2, 4) - 10.0, torch.randn(2, 4) * 0.1
    counts = [int(_torch(model, x)[0]) for x in (x_long, x_short)]
    assert counts[0] > counts[1] >= 1
    result = torch2keras.compile(model, x_short, on_mismatch="raise")
    node = result.ir.nodes_by_op("while_loop")[0]
    assert node.attrs["num_carried"] == 2 and len(node.inputs) == 2  # the offset was sunk into the body
    path = _check_runs(result, model, [(x_long,), (x_short,)], tmp_path, "halving")
    assert "WHILE" in _tflite_ops(path)[0]
    assert [int(result.run_keras([x.numpy()])[0]) for x in (x_long, x_short)] == counts


def test_scan_with_carry_and_stacked_outputs(tmp_path):
    torch.manual_seed(0)
    model = DecayingSum().eval()
    xs = [torch.randn(6, 2, 4), torch.randn(6, 2, 4) * 3]
    result = torch2keras.compile(model, xs[0], on_mismatch="raise")
    assert [tuple(v.type.shape) for v in result.ir.outputs] == [(2, 3), (6, 2, 3)]
    path = _check_runs(result, model, [(x,) for x in xs], tmp_path, "scan")
    assert "WHILE" in _tflite_ops(path)[0]


def test_map_and_nested_cond_inside_map(tmp_path):
    torch.manual_seed(0)
    model = RowMLP().eval()
    x = torch.randn(5, 2, 4)
    result = torch2keras.compile(model, x, on_mismatch="raise")
    _check_runs(result, model, [(x,), (x * -2,)], tmp_path, "map")

    nested = SignedRows().eval()
    rows = torch.tensor([[1.0, 2.0, 0.5], [-1.0, -3.0, 0.5], [0.2, -0.1, 0.3], [-4.0, 1.0, 2.0]])
    result = torch2keras.compile(nested, rows, on_mismatch="raise")
    (map_node,) = result.ir.nodes_by_op("map")
    assert [n.op for n in map_node.regions["body_fn"].nodes_by_op("cond")] == ["cond"]
    path = _check_runs(result, nested, [(rows,), (-rows,)], tmp_path, "nested")
    ops = _tflite_ops(path)
    assert "WHILE" in ops[0] and any("IF" in s for s in ops[1:])


def test_keras_files_reload_with_safe_mode_without_torch(control_if_cond, tmp_path):
    model, result, x_pos, x_neg = control_if_cond
    torch.manual_seed(0)
    loop = Halving().eval()
    x_long = torch.randn(2, 4) - 10.0
    loop_result = torch2keras.compile(loop, torch.randn(2, 4))
    cases = {"cond_pos": (result, x_pos, model), "cond_neg": (result, x_neg, model),
             "while": (loop_result, x_long, loop)}
    jobs = {name: (res.save(str(tmp_path / f"{name}.keras")), [res.keras_inputs([x.numpy()])])
            for name, (res, x, m) in cases.items()}
    reloaded = run_saved(jobs, tmp_path)
    for name, (res, x, m) in cases.items():
        [outs] = reloaded[name]
        for got, want in zip(res.torch_outputs(outs), _torch(m, x), strict=True):
            assert max_abs_error(got, want) < ATOL, name


# ----------------------------------------------------------------------------- IR, passes, layout


def test_ir_dump_and_json_show_regions(control_if_cond):
    _, result, _, _ = control_if_cond
    text = str(result.ir)
    lines = text.splitlines()
    cond_line = next(i for i, line in enumerate(lines) if "= cond(" in line)
    assert lines[cond_line].startswith("  %")
    assert lines[cond_line + 1] == "    region then_branch"
    else_at = lines.index("    region else_branch")
    then_lines = lines[cond_line + 2:else_at]
    assert all(line.startswith("      %") for line in then_lines[:-1])
    assert sum("= input() {name=" in line for line in then_lines) == 1
    then_body = "\n".join(then_lines)
    assert "tanh(" in then_body and "sigmoid(" not in then_body
    assert then_body.count("= conv(") == 2
    assert "      return output_0=%" in then_body
    assert "models.py:" in lines[cond_line]  # the torch.cond call's own line
    node_json = next(n for n in result.ir.to_json()["nodes"] if n["op"] == "cond")
    assert sorted(node_json["regions"]) == ["else_branch", "then_branch"]
    assert "then_branch" not in node_json["attrs"]
    assert [n["op"] for n in node_json["regions"]["then_branch"]["nodes"]].count("conv") == 2
    assert str(result.ir) == text  # deterministic


def _region(graph: Graph, name: str, op: str) -> Graph:
    r = graph.new_region(name)
    a = r.add_input("a", TensorType((1, 3, 8, 8)))
    w = r.add_constant(np.full((4, 3, 1, 1), 0.5, np.float32), "w")
    y = r.add_node("conv", [a, w], {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1]}).output
    two = r.add_node("add", [r.add_constant(np.float32(1.5), "one_and_half"), r.add_constant(np.float32(0.5), "half")],
                     name="two").output
    out = r.add_node(op, [y, two]).output
    r.add_node("exp", [out], name="unused")
    r.set_outputs(["output_0"], [out])
    return r


def _cond_graph() -> Graph:
    g = Graph("branches")
    x = g.add_input("x", TensorType((1, 3, 8, 8)))
    mean = g.add_node("reduce", [x], {"kind": "mean"}).output
    pred = g.add_node("gt", [mean, g.add_constant(np.float32(0), "zero")]).output
    node = g.add_node("cond", [pred, x], {"then_branch": _region(g, "t", "mul"), "else_branch": _region(g, "e", "sub")})
    g.set_outputs(["y"], [node.output])
    g.verify()
    return g


def test_passes_run_inside_regions():
    g = _cond_graph()
    manager = PassManager(["fold_constants", "dce"])
    manager.run(g)
    assert manager.changed == {"1": True, "2": True}  # fold_constants, dce (keyed by position)
    then_branch = g.nodes_by_op("cond")[0].regions["then_branch"]
    assert str(then_branch) == """\
graph t
  %a : f32[1,3,8,8] = input() {name='a'}
  %conv : f32[1,4,8,8] = conv(%a, %w) {dilation=[1,1], groups=1, output_padding=none, padding=[0,0,0,0], stride=[1,1], transposed=false}
  %mul : f32[1,4,8,8] = mul(%conv, %two)
  %w : f32[4,3,1,1] = constant() {value=<float32[4,3,1,1]>}
  %two : f32[] = constant() {value=float32[][2.]}
  return output_0=%mul
"""
    assert not any(node.op == "exp" for _, node in g.walk())  # dce removed the dead exp in both branches
    assert [n.op for n in g.nodes_by_op("cond")[0].regions["else_branch"]].count("add") == 0  # folded there too


def _transposes_per_subgraph(path: str) -> list[int]:
    return [collections.Counter(ops)["TRANSPOSE"] for ops in _tflite_ops(path)]


def test_channels_last_cond_has_no_transposes(control_if_cond, tmp_path):
    """nobuco's ControlIf as torch.cond with NHWC I/O: the cond's operand and result, and every
    branch's input and output, are NHWC -- no transpose anywhere (there were 6)."""
    model, _, x_pos, x_neg = control_if_cond
    result = torch2keras.compile(model, x_pos, input_layouts="channels_last", output_layouts="channels_last",
                                 on_mismatch="raise")
    (cond,) = result.ir.nodes_by_op("cond")
    assert [v.type.layout for v in cond.inputs] == [None, NHWC] and cond.output.type.layout == NHWC
    for name, region in cond.regions.items():
        assert region.inputs[0].type.layout == NHWC and region.outputs[0].type.layout == NHWC, name
        convs = region.nodes_by_op("conv")
        assert len(convs) == 2 and all(c.inputs[0].type.layout == NHWC for c in convs), name
    assert not any(node.op == "relayout" for _, node in result.ir.walk())
    assert torch2keras.count_transposes(result.ir) == 0
    path = _check_runs(result, model, [(x_pos,), (x_neg,)], tmp_path, "control_if_nhwc")  # both branches
    assert _transposes_per_subgraph(path) == [0, 0, 0]  # main graph and both branches
    # PyTorch-order I/O: one transpose in and one out, none around or inside the cond (there were 8)
    plain = torch2keras.compile(model, x_pos)
    assert torch2keras.count_transposes(plain.ir) == 2
    assert all(n.op != "relayout" for region in plain.ir.nodes_by_op("cond")[0].regions.values() for n in region)


class ConvLoop(nn.Module):
    """A while_loop refining a conv feature map (carried NHWC) until it is small or 6 steps passed."""

    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(3, 8, 1)
        self.step = nn.Conv2d(8, 8, 3, padding=1)
        self.post = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        def cond_fn(i, f):
            return (i < 6) & (f.abs().mean() > 0.05)

        def body_fn(i, f):
            return i + 1, torch.tanh(self.step(f)) * 0.5

        i, f = torch_while_loop(cond_fn, body_fn, (torch.zeros((), dtype=torch.int64), self.pre(x)))
        return self.post(f), i


class ConvMap(nn.Module):
    """map of two convs over a sequence of images [T, N, C, H, W]."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 4, 1)

    def forward(self, xs):
        return torch_map(lambda img: self.c2(torch.relu(self.c1(img))), xs)


def test_while_loop_carries_an_nhwc_feature_map_without_transposes(tmp_path):
    torch.manual_seed(0)
    model = ConvLoop().eval()
    torch.manual_seed(1)
    x_few, x_more = torch.randn(1, 3, 8, 8) * 0.1, torch.randn(1, 3, 8, 8) * 10
    trips = [int(_torch(model, x)[1]) for x in (x_few, x_more)]
    assert trips[0] < trips[1]  # the trip count follows the data
    result = torch2keras.compile(model, x_few, input_layouts="channels_last", output_layouts="channels_last",
                                 on_mismatch="raise")
    (loop,) = result.ir.nodes_by_op("while_loop")
    assert [v.type.layout for v in loop.inputs] == [None, NHWC] and loop.outputs[1].type.layout == NHWC
    body = loop.regions["body_fn"]
    assert body.inputs[1].type.layout == NHWC and body.outputs[1].type.layout == NHWC
    assert not any(node.op == "relayout" for _, node in result.ir.walk())
    path = _check_runs(result, model, [(x_few,), (x_more,)], tmp_path, "conv_loop")
    assert _transposes_per_subgraph(path) == [0, 0, 0]  # main, cond_fn, body_fn
    assert [int(result.run_keras([x.numpy()])[1]) for x in (x_few, x_more)] == trips


@pytest.mark.parametrize("cls, outside", [(ConvMap, 2), (ConvScan, 3)])
def test_map_and_scan_of_convs_transpose_outside_the_loop(tmp_path, cls, outside):
    """Scanned inputs and stacked results are stored [T, N, H, W, C] (axis 0 first, rows NHWC):
    the transposes run once, outside the loop, instead of in and out of every iteration."""
    torch.manual_seed(0)
    model = cls().eval()
    xs = torch.randn(5, 1, 3, 6, 6)
    result = torch2keras.compile(model, xs, on_mismatch="raise")
    (node,) = [n for n in result.ir.topo_order() if n.regions]
    stacked = (0, 1, 3, 4, 2)
    assert node.inputs[-1].type.layout == stacked and node.outputs[-1].type.layout == stacked
    (region,) = node.regions.values()
    assert all(v.type.layout == NHWC for v in region.inputs) and not region.nodes_by_op("relayout")
    path = _check_runs(result, model, [(xs,), (xs * 3,)], tmp_path, cls.__name__)
    counts = _transposes_per_subgraph(path)
    assert counts[0] == outside and sum(counts[1:]) == 0, counts


def test_verifier_checks_regions_against_operands():
    g = _cond_graph()
    cond = g.nodes_by_op("cond")[0]
    wrong = g.new_region("wrong")
    a = wrong.add_input("a", TensorType((1, 3, 4, 4)))
    wrong.set_outputs(["output_0"], [wrong.add_node("relu", [a]).output])
    cond.attrs["else_branch"] = wrong
    with pytest.raises(VerificationError, match=r"region 'else_branch' takes \(f32\[1,3,4,4\]\), the operands give"):
        g.verify()
    inner = _region(g, "e", "sub")
    inner.nodes_by_op("conv")[0].outputs[0].type = TensorType((1, 5, 8, 8))
    cond.attrs["else_branch"] = inner
    with pytest.raises(VerificationError, match="in region 'else_branch'"):
        g.verify()


def test_verifier_checks_region_layouts_against_operands():
    from torch2keras.passes import AssignLayout

    g = _cond_graph()
    PassManager([AssignLayout(input_layouts="channels_last", output_layouts="channels_last")]).run(g)
    cond = g.nodes_by_op("cond")[0]
    assert cond.inputs[1].type.layout == NHWC
    then_branch = cond.regions["then_branch"]
    assert then_branch.inputs[0].type.layout == NHWC and then_branch.outputs[0].type.layout == NHWC
    assert not any(n.op == "relayout" for _, n in g.walk())
    g.verify()
    a = then_branch.inputs[0]
    a.type = a.type.replace(layout=None)
    with pytest.raises(VerificationError, match=r"region 'then_branch' takes inputs stored \(torch\), "
                                                r"the operands give \(\{0,2,3,1\}\)"):
        g.verify()
    a.type = a.type.replace(layout=NHWC)
    out = cond.regions["else_branch"].outputs[0]
    out.type = out.type.replace(layout=None)
    with pytest.raises(VerificationError, match=r"region 'else_branch' returns outputs stored \(torch\)"):
        g.verify()

    m = Graph("rows")  # map slices along axis 0: a scanned input must store it first
    xs = m.add_input("xs", TensorType((5, 2, 4), layout=(1, 0, 2)))
    body = m.new_region("body")
    row = body.add_input("row", TensorType((2, 4)))
    body.set_outputs(["output_0"], [body.add_node("relu", [row]).output])
    m.set_outputs(["y"], [m.add_node("map", [xs], {"body_fn": body, "num_xs": 1},
                                     types=[TensorType((5, 2, 4))]).output])
    with pytest.raises(VerificationError, match="does not store axis 0 first"):
        m.verify()


def test_walk_and_nested_graphs_reach_every_region():
    g = _cond_graph()
    graphs = g.nested_graphs()
    assert [x.name for x in graphs] == ["t", "e", "branches"]
    ops = collections.Counter(node.op for _, node in g.walk())
    assert ops["conv"] == 2 and ops["cond"] == 1 and ops["input"] == 3
    ids = [node.id for _, node in g.walk()]
    assert len(ids) == len(set(ids))  # new_region shares the id counter


def test_get_attr_constants_inside_a_branch():
    """A weight read with get_attr inside the branch (not passed as an operand) becomes a constant there."""
    from torch2keras.backend_keras import emit_model
    from torch2keras.frontend_torch import capture, lower
    from torch2keras.frontend_torch.calls import fetch_attr
    from torch2keras.passes import default_pipeline

    torch.manual_seed(0)
    model = ControlIfCond().eval()
    x_pos, x_neg = _inputs_on_both_sides(model)
    captured = capture(model, (x_pos,))
    true_gm = fetch_attr(next(n for n in captured.graph.nodes if n.op == "get_attr" and "true" in n.name))
    placeholder = next(n for n in true_gm.graph.nodes if n.op == "placeholder" and "conv_true_weight" in n.name)
    true_gm.register_buffer("w_attr", model.conv_true.weight.detach().clone())
    with true_gm.graph.inserting_after(placeholder):
        read = true_gm.graph.get_attr("w_attr")
    placeholder.replace_all_uses_with(read)
    true_gm.recompile()
    graph = lower(captured)
    then_branch = graph.nodes_by_op("cond")[0].regions["then_branch"]
    assert any(n.op == "constant" and n.output.name_hint == "w_attr" for n in then_branch)
    PassManager(default_pipeline()).run(graph)
    keras_model, _ = emit_model(graph)
    for x in (x_pos, x_neg):
        assert max_abs_error(keras_model({"x": x.numpy()}), _torch(model, x)[0]) < ATOL


def test_unsupported_op_inside_a_branch_is_reported_with_the_cond_line():
    class Det(nn.Module):
        def forward(self, v):
            return torch.cond(v.sum() > 0, lambda m: m * torch.linalg.det(m)[:, None, None], lambda m: m - 1, (v,))

    with pytest.raises(torch2keras.UnsupportedOpError) as info:
        torch2keras.compile(Det(), torch.randn(2, 3, 3))
    text = str(info.value)
    assert "aten._linalg_det.default" in text
    line = inspect.getsourcelines(Det.forward)[1] + 1
    assert f"{os.path.basename(__file__)}:{line}" in text
    assert "@torch2keras.lowering(torch.ops.aten._linalg_det.default)" in text  # the stub, found in the branch


def test_explain_names_the_control_flow_lowering_and_emitter():
    import io

    text = torch2keras.explain(torch_while_loop, file=io.StringIO())
    assert "captured as torch.ops.higher_order.while_loop" in text
    assert "lowering: torch2keras.frontend_torch.ops.control.lower_while_loop" in text
    assert "emits IR op 'while_loop' with regions ['cond_fn', 'body_fn']" in text
    assert "backend_keras.emitters.control.emit_control_flow" in text
