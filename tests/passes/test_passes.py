"""Unit tests of the passes (on hand-built IR) and of their effect through ``torch2keras.compile``.

``compile`` costs about a second per call (Keras model building), so it is used only where
the numerics of the emitted model are the point: batch-norm folding, dump_ir and a custom pass.
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch2keras  # noqa: E402
from torch2keras.ir import schema, Graph, PassError, TensorType, parse, print_graph  # noqa: E402
from torch2keras.passes import (DEFAULT_PIPELINE, PASSES, AssignLayout, CancelTransposes, CanonicalizeReshapes,  # noqa: E402
                                DeadCodeElimination, Fixpoint, FoldBatchNorm, FoldChannelPermutation, FoldConstants,
                                Pass, PassManager, default_pipeline, get_pass, register_pass)
from torch2keras.passes.layout import relayout_perm  # noqa: E402

NCHW = (1, 3, 8, 8)
NHWC = (0, 2, 3, 1)


def conv_attrs(padding=0, groups=1):
    return {"stride": [1, 1], "padding": [padding] * 4, "dilation": [1, 1], "groups": groups}


def relayouts(g: Graph):
    return g.nodes_by_op("relayout")


def run_on_text(p: Pass, text: str) -> tuple[bool, str]:
    """Whether ``p`` changed the graph ``text`` describes, and the graph's text after it (verified)."""
    manager = PassManager([p])
    graph = parse(text)
    graph.verify()
    manager.run(graph)
    return manager.records[0].changed, print_graph(graph)


# ----------------------------------------------------------------------------- DCE


def test_dce_removes_unused_chain_but_keeps_inputs():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    unused_input = g.add_input("unused", TensorType((4,)))
    r = g.add_node("relu", [x])
    e = g.add_node("exp", [x])
    n = g.add_node("neg", [e.output])  # exp -> neg -> (nothing)
    c = g.add_constant(np.ones((2, 3), np.float32), "c")
    d = g.add_node("add", [n.output, c])  # ... -> add -> (nothing)
    g.set_outputs(["y"], [r.output])

    assert DeadCodeElimination().run(g) is True
    assert g.op_counts() == {"input": 2, "relu": 1}
    assert e not in g and n not in g and d not in g and c.producer not in g
    assert g.input_names == ["x", "unused"] and unused_input.producer in g
    g.verify()
    assert DeadCodeElimination().run(g) is False
    assert g.op_counts() == {"input": 2, "relu": 1}


DCE_IN = """\
graph t
  %x : f32[2,3] = input() {name='x'}
  %unused : f32[4] = input() {name='unused'}
  %relu : f32[2,3] = relu(%x)
  %exp : f32[2,3] = exp(%x)
  %neg : f32[2,3] = neg(%exp)
  %add : f32[2,3] = add(%neg, %c)
  %count : f32[] = state() {name='count', value=float32[][0.]}
  %next : f32[] = add(%count, %one)
  state_update(%next) {name='count'}
  %c : f32[2,3] = constant() {value=float32[2,3][1.,1.,1.,1.,1.,1.]}
  %one : f32[] = constant() {value=float32[][1.]}
  return y=%relu
"""


def test_dce_text_removes_the_dead_chain_and_keeps_inputs_and_effects():
    changed, out = run_on_text(DeadCodeElimination(), DCE_IN)
    assert changed
    assert out == """\
graph t
  %x : f32[2,3] = input() {name='x'}
  %unused : f32[4] = input() {name='unused'}
  %relu : f32[2,3] = relu(%x)
  %count : f32[] = state() {name='count', value=float32[][0.]}
  %next : f32[] = add(%count, %one)
  state_update(%next) {name='count'}
  %one : f32[] = constant() {value=float32[][1.]}
  return y=%relu
"""
    assert run_on_text(DeadCodeElimination(), out) == (False, out)  # nothing dead: the pass must not fire


def test_dce_keeps_nodes_reaching_outputs_and_multi_output_nodes_with_one_used_result():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 5)))
    topk = g.add_node("topk", [x], {"k": 2})  # only the values are used
    g.set_outputs(["y"], [g.add_node("neg", [topk.outputs[0]]).output])
    before = str(g)
    assert DeadCodeElimination().run(g) is False
    assert str(g) == before


UNREAD_STATE_IN = """\
graph t
  %x : f32[2] = input() {name='x'}
  %count : f32[] = state() {name='count', value=float32[][0.]}
  %next : f32[] = add(%count, %one)
  state_update(%next) {name='count'}
  %freq : f32[2] = state() {name='rope.inv_freq', value=float32[2][1.,2.]}
  %scaled : f32[2] = mul(%x, %two)
  state_update(%scaled) {name='rope.inv_freq'}
  %y : f32[2] = add(%scaled, %next)
  %one : f32[] = constant() {value=float32[][1.]}
  %two : f32[2] = constant() {value=float32[2][2.,2.]}
  return y=%y
"""


def test_drop_unread_state_erases_a_state_nothing_reads_and_keeps_a_read_one():
    """``rope.inv_freq`` is rewritten before its use (its value is never read): it goes with its
    update; ``count`` is read (the previous call's value is added to): it stays."""
    changed, out = run_on_text(get_pass("drop_unread_state"), UNREAD_STATE_IN)
    assert changed
    assert "inv_freq" not in out and "%scaled : f32[2] = mul(%x, %two)" in out
    assert "state() {name='count'" in out and "state_update(%next) {name='count'}" in out
    assert run_on_text(get_pass("drop_unread_state"), out) == (False, out)


# ----------------------------------------------------------------------------- constant folding


def test_fold_constants_folds_add_and_reshape_into_one_constant():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([10.0, 20.0, 30.0], np.float32)
    g = Graph("t")
    x = g.add_input("x", TensorType((3, 2)))
    ca, cb = g.add_constant(a, "a"), g.add_constant(b, "b")
    s = g.add_node("add", [ca, cb]).output
    r = g.add_node("reshape", [s], {"shape": [3, -1]}).output
    y = g.add_node("mul", [x, r])
    g.set_outputs(["y"], [y.output])

    assert FoldConstants().run(g) is True
    g.verify()
    assert g.nodes_by_op("add", "reshape") == []
    folded = y.inputs[1]
    assert folded.producer.op == "constant"
    assert folded.type == TensorType((3, 2), "f32")
    expected = (a + b).reshape(3, 2)
    np.testing.assert_array_equal(folded.producer.value, expected)
    assert folded.producer.value.dtype == np.float32
    # the non-constant node is left alone
    assert y in g and y.inputs[0] is x
    assert FoldConstants().run(g) is False
    DeadCodeElimination().run(g)
    assert g.op_counts() == {"constant": 1, "input": 1, "mul": 1}


FOLD_IN = """\
graph t
  %x : f32[3,2] = input() {name='x'}
  %add : f32[2,3] = add(%a, %b)
  %reshape : f32[3,2] = reshape(%add) {shape=[3,-1]}
  %mul : f32[3,2] = mul(%x, %reshape)
  %pool : f32[1,1,1,1] = max_pool(%img) {ceil_mode=false, dilation=none, kernel=[2,2], padding=[0,0], stride=[2,2]}
  %a : f32[2,3] = constant() {value=float32[2,3][0.,1.,2.,3.,4.,5.]}
  %b : f32[3] = constant() {value=float32[3][10.,20.,30.]}
  %img : f32[1,1,2,2] = constant() {value=float32[1,1,2,2][1.,2.,3.,4.]}
  return y=%mul, pool=%pool
"""


