"""User extensions: custom converters (modules, functions, aten ops) and a custom pattern pass.

Numbers are checked against PyTorch with an explicit tolerance; structure through the IR.
"""

from __future__ import annotations

import dataclasses
import os

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
from torch2keras.passes.rewrite import Any, Const, Op, RewritePass, replace_value  # noqa: E402

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


# ----------------------------------------------------------------------------- a custom pass (README example)


# The README's worked example, verbatim: keep the two in step.
@torch2keras.register_pass
@dataclasses.dataclass(frozen=True)
class FuseBatchNormIntoConv(RewritePass):
    """batch_norm -> unpadded conv  ==>  conv with W'[o,i] = W[o,i]*s[i], b'[o] = b[o] + sum W[o,i,..]*t[i]
    (s = gamma/sqrt(var+eps), t = beta - mean*s). Not for padded convs: the zeros would enter after the norm."""

    name = "fuse_bn_into_conv"
    pattern = Op("conv",
                 Op("batch_norm", Any("x"), Const("mean"), Const("var"), Const("gamma"), Const("beta"),
                    name="bn", single_use=True),
                 Const("w"), Const("b"), name="conv")

    def check(self, graph, m):
        conv = m["conv"]
        if any(conv.attrs["padding"]):
            return "the conv pads: the zeros would enter after the batch norm"
        if conv.attrs["groups"] != 1 or conv.attrs["transposed"]:
            return "grouped or transposed conv"

    def rewrite(self, graph, m):
        s = m.array("gamma") / np.sqrt(m.array("var") + m["bn"].attrs["eps"])
        t = m.array("beta") - m.array("mean") * s
        w = m.array("w")
        w2 = w * s[None, :, None, None]
        b2 = m.array("b") + (w * t[None, :, None, None]).sum(axis=(1, 2, 3))
        conv = m["conv"]
        fused = graph.add_node("conv", [m["x"], graph.add_constant(w2, "w_fused"), graph.add_constant(b2, "b_fused")],
                               conv.attrs, types=[conv.output.type], loc=conv.loc, name="conv_fused")
        replace_value(graph, conv.output, fused.output)


class BnThenConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(3)
        self.conv1 = nn.Conv2d(3, 8, 3)  # no padding: the batch norm folds in
        self.bn2 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 4, 3, padding=1)  # pads: must stay apart

    def forward(self, x):
        return self.conv2(self.bn2(torch.relu(self.conv1(self.bn1(x)))))


def _randomize_bn(model):
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


PIPELINE = ["dce", "fold_constants", "fuse_bn_into_conv", "assign_layout", "fold_constants",
            "cancel_transposes", "dce"]  # the default pipeline without fold_batchnorm, plus the user's pass


def test_custom_pass_fuses_bn_before_unpadded_conv(tmp_path):
    torch.manual_seed(0)
    model = _randomize_bn(BnThenConv())
    x = torch.randn(1, 3, 12, 12)
    result = torch2keras.compile(model, x, passes=PIPELINE, dump_ir=str(tmp_path), on_mismatch="raise")
    before = (tmp_path / "02_fold_constants.txt").read_text()
    after = (tmp_path / "03_fuse_bn_into_conv.txt").read_text()
    assert before.count("= batch_norm(") == 2 and after.count("= batch_norm(") == 1
    assert "conv_fused" in after and "conv_fused" not in before
    assert result.ir.op_counts()["batch_norm"] == 1
    outcomes = result.ir.meta["rewrites"]["fuse_bn_into_conv"]
    assert sorted(outcomes.values()) == ["rewritten", "the conv pads: the zeros would enter after the batch norm"]
    assert _max_err(result, model, (x,)) < ATOL
    fused = next(c for c in result.report.nodes if c.value.startswith("conv_fused"))
    assert fused.ok  # the fused conv still stands for torch's conv1 output (replace_value kept the tag)


def _bn_conv_graph(padding: int, bn_uses: int = 1) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 3, 6, 6)))
    c = [g.add_constant(rng.uniform(0.5, 1.5, 3).astype(np.float32), n) for n in ("mean", "var", "gamma", "beta")]
    bn = g.add_node("batch_norm", [x, *c], {"eps": 1e-5}).output
    w = g.add_constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = g.add_constant(np.zeros(4, np.float32), "b")
    conv = g.add_node("conv", [bn, w, b], {"stride": [1, 1], "padding": [padding] * 4, "dilation": [1, 1]}).output
    outs = [conv] + ([g.add_node("relu", [bn]).output] if bn_uses > 1 else [])
    g.set_outputs([f"y{i}" for i in range(len(outs))], outs)
    return g


def test_rewrite_pass_on_ir():
    g = _bn_conv_graph(padding=0)
    assert FuseBatchNormIntoConv().run(g) is True
    g.verify()
    assert g.op_counts().get("batch_norm") is None and g.op_counts()["conv"] == 1
    assert FuseBatchNormIntoConv().run(g) is False  # fixpoint: nothing left

    padded = _bn_conv_graph(padding=1)
    assert FuseBatchNormIntoConv().run(padded) is False
    assert "pads" in next(iter(padded.meta["rewrites"]["fuse_bn_into_conv"].values()))

    shared = _bn_conv_graph(padding=0, bn_uses=2)  # the batch norm has another reader: no match at all
    assert FuseBatchNormIntoConv().run(shared) is False
    assert shared.op_counts()["batch_norm"] == 1


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


def test_custom_pipeline_with_the_pass_manager_verifies():
    g = _bn_conv_graph(padding=0)
    PassManager([DeadCodeElimination(), FoldConstants(), FuseBatchNormIntoConv(), AssignLayout(),
                 CancelTransposes()], verify=True).run(g)
    assert "batch_norm" not in g.op_counts()
