"""The IR text form read back: golden text, round trips of every construct, errors, elided weights.

Graphs are built by hand; nothing imports torch, keras or tensorflow.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

from torch2keras.ir import (ElidedArray, ElidedWeightsError, Graph, IRSyntaxError, PassError, SourceLoc, TensorType,
                            VerificationError, load_ir, parse, print_graph, save_ir)
from torch2keras.ir.printer import print_graph_and_weights, printed_names
from torch2keras.ir.storage import IRDumper
from torch2keras.passes import (AssignLayout, CommonSubexpressionElimination, DeadCodeElimination, FoldBatchNorm,
                                FoldConstants, PassManager)

NHWC = (0, 2, 3, 1)
CONV = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1]}


def _arrays(graph: Graph) -> dict[str, object]:
    """Every array attribute (regions included) by printed value name and attribute."""
    names = printed_names(graph)
    return {f"{names[n.outputs[0]]}.{k}": v for _, n in graph.walk() for k, v in n.attrs.items()
            if isinstance(v, (np.ndarray, ElidedArray))}


def _assert_same_arrays(got: Graph, want: Graph) -> None:
    a, b = _arrays(got), _arrays(want)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), key  # bit for bit (nan, -0.0, subnormals...)


# ----------------------------------------------------------------------------- golden text


def _net() -> Graph:
    g = Graph("net")
    x = g.add_input("x", TensorType(("batch", 3, 8, 8)))
    w = g.add_constant(np.linspace(-1, 1, 4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3), "conv.weight")
    b = g.add_constant(np.array([0.5, -1, 2, 0.25], np.float32), "conv.bias")
    loc = SourceLoc(module_path="conv", module_type="Conv2d", file="/src/net.py", line=7, code="y = self.conv(x)")
    y = g.add_node("conv", [x, w, b], CONV, loc=loc).output
    r = g.add_node("relu", [y]).output
    g.set_type(r, r.type.replace(layout=NHWC))
    m = g.add_node("reduce", [r], {"kind": "mean", "axes": [2, 3]}).output
    top = g.add_node("topk", [m], {"k": 2})
    g.set_outputs(["values", "indices"], top.outputs)
    return g


NET_TEXT = """\
graph net
  %x : f32[batch,3,8,8] = input() {name='x'}
  %conv : f32[batch,4,8,8] = conv(%x, %conv_weight, %conv_bias) {dilation=[1,1], groups=1, output_padding=none, padding=[1,1,1,1], stride=[1,1], transposed=false}  # conv net.py:7
  %relu : f32[batch,4,8,8]{0,2,3,1} = relu(%conv)
  %reduce : f32[batch,4] = reduce(%relu) {axes=[2,3], keepdim=false, kind='mean'}
  %topk : f32[batch,2], %topk_1 : i64[batch,2] = topk(%reduce) {axis=-1, k=2, largest=true}
  %conv_weight : f32[4,3,3,3] = constant() {value=<float32[4,3,3,3]>}
  %conv_bias : f32[4] = constant() {value=float32[4][0.5,-1.,2.,0.25]}
  return values=%topk, indices=%topk_1