def test_fold_constants_text_folds_constant_chains_and_leaves_the_rest():
    changed, out = run_on_text(FoldConstants(), FOLD_IN)
    assert changed
    # each folded op becomes a constant under its own name (max_pool through its numpy reference);
    # the operands it read stay (dce's job)
    assert out == """\
graph t
  %x : f32[3,2] = input() {name='x'}
  %mul : f32[3,2] = mul(%x, %reshape)
  %a : f32[2,3] = constant() {value=float32[2,3][0.,1.,2.,3.,4.,5.]}
  %b : f32[3] = constant() {value=float32[3][10.,20.,30.]}
  %img : f32[1,1,2,2] = constant() {value=float32[1,1,2,2][1.,2.,3.,4.]}
  %add : f32[2,3] = constant() {value=float32[2,3][10.,21.,32.,13.,24.,35.]}
  %reshape : f32[3,2] = constant() {value=float32[3,2][10.,21.,32.,13.,24.,35.]}
  %pool : f32[1,1,1,1] = constant() {value=float32[1,1,1,1][4.]}
  return y=%mul, pool=%pool
"""
    assert run_on_text(FoldConstants(), out) == (False, out)  # mul reads an input: the pass must not fire


def test_fold_constants_keeps_dtype_and_folds_graph_outputs():
    g = Graph("t")
    c = g.add_constant(np.array([1, 2, 3], np.int32), "c")
    m = g.add_node("mul", [c, c]).output
    cast = g.add_node("cast", [m], {"dtype": "f32"}).output
    g.set_outputs(["y"], [cast])
    assert FoldConstants().run(g) is True
    out = g.outputs[0]
    assert out.producer.op == "constant"
    assert out.producer.value.dtype == np.float32
    np.testing.assert_array_equal(out.producer.value, [1.0, 4.0, 9.0])
    g.verify()


def test_fold_constants_skips_unsupported_ops():
    # an op whose schema has no reference implementation (digamma: numpy lacks it)
    assert schema("digamma").reference is None and schema("digamma").no_reference
    g = Graph("t")
    c = g.add_constant(np.ones((1, 2, 4, 4), np.float32), "c")
    p = g.add_node("digamma", [c])
    g.set_outputs(["y"], [p.output])
    assert FoldConstants().run(g) is False
    assert p in g


def test_fold_constants_respects_max_elements():
    def build():
        g = Graph("t")
        c = g.add_constant(np.array([1.5], np.float32), "c")
        e = g.add_node("expand", [c], {"shape": [10, 100]})
        g.set_outputs(["y"], [e.output])
        return g, e

    g, e = build()
    assert FoldConstants(max_elements=999).run(g) is False
    assert e in g and g.op_counts() == {"constant": 1, "expand": 1}

    g, e = build()
    assert FoldConstants(max_elements=1000).run(g) is True
    assert e not in g
    value = g.outputs[0].producer.value
    assert value.shape == (10, 100)
    np.testing.assert_array_equal(value, np.full((10, 100), 1.5, np.float32))


# ----------------------------------------------------------------------------- batch-norm folding (IR level)


def _bn_constants(g: Graph, rng, c: int):
    mean = rng.normal(size=c).astype(np.float32)
    var = rng.uniform(0.3, 3.0, size=c).astype(np.float32)
    gamma = rng.normal(size=c).astype(np.float32)
    beta = rng.normal(size=c).astype(np.float32)
    consts = [g.add_constant(a, n) for a, n in zip((mean, var, gamma, beta), ("mean", "var", "gamma", "beta"))]
    return (mean, var, gamma, beta), consts


def _torch_bn(x, stats, eps=1e-5):
    mean, var, gamma, beta = (torch.from_numpy(a) for a in stats)
    return F.batch_norm(x, mean, var, gamma, beta, training=False, eps=eps)


@pytest.mark.parametrize("groups", [1, 2])
def test_fold_batchnorm_after_conv_ir(groups):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 4, 6, 6)))
    conv = g.add_node("conv", [x, g.add_constant(w, "w"), g.add_constant(b, "b")], conv_attrs(1, groups))
    stats, consts = _bn_constants(g, rng, 4)
    bn = g.add_node("batch_norm", [conv.output, *consts], {"eps": 1e-3})
    g.set_outputs(["y"], [bn.output])

    assert FoldBatchNorm().run(g) is True
    g.verify()
    assert g.nodes_by_op("batch_norm") == [] and bn not in g and conv not in g
    (fused,) = g.nodes_by_op("conv")
    assert g.outputs[0] is fused.output and fused.inputs[0] is x
    assert fused.attrs == conv.attrs
    w2, b2 = fused.inputs[1].producer.value, fused.inputs[2].producer.value
    assert w2.dtype == np.float32 and b2.dtype == np.float32

    xt = torch.from_numpy(rng.normal(size=(1, 4, 6, 6)).astype(np.float32))
    ref = _torch_bn(F.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b), padding=1, groups=groups), stats, 1e-3)
    got = F.conv2d(xt, torch.from_numpy(w2), torch.from_numpy(b2), padding=1, groups=groups)
    assert float((ref - ref.mean()).abs().max()) > 0.5  # the batch norm does something
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)
    assert FoldBatchNorm().run(g) is False


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_fold_batchnorm_before_unpadded_conv_ir(groups):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 4 // groups, 3, 3)).astype(np.float32)
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 4, 6, 6)))
    stats, consts = _bn_constants(g, rng, 4)
    bn = g.add_node("batch_norm", [x, *consts])
    conv = g.add_node("conv", [bn.output, g.add_constant(w, "w")], conv_attrs(0, groups))  # no bias
    g.set_outputs(["y"], [conv.output])

    assert FoldBatchNorm().run(g) is True
    g.verify()
    assert g.nodes_by_op("batch_norm") == []
    (fused,) = g.nodes_by_op("conv")
    assert fused.inputs[0] is x and len(fused.inputs) == 3  # a bias was created
    w2, b2 = fused.inputs[1].producer.value, fused.inputs[2].producer.value

    xt = torch.from_numpy(rng.normal(size=(1, 4, 6, 6)).astype(np.float32))
    ref = F.conv2d(_torch_bn(xt, stats), torch.from_numpy(w), groups=groups)
    got = F.conv2d(xt, torch.from_numpy(w2), torch.from_numpy(b2), groups=groups)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)


