"""User extensions: custom converters (modules, functions, aten ops) and a custom pattern pass.

Numbers are checked against PyTorch with an explicit tolerance; structure through the IR.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import torch2keras  # noqa: E402
from torch2keras import converters  # noqa: E402
from torch2keras.frontend_torch import LOWERINGS  # noqa: E402
from torch2keras.ir import Graph, TensorType  # noqa: E402
from torch2keras.passes import (AssignLayout, CancelTransposes, DeadCodeElimination, FoldConstants,  # noqa: E402
                                PassManager)
from torch2keras.passes.rewrite import Any, Chain, Const, OneOf, Op, RewritePass, replace_value  # noqa: E402

ATOL = 1e-4


def _max_err(result, model, inputs) -> float:
    with torch.no_grad():
        ref = model(*[t.clone() for t in inputs])
    refs = [r.numpy() for r in torch.utils._pytree.tree_flatten(ref)[0]]
    outs = result.run_keras([t.numpy() for t in inputs])
    assert [o.shape for o in outs] == [r.shape for r in refs]
    return max(float(np.max(np.abs(o.astype(np.float64) - r))) for o, r in zip(outs, refs))


# ----------------------------------------------------------------------------- a custom module


class GatedConv(nn.Module):
    """x * sigmoid(conv(x)): converted as one node by the test's converter."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))


class WithGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.gate = GatedConv(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(self.gate(torch.relu(self.stem(x)))).mean(dim=(2, 3))


def _gate_converter(layout: str):
    """The converter sees x as NHWC ("channels_last") or NCHW ("torch") and must answer in kind."""

    def convert_gate(module: GatedConv, x):
        conv = keras.layers.Conv2D(module.conv.out_channels, 3, padding="same")
        nhwc = x if layout == "channels_last" else keras.ops.transpose(x, (0, 2, 3, 1))
        y = conv(nhwc)
        conv.set_weights([module.conv.weight.detach().numpy().transpose(2, 3, 1, 0),
                          module.conv.bias.detach().numpy()])
        y = y if layout == "channels_last" else keras.ops.transpose(y, (0, 3, 1, 2))
        return keras.ops.multiply(x, keras.ops.sigmoid(y))

    return convert_gate


@pytest.fixture
def registered():
    """Register converters for the test; unregister them afterwards."""
    targets = []

    def register(target, fn, layout="torch"):
        torch2keras.converter(target, layout=layout)(fn)
        targets.append(target)
        return fn

    yield register
    for t in targets:
        converters.unregister(t)


@pytest.mark.parametrize("layout", ["channels_last", "torch"])
def test_custom_module_converter_end_to_end(registered, layout, tmp_path):
    torch.manual_seed(0)
    model = WithGate().eval()
    x = torch.randn(1, 3, 16, 16)
    registered(GatedConv, _gate_converter(layout), layout=layout)
    result = torch2keras.compile(model, x, on_mismatch="raise")
    ops = result.ir.op_counts()
    assert ops.get("custom") == 1
    assert ops.get("conv") == 2  # the gate's own conv stays inside the opaque node
    node = result.ir.nodes_by_op("custom")[0]
    assert node.attrs["converter"].endswith("GatedConv") and node.attrs["layout"] == layout
    assert node.loc.module_path == "gate" and node.loc.module_type == "GatedConv"
    if layout == "channels_last":  # stored the way the converter declared: no transpose around it
        assert node.inputs[0].type.layout == (0, 2, 3, 1) and node.output.type.layout == (0, 2, 3, 1)
    assert _max_err(result, model, (x,)) < ATOL
    assert result.report.ok and result.report.first_mismatch is None
    assert any(c.op == "custom" and c.ok for c in result.report.nodes)
    if layout == "channels_last":  # the converter's Keras code saves and loads (safe mode) with the rest
        loaded = torch2keras.load_model(result.save(str(tmp_path / "gate.keras")))
        y = np.asarray(loaded(result.keras_inputs([x.numpy()]), training=False))
        assert float(np.max(np.abs(y - model(x).detach().numpy()))) < ATOL
    # after compile the module is untouched
    assert "forward" not in model.gate.__dict__


# ----------------------------------------------------------------------------- custom functions


def soft_clip(x, limit=3.0):
    return limit * torch.tanh(x / limit)


def split_stats(x):
    return x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)