"""


def test_golden_text_inputs_ops_then_weights():
    g = _net()
    g.verify()
    assert print_graph(g) == NET_TEXT
    parsed = parse(NET_TEXT)
    assert print_graph(parsed) == NET_TEXT
    assert [n.op for n in parsed.topo_order()] == ["input", "constant", "constant", "conv", "relu", "reduce", "topk"]
    conv = parsed.nodes_by_op("conv")[0]
    assert conv.loc == SourceLoc(module_path="conv", file="net.py", line=7)  # what the comment says
    assert [v.name_hint for v in parsed.nodes_by_op("topk")[0].outputs] == ["topk", "topk"]
    assert parsed.meta["elided_weights"] == ["conv_weight"]


def test_values_true_prints_every_weight_and_reads_it_back_exactly():
    g = _net()
    text = print_graph(g, values=True)
    assert "  %conv_weight : f32[4,3,3,3] = constant() {value=float32[4,3,3,3][-1.,-0.9813084,-0.9626168," in text
    parsed = parse(text)
    assert "elided_weights" not in parsed.meta
    _assert_same_arrays(parsed, g)
    assert print_graph(parsed, values=True) == text
    assert print_graph(parsed) == NET_TEXT


# ----------------------------------------------------------------------------- every construct


def _region(parent: Graph, name: str, inputs: list[tuple[str, TensorType]]) -> tuple[Graph, list]:
    r = parent.new_region(name)
    return r, [r.add_input(n, t) for n, t in inputs]


def _control_flow(g: Graph, x, counter, rows) -> list:
    f3 = TensorType((1, 3, 8, 8))
    pred = g.add_node("gt", [g.add_node("reduce", [x], {"kind": "mean"}).output,
                             g.add_constant(np.float32(0), "zero")]).output
    then_r, (a,) = _region(g, "then", [("x", f3)])
    then_r.set_outputs(["output_0"], [then_r.add_node("relu", [a]).output])
    else_r, (a,) = _region(g, "else", [("x", f3)])
    else_r.set_outputs(["output_0"], [else_r.add_node("neg", [a]).output])
    cond = g.add_node("cond", [pred, x], {"then_branch": then_r, "else_branch": else_r}).output

    i64 = TensorType((), "i64")
    limit = g.add_constant(np.int64(5), "limit")
    cond_fn, (i, n) = _region(g, "cond_fn", [("i", i64), ("n", i64)])
    cond_fn.set_outputs(["output_0"], [cond_fn.add_node("lt", [i, n]).output])
    body_fn, (i, n) = _region(g, "body_fn", [("i", i64), ("n", i64)])
    body_fn.set_outputs(["output_0"], [body_fn.add_node("add", [i, body_fn.add_constant(np.int64(1), "one")]).output])
    loop = g.add_node("while_loop", [counter, limit], {"cond_fn": cond_fn, "body_fn": body_fn, "num_carried": 1})

    row = TensorType((3,))
    combine, (c, r) = _region(g, "combine", [("carry", row), ("x", row)])
    combine.set_outputs(["output_0", "output_1"], [combine.add_node("add", [c, r]).output,
                                                   combine.add_node("mul", [c, r]).output])
    init = g.add_constant(np.zeros(3, np.float32), "init")
    scan = g.add_node("scan", [init, rows], {"combine_fn": combine, "num_init": 1, "num_xs": 1})

    body, (r,) = _region(g, "map_body", [("x", row)])
    body.set_outputs(["output_0"], [body.add_node("exp", [r]).output])
    mapped = g.add_node("map", [rows], {"body_fn": body, "num_xs": 1}).output
    return [cond, *loop.outputs, *scan.outputs, mapped]


def _kitchen_sink() -> Graph:
    """Every attribute kind, symbolic dims, layouts, multi-result ops, state, regions."""
    g = Graph("sink")
    x = g.add_input("x", TensorType((1, 3, 8, 8)))
    sym = g.add_input("sym", TensorType(("batch", "s0 - 1", "(s0//2)", "len(s0[0:5:1])", "pool_ceil(h, 3, 2, 0, 1)")))
    flat = g.add_input("flat", TensorType(("batch", 12)))
    counter = g.add_input("counter", TensorType((), "i64"))
    rows = g.add_input("rows", TensorType((5, 3)))
    outs = _control_flow(g, x, counter, rows)
    c = g.add_node("clamp", [x], {"min": -math.inf, "max": 6.0}).output
    e = g.add_node("elu", [c], {"alpha": 1e-05, "scale": -0.0, "input_scale": 1.5e300}).output
    p = g.add_node("pad", [e], {"pads": [0, 0, 0, 0, 1, 1, 2, 2], "value": math.nan}).output
    soft = g.add_node("softmax", [p], {"axis": -1}).output
    red = g.add_node("reduce", [soft], {"kind": "sum", "axes": [1], "keepdim": True}).output
    cast = g.add_node("cast", [red], {"dtype": "i32"}).output
    reshaped = g.add_node("reshape", [flat], {"shape": ["batch", 3, 4]}).output
    srt = g.add_node("sort", [reshaped], {"axis": -1, "descending": True})
    params = {"call": 3, "args": [1.5, None, True, "it's \"quoted\" # not a comment\n", [1, 2]], "kwargs": {"k": {}}}
    custom = g.add_node("custom", [x, sym], {"converter": "my'conv", "params": params},
                        types=[TensorType((1, 3, 8, 8), layout=NHWC), TensorType(("batch", 2), "bool")])
    state = g.add_node("state", [], {"name": "count", "value": np.arange(10, dtype=np.float32), "dtype": "f32"}).output
    ones = g.add_constant(np.ones(10, np.float32), "ones")
    g.add_node("state_update", [g.add_node("add", [state, ones]).output], {"name": "count"})
    consts = [g.add_constant(np.array(v, dtype=dt), f"c_{dt}") for v, dt in [
        ([0.1, 1 / 3, 1e-30, -2.5e16, math.inf, -0.0, 5e-324], "float64"), ([0.1, 65504, -6e-8], "float16"),
        ([-128, 127], "int8"), ([0, 255], "uint8"), ([True, False, True], "bool"), (2**40, "int64")]]
    bf16 = g.add_constant(np.array([1.5, -2.0], np.float32), "bf16", dtype="bf16")
    big = g.add_constant(np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32), "big")
    g.set_outputs([f"out_{i}" for i in range(5)] + ["clamped", "cast", "sorted", "order", "custom", "mask", "my out"]
                  + [f"c{i}" for i in range(len(consts))] + ["bf16", "big"],
                  outs + [c, cast, *srt.outputs, *custom.outputs, sym] + consts + [bf16, big])
    return g


def test_round_trip_of_every_construct_with_and_without_weights(tmp_path):
    g = _kitchen_sink()
    g.verify()
    text, weights = print_graph_and_weights(g)
    assert sorted(weights) == ["big", "ones", "state"]  # the state's initial value is elided like a constant
    assert "f32[batch,s0 - 1,(s0//2),len(s0[0:5:1]),pool_ceil(h, 3, 2, 0, 1)]" in text
    assert "%custom : f32[1,3,8,8]{0,2,3,1}, %custom_1 : bool[batch,2] = custom(%x, %sym)" in text
    assert "  state_update(%add_2) {name='count'}" in text
    assert "params={'call':3,'args':[1.5,none,true,'it\\'s \"quoted\" # not a comment\\n',[1,2]],'kwargs':{'k':{}}}" \
        in text
    assert "region then_branch" in text and "region combine_fn" in text

    bare = parse(text)
    assert print_graph(bare) == text
    assert sorted(bare.meta["elided_weights"]) == ["big", "ones", "state"]
    bare.verify()  # stand-ins have shapes and dtypes: types check

    full = parse(text, weights)
    assert print_graph(full) == text
    full.verify()
    _assert_same_arrays(full, g)
    assert full.outputs[-2].producer.attrs["dtype"] == "bf16"

    path = save_ir(g, str(tmp_path / "sink.ir"))
    assert sorted(np.load(path + ".npz").files) == ["big", "ones", "state"]
    loaded = load_ir(path)
    assert print_graph(loaded) == text and "elided_weights" not in loaded.meta
    _assert_same_arrays(loaded, g)


def test_round_trip_of_a_values_dump():
    g = _kitchen_sink()
    text = print_graph(g, values=True)
    parsed = parse(text)
    _assert_same_arrays(parsed, g)
    assert print_graph(parsed, values=True) == text


def test_regions_are_self_contained_graphs_named_after_their_parent():
    g = parse(print_graph(_kitchen_sink()))
    cond = g.nodes_by_op("cond")[0]
    assert [r.name for r in cond.regions.values()] == ["sink_then_branch", "sink_else_branch"]
    assert cond.regions["then_branch"].input_names == ["x"]
    # names are unique across the dump: the branch input prints as %x_1, the graph's own as %x
    assert "      %x_1 : f32[1,3,8,8] = input() {name='x'}" in print_graph(g)


def test_layouts_assigned_round_trips_and_keeps_layout_checks_on():
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 3, 8, 8)))
    w = g.add_constant(np.ones((4, 3, 1, 1), np.float32), "w")
    conv = g.add_node("conv", [x, w], {**CONV, "padding": [0, 0, 0, 0]}).output
    g.set_outputs(["y"], [g.add_node("relu", [conv]).output])
    PassManager([AssignLayout()]).run(g)
    text, weights = print_graph_and_weights(g)
    assert text.endswith("  return y=%relu_relayout {layouts_assigned=true}\n")
    parsed = parse(text, weights)
    assert parsed.meta["layouts_assigned"] is True
    parsed.verify()
    # storing the conv's result in PyTorch's order is legal only before layouts are assigned
    broken = text.replace("%conv : f32[1,4,8,8]{0,2,3,1}", "%conv : f32[1,4,8,8]")
    with pytest.raises(VerificationError):
        parse(broken, weights).verify()
    parse(broken.replace(" {layouts_assigned=true}", ""), weights).verify()


def test_state_and_effect_lines():
    text = """\