def test_fold_batchnorm_refuses_padded_conv_shared_results_and_non_constant_stats():
    rng = np.random.default_rng(2)
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 4, 6, 6)))
    w = g.add_constant(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w")
    # bn -> padded conv: not exact, must stay
    _, consts = _bn_constants(g, rng, 4)
    bn1 = g.add_node("batch_norm", [x, *consts])
    c1 = g.add_node("conv", [bn1.output, w], conv_attrs(1))
    # conv -> bn where the conv's result is also read elsewhere: must stay
    c2 = g.add_node("conv", [c1.output, w], conv_attrs(1))
    _, consts = _bn_constants(g, rng, 4)
    bn2 = g.add_node("batch_norm", [c2.output, *consts])
    side = g.add_node("relu", [c2.output])
    # batch norm whose statistics are computed, not constant: must stay
    mean = g.add_node("reduce", [bn2.output], {"kind": "mean", "axes": [0, 2, 3]}).output
    bn3 = g.add_node("batch_norm", [c2.output, mean, consts[1]])
    g.set_outputs(["a", "b", "c"], [bn2.output, side.output, bn3.output])
    before = str(g)

    assert FoldBatchNorm().run(g) is False
    assert str(g) == before
    assert len(g.nodes_by_op("batch_norm")) == 3
    assert g.meta["rewrites"]["fold_batchnorm"] == {  # every refusal says why
        f"conv#{c1.id}": "the conv pads: its zeros would enter after the batch norm",
        f"batch_norm#{bn2.id}": "the conv's result has other readers",
        f"batch_norm#{bn3.id}": "the batch norm's statistics are not constants",
    }
    assert g.meta["rewrite_counts"]["fold_batchnorm"] == {"rewritten": 0, "refused": 3}


def test_fold_batchnorm_after_linear_ir():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 6)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    g = Graph("t")
    x = g.add_input("x", TensorType((4, 6)))
    lin = g.add_node("linear", [x, g.add_constant(w, "w"), g.add_constant(b, "b")])
    stats, consts = _bn_constants(g, rng, 5)
    g.set_outputs(["y"], [g.add_node("batch_norm", [lin.output, *consts]).output])
    assert FoldBatchNorm().run(g) is True
    g.verify()
    (fused,) = g.nodes_by_op("linear")
    xn = rng.normal(size=(4, 6)).astype(np.float32)
    mean, var, gamma, beta = stats
    ref = ((xn @ w.T + b) - mean) / np.sqrt(var + 1e-5) * gamma + beta
    got = xn @ fused.inputs[1].producer.value.T + fused.inputs[2].producer.value
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def _bn_bn_conv_graph(rng):
    """x -> bn1 -> bn2 -> unpadded conv: folding bn2 puts bn1 right before the new conv."""
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 4, 6, 6)))
    stats1, c1 = _bn_constants(g, rng, 4)
    stats2, c2 = _bn_constants(g, rng, 4)
    bn1 = g.add_node("batch_norm", [x, *c1]).output
    bn2 = g.add_node("batch_norm", [bn1, *c2]).output
    w = rng.normal(size=(8, 4, 3, 3)).astype(np.float32)
    g.set_outputs(["y"], [g.add_node("conv", [bn2, g.add_constant(w, "w")], conv_attrs(0)).output])
    return g, (stats1, stats2, w)


def test_fold_batchnorm_folds_a_chain_of_batch_norms_to_the_fixpoint():
    rng = np.random.default_rng(4)
    g, (stats1, stats2, w) = _bn_bn_conv_graph(rng)
    assert FoldBatchNorm().run(g) is True
    g.verify()
    assert g.op_counts() == {"constant": 2, "conv": 1, "input": 1}  # the folded inputs' constants are erased too
    (fused,) = g.nodes_by_op("conv")
    assert list(g.meta["rewrites"]["fold_batchnorm"].values()) == ["rewritten", "rewritten"]
    xt = torch.from_numpy(rng.normal(size=(1, 4, 6, 6)).astype(np.float32))
    ref = F.conv2d(_torch_bn(_torch_bn(xt, stats1), stats2), torch.from_numpy(w))
    w2, b2 = fused.inputs[1].producer.value, fused.inputs[2].producer.value
    got = F.conv2d(xt, torch.from_numpy(w2), torch.from_numpy(b2))
    assert float(ref.abs().max()) > 1.0
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)


def test_postcondition_catches_a_pass_that_stops_too_early():
    """One round folds bn2 only; the manager's postcondition check sees bn1 still foldable."""
    g, _ = _bn_bn_conv_graph(np.random.default_rng(5))
    with pytest.raises(PassError) as info:
        PassManager(["dce", FoldBatchNorm(max_rounds=1)]).run(g)
    msg = str(info.value)
    assert msg.startswith("pass 'fold_batchnorm' failed (after ['dce']): postcondition does not hold: conv#")
    assert msg.endswith("can still be rewritten (rule 'before')")
    g, _ = _bn_bn_conv_graph(np.random.default_rng(5))
    PassManager([FoldBatchNorm(max_rounds=1)], verify=False).run(g)  # unchecked, it goes through
    assert len(g.nodes_by_op("batch_norm")) == 1


# ----------------------------------------------------------------------------- batch-norm folding (compile)


def _randomize_bn(bn: torch.nn.modules.batchnorm._BatchNorm, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=gen))
        bn.running_var.copy_(torch.rand(c, generator=gen) * 2.5 + 0.3)
        bn.weight.copy_(torch.randn(c, generator=gen))
        bn.bias.copy_(torch.randn(c, generator=gen))
    return bn


def _check_numerics(result, model, x, tol):
    """Report error on the example input, and an independent check on a fresh input."""
    assert len(result.report.outputs) == 1
    assert result.report.max_abs_error < tol
    fresh = torch.randn(x.shape, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        ref = model(fresh).numpy()
    (got,) = result.run_keras([fresh.numpy()])
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=tol, rtol=0)


def _assert_bn_matters(model, bn, x):
    """The batch norm is far from the identity, so a fold that dropped it would be caught."""
    with torch.no_grad():
        assert float((bn(x) - x).abs().max()) > 0.5


@pytest.fixture(scope="module")
def conv_bn(tmp_path_factory):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), _randomize_bn(torch.nn.BatchNorm2d(4), 1),
                                torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    dump = tmp_path_factory.mktemp("dump_ir")
    result = torch2keras.compile(model, x, dump_ir=str(dump))
    return model, x, result, dump


def test_fold_batchnorm_conv_then_bn(conv_bn):
    model, x, result, _ = conv_bn
    with torch.no_grad():
        _assert_bn_matters(model, model[1], model[0](x))
    counts = result.report.ir_op_counts
    assert "batch_norm" not in counts
    assert counts["conv"] == 1 and counts["relu"] == 1
    _check_numerics(result, model, x, 1e-4)


def _compile_bn_conv(padding, seed):
    torch.manual_seed(seed)
    bn = _randomize_bn(torch.nn.BatchNorm2d(3), seed)
    model = torch.nn.Sequential(bn, torch.nn.Conv2d(3, 5, 3, padding=padding)).eval()
    x = torch.randn(1, 3, 8, 8)
    _assert_bn_matters(model, bn, x)
    return model, x, torch2keras.compile(model, x)


def test_fold_batchnorm_bn_then_unpadded_conv():
    model, x, result = _compile_bn_conv(padding=0, seed=2)
    assert "batch_norm" not in result.report.ir_op_counts
    assert result.report.ir_op_counts["conv"] == 1
    _check_numerics(result, model, x, 1e-4)


def test_no_fold_batchnorm_bn_then_padded_conv():
    model, x, result = _compile_bn_conv(padding=1, seed=3)
    assert result.report.ir_op_counts.get("batch_norm") == 1
    (bn,) = result.ir.nodes_by_op("batch_norm")
    (conv,) = result.ir.users(bn.output)
    assert conv.op == "conv" and conv.attrs["padding"] == [1, 1, 1, 1]
    _check_numerics(result, model, x, 1e-4)


def test_fold_batchnorm_linear_then_bn1d():
    torch.manual_seed(4)
    bn = _randomize_bn(torch.nn.BatchNorm1d(5), 4)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), bn).eval()
    x = torch.randn(4, 6)
    with torch.no_grad():
        _assert_bn_matters(model, bn, model[0](x))
    result = torch2keras.compile(model, x)
    counts = result.report.ir_op_counts
    assert "batch_norm" not in counts
    assert counts.get("linear") == 1
    _check_numerics(result, model, x, 1e-4)


# ----------------------------------------------------------------------------- channel-permutation folding


ORDER = np.array([2, 0, 3, 1])


def _index_select(g: Graph, v, order=ORDER, axis=1):
    return g.add_node("index_select", [v, g.add_constant(np.asarray(order, np.int64), "order")], {"axis": axis})