class UsesFunctions(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        y = soft_clip(self.conv(x) * 4, limit=2.0)
        mean, peak = split_stats(y)
        return soft_clip(y, 1.5) + mean - peak


def test_custom_function_converters_one_node_per_call(registered):
    registered(soft_clip, lambda x, limit=3.0: limit * keras.ops.tanh(x / limit), layout="any")
    registered(split_stats, lambda x: (keras.ops.mean(x, axis=1, keepdims=True),
                                       keras.ops.max(x, axis=1, keepdims=True)))
    torch.manual_seed(0)
    model = UsesFunctions().eval()
    x = torch.randn(1, 3, 8, 8)
    result = torch2keras.compile(model, x, on_mismatch="raise")
    custom = result.ir.nodes_by_op("custom")
    assert sorted(n.attrs["converter"].rsplit(".", 1)[-1] for n in custom) == ["soft_clip", "soft_clip",
                                                                               "split_stats"]
    limits = sorted(n.attrs["params"].get("kwargs", {}).get("limit", (n.attrs["params"]["args"] + [None])[1])
                    for n in custom if n.attrs["converter"].endswith("soft_clip"))
    assert limits == [1.5, 2.0]
    stats = next(n for n in custom if n.attrs["converter"].endswith("split_stats"))
    assert len(stats.outputs) == 2  # a tuple result: one node, two results
    assert not result.ir.nodes_by_op("tanh")  # tanh only inside the converted calls
    assert _max_err(result, model, (x,)) < ATOL
    assert soft_clip.__module__ == __name__ and globals()["soft_clip"] is soft_clip  # restored


def test_aten_converter_overrides_the_lowering_and_unregister_restores_it(registered):
    target = torch.ops.aten.hardsigmoid.default
    builtin = LOWERINGS[target]
    registered(target, lambda x: keras.ops.clip(x / 6.0 + 0.5, 0.0, 1.0), layout="any")
    assert LOWERINGS[target] is not builtin

    class M(nn.Module):
        def forward(self, x):
            return nn.functional.hardsigmoid(x * 5) + 1

    x = torch.randn(2, 4, 5)
    result = torch2keras.compile(M(), x, on_mismatch="raise")
    (node,) = result.ir.nodes_by_op("custom")
    assert node.attrs["converter"] == "aten.hardsigmoid.default"
    assert not result.ir.nodes_by_op("hardsigmoid")
    assert _max_err(result, M(), (x,)) < ATOL
    converters.unregister(target)
    assert LOWERINGS[target] is builtin


def test_converter_rejects_bad_targets():
    with pytest.raises(TypeError, match="overload"):
        torch2keras.converter(torch.ops.aten.relu)
    with pytest.raises(ValueError, match="layout"):
        torch2keras.converter(soft_clip, layout="NHWC")
    with pytest.raises(TypeError):
        torch2keras.converter(42)


# ----------------------------------------------------------------------------- a custom pass (docs/extending.md)


# docs/extending.md's worked example, verbatim: keep the two in step.
@torch2keras.register_pass
@dataclasses.dataclass(frozen=True)
class FoldScaleIntoLayer(RewritePass):
    """conv/linear -> mul by a constant s, one factor per output channel (or one for all)
    ==>  the layer alone, with W'[o] = W[o] * s[o] and b'[o] = b[o] * s[o].
    Afterwards no such product is left whose layer's result nothing else reads."""

    name = "fold_scale_into_layer"
    pattern = Op("mul", Op(("conv", "linear"), Any("x"), Const("w"), Const("b", optional=True), name="layer"),
                 Const("s"), name="mul", commutative=True)  # layer(x) * s or s * layer(x)

    def check(self, graph, m):
        layer, s = m["layer"], m.array("s")
        if graph.num_uses(layer.output) > 1:
            return f"the {layer.op}'s result has other readers"
        if layer.op == "conv" and layer.attrs["transposed"]:
            return "the conv is transposed"
        rank = layer.output.type.rank
        channels = 1 if layer.op == "conv" else rank - 1  # the output-channel axis
        if s.ndim > rank or any(d != 1 for axis, d in enumerate(s.shape, rank - s.ndim) if axis != channels):
            return "the scale varies along more than the output channels"
        if m["mul"].output.type != layer.output.type:
            return "the product's type differs from the layer's"

    def rewrite(self, graph, m):
        layer, w, b = m["layer"], m.array("w"), m.array("b")
        s = np.broadcast_to(m.array("s").reshape(-1), w.shape[:1])  # one factor per output channel
        inputs = [m["x"], graph.add_constant((w * s.reshape(-1, *[1] * (w.ndim - 1))).astype(w.dtype), "w_scaled")]
        if b is not None:
            inputs.append(graph.add_constant((b * s).astype(b.dtype), "b_scaled"))
        fused = graph.add_node(layer.op, inputs, layer.attrs, types=[layer.output.type], loc=layer.loc,
                               name=f"{layer.output.name_hint}_scaled")
        replace_value(graph, m["mul"].output, fused.output)  # it stands for torch's product


class LayerScaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 4)
        self.gamma = nn.Parameter(torch.rand(4) + 0.5)  # ConvNeXt's layer scale: a learned factor per channel

    def forward(self, x):
        y = torch.relu(self.conv(x) * 0.5)
        return self.gamma * self.fc(y.mean((2, 3)))