graph counter
  %x : f32[] = input() {name='x'}
  %count : f32[] = state() {name='count', value=float32[][0.]}
  %add : f32[] = add(%count, %x)
  state_update(%add) {name='count'}
  return y=%add
"""
    g = parse(text)
    g.verify()
    assert print_graph(g) == text
    (update,) = g.nodes_by_op("state_update")
    assert update.outputs == [] and update.inputs[0].producer.op == "add"
    assert g.nodes_by_op("state")[0].attrs["dtype"] == "f32"


def test_hand_written_lines_may_leave_defaults_out():
    g = parse("graph t\n  %x : f32[2,3] = input() {name='x'}\n  %r : f32[2,3] = clamp(%x) {min=0.0}\n"
              "  return y=%r\n")
    assert g.nodes_by_op("clamp")[0].attrs == {"min": 0.0, "max": None}
    assert print_graph(g).splitlines()[2] == "  %r : f32[2,3] = clamp(%x) {max=none, min=0.0}"


# ----------------------------------------------------------------------------- name hints


def _shared_hints() -> Graph:
    """Two convs and their relus under one hint each, as hand-built graphs and passes make them."""
    g = Graph("t")
    x = g.add_input("x", TensorType((1, 3, 8, 8)))
    y = x
    for _ in range(2):
        w = g.add_constant(np.ones((3, 3, 1, 1), np.float32), "w")
        y = g.add_node("relu", [g.add_node("conv", [y, w], {**CONV, "padding": [0, 0, 0, 0]}).output]).output
    g.set_outputs(["y"], [y])
    return g


def test_shared_hints_are_noted_and_passes_name_new_values_alike():
    g = _shared_hints()
    text = print_graph(g)
    assert "  %conv_1 : f32[1,3,8,8] = conv(%relu, %w_1) {dilation=[1,1], groups=1, output_padding=none, " \
           "padding=[0,0,0,0], stride=[1,1], transposed=false}  # hint conv" in text
    assert "  %w_1 : f32[3,3,1,1] = constant() {value=<float32[3,3,1,1]>}  # hint w" in text
    parsed = parse(text, print_graph_and_weights(g)[1])
    assert [v.name_hint for v in parsed.nodes_by_op("conv")[1].outputs] == ["conv"]
    # the layout pass names its transposes after the values they move: the same names either way
    for graph in (g, parsed):
        PassManager([AssignLayout(input_layouts="channels_last"), DeadCodeElimination()]).run(graph)
    assert print_graph(parsed) == print_graph(g)


def test_hints_the_parser_cannot_order_become_the_printed_names():
    """An op printed before a constant of the same hint: a parsed graph creates constants first,
    so it would hand the bare name to the constant; both then keep their printed names as hints."""
    g = Graph("t")
    x = g.add_input("x", TensorType((3,)))
    r = g.add_node("relu", [x], name="k").output
    c = g.add_constant(np.ones(3, np.float32), "k")
    g.set_outputs(["y"], [g.add_node("add", [r, c]).output])
    text = print_graph(g)
    assert "%k : f32[3] = relu(%x)" in text and "%k_1 : f32[3] = constant()" in text and "hint" not in text
    assert print_graph(parse(text)) == text


def test_multi_result_hints():
    text = ("graph t\n  %x : f32[2,5] = input() {name='x'}\n"
            "  %a : f32[2,2], %b : i64[2,2] = topk(%x) {axis=-1, k=2, largest=true}  # hints a,b\n"
            "  %topk : f32[2,2], %topk_1 : i64[2,2] = topk(%x) {axis=-1, k=2, largest=false}  # hint topk\n"
            "  return a=%a, b=%b, c=%topk, d=%topk_1\n")
    g = parse(text)
    assert [v.name_hint for n in g.nodes_by_op("topk") for v in n.outputs] == ["a", "b", "topk", "topk"]
    assert print_graph(g) == text.replace("  # hint topk", "")  # names that say their hints need no note


# ----------------------------------------------------------------------------- errors

HEAD = "graph g\n  %x : f32[2] = input() {name='x'}\n"


@pytest.mark.parametrize("body, line, column, message", [
    ("  %y : f32[2] = relu(%x\n  return y=%y\n", 3, 24,
     "expected ',' or ')' after an operand, found the end of the line"),
    ("  %y : f99[2] = relu(%x)\n  return y=%y\n", 3, 8, "expected a type (one of f16, bf16, f32"),
    ("  %y : f32[2 = relu(%x)\n  return y=%y\n", 3, 24, "expected ']' closing the shape, found the end of the line"),
    ("  %y : f32[2]{0,0} = relu(%x)\n  return y=%y\n", 3, 8, "layout (0, 0) is not a permutation of 1 axes"),
    ("  %y : f32[2] = frobnicate(%x)\n  return y=%y\n", 3, 17, "unknown op 'frobnicate'"),
    ("  %y : f32[2] = relu(%z)\n  return y=%y\n", 3, 22, "%z is not defined"),
    ("  %y : f32[2] = relu(%w)\n  %w : f32[2] = neg(%x)\n  return y=%y\n", 3, 22,
     "%w is used before its definition at line 4"),
    ("  %x : f32[2] = relu(%x)\n  return y=%x\n", 3, 3, "%x is defined twice (first at line 2)"),
    ("  %y : f32[2] = clamp(%x) {min=@}\n  return y=%y\n", 3, 32, "expected a value (a number, a 'string'"),
    ("  %y : f32[2] = clamp(%x) {min=0.0, min=1.0}\n  return y=%y\n", 3, 37, "attribute 'min' is given twice"),
    ("  %y : f32[2] = clamp(%x) {low=0.0}\n  return y=%y\n", 3, 17, "clamp: unknown attribute(s) ['low']"),
    ("  %y : f32[2] = relu(%x, %x)\n  return y=%y\n", 3, 17, "relu: expected 1..1 inputs, got 2"),
    ("  %y : f32[2] = topk(%x) {k=1}\n  return y=%y\n", 3, 17, "topk has 2 result(s), the line names 1"),
    ("  %c : f32[2] = constant() {value=float32[2][1.]}\n  return y=%c\n", 3, 45, "expected 2 values for shape [2]"),
    ("  %c : f32[2] = constant() {value=int32[2][1.5,2]}\n  return y=%c\n", 3, 44,
     "expected an integer for int32, found '1.5'"),
    ("  %y : f32[2] = relu(%x)\n    return y=%y\n", 4, 5, "expected 2 spaces of indentation"),
    ("  %y : f32[2] = relu(%x)\n", 4, 1, "expected 'return' ending the graph's body (opened at line 1)"),
    ("  %y : f32[2] = relu(%x)\n  return y=%y\n  %z : f32[2] = neg(%y)\n", 5, 3,
     "expected the end of the text after the graph's 'return'"),
    ("  %y : f32[2] = relu(%x)\n    region body_fn\n      return\n  return y=%y\n", 4, 5,
     "relu has no region 'body_fn' (its regions: none)"),
    ("  %y : f32[2] = relu(%x) junk\n  return y=%y\n", 3, 26, "expected '{' (attributes), '#' (a comment) or the end"),
    ("  return y=%y {colour=1}\n", 3, 12, "%y is not defined"),
    ("  return {colour=1}\n", 3, 1, "unknown graph metadata ['colour']"),
    ("  %y : f32[2] = custom(%x) {converter='c', params=[<float32[9]>]}\n  return y=%y\n", 3, 17,
     "attribute 'params': an elided array (<dtype[shape]>) stands for a whole attribute"),
])
def test_syntax_errors_name_line_column_and_what_was_expected(body, line, column, message):
    with pytest.raises(IRSyntaxError) as info:
        parse(HEAD + body, source="bad.ir")
    e = info.value
    assert message in str(e)
    assert (e.line, e.column) == (line, column), str(e)
    assert str(e).startswith(f"bad.ir:{line}:{column}: ")
    lines = str(e).splitlines()
    if lines[1:]:  # the line itself, and a caret under the column
        assert lines[2] == "    " + " " * (column - 1) + "^"


def test_region_errors_point_into_the_region():
    text = print_graph(_kitchen_sink()).replace("= relu(%x_1)", "= relu(%x)", 1)
    with pytest.raises(IRSyntaxError, match=r"%x \(line 2\) belongs to another graph: a region reads only its own"):
        parse(text)


def test_first_line_must_name_the_graph():
    with pytest.raises(IRSyntaxError, match=r"1:3: expected 'graph NAME' \(the text's first line\), found '%'"):
        parse("  %x : f32[2] = input() {name='x'}\n")


# ----------------------------------------------------------------------------- elided weights


def _bn_after_conv() -> Graph:
    g = Graph("bn")
    x = g.add_input("x", TensorType((1, 3, 8, 8)))
    w = g.add_constant(np.ones((4, 3, 3, 3), np.float32), "w")
    y = g.add_node("conv", [x, w], CONV).output
    stats = [g.add_constant(np.full(4, v, np.float32), n) for v, n in [(0.5, "mean"), (2.0, "var")]]
    g.set_outputs(["y"], [g.add_node("batch_norm", [y, *stats]).output])
    return g


def test_elided_weights_are_stand_ins_that_refuse_numbers():
    g = parse(print_graph(_bn_after_conv()))
    w = g.nodes_by_op("conv")[0].inputs[1].producer.value
    assert isinstance(w, ElidedArray) and g.meta["elided_weights"] == ["w"]
    assert (w.shape, w.dtype, w.ndim, w.size, np.shape(w), np.ndim(w)) == ((4, 3, 3, 3), np.float32, 4, 108,
                                                                           (4, 3, 3, 3), 4)
    for use in (np.asarray, lambda a: a * 2, lambda a: 1 - a, np.sum, lambda a: a.astype(np.float64),
                lambda a: a.tobytes(), lambda a: a[0], hash, lambda a: np.transpose(a, (1, 0, 2, 3)),
                lambda a: np.concatenate([a, a]), lambda a: a == a, float):
        with pytest.raises(ElidedWeightsError, match=r"the values of constant %w \(float32\[4,3,3,3\]\) are not "
                                                     r"loaded.*load_ir"):
            use(w)
    g.verify()  # types need no values
    with pytest.raises(PassError, match=r"pass 'fold_batchnorm' failed .*the values of constant %w"):
        PassManager([FoldBatchNorm()]).run(g)


def test_passes_that_need_values_say_so():
    g = Graph("t")
    mid = g.add_constant(np.ones((2, 5), np.float32), "mid")  # 10 elements: elided, yet small enough for cse
    a = g.add_node("neg", [mid]).output
    twin = g.add_constant(np.ones((2, 5), np.float32), "twin")
    g.set_outputs(["a", "b"], [a, twin])
    parsed = parse(print_graph(g))
    with pytest.raises(PassError, match=r"fold_constants.*constant %mid"):
        PassManager([FoldConstants()]).run(parsed)
    with pytest.raises(PassError, match=r"cse.*constant %(mid|twin)"):
        PassManager([CommonSubexpressionElimination()]).run(parse(print_graph(g)))
    # passes that only look at types run fine
    PassManager([DeadCodeElimination(), AssignLayout()]).run(parse(print_graph(g)))


def test_weights_that_do_not_match_the_text():
    g = _bn_after_conv()
    text = print_graph(g)
    with pytest.raises(IRSyntaxError, match=r"the weights' 'w' is float64\[4,3,3,3\], the text says "
                                            r"float32\[4,3,3,3\]"):
        parse(text, {"w": np.ones((4, 3, 3, 3))})
    with pytest.warns(UserWarning, match=r"the weights lack 1 elided array\(s\) \(w\)"):
        parsed = parse(text, {})
    assert parsed.meta["elided_weights"] == ["w"]


def test_save_ir_keeps_missing_weights_missing(tmp_path):
    parsed = parse(print_graph(_bn_after_conv()))
    path = save_ir(parsed, str(tmp_path / "bn.ir"))
    assert not os.path.exists(path + ".npz")  # nothing to write: the only large constant has no values
    assert isinstance(load_ir(path).nodes_by_op("conv")[0].inputs[1].producer.value, ElidedArray)


def test_dumper_links_unchanged_weights(tmp_path):
    g = _bn_after_conv()
    dump = IRDumper(str(tmp_path), weights=True)
    first = dump("00_lowered", g)
    second = dump("01_same", g)
    PassManager([FoldBatchNorm(), DeadCodeElimination()]).run(g)
    third = dump("02_folded", g)
    st = [os.stat(p + ".npz") for p in (first, second, third)]
    assert st[0].st_ino == st[1].st_ino and st[0].st_nlink == 2  # one file for the two stages
    assert st[2].st_ino != st[0].st_ino
    assert sorted(np.load(third + ".npz").files) == ["w"]  # the folded weight, under the conv weight's hint
    folded = load_ir(third)
    np.testing.assert_array_equal(folded.nodes_by_op("conv")[0].inputs[1].producer.value,
                                  g.nodes_by_op("conv")[0].inputs[1].producer.value)
    np.testing.assert_array_equal(load_ir(first).nodes_by_op("conv")[0].inputs[1].producer.value, np.ones((4, 3, 3, 3)))
    IRDumper(str(tmp_path))("00_lowered", g)  # a text-only dump over it drops the stale weights file
    assert not os.path.exists(first + ".npz") and os.path.exists(second + ".npz")


def test_pickling_and_copying_keep_stand_ins():
    import copy
    import pickle

    w = parse(print_graph(_bn_after_conv())).nodes_by_op("conv")[0].inputs[1].producer.value
    assert copy.deepcopy(w) is w
    again = pickle.loads(pickle.dumps(w))
    assert isinstance(again, ElidedArray) and again.shape == w.shape and again.key == "w"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert repr(w) == "ElidedArray(%w: float32[4,3,3,3])"