def test_fold_channel_permutation_into_the_conv_before_it_across_a_relu():
    rng = np.random.default_rng(6)
    w, b = rng.normal(size=(4, 3, 3, 3)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 3, 6, 6)))
    conv = g.add_node("conv", [x, g.add_constant(w, "w"), g.add_constant(b, "b")], conv_attrs(1)).output
    perm = _index_select(g, g.add_node("relu", [conv]).output)
    g.set_outputs(["y"], [perm.output])

    assert FoldChannelPermutation().run(g) is True
    g.verify()
    assert g.op_counts() == {"constant": 2, "conv": 1, "input": 1, "relu": 1}
    assert g.meta["rewrites"]["fold_channel_permutation"] == {f"index_select#{perm.id}": "rewritten"}
    (fused,) = g.nodes_by_op("conv")
    assert g.outputs[0].producer.op == "relu" and g.outputs[0].producer.inputs[0] is fused.output
    xt = torch.from_numpy(rng.normal(size=(1, 3, 6, 6)).astype(np.float32))
    ref = torch.relu(F.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b), padding=1))[:, torch.from_numpy(ORDER)]
    got = torch.relu(F.conv2d(xt, torch.from_numpy(fused.inputs[1].producer.value),
                              torch.from_numpy(fused.inputs[2].producer.value), padding=1))
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-6)
    assert FoldChannelPermutation().run(g) is False


def test_fold_channel_permutation_into_the_conv_after_it_across_a_tanh():
    rng = np.random.default_rng(7)
    w = rng.normal(size=(5, 4, 1, 1)).astype(np.float32)
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 4, 6, 6)))
    perm = _index_select(g, x)
    conv = g.add_node("conv", [g.add_node("tanh", [perm.output]).output, g.add_constant(w, "w")], conv_attrs())
    g.set_outputs(["y"], [conv.output])

    assert FoldChannelPermutation().run(g) is True
    g.verify()
    assert g.op_counts() == {"constant": 1, "conv": 1, "input": 1, "tanh": 1}
    assert g.meta["rewrites"]["fold_channel_permutation"] == {f"conv#{conv.id}": "rewritten"}
    (fused,) = g.nodes_by_op("conv")
    assert fused.inputs[0].producer.op == "tanh" and fused.inputs[0].producer.inputs[0] is x
    xt = torch.from_numpy(rng.normal(size=(1, 4, 6, 6)).astype(np.float32))
    ref = F.conv2d(torch.tanh(xt[:, torch.from_numpy(ORDER)]), torch.from_numpy(w))
    got = F.conv2d(torch.tanh(xt), torch.from_numpy(fused.inputs[1].producer.value))
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)


def test_fold_channel_permutation_refusals_say_why():
    rng = np.random.default_rng(8)
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 4, 6, 6)))
    w = g.add_constant(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "w")
    grouped = g.add_node("conv", [_index_select(g, x).output, g.add_constant(np.ones((4, 2, 1, 1), np.float32), "wg")],
                         conv_attrs(groups=2))  # permutation -> grouped conv
    conv = g.add_node("conv", [x, w], conv_attrs())
    gather = _index_select(g, conv.output, order=[0, 0, 1, 2])  # not a permutation
    spatial = _index_select(g, g.add_node("conv", [x, w], conv_attrs()).output, order=[5, 4, 3, 2, 1, 0], axis=2)
    shared = g.add_node("conv", [x, w], conv_attrs())
    shared_perm = _index_select(g, shared.output)  # the conv's result is a graph output too
    g.set_outputs(["a", "b", "c", "d", "e"], [grouped.output, gather.output, spatial.output, shared.output,
                                              shared_perm.output])
    before = str(g)

    assert FoldChannelPermutation().run(g) is False
    assert str(g) == before
    assert g.meta["rewrites"]["fold_channel_permutation"] == {
        f"conv#{grouped.id}": "the conv is grouped or transposed",
        f"index_select#{gather.id}": "the index is not a permutation of the 4 channels",
        f"index_select#{spatial.id}": "the index_select is not along the conv's channel axis",
        f"index_select#{shared_perm.id}": "the conv's result has other readers",
    }


class _PermutedChannels(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1)
        self.register_buffer("order", torch.from_numpy(ORDER))

    def forward(self, x):
        y = self.a(x)[:, self.order]  # after a conv: into its output channels
        return self.b(torch.relu(y)[:, self.order])  # before one (across the relu): into its input channels


def test_fold_channel_permutation_compiled_matches_torch():
    torch.manual_seed(9)
    model = _PermutedChannels().eval()
    x = torch.randn(1, 3, 8, 8)
    result = torch2keras.compile(model, x)
    assert "index_select" not in result.report.ir_op_counts
    assert result.report.ir_op_counts["conv"] == 2
    records = {r.name: r for r in result.report.passes}
    # the permutation after conv a goes into a's output channels, then the one after the relu
    # too (across the relu): two rewrites of the one pass that folds channel permutations
    assert records["fold_channel_permutation"].rewrites == {"rewritten": 2}
    assert records["fold_channel_permutation"].changed and "fold_channel_shuffle" not in records
    _check_numerics(result, model, x, 1e-5)


class _PermutedIntoNorm(torch.nn.Module):
    """A permuted input read through a batch norm and a scale by one conv, and directly by another."""

    def __init__(self):
        super().__init__()
        self.bn, self.a, self.b = torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 3, 3), torch.nn.Conv2d(4, 3, 3)
        self.register_buffer("order", torch.from_numpy(ORDER))
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 4).reshape(4, 1, 1))

    def forward(self, x):
        y = x[:, self.order]
        return self.a(torch.relu(self.bn(y)) * self.scale) + self.b(y)


def test_fold_channel_permutation_moves_past_a_batch_norm_into_every_reader():
    torch.manual_seed(10)
    model = _PermutedIntoNorm()
    model.train()(torch.randn(8, 4, 8, 8) * 2 + 1)  # running statistics from a random batch
    model.eval()
    x = torch.randn(1, 4, 8, 8)
    result = torch2keras.compile(model, x)
    counts = result.report.ir_op_counts
    assert "index_select" not in counts and counts["conv"] == 2 and counts["batch_norm"] == 1
    assert {r.name: r for r in result.report.passes}["fold_channel_permutation"].rewrites == {"rewritten": 1}
    _check_numerics(result, model, x, 1e-5)


# ----------------------------------------------------------------------------- layout assignment


