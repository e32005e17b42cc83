"""The direct writer's fusion plan, decided on the annotated IR (``backend_tflite/plan.py``), and
what the written file holds because of it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from direct_check import annotated_ir, check_direct, xnnpack_leftovers
from torch2keras.backend_tflite.plan import plan_graph
from torch2keras.backend_tflite.schema import fb


class Fn(nn.Module):
    def __init__(self, fn, **children):
        super().__init__()
        self.fn = fn
        for k, v in children.items():
            setattr(self, k, v)

    def forward(self, *xs):
        return self.fn(self, *xs)


def _node(graph, op):
    [node] = graph.nodes_by_op(op)
    return node


def _conv_act(act):
    return Fn(lambda m, x: act(m.conv(x)), conv=nn.Conv2d(3, 4, 3, padding=1))


IMAGE = (torch.randn(1, 3, 8, 8),)


def test_conv_relu_fuses_and_the_relu_is_written_as_nothing():
    graph = annotated_ir(_conv_act(torch.relu), IMAGE)
    plan = plan_graph(graph)
    conv, relu = _node(graph, "conv"), _node(graph, "relu")
    assert plan.activation == {conv.id: "RELU"}
    assert plan.absorbed == {relu.id: conv.id}


def test_clamps_fuse_only_as_tflite_activations():
    for act, want in ((lambda x: x.clamp(0, 6), "RELU6"), (lambda x: x.clamp(-1, 1), "RELU_N1_TO_1"),
                      (lambda x: x.clamp(min=0), "RELU"), (lambda x: x.clamp(0, 5), None)):
        graph = annotated_ir(_conv_act(act), IMAGE)
        assert plan_graph(graph).activation.get(_node(graph, "conv").id) == want


def test_a_value_read_twice_is_not_fused():
    graph = annotated_ir(Fn(lambda m, x: torch.relu(m.conv(x)) + m.conv(x), conv=nn.Conv2d(3, 4, 1)), IMAGE)
    plan = plan_graph(graph)
    assert not plan.activation and not plan.absorbed


def test_hardsigmoid_after_conv_shifts_the_bias_and_fuses_relu6(tmp_path):
    model = _conv_act(F.hardsigmoid)
    graph = annotated_ir(model, IMAGE)
    plan = plan_graph(graph)
    conv, hs = _node(graph, "conv"), _node(graph, "hardsigmoid")
    assert plan.activation == {conv.id: "RELU6"} and plan.bias_shift == {conv.id: 3.0} and plan.scale_only == {hs.id}
    _, written = check_direct(model, IMAGE, tmp_path, "hardsigmoid")
    assert written.op_counts == {"CONV_2D": 1, "MUL": 1, "TRANSPOSE": 2}


def test_linear_writes_the_reshape_merging_its_rows(tmp_path):
    model = Fn(lambda m, x: m.fc(x).reshape(6, 4), fc=nn.Linear(5, 4))
    inputs = (torch.randn(2, 3, 5),)
    graph = annotated_ir(model, inputs)
    plan = plan_graph(graph)
    linear = _node(graph, "linear")
    assert set(plan.into_reshape) == {linear.id}
    _, written = check_direct(model, inputs, tmp_path, "rows")
    assert written.op_counts == {"FULLY_CONNECTED": 1}


def test_global_pool_writes_the_flatten_after_it(tmp_path):
    model = Fn(lambda m, x: torch.flatten(F.adaptive_avg_pool2d(m.conv(x), 1), 1), conv=nn.Conv2d(3, 4, 1))
    graph = annotated_ir(model, IMAGE)
    assert set(plan_graph(graph).into_reshape) == {_node(graph, "adaptive_avg_pool").id}
    _, written = check_direct(model, IMAGE, tmp_path, "pool")
    assert "RESHAPE" not in written.op_counts and written.op_counts["MEAN"] == 1


def test_equal_slices_of_one_axis_become_one_split(tmp_path):
    model = Fn(lambda m, x: (lambda a, b, c: a * b - c)(*m.conv(x).chunk(3, dim=1)), conv=nn.Conv2d(3, 6, 1))
    graph = annotated_ir(model, IMAGE)
    slices = graph.nodes_by_op("slice")
    assert len(slices) == 3 and set(plan_graph(graph).splits) == {s.id for s in slices}
    _, written = check_direct(model, IMAGE, tmp_path, "split")
    assert written.op_counts.get("SPLIT") == 1 and "STRIDED_SLICE" not in written.op_counts


def test_more_pieces_than_xnnpack_splits_are_slices(tmp_path):
    """Five equal pieces: XNNPACK takes a SPLIT of at most four outputs, so each is a STRIDED_SLICE
    (all delegated); four pieces are one SPLIT."""
    for pieces in (4, 5):
        model = Fn(lambda m, x, n=pieces: sum((k + 1) * torch.sigmoid(p) for k, p in enumerate(m.conv(x).chunk(n, 1))),
                   conv=nn.Conv2d(3, 20, 1))
        _, written = check_direct(model, IMAGE, tmp_path, f"split{pieces}")
        expected = {"SPLIT": 1} if pieces == 4 else {"STRIDED_SLICE": 5}
        assert {k: written.op_counts[k] for k in ("SPLIT", "STRIDED_SLICE") if k in written.op_counts} == expected
        assert xnnpack_leftovers(written.path) == []


def test_unequal_or_partial_slices_stay_slices():
    for fn in (lambda x: x[:, :2] + x[:, 4:], lambda x: x[:, :1] * x[:, 1:]):
        graph = annotated_ir(Fn(lambda m, x, fn=fn: fn(m.conv(x)), conv=nn.Conv2d(3, 6, 1)), IMAGE)
        assert not plan_graph(graph).splits


def test_fused_activation_is_in_the_file(tmp_path):
    """The CONV_2D of conv -> relu6 carries RELU6 (read back from the flatbuffer)."""
    model = _conv_act(F.relu6)
    _, written = check_direct(model, IMAGE, tmp_path, "relu6")
    data = open(written.path, "rb").read()
    m = fb.Model.GetRootAs(data, 0)
    g = m.Subgraphs(0)
    acts = []
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        if m.OperatorCodes(op.OpcodeIndex()).BuiltinCode() == fb.BuiltinOperator.CONV_2D:
            options = fb.Conv2DOptions()
            options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            acts.append(options.FusedActivationFunction())
    assert acts == [fb.ActivationFunctionType.RELU6]
    assert written.op_counts == {"CONV_2D": 1, "TRANSPOSE": 2}
    assert np.isfinite(written.bytes)


class _Block(nn.Module):
    """Attention's q, k and v projections (sizes 8, 4, 4; a bias on k only) and an MLP's gate and
    up (equal sizes) reading one normed value each, as a decoder layer has them."""

    def __init__(self, relu_on_up: bool = False):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 8, bias=False), nn.Linear(8, 4), nn.Linear(8, 4, bias=False)
        self.o = nn.Linear(16, 8, bias=False)
        self.gate, self.up, self.down = nn.Linear(8, 12, bias=False), nn.Linear(8, 12, bias=False), nn.Linear(12, 8)
        self.relu_on_up = relu_on_up

    def forward(self, x):
        h = torch.tanh(x)
        x = x + self.o(torch.cat([self.q(h) * 2, self.k(h), self.v(h) + 1], -1))
        h = torch.tanh(x)
        up = torch.relu(self.up(h)) if self.relu_on_up else self.up(h)
        return x + self.down(F.silu(self.gate(h)) * up)


TOKENS = (torch.randn(1, 5, 8),)


def test_parallel_linears_run_as_one_fully_connected(tmp_path):
    """q, k, v: one FULLY_CONNECTED cut by a STRIDED_SLICE each (their sizes differ); gate and
    up: one cut by a SPLIT. Outputs vs PyTorch (k's bias among the stacked ones)."""
    model = _Block().eval()
    graph = annotated_ir(model, TOKENS)
    linears = {n.loc.module_path: n for n in graph.nodes_by_op("linear")}
    groups = {frozenset(linears[m].id for m in members) for members in (("q", "k", "v"), ("gate", "up"))}
    assert {frozenset(g) for g in plan_graph(graph).parallel.values()} == groups
    _, written = check_direct(model, TOKENS, tmp_path, "parallel")
    assert written.op_counts["FULLY_CONNECTED"] == 4 and written.op_counts["SPLIT"] == 1  # qkv, o, gate+up, down
    assert written.op_counts["STRIDED_SLICE"] == 3


def test_a_linear_fusing_its_activation_runs_alone(tmp_path):
    model = _Block(relu_on_up=True).eval()
    graph = annotated_ir(model, TOKENS)
    plan = plan_graph(graph)
    up = next(n for n in graph.nodes_by_op("linear") if n.loc.module_path == "up")
    assert plan.activation == {up.id: "RELU"} and up.id not in plan.parallel
    _, written = check_direct(model, TOKENS, tmp_path, "alone")
    assert written.op_counts["FULLY_CONNECTED"] == 5 and "SPLIT" not in written.op_counts