def test_docs_show_this_example_verbatim():
    page = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text()
    section = page[page.index("## Custom passes"):]
    for obj in (FoldScaleIntoLayer, LayerScaled):  # getsource includes the decorators
        assert inspect.getsource(obj) in section, f"docs/extending.md's example differs from this file's {obj.__name__}"


def test_custom_pass_folds_layer_scales_and_matches_torch(tmp_path):
    torch.manual_seed(0)
    model = LayerScaled().eval()
    x = torch.randn(1, 3, 16, 16)
    result = torch2keras.compile(model, x, extra_passes=["fold_scale_into_layer"], dump_ir=str(tmp_path),
                                 on_mismatch="raise")
    before = (tmp_path / "02_fold_batchnorm.txt").read_text()
    after = (tmp_path / "03_fold_scale_into_layer.txt").read_text()
    assert before.count("= mul(") == 2 and "= mul(" not in after  # conv * 0.5 and gamma * fc (operands swapped)
    assert "%conv2d_scaled" in after and "%linear_scaled" in after and "_scaled" not in before
    assert "mul" not in result.ir.op_counts()
    outcomes = result.ir.meta["rewrites"]["fold_scale_into_layer"]
    assert list(outcomes.values()) == ["rewritten", "rewritten"]
    assert next(r for r in result.report.passes if r.name == "fold_scale_into_layer").rewrites == {"rewritten": 2}
    assert _max_err(result, model, (x,)) < ATOL
    fused = [c for c in result.report.nodes if c.value.endswith("_scaled")]
    assert len(fused) == 2 and all(c.ok for c in fused)  # they still stand for torch's products (replace_value)


def _scaled_conv_graph(scale: np.ndarray, conv_is_output: bool = False) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 3, 6, 6)))
    w = g.add_constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    conv = g.add_node("conv", [x, w], {"stride": [1, 1], "padding": [1] * 4, "dilation": [1, 1]}).output
    y = g.add_node("mul", [g.add_constant(scale.astype(np.float32), "s"), conv]).output
    g.set_outputs(["y", "conv"] if conv_is_output else ["y"], [y, conv] if conv_is_output else [y])
    return g


def test_rewrite_pass_on_ir():
    scale = np.array([0.5, -2.0, 1.5, 3.0]).reshape(4, 1, 1)
    g = _scaled_conv_graph(scale)
    w = g.nodes_by_op("conv")[0].inputs[1].producer.value
    assert FoldScaleIntoLayer().run(g) is True
    g.verify()
    assert g.op_counts() == {"constant": 1, "conv": 1, "input": 1}  # no bias: none is made
    assert FoldScaleIntoLayer().run(g) is False  # fixpoint: nothing left
    xt = torch.randn(1, 3, 6, 6)
    (conv,) = g.nodes_by_op("conv")
    ref = torch.from_numpy(scale.astype(np.float32)) * nn.functional.conv2d(xt, torch.from_numpy(w), padding=1)
    got = nn.functional.conv2d(xt, torch.from_numpy(conv.inputs[1].producer.value), padding=1)
    assert float((got - ref).abs().max()) < 1e-5

    spatial = _scaled_conv_graph(np.linspace(0.5, 2, 36).reshape(6, 6))  # varies along H and W
    assert FoldScaleIntoLayer().run(spatial) is False
    assert list(spatial.meta["rewrites"]["fold_scale_into_layer"].values()) == [
        "the scale varies along more than the output channels"]

    shared = _scaled_conv_graph(scale, conv_is_output=True)  # the conv's result is read elsewhere
    assert FoldScaleIntoLayer().run(shared) is False
    assert list(shared.meta["rewrites"]["fold_scale_into_layer"].values()) == ["the conv's result has other readers"]