def conv_relu_conv_graph():
    rng = np.random.default_rng(0)
    g = Graph("t")
    x = g.add_input("x", TensorType(NCHW))
    w1 = g.add_constant(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = g.add_constant(rng.normal(size=(2, 4, 1, 1)).astype(np.float32), "w2")
    c1 = g.add_node("conv", [x, w1], conv_attrs(1)).output
    r = g.add_node("relu", [c1]).output
    c2 = g.add_node("conv", [r, w2], conv_attrs(0)).output
    g.set_outputs(["y"], [c2])
    return g, x, r


def test_assign_layout_default_io_layouts_gives_one_transpose_in_one_out():
    g, x, relu_out = conv_relu_conv_graph()
    PassManager(default_pipeline()).run(g)
    rl = relayouts(g)
    assert len(rl) == 2
    first, last = rl
    assert first.inputs[0] is x and first.attrs["perm"] == [0, 2, 3, 1]
    assert g.outputs[0] is last.output and last.attrs["perm"] == [0, 3, 1, 2]
    assert relu_out.type.layout == NHWC
    assert x.type.layout is None and g.outputs[0].type.layout is None
    assert all(n.output.type.layout == NHWC for n in g.nodes_by_op("conv"))
    assert torch2keras.count_transposes(g) == 2


def test_assign_layout_channels_last_io_has_no_transposes():
    g, x, relu_out = conv_relu_conv_graph()
    PassManager(default_pipeline(input_layouts="channels_last", output_layouts="channels_last")).run(g)
    assert relayouts(g) == []
    assert x.type.layout == NHWC and g.outputs[0].type.layout == NHWC
    assert relu_out.type.layout == NHWC
    assert str(g).splitlines()[1] == "  %x : f32[1,3,8,8]{0,2,3,1} = input() {name='x'}"
    assert torch2keras.count_transposes(g) == 0


def test_assign_layout_fixed_op_gets_torch_order_once():
    # conv -> (reshape, relu) : the reshape needs torch order; the relayout is shared and made once
    g = Graph("t")
    x = g.add_input("x", TensorType(NCHW))
    c = g.add_node("conv", [x, g.add_constant(np.ones((4, 3, 1, 1), np.float32), "w")], conv_attrs()).output
    flat1 = g.add_node("reshape", [c], {"shape": [1, -1]}).output
    flat2 = g.add_node("reshape", [c], {"shape": [4, -1]}).output
    g.set_outputs(["a", "b"], [flat1, flat2])
    assert AssignLayout().run(g) is True
    g.verify()
    rl = relayouts(g)
    assert [r.attrs["perm"] for r in rl] == [[0, 2, 3, 1], [0, 3, 1, 2]]
    back = rl[1].output
    assert [n.op for n in g.users(back)] == ["reshape", "reshape"]
    assert flat1.type.layout is None and flat2.type.layout is None


def test_assign_layout_rejects_unknown_layout_name():
    g, _, _ = conv_relu_conv_graph()
    with pytest.raises(PassError, match=r"pass 'assign_layout' failed .*unknown layout 'nhwc'"):
        PassManager([AssignLayout(input_layouts="nhwc")]).run(g)


# ----------------------------------------------------------------------------- cancel transposes


def _relayout(g, v, perm, layout):
    return g.add_node("relayout", [v], {"perm": list(perm)}, types=[v.type.replace(layout=layout)]).output


def test_cancel_transposes_inverse_pair_vanishes():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3, 4, 5)))
    a = _relayout(g, x, (0, 2, 3, 1), NHWC)
    b = _relayout(g, a, (0, 3, 1, 2), None)
    r = g.add_node("relu", [b])
    g.set_outputs(["y", "b"], [r.output, b])
    g.verify()
    assert CancelTransposes().run(g) is True
    g.verify()
    assert r.inputs[0] is x
    assert g.outputs[1] is x  # the graph output is rewired too
    DeadCodeElimination().run(g)
    assert relayouts(g) == []
    assert CancelTransposes().run(g) is False


CANCEL_IN = """\
graph t
  %x : f32[2,3,4,5] = input() {name='x'}
  %a : f32[2,3,4,5]{0,2,3,1} = relayout(%x) {perm=[0,2,3,1]}
  %b : f32[2,3,4,5] = relayout(%a) {perm=[0,3,1,2]}
  %relu : f32[2,3,4,5] = relu(%b)
  return y=%relu, b=%b
"""


def test_cancel_transposes_text_inverse_pair_vanishes():
    changed, out = run_on_text(CancelTransposes(), CANCEL_IN)
    assert changed
    # the readers of the pair's result (the graph output too) read %x; the pair, dead, is erased
    assert out == """\
graph t
  %x : f32[2,3,4,5] = input() {name='x'}
  %relu : f32[2,3,4,5] = relu(%x)
  return y=%relu, b=%x
"""
    single = """\
graph t
  %x : f32[2,3,4,5] = input() {name='x'}
  %a : f32[2,3,4,5]{0,2,3,1} = relayout(%x) {perm=[0,2,3,1]}
  %relu : f32[2,3,4,5]{0,2,3,1} = relu(%a)
  return y=%relu
"""
    assert run_on_text(CancelTransposes(), single) == (False, single)  # one transpose: nothing to cancel


def test_cancel_transposes_composes_non_inverse_pair():
    shape = (2, 3, 4, 5)
    g = Graph("t")
    x = g.add_input("x", TensorType(shape))
    a = _relayout(g, x, (0, 2, 3, 1), NHWC)
    # from layout (0,2,3,1) to layout (3,2,1,0): physical perm p.index(q[k]) = (2,1,3,0)
    b = _relayout(g, a, (2, 1, 3, 0), (3, 2, 1, 0))
    g.set_outputs(["y"], [g.add_node("neg", [b]).output])
    g.verify()
    assert CancelTransposes().run(g) is True
    g.verify()
    DeadCodeElimination().run(g)
    (only,) = relayouts(g)
    assert only.inputs[0] is x
    assert only.attrs["perm"] == [3, 2, 1, 0]
    assert only.output.type.layout == (3, 2, 1, 0)
    # the composed perm does what the two did, on real data
    arr = np.arange(np.prod(shape)).reshape(shape)
    two = np.transpose(np.transpose(arr, (0, 2, 3, 1)), (2, 1, 3, 0))
    np.testing.assert_array_equal(np.transpose(arr, only.attrs["perm"]), two)


def test_cancel_transposes_keeps_intermediate_with_other_users():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3, 4, 5)))
    a = _relayout(g, x, (0, 2, 3, 1), NHWC)
    b = _relayout(g, a, (0, 3, 1, 2), None)
    ra = g.add_node("relu", [a])
    g.set_outputs(["a", "b"], [ra.output, b])
    CancelTransposes().run(g)
    DeadCodeElimination().run(g)
    g.verify()
    (only,) = relayouts(g)
    assert only.output is a and ra.inputs[0] is a and g.outputs[1] is x


@dataclasses.dataclass(frozen=True)
class _KeepsInversePairs(CancelTransposes):
    """Broken on purpose: refuses to cancel inverse pairs (the postcondition must catch it)."""

    name = "test_passes_keeps_inverse_pairs"

    def check(self, graph, m):
        if m.rule == "compose" and m["src"].type.layout == m["relayout"].output.type.layout:
            return "keeps the pair, wrongly"
        return None


def test_cancel_transposes_postcondition_catches_a_kept_inverse_pair():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3, 4, 5)))
    a = _relayout(g, x, (0, 2, 3, 1), NHWC)
    b = _relayout(g, a, (0, 3, 1, 2), None)
    g.set_outputs(["y"], [g.add_node("relu", [b]).output])
    with pytest.raises(PassError) as info:
        PassManager([_KeepsInversePairs()]).run(g)
    assert str(info.value) == (f"pass 'test_passes_keeps_inverse_pairs' failed (after no passes): postcondition does "
                               f"not hold: relayout#{b.producer.id} reads another relayout, relayout#{a.producer.id} "
                               f"(the two are inverse)")
    outcomes = g.meta["rewrites"]["test_passes_keeps_inverse_pairs"]
    assert outcomes == {f"relayout#{b.producer.id}": "keeps the pair, wrongly"}


def _to_layout(g: Graph, v, layout):
    return _relayout(g, v, relayout_perm(v.type, layout), layout)


@dataclasses.dataclass(frozen=True)
class _RoundTrips(Pass):
    """Test helper: after every conv, a detour through two other layouts and back."""

    name = "test_passes_round_trips"

    def run(self, graph: Graph) -> bool:
        for conv in graph.nodes_by_op("conv"):
            v = conv.output
            first = _to_layout(graph, v, None)
            back = _to_layout(graph, _to_layout(graph, first, (0, 3, 2, 1)), v.type.layout)
            graph.replace_all_uses(v, back, except_node=first.producer)
        return True


def test_cancel_transposes_removes_round_trips_compiled_matches_torch():
    torch.manual_seed(10)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    plain = torch2keras.compile(model, x, passes=["simplify", "assign_layout", "cancel_transposes", "dce"])
    result = torch2keras.compile(model, x, passes=["simplify", "assign_layout", _RoundTrips(), "cancel_transposes",
                                                   "dce"])
    outcomes = result.ir.meta["rewrites"]["cancel_transposes"]
    assert list(outcomes.values()) == ["rewritten"] * 4  # 2 detours: each composed once, then cancelled
    assert result.report.transposes == plain.report.transposes == 2  # the input's and the output's
    assert result.report.ir_op_counts == plain.report.ir_op_counts
    _check_numerics(result, model, x, 1e-5)


# ----------------------------------------------------------------------------- pass manager and custom passes


@register_pass
@dataclasses.dataclass(frozen=True)
class _Boom(Pass):
    name = "test_passes_boom"

    def run(self, graph: Graph) -> bool:
        raise RuntimeError("kaboom")


@register_pass
@dataclasses.dataclass(frozen=True)
class _BreakTypes(Pass):
    """Leaves the IR broken: the verifier must catch it and blame this pass."""

    name = "test_passes_break_types"

    def run(self, graph: Graph) -> bool:
        v = graph.nodes_by_op("relu")[0].output
        graph.set_type(v, TensorType((7,)))
        return True


@register_pass
@dataclasses.dataclass(frozen=True)
class ReluToClamp(Pass):
    """Every relu becomes clamp(min=0)."""

    name = "test_passes_relu_to_clamp"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.nodes_by_op("relu"):
            new = graph.add_node("clamp", [node.inputs[0]], {"min": 0.0}, loc=node.loc,
                                 name=node.output.name_hint).output
            graph.replace_all_uses(node.output, new)
            graph.erase(node)
            changed = True
        return changed


def _small_graph():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    g.add_node("exp", [x])  # dead
    g.set_outputs(["y"], [g.add_node("relu", [x]).output])
    return g


def test_registered_passes_are_found_by_name():
    assert set(DEFAULT_PIPELINE) <= set(PASSES)
    assert DEFAULT_PIPELINE == ["simplify", "fold_batchnorm", "fold_channel_permutation", "group_query_attention",
                                "update_slice_from_select", "hoist_slices", "fold_norm_affine", "canonicalize_reshapes",
                                "assign_layout",
                                "simplify_transposes", "compose_transposes", "cleanup"]
    groups = {name: [p.name for p in get_pass(name).passes] for name in ("simplify", "simplify_transposes", "cleanup")}
    assert groups == {"simplify": ["dce", "fold_constants"],
                      "simplify_transposes": ["fold_constants", "cancel_transposes", "dce"],
                      "cleanup": ["cse", "dce"]}
    assert isinstance(get_pass("test_passes_relu_to_clamp"), ReluToClamp)
    with pytest.raises(KeyError, match="unknown pass 'no_such_pass'"):
        get_pass("no_such_pass")
    with pytest.raises(ValueError, match="already registered"):
        @register_pass
        class _Dup(Pass):
            name = "dce"


def test_pass_manager_wraps_failures_with_pass_chain():
    g = _small_graph()
    with pytest.raises(PassError) as info:
        PassManager(["dce", FoldConstants(), "test_passes_boom", "cancel_transposes"]).run(g)
    msg = str(info.value)
    assert msg == "pass 'test_passes_boom' failed (after ['dce', 'fold_constants']): RuntimeError: kaboom"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert g.op_counts() == {"input": 1, "relu": 1}  # dce did run before the failure

    with pytest.raises(PassError, match=r"^pass 'test_passes_boom' failed \(after no passes\)"):
        PassManager(["test_passes_boom"]).run(_small_graph())


def test_pass_manager_verifies_after_each_pass():
    with pytest.raises(PassError) as info:
        PassManager(["dce", "test_passes_break_types"]).run(_small_graph())
    msg = str(info.value)
    assert msg.startswith("pass 'test_passes_break_types' failed (after ['dce']): IR verification failed at relu#")
    assert "result type f32[7] disagrees with inferred f32[2,3]" in msg
    # with verification off, the broken graph goes through
    PassManager(["test_passes_break_types"], verify=False).run(_small_graph())


def test_pass_manager_hook_and_changed_flags():
    calls = []
    pm = PassManager(["dce", "test_passes_relu_to_clamp", "cancel_transposes"],
                     hook=lambda i, p, g: calls.append((i, p.name, sorted(g.op_counts()))))
    g = pm.run(_small_graph())
    assert calls == [(1, "dce", ["input", "relu"]), (2, "test_passes_relu_to_clamp", ["clamp", "input"]),
                     (3, "cancel_transposes", ["clamp", "input"])]
    assert pm.changed == {"1": True, "2": True, "3": False}  # keyed by pipeline position
    assert set(pm.timings) == {"1", "2", "3"}
    assert [(r.position, r.name, r.runs) for r in pm.records] == [
        ("1", "dce", 1), ("2", "test_passes_relu_to_clamp", 1), ("3", "cancel_transposes", 1)]
    assert str(g).splitlines()[2] == "  %relu : f32[2,3] = clamp(%x) {max=none, min=0.0}"


def test_the_same_pass_at_two_positions_gets_two_records():
    pm = PassManager(["dce", "test_passes_relu_to_clamp", "dce"])
    pm.run(_small_graph())
    assert [(r.position, r.name, r.changed, r.runs) for r in pm.records] == [
        ("1", "dce", True, 1), ("2", "test_passes_relu_to_clamp", True, 1), ("3", "dce", False, 1)]
    assert all(r.seconds > 0 for r in pm.records) and set(pm.timings) == {"1", "2", "3"}


@register_pass
@dataclasses.dataclass(frozen=True)
class ClampToRelu(Pass):
    """Every clamp(min=0) becomes relu: undoes ReluToClamp."""

    name = "test_passes_clamp_to_relu"
    calls: list = dataclasses.field(default_factory=list, compare=False)

    def run(self, graph: Graph) -> bool:
        self.calls.append(1)
        clamps = [n for n in graph.nodes_by_op("clamp") if n.attrs["min"] == 0.0 and n.attrs["max"] is None]
        for node in clamps:
            graph.replace_all_uses(node.output, graph.add_node("relu", [node.inputs[0]]).output)
            graph.erase(node)
        return bool(clamps)


@dataclasses.dataclass(frozen=True)
class _IdleDCE(DeadCodeElimination):
    """Broken on purpose: erases nothing, says nothing changed."""

    name = "test_passes_idle_dce"

    def run(self, graph: Graph) -> bool:
        return False


def _foldable_graph():
    """x * reshape(a + b), plus a dead exp: DCE and constant folding each have work twice."""
    g = Graph("t")
    x = g.add_input("x", TensorType((3, 2)))
    s = g.add_node("add", [g.add_constant(np.arange(6, dtype=np.float32).reshape(2, 3), "a"),
                           g.add_constant(np.ones(3, np.float32), "b")]).output
    r = g.add_node("reshape", [s], {"shape": [3, 2]}).output
    g.add_node("exp", [x])
    g.set_outputs(["y"], [g.add_node("mul", [x, r]).output])
    return g


def test_fixpoint_group_settles_and_records_its_members():
    g = _foldable_graph()
    pm = PassManager([Fixpoint([DeadCodeElimination(), FoldConstants()], name="tidy")])
    pm.run(g)
    # dce (exp) changes, fold (add, reshape) changes, dce (a, b, the add's result) changes, then
    # fold changes nothing: every member ran once since the last change but dce, which is idempotent
    assert [(r.position, r.name, r.changed, r.runs) for r in pm.records] == [
        ("1", "tidy", True, 1), ("1.1", "dce", True, 2), ("1.2", "fold_constants", True, 2)]
    assert g.op_counts() == {"constant": 1, "input": 1, "mul": 1}
    assert DeadCodeElimination().run(g) is False and FoldConstants().run(g) is False  # a fixpoint of both
    np.testing.assert_array_equal(g.outputs[0].producer.inputs[1].producer.value,
                                  (np.arange(6).reshape(2, 3) + 1).reshape(3, 2))