def test_pattern_matching_binds_and_rejects():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    c = g.add_constant(np.ones((2, 3), np.float32), "c")
    add = g.add_node("add", [x, c])
    mul = g.add_node("mul", [add.output, x])
    g.set_outputs(["y"], [mul.output])
    m = Op("mul", Op("add", Any("a"), Const("k"), name="inner"), Any("b"), name="outer").match(g, mul)
    assert m is not None and m["inner"] is add and m["a"] is x and m["b"] is x
    assert np.array_equal(m.array("k"), np.ones((2, 3)))
    assert m.matched == [add, mul]
    assert Op("mul", Op("add", Const("a"), Any()), Any()).match(g, mul) is None  # x is not a constant
    assert Op("mul", Any()).match(g, mul) is None  # arity differs and rest=False
    assert Op("mul", Any(), rest=True).match(g, mul) is not None
    assert Op(("add", "sub"), Any(), Any(), where=lambda n: n.output.type.rank == 2).match(g, add) is not None


def test_pattern_commutative_chain_and_one_of():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    c = g.add_constant(np.ones((2, 3), np.float32), "c")
    mul = g.add_node("mul", [c, x])  # the constant first
    neg = g.add_node("neg", [mul.output])
    relu = g.add_node("relu", [neg.output])
    g.set_outputs(["y"], [relu.output])
    plain = Op("mul", Any("v", where=lambda v: v.producer.op == "input"), Const("k"), name="m")
    assert plain.match(g, mul) is None
    either = Op("mul", Any("v", where=lambda v: v.producer.op == "input"), Const("k"), name="m", commutative=True)
    m = either.match(g, mul)
    assert m["v"] is x and m["k"] is c and m.matched == [mul]  # the failed order left no bindings behind

    chain = Op("relu", Chain(("neg", "exp"), either, name="between"), name="top")
    m = chain.match(g, relu)
    assert m["between"] == [neg] and m["m"] is mul and m.matched == [mul, neg, relu]
    assert Op("relu", Chain("neg", Op("add", Any()), min_length=0)).match(g, relu) is None
    assert Op("relu", Chain("exp", either, min_length=1)).match(g, relu) is None  # no exp in between
    g.set_outputs(["y", "n"], [relu.output, neg.output])  # neg is read twice now: a single-use chain stops
    assert chain.match(g, relu) is None
    assert Op("relu", Chain("neg", either, single_use=False)).match(g, relu) is not None

    rules = OneOf(scale=either, top=Op("relu", Any("x"), name="top"))
    assert [(m.rule, m.root) for m in rules.matches(g, relu)] == [("top", relu)]
    assert [(m.rule, m.root) for m in rules.matches(g, mul)] == [("scale", mul)]
    assert rules.match(g, neg) is None
    with pytest.raises(ValueError, match="exactly two"):
        Op("mul", Any(), commutative=True)

    h = Graph("t")
    y = h.add_input("y", TensorType((2, 3)))
    r, n = h.add_node("relu", [y]), h.add_node("neg", [y])
    prod = h.add_node("mul", [r.output, n.output])
    h.set_outputs(["z"], [prod.output])
    # the given order half-matches (relu as "either", then neg is no relu) and must be rolled back
    pattern = Op("mul", Op(("relu", "neg"), Any(), name="either"), Op("relu", Any(), name="relu"), commutative=True)
    m = pattern.match(h, prod)
    assert m["either"] is n and m["relu"] is r and m.matched == [r, n, prod]  # inputs in node order, once each


def test_custom_pipeline_with_the_pass_manager_verifies():
    g = _scaled_conv_graph(np.array([2.0]))  # one factor for all channels
    pm = PassManager([DeadCodeElimination(), FoldConstants(), FoldScaleIntoLayer(), AssignLayout(),
                      CancelTransposes()], verify=True)  # checks the pass's postcondition too
    pm.run(g)
    assert "mul" not in g.op_counts()
    assert pm.records[2].name == "fold_scale_into_layer" and pm.records[2].rewrites == {"rewritten": 1}