def test_fixpoint_group_confirms_a_change_unless_the_pass_is_idempotent():
    g = _small_graph()  # the exp is dead
    pm = PassManager([Fixpoint(["dce"]), Fixpoint([ReluToClamp()])])
    pm.run(g)
    # dce is idempotent: its change needs no second run; relu -> clamp does not say so: run again
    assert [(r.position, r.name, r.changed, r.runs) for r in pm.records] == [
        ("1", "fixpoint", True, 1), ("1.1", "dce", True, 1),
        ("2", "fixpoint", True, 1), ("2.1", "test_passes_relu_to_clamp", True, 2)]
    assert g.op_counts() == {"clamp": 1, "input": 1}


def test_fixpoint_group_enforces_its_round_bound():
    flip = ClampToRelu()
    group = Fixpoint([ReluToClamp(), flip], max_rounds=3, name="flip_flop")
    with pytest.raises(PassError) as info:
        PassManager([group]).run(_small_graph())
    assert str(info.value) == ("pass 'flip_flop' failed (after no passes): no fixpoint after 3 rounds: "
                               "['test_passes_relu_to_clamp', 'test_passes_clamp_to_relu'] still changed the graph "
                               "in the last round (passes that undo each other, or raise max_rounds)")
    assert len(flip.calls) == 3  # once per round, no more
    with pytest.raises(ValueError, match="max_rounds must be at least 1"):
        Fixpoint(["dce"], max_rounds=0)
    with pytest.raises(ValueError, match="has no passes"):
        Fixpoint([])


def test_fixpoint_group_failures_name_the_member():
    with pytest.raises(PassError) as info:
        PassManager(["dce", Fixpoint(["dce", "test_passes_boom"], name="tidy")]).run(_small_graph())
    assert str(info.value) == ("pass 'tidy' failed (after ['dce']): member 'test_passes_boom' (position 2.2) failed: "
                               "RuntimeError: kaboom")
    g = _small_graph()
    (exp,) = g.nodes_by_op("exp")
    with pytest.raises(PassError) as info:  # a member that leaves its own invariant broken
        PassManager([Fixpoint([_IdleDCE(), FoldConstants()], name="tidy")]).run(g)
    assert str(info.value) == ("pass 'tidy' failed (after no passes): postcondition does not hold: "
                               f"test_passes_idle_dce: exp#{exp.id} is dead (nothing reads its results)")


def test_postconditions_of_dce_cse_and_constant_folding():
    g = _small_graph()
    (exp,) = g.nodes_by_op("exp")
    assert DeadCodeElimination().postcondition(g) == f"exp#{exp.id} is dead (nothing reads its results)"
    DeadCodeElimination().run(g)
    assert DeadCodeElimination().postcondition(g) is None
    g = _foldable_graph()
    assert FoldConstants().postcondition(g).startswith("add#") and FoldConstants().postcondition(g).endswith(
        "computes a constant and was not folded")
    FoldConstants().run(g)
    assert FoldConstants().postcondition(g) is None
    g = Graph("t")
    x = g.add_input("x", TensorType((2,)))
    a, b = g.add_node("relu", [x]), g.add_node("relu", [x])
    g.set_outputs(["a", "b"], [a.output, b.output])
    from torch2keras.passes import CommonSubexpressionElimination

    assert CommonSubexpressionElimination().postcondition(g) == f"relu#{b.id} computes what relu#{a.id} does"
    CommonSubexpressionElimination().run(g)
    assert CommonSubexpressionElimination().postcondition(g) is None


def test_report_records_every_pipeline_position(conv_bn):
    _, _, result, _ = conv_bn
    records = result.report.passes
    top = [(r.position, r.name) for r in records if "." not in r.position]
    assert top == [(str(i), name) for i, name in enumerate(DEFAULT_PIPELINE, start=1)]
    members = {r.position: r.name for r in records if "." in r.position}
    assert members == {"1.1": "dce", "1.2": "fold_constants", "10.1": "fold_constants", "10.2": "cancel_transposes",
                       "10.3": "dce", "12.1": "cse", "12.2": "dce"}
    by_position = {r.position: r for r in records}
    fold = by_position["2"]
    assert fold.name == "fold_batchnorm" and fold.changed and fold.runs == 1 and fold.rewrites == {"rewritten": 1}
    assert by_position["9"].name == "assign_layout" and by_position["9"].changed  # it placed the transposes
    assert not by_position["3"].changed and by_position["3"].rewrites == {}
    assert sum(r.seconds for r in records if "." not in r.position) <= result.report.timings["passes"]
    summary = result.report.summary()
    assert "  passes (* changed the graph):" in summary
    line = next(ln for ln in summary.splitlines() if " fold_batchnorm*" in ln)
    assert line.split()[0] == "2" and line.endswith(" ms  1 rewritten")
    assert result.report.to_dict()["passes"][3]["name"] == "fold_batchnorm"  # after simplify and its 2 members


def test_dump_ir_writes_a_file_per_pass(conv_bn):
    _, _, result, dump = conv_bn
    files = sorted(os.listdir(dump))
    expected = ["00_lowered.txt"] + [f"{i:02d}_{name}.txt" for i, name in enumerate(DEFAULT_PIPELINE, start=1)]
    assert files == expected  # a fixpoint group is one position, one file
    assert "01_simplify.txt" in files and "02_fold_batchnorm.txt" in files and "09_assign_layout.txt" in files
    text = {f: (dump / f).read_text() for f in files}
    assert all(t.startswith("graph Sequential\n") for t in text.values())
    assert " = batch_norm(" in text["00_lowered.txt"] and " = batch_norm(" in text["01_simplify.txt"]
    assert " = batch_norm(" not in text["02_fold_batchnorm.txt"]
    assert " = relayout(" not in text["02_fold_batchnorm.txt"]
    assert " = relayout(" in text["09_assign_layout.txt"]
    assert text[files[-1]] == str(result.ir)


def test_custom_pass_via_extra_passes():
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1),
                                torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        pre = model[:3](x)
    assert float(pre.min()) < -0.1  # the final relu (clamp) actually clips something
    result = torch2keras.compile(model, x, extra_passes=["test_passes_relu_to_clamp"])
    counts = result.report.ir_op_counts
    assert counts.get("clamp") == 2 and "relu" not in counts
    for node in result.ir.nodes_by_op("clamp"):
        assert node.attrs == {"min": 0.0, "max": None}
    _check_numerics(result, model, x, 1e-5)


def test_custom_pipeline_honours_io_layouts():
    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    result = torch2keras.compile(model, x, passes=["dce", "assign_layout", "cancel_transposes", "dce"],
                                 input_layouts="channels_last", output_layouts="channels_last")
    assert result.ir.inputs[0].type.layout == NHWC
    assert result.ir.outputs[0].type.layout == NHWC
    assert result.report.ir_op_counts.get("relayout", 0) == 0


def test_canonicalize_reshapes_moves_row_merges_past_linear():
    """linear(view(x, [L*B, E])) -> view(linear(x)): the rows' order is left to the layout pass."""
    g = Graph("t")
    x = g.add_input("x", TensorType((10, 2, 4, 8)))
    merged = g.add_node("reshape", [x], {"shape": [20, 32]}).output
    w = g.add_constant(np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32), "w")
    y = g.add_node("linear", [merged, w]).output
    back = g.add_node("reshape", [y], {"shape": [10, 2, 16]}).output
    g.set_outputs(["y"], [back])
    assert CanonicalizeReshapes().run(g) is True
    DeadCodeElimination().run(g)
    g.verify()
    lin = g.nodes_by_op("linear")[0]
    assert tuple(lin.inputs[0].type.shape) == (10, 2, 32)
    assert tuple(lin.output.type.shape) == (10, 2, 16)
    assert g.outputs[0] is lin.output  # the merge and the split cancelled
    outcomes = sorted(g.meta["rewrites"]["canonicalize_reshapes"].values())  # the linear, the split reshape, and
    assert outcomes == ["rewritten", "rewritten", "the reshape leaves the rows as they are"]  # the new linear
    assert CanonicalizeReshapes().run(g) is False
    xv = np.random.default_rng(1).standard_normal((10, 2, 4, 8)).astype(np.float32)
    want = (xv.reshape(20, 32) @ w.producer.value.T).reshape(10, 2, 16)
    got = xv.reshape(10, 2, 32) @ lin.inputs[1].producer.value.T
    assert np.allclose(got, want, atol=1e-5)


def test_canonicalize_reshapes_composes_chains_drops_no_ops_and_says_why_not():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3, 4)))
    r1 = g.add_node("reshape", [x], {"shape": [6, 4]})
    r2 = g.add_node("reshape", [r1.output], {"shape": [2, 12]})
    same = g.add_node("reshape", [x], {"shape": [2, 3, 4]})
    relu = g.add_node("relu", [same.output])
    w = g.add_constant(np.random.default_rng(0).standard_normal((5, 12)).astype(np.float32), "w")
    flat = g.add_node("reshape", [x], {"shape": [2, 12]})
    lin = g.add_node("linear", [flat.output, w])  # a flatten: the rows stay as they are
    g.set_outputs(["a", "b", "c"], [r2.output, relu.output, lin.output])

    assert CanonicalizeReshapes().run(g) is True
    g.verify()
    assert r2.inputs[0] is x and r1 not in g  # one reshape per chain
    assert relu.inputs[0] is x and same not in g  # the no-op reshape is gone
    assert lin.inputs[0] is flat.output
    assert g.meta["rewrites"]["canonicalize_reshapes"] == {
        f"reshape#{r2.id}": "rewritten", f"reshape#{same.id}": "rewritten",
        f"linear#{lin.id}": "the reshape leaves the rows as they are"}
    t = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(t.reshape(6, 4).reshape(2, 12), t.reshape(r2.attrs["shape"]))


class _MergedRows(torch.nn.Module):
    """``nn.MultiheadAttention``'s ``view(L * B, E)`` before a linear layer, and the view back."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 8)

    def forward(self, x):
        length, batch, features = x.shape
        return self.lin(x.reshape(length * batch, features)).reshape(length, batch, 8)


def test_canonicalize_reshapes_compiled_matches_torch():
    torch.manual_seed(11)
    model = _MergedRows().eval()
    x = torch.randn(5, 2, 16)
    result = torch2keras.compile(model, x)
    assert result.report.ir_op_counts.get("reshape", 0) == 0  # merged, then the split cancelled it
    assert result.report.ir_op_counts["linear"] == 1
    assert "rewritten" in result.ir.meta["rewrites"]["canonicalize_reshapes"].values()
    _check_numerics(result, model, x, 1e-5)


def test_cse_merges_equal_nodes_and_keeps_different_ones():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    a = g.add_node("relu", [x]).output
    b = g.add_node("relu", [x]).output  # same as a
    c = g.add_node("clamp", [x], {"min": 0.0}).output
    d = g.add_node("clamp", [x], {"min": 1.0}).output  # differs from c by an attribute
    g.set_outputs(["a", "b", "c", "d"], [a, b, c, d])
    from torch2keras.passes import CommonSubexpressionElimination

    assert CommonSubexpressionElimination().run(g) is True
    g.verify()
    assert g.outputs[0] is g.outputs[1] is a
    assert g.outputs[2] is c and g.outputs[3] is d
    assert g.op_counts() == {"clamp": 2, "input": 1, "relu": 1}
    assert CommonSubexpressionElimination().run(g) is False


def test_compose_transposes_shares_one_move_between_slices():
    """Three slices of one tensor, each moved the same way (attention's q, k, v): one transpose."""
    g = Graph("t")
    x = g.add_input("x", TensorType((3, 10, 4, 8)))  # [qkv, length, heads, head_dim]
    outs = []
    for i in range(3):
        s = g.add_node("slice", [x], {"axis": 0, "start": i, "end": i + 1}).output
        r = g.add_node("reshape", [s], {"shape": [10, 4, 8]}).output
        outs.append(g.add_node("permute", [r], {"perm": [1, 0, 2]}).output)  # heads first
    g.set_outputs(["q", "k", "v"], outs)
    PassManager(default_pipeline()).run(g)
    assert torch2keras.count_transposes(g) == 1
    xv = np.random.default_rng(0).standard_normal((3, 10, 4, 8)).astype(np.float32)
    from torch2keras.backend_keras import emit_model

    model, _ = emit_model(g)
    got = model(xv)
    for i, y in enumerate(got):
        assert np.array_equal(np.asarray(y), xv[i].transpose(1, 0, 2))


# ----------------------------------------------------------------------------- control-flow regions


def _branch(g: Graph, name: str, op: str) -> Graph:
    """A region taking f32[1,4,8,8]: ``tile`` (needs PyTorch order) or conv -> relu (channels-last)."""
    r = g.new_region(name)
    a = r.add_input("a", TensorType((1, 4, 8, 8)))
    if op == "tile":
        out = r.add_node("tile", [a], {"reps": [1, 1, 1, 2]}).output
    else:
        w = r.add_constant(np.full((4, 4, 1, 1), 0.25 if name.endswith("t") else -0.25, np.float32), "w")
        out = r.add_node("relu", [r.add_node("conv", [a, w], conv_attrs()).output]).output
    r.set_outputs(["output_0"], [out])
    return r


def test_layout_pipeline_around_regions():
    """Each cond's boundary follows what its branches need (PyTorch order for a ``tile``, NHWC for
    convs), the regions are pinned to it, and cancel/compose/cse keep the two conds apart."""
    g = Graph("two_conds")
    x = g.add_input("x", TensorType(NCHW))
    c = g.add_node("conv", [x, g.add_constant(np.ones((4, 3, 1, 1), np.float32), "w")], conv_attrs()).output
    mean = g.add_node("reduce", [c], {"kind": "mean"}).output
    pred = g.add_node("gt", [mean, g.add_constant(np.float32(0), "zero")]).output
    tiled = g.add_node("cond", [pred, c], {"then_branch": _branch(g, "tile_t", "tile"),
                                           "else_branch": _branch(g, "tile_e", "tile")}, name="tiled")
    convs = g.add_node("cond", [pred, c], {"then_branch": _branch(g, "conv_t", "conv"),
                                           "else_branch": _branch(g, "conv_e", "conv")}, name="convs")
    y = g.add_node("conv", [convs.output, g.add_constant(np.ones((2, 4, 1, 1), np.float32), "w2")], conv_attrs()).output
    g.set_outputs(["tiled", "y"], [tiled.output, y])
    PassManager(default_pipeline()).run(g)  # verifies after every pass
    assert sorted(n.output.name_hint for n in g.nodes_by_op("cond")) == ["convs", "tiled"]
    assert tiled.inputs[1].type.layout is None and tiled.output.type.layout is None
    assert convs.inputs[1].type.layout == NHWC and convs.output.type.layout == NHWC
    for node, layout in ((tiled, None), (convs, NHWC)):
        for region in node.regions.values():
            assert region.inputs[0].type.layout == layout and region.outputs[0].type.layout == layout
            assert relayouts(region) == []
    # x in, c to PyTorch order for the tile branches, y out
    assert torch2keras.count_transposes(g) == 3
