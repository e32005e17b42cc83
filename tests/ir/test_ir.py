"""Unit tests of the framework-free IR: types, graph edits, printer, verifier and op schemas.

Everything here builds graphs by hand; nothing imports torch, keras or tensorflow.
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from torch2keras.ir import Graph, SourceLoc, TensorType, VerificationError, compose, invert
from torch2keras.ir.types import channels_last

IR_DIR = pathlib.Path(__file__).resolve().parents[2] / "torch2keras" / "ir"
NCHW = (1, 3, 8, 8)
NHWC = (0, 2, 3, 1)
CONV_ATTRS = {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1]}


def conv_relu_relu_graph(name: str = "t") -> Graph:
    """input -> conv(w, b) -> relu -> relu -> output, built the same way every time."""
    g = Graph(name)
    x = g.add_input("x", TensorType(NCHW))
    w = g.add_constant(np.ones((4, 3, 1, 1), np.float32), "w")
    b = g.add_constant(np.array([1, 2, 3, -0.5], np.float32), "b")
    # attributes deliberately given out of order: the printer must sort them
    y = g.add_node("conv", [x, w, b], {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1]}).output
    r = g.add_node("relu", [y]).output
    r2 = g.add_node("relu", [r]).output
    g.set_outputs(["y"], [r2])
    return g


CONV_RELU_RELU_TEXT = """\
graph t
  %x : f32[1,3,8,8] = input() {name='x'}
  %conv : f32[1,4,8,8] = conv(%x, %w, %b) {dilation=[1,1], groups=1, output_padding=none, padding=[0,0,0,0], stride=[1,1], transposed=false}
  %relu : f32[1,4,8,8] = relu(%conv)
  %relu_1 : f32[1,4,8,8] = relu(%relu)  # hint relu
  %w : f32[4,3,1,1] = constant() {value=<float32[4,3,1,1]>}
  %b : f32[4] = constant() {value=float32[4][1.,2.,3.,-0.5]}
  return y=%relu_1
"""


# ----------------------------------------------------------------------------- TensorType


def test_tensor_type_physical_shape_and_axis_channels_last():
    t = TensorType((1, 3, 8, 5), layout=NHWC)
    assert t.layout == NHWC
    assert t.perm == NHWC
    assert t.physical_shape == (1, 8, 5, 3)
    # logical axis -> where it is stored
    assert [t.physical_axis(a) for a in range(4)] == [0, 3, 1, 2]
    assert t.physical_axis(-1) == 2  # logical W is physical axis 2
    assert t.physical_axis(-3) == 3  # logical C is last


def test_tensor_type_identity_layout_normalizes_to_none():
    t = TensorType(NCHW, layout=(0, 1, 2, 3))
    assert t.layout is None
    assert t == TensorType(NCHW)
    assert t.perm == (0, 1, 2, 3)
    assert t.physical_shape == NCHW
    assert TensorType(NCHW, layout=[0, 2, 3, 1]).layout == NHWC  # lists become tuples
    # replace() re-normalizes too
    assert TensorType(NCHW, layout=NHWC).replace(layout=(0, 1, 2, 3)).layout is None


@pytest.mark.parametrize("layout", [(0, 1, 2), (0, 0, 1, 2), (0, 1, 2, 4), (1, 2, 3, 4, 0)])
def test_tensor_type_invalid_layout_raises(layout):
    with pytest.raises(ValueError, match="is not a permutation of 4 axes"):
        TensorType(NCHW, layout=layout)


def test_tensor_type_unknown_dtype_raises():
    with pytest.raises(ValueError, match="unknown dtype 'float32'"):
        TensorType(NCHW, dtype="float32")


def test_tensor_type_str():
    assert str(TensorType(NCHW, layout=NHWC)) == "f32[1,3,8,8]{0,2,3,1}"
    assert str(TensorType(NCHW)) == "f32[1,3,8,8]"
    assert str(TensorType(NCHW, layout=(0, 1, 2, 3))) == "f32[1,3,8,8]"
    assert str(TensorType(("N", 16), "i64")) == "i64[N,16]"
    assert str(TensorType((), "bool")) == "bool[]"


def test_tensor_type_static_and_numel():
    assert TensorType((2, 3, 4)).numel == 24
    assert TensorType(()).numel == 1
    sym = TensorType(("N", 3))
    assert not sym.is_static
    with pytest.raises(ValueError, match="symbolic"):
        sym.numel


def test_layout_helpers_agree_with_numpy():
    a = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    first, second = (0, 2, 3, 1), (3, 1, 0, 2)
    assert np.array_equal(np.transpose(np.transpose(a, first), second), np.transpose(a, compose(first, second)))
    assert np.array_equal(np.transpose(np.transpose(a, first), invert(first)), a)
    assert invert(NHWC) == (0, 3, 1, 2)
    assert channels_last(4) == NHWC
    assert channels_last(5) == (0, 2, 3, 4, 1)
    assert channels_last(2) is None


# ----------------------------------------------------------------------------- graph edits


def test_uses_are_counted_per_use():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    add = g.add_node("add", [x, x])
    g.set_outputs(["y"], [add.output])
    assert g.uses(x) == [(add, 0), (add, 1)]
    assert g.users(x) == [add]  # users are deduplicated, uses are not
    assert g.num_uses(x) == 2
    assert g.num_uses(add.output) == 1  # the graph output counts as a use
    assert g.uses(add.output) == []
    # also an output: one more use
    g.set_outputs(["y", "x"], [add.output, x])
    assert g.num_uses(x) == 3


def test_uses_distinguish_results_of_a_multi_output_node():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 5)))
    topk = g.add_node("topk", [x], {"k": 2})
    values, indices = topk.outputs
    assert values.type == TensorType((2, 2)) and indices.type == TensorType((2, 2), "i64")
    neg = g.add_node("neg", [values])
    cast = g.add_node("cast", [indices], {"dtype": "f32"})
    s = g.add_node("add", [neg.output, cast.output])
    g.set_outputs(["y"], [s.output])
    assert g.uses(values) == [(neg, 0)]
    assert g.uses(indices) == [(cast, 0)]
    g.verify()


def test_replace_all_uses_includes_graph_outputs():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    relu = g.add_node("relu", [x])
    r = relu.output
    add = g.add_node("add", [r, r])
    g.set_outputs(["r", "y"], [r, add.output])
    neg = g.add_node("neg", [x])

    assert g.replace_all_uses(r, neg.output) == 3  # two uses by add + one graph output
    assert add.inputs == (neg.output, neg.output)
    assert g.outputs[0] is neg.output and g.outputs[1] is add.output
    assert g.num_uses(r) == 0
    assert g.uses(neg.output) == [(add, 0), (add, 1)]
    g.erase(relu)
    assert relu not in g
    g.verify()
    assert [n.op for n in g] == ["input", "neg", "add"]


def test_replace_all_uses_except_node():
    # insert y = relu(x) between x and its consumers without making relu read itself
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    e = g.add_node("exp", [x])
    g.set_outputs(["y", "x"], [e.output, x])
    relu = g.add_node("relu", [x])
    assert g.replace_all_uses(x, relu.output, except_node=relu) == 2
    assert relu.inputs == (x,)
    assert e.inputs == (relu.output,)
    assert g.outputs == [e.output, relu.output]
    g.verify()


def test_erase_refuses_a_node_with_uses():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    relu = g.add_node("relu", [x])
    neg = g.add_node("neg", [relu.output])
    g.set_outputs(["y"], [neg.output])
    with pytest.raises(ValueError, match="cannot erase Node\\(relu#\\d+\\).*still has uses"):
        g.erase(relu)
    # a graph output is a use too
    with pytest.raises(ValueError, match="cannot erase Node\\(neg#\\d+\\)"):
        g.erase(neg)
    assert relu in g and neg in g and len(g) == 3
    g.set_outputs(["y"], [x])
    g.erase(neg)
    g.erase(relu)
    assert len(g) == 1
    g.verify()


def test_foreign_values_are_rejected():
    g1, g2 = Graph("a"), Graph("b")
    v1 = g1.add_input("x", TensorType((2,)))
    v2 = g2.add_input("x", TensorType((2,)))
    with pytest.raises(ValueError, match="is not defined in this graph"):
        g2.set_outputs(["y"], [v1])
    relu = g2.add_node("relu", [v2])
    with pytest.raises(ValueError, match="is not defined in this graph"):
        g2.set_input(relu, 0, v1)
    assert relu.inputs == (v2,)


def test_rejected_add_node_leaves_graph_unchanged():
    g1, g2 = Graph("a"), Graph("b")
    v1 = g1.add_input("x", TensorType((2,)))
    v2 = g2.add_input("x", TensorType((2,)))
    g2.set_outputs(["y"], [v2])
    with pytest.raises(ValueError, match="is not defined in this graph"):
        g2.add_node("add", [v2, v1])
    assert len(g2) == 1
    g2.verify()


def test_topo_order_is_deterministic_and_independent_of_ids():
    a, b = conv_relu_relu_graph(), Graph("t")
    # b burns a few ids on a node created and erased first: printed names must not depend on ids
    junk = b.add_input("junk", TensorType((1,)))
    b.erase(junk.producer)
    x = b.add_input("x", TensorType(NCHW))
    w = b.add_constant(np.ones((4, 3, 1, 1), np.float32), "w")
    bias = b.add_constant(np.array([1, 2, 3, -0.5], np.float32), "b")
    y = b.add_node("conv", [x, w, bias], CONV_ATTRS).output
    b.set_outputs(["y"], [b.add_node("relu", [b.add_node("relu", [y]).output]).output])
    assert x.id != a.inputs[0].id
    assert str(a) == str(b) == CONV_RELU_RELU_TEXT

    def without_ids(d):
        return {**d, "nodes": [{k: v for k, v in n.items() if k != "id"} for n in d["nodes"]]}

    assert without_ids(a.to_json()) == without_ids(b.to_json())
    assert str(conv_relu_relu_graph()) == str(conv_relu_relu_graph())


def test_topo_order_follows_edges_not_creation_order():
    g = Graph("t")
    x = g.add_input("x", TensorType((2,)))
    relu = g.add_node("relu", [x])  # created first ...
    neg = g.add_node("neg", [x])
    e = g.add_node("exp", [relu.output])
    g.set_outputs(["y"], [e.output])
    g.set_input(relu, 0, neg.output)  # ... but now reads neg
    assert [n.op for n in g.topo_order()] == ["input", "neg", "relu", "exp"]
    assert g.uses(x) == [(neg, 0)]
    lines = str(g).splitlines()
    assert lines[2] == "  %neg : f32[2] = neg(%x)"
    assert lines[3] == "  %relu : f32[2] = relu(%neg)"
    g.verify()


def test_op_counts_and_nodes_by_op():
    g = conv_relu_relu_graph()
    assert g.op_counts() == {"constant": 2, "conv": 1, "input": 1, "relu": 2}
    assert [n.op for n in g.nodes_by_op("relu", "conv")] == ["conv", "relu", "relu"]
    assert g.input_names == ["x"]


# ----------------------------------------------------------------------------- printer


def test_printer_exact_text():
    g = conv_relu_relu_graph()
    text = str(g)
    assert text == CONV_RELU_RELU_TEXT
    lines = text.splitlines()
    assert len(lines) == len(g) + 2  # header, one line per node, return


def test_printer_sorts_attributes_and_shows_defaults():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    c = g.add_node("clamp", [x], {"min": 0.0, "max": 6.0})
    s = g.add_node("reduce", [c.output], {"keepdim": True, "kind": "sum", "axes": [-1]})
    g.set_outputs(["y"], [s.output])
    lines = str(g).splitlines()
    assert lines[2] == "  %clamp : f32[2,3] = clamp(%x) {max=6.0, min=0.0}"
    assert lines[3] == "  %reduce : f32[2,1] = reduce(%clamp) {axes=[-1], keepdim=true, kind='sum'}"


def test_printer_unique_names_from_hints():
    g = Graph("t")
    x = g.add_input("x", TensorType((2,)))
    a = g.add_node("relu", [x]).output
    b = g.add_node("relu", [a], name="relu_1").output  # a hint that collides with a generated name
    c = g.add_node("relu", [b]).output
    d = g.add_node("relu", [c], name="my.block/relu").output  # non-word characters are replaced
    g.set_outputs(["y"], [d])
    names = [line.split(" : ")[0].strip() for line in str(g).splitlines()[1:-1]]
    assert names == ["%x", "%relu", "%relu_1", "%relu_2", "%my_block_relu"]
    assert len(set(names)) == len(names)
    assert str(g).splitlines()[-1] == "  return y=%my_block_relu"


def test_printer_constants_small_with_values_large_elided():
    g = Graph("t")
    small = g.add_constant(np.array([1.5, -2.0, 3.0], np.float32), "small")
    ints = g.add_constant(np.arange(8, dtype=np.int64).reshape(2, 4), "ints")
    scalar = g.add_constant(np.float32(0.25), "s")
    big = g.add_constant(np.zeros((3, 3), np.float32), "big")  # 9 > 8 elements
    g.set_outputs(["a", "b", "c", "d"], [small, ints, scalar, big])
    lines = str(g).splitlines()
    assert lines[1] == "  %small : f32[3] = constant() {value=float32[3][1.5,-2.,3.]}"
    assert lines[2] == "  %ints : i64[2,4] = constant() {value=int64[2,4][0,1,2,3,4,5,6,7]}"
    assert lines[3] == "  %s : f32[] = constant() {value=float32[][0.25]}"
    assert lines[4] == "  %big : f32[3,3] = constant() {value=<float32[3,3]>}"
    assert lines[5] == "  return a=%small, b=%ints, c=%s, d=%big"


def test_printer_layouts_and_source_locations():
    g = Graph("t")
    x = g.add_input("x", TensorType(NCHW))
    loc = SourceLoc(module_path="features.0", module_type="ReLU", file="/src/model.py", line=12)
    r = g.add_node("relu", [x], loc=loc).output
    g.set_type(r, r.type.replace(layout=NHWC))
    g.set_outputs(["y"], [r])
    assert str(g).splitlines()[2] == "  %relu : f32[1,3,8,8]{0,2,3,1} = relu(%x)  # features.0 model.py:12"


def test_json_dump():
    g = conv_relu_relu_graph()
    g.set_type(g.outputs[0], g.outputs[0].type.replace(layout=NHWC))
    d = g.to_json()
    text = json.dumps(d)  # must not raise: no numpy objects left
    assert json.loads(text) == d
    assert d["name"] == "t"
    assert d["inputs"] == ["x"]
    assert d["outputs"] == [{"name": "y", "value": "relu_1"}]
    assert [n["op"] for n in d["nodes"]] == ["input", "constant", "constant", "conv", "relu", "relu"]
    for n in d["nodes"]:
        assert set(n) >= {"id", "op", "inputs", "outputs", "attrs"}
    conv = d["nodes"][3]
    assert conv["inputs"] == ["x", "w", "b"]
    assert conv["outputs"] == [{"name": "conv", "shape": [1, 4, 8, 8], "dtype": "f32", "layout": [0, 1, 2, 3]}]
    assert conv["attrs"] == {"dilation": [1, 1], "groups": 1, "output_padding": None, "padding": [0, 0, 0, 0],
                             "stride": [1, 1], "transposed": False}
    assert list(conv["attrs"]) == sorted(conv["attrs"])
    assert d["nodes"][5]["outputs"][0]["layout"] == [0, 2, 3, 1]
    # small constants carry their data, big ones only shape and dtype
    assert d["nodes"][2]["attrs"]["value"] == {"shape": [4], "dtype": "float32", "data": [1.0, 2.0, 3.0, -0.5]}
    assert d["nodes"][1]["attrs"]["value"] == {"shape": [4, 3, 1, 1], "dtype": "float32"}


# ----------------------------------------------------------------------------- verifier


def _marked_line(message: str) -> str:
    marked = [line for line in message.splitlines() if "<<< here" in line]
    assert len(marked) == 1, message
    return marked[0]


def test_verify_accepts_a_well_formed_graph():
    g = conv_relu_relu_graph()
    g.verify()  # raises VerificationError on any problem
    # the same graph with one wrong result type is refused: the acceptance above means something
    [conv] = g.nodes_by_op("conv")
    g.set_type(conv.output, TensorType((1, 4, 8, 9)))
    with pytest.raises(VerificationError, match="disagrees"):
        g.verify()


def test_verifier_catches_wrong_result_type():
    g = Graph("t")
    x = g.add_input("x", TensorType(NCHW))
    bad = g.add_node("relu", [x], types=[TensorType((1, 3, 8, 9))], name="bad")
    g.set_outputs(["y"], [g.add_node("neg", [bad.output]).output])
    with pytest.raises(VerificationError) as info:
        g.verify()
    msg = str(info.value)
    assert msg.startswith(f"IR verification failed at relu#{bad.id}: result type f32[1,3,8,9] disagrees "
                          "with inferred f32[1,3,8,8]\n")
    assert _marked_line(msg) == "  %bad : f32[1,3,8,9] = relu(%x)  # <<< here"
    assert "\ngraph t\n" in msg and "\n  %neg : f32[1,3,8,9] = neg(%bad)\n  return y=%neg\n" in msg  # whole dump


def test_verifier_catches_wrong_result_dtype():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    bad = g.add_node("exp", [x], types=[TensorType((2, 3), "i32")])
    g.set_outputs(["y"], [bad.output])
    with pytest.raises(VerificationError, match=r"result type i32\[2,3\] disagrees with inferred f32\[2,3\]"):
        g.verify()


def test_verifier_catches_relayout_perm_disagreeing_with_layouts():
    g = Graph("t")
    x = g.add_input("x", TensorType(NCHW))
    # storing NCHW as NHWC takes perm [0,2,3,1]; [0,3,1,2] is its inverse, i.e. wrong
    r = g.add_node("relayout", [x], {"perm": [0, 3, 1, 2]}, types=[TensorType(NCHW, layout=NHWC)])
    g.set_outputs(["y"], [r.output])
    with pytest.raises(VerificationError) as info:
        g.verify()
    msg = str(info.value)
    assert (f"at relayout#{r.id}: relayout [0, 3, 1, 2] maps layout (0, 1, 2, 3) to (0, 2, 3, 1), "
            "not (0, 3, 1, 2)") in msg
    assert _marked_line(msg) == "  %relayout : f32[1,3,8,8]{0,2,3,1} = relayout(%x) {perm=[0,3,1,2]}  # <<< here"
    # the right perm verifies
    r.attrs["perm"] = [0, 2, 3, 1]
    g.verify()


def test_verifier_catches_relayout_with_a_non_permutation():
    g = Graph("t")
    x = g.add_input("x", TensorType(NCHW))
    r = g.add_node("relayout", [x], {"perm": [0, 2, 3]}, types=[TensorType(NCHW)])
    g.set_outputs(["y"], [r.output])
    with pytest.raises(VerificationError, match=r"relayout perm \[0, 2, 3\] is not a permutation"):
        g.verify()


def test_verifier_reports_source_location():
    g = Graph("t")
    x = g.add_input("x", TensorType((2,)))
    loc = SourceLoc(module_path="head", module_type="Linear", file="/src/net.py", line=7)
    bad = g.add_node("neg", [x], types=[TensorType((3,))], loc=loc)
    g.set_outputs(["y"], [bad.output])
    with pytest.raises(VerificationError) as info:
        g.verify()
    assert f"at neg#{bad.id} (module 'head' (Linear), /src/net.py:7)" in str(info.value)
    assert _marked_line(str(info.value)) == "  %neg : f32[3] = neg(%x)  # head net.py:7  <<< here"


def test_verifier_catches_edited_attributes_and_outputs():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    s = g.add_node("softmax", [x], {"axis": -1})
    g.set_outputs(["y"], [s.output])
    g.verify()
    del s.attrs["axis"]
    with pytest.raises(VerificationError, match=r"attributes \[\] differ from schema \['axis'\]"):
        g.verify()
    s.attrs["axis"] = -1
    g.output_names.append("extra")
    with pytest.raises(VerificationError, match="output names and outputs differ in number"):
        g.verify()


def test_verifier_catches_failing_type_inference():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    y = g.add_input("y", TensorType((2, 4)))
    bad = g.add_node("add", [x, y], types=[TensorType((2, 3))])
    g.set_outputs(["z"], [bad.output])
    with pytest.raises(VerificationError, match=r"type inference failed: shapes .* do not broadcast"):
        g.verify()


# ----------------------------------------------------------------------------- schemas


def test_schema_unknown_attribute_raises():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    with pytest.raises(ValueError, match=r"relu: unknown attribute\(s\) \['foo'\]"):
        g.add_node("relu", [x], {"foo": 1})
    with pytest.raises(ValueError, match=r"conv: unknown attribute\(s\) \['pad', 'strides'\]"):
        g.add_node("conv", [x, x], {"strides": [1], "pad": [0], "padding": [0, 0], "dilation": [1]})
    assert len(g) == 1


def test_schema_missing_required_attribute_raises():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    with pytest.raises(ValueError, match="softmax: missing attribute 'axis'"):
        g.add_node("softmax", [x])
    with pytest.raises(ValueError, match="reshape: missing attribute 'shape'"):
        g.add_node("reshape", [x], {})
    assert len(g) == 1


def test_schema_defaults_are_filled_in():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    n = g.add_node("leaky_relu", [x])
    assert n.attrs == {"slope": 0.01}
    c = g.add_node("clamp", [x], {"max": 6.0})
    assert c.attrs == {"min": None, "max": 6.0}


def test_schema_arity_and_unknown_op():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    with pytest.raises(ValueError, match="add: expected 2..2 inputs, got 1"):
        g.add_node("add", [x])
    with pytest.raises(ValueError, match="linear: expected 2..3 inputs, got 4"):
        g.add_node("linear", [x, x, x, x])
    with pytest.raises(KeyError, match="unknown IR op 'frobnicate'"):
        g.add_node("frobnicate", [x])
    assert len(g) == 1


@pytest.mark.parametrize(
    "op, in_shapes, attrs, out_shape",
    [
        ("conv", [(1, 3, 8, 8), (4, 3, 3, 3)], {"stride": [2, 2], "padding": [1, 1, 1, 1], "dilation": [1, 1]},
         (1, 4, 4, 4)),
        ("conv", [(1, 4, 5, 5), (4, 2, 3, 3)], {"stride": [2, 2], "padding": [1, 1, 1, 1], "dilation": [1, 1],
                                                "transposed": True, "output_padding": [1, 1], "groups": 2},
         (1, 4, 10, 10)),
        ("reshape", [(2, 3, 4)], {"shape": [-1, 4]}, (6, 4)),
        ("permute", [(2, 3, 4)], {"perm": [2, 0, 1]}, (4, 2, 3)),
        ("reduce", [(2, 3, 4)], {"kind": "mean", "axes": [1]}, (2, 4)),
        ("matmul", [(5, 2, 3), (3, 7)], {}, (5, 2, 7)),
        ("add", [(2, 1, 4), (3, 1)], {}, (2, 3, 4)),
        ("max_pool", [(1, 3, 7, 7)], {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]}, (1, 3, 4, 4)),
    ],
)
def test_schema_type_inference(op, in_shapes, attrs, out_shape):
    g = Graph("t")
    ins = [g.add_input(f"x{i}", TensorType(s)) for i, s in enumerate(in_shapes)]
    assert g.add_node(op, ins, attrs).output.type.shape == out_shape


def test_reshape_inference_rejects_element_count_change():
    g = Graph("t")
    x = g.add_input("x", TensorType((2, 3)))
    with pytest.raises(ValueError, match="changes the element count"):
        g.add_node("reshape", [x], {"shape": [4, 2]})


# ----------------------------------------------------------------------------- framework independence

FORBIDDEN = {"torch", "keras", "tensorflow", "tf_keras", "jax", "torchvision"}


def test_ir_never_imports_frameworks():
    files = sorted(IR_DIR.rglob("*.py"))
    assert {"graph.py", "types.py", "ops/__init__.py", "ops/schema.py", "verifier.py"} <= \
        {f.relative_to(IR_DIR).as_posix() for f in files}
    seen_roots = set()
    for path in files:
        depth = len(path.relative_to(IR_DIR).parts) - 1  # files of ir/ops/ may import ``..types``
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # a relative import leaving the ir package (``from ..api``) could pull torch in indirectly
                assert node.level <= 1 + depth, f"{path.name}:{node.lineno} imports from outside torch2keras.ir"
                roots = [] if node.level else [node.module.split(".")[0]]
                if not node.level and roots[0] == "torch2keras":
                    assert node.module.startswith("torch2keras.ir"), f"{path.name}:{node.lineno}"
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "import_module", "__import__"):
                roots = [a.value.split(".")[0] for a in node.args[:1] if isinstance(a, ast.Constant)]
            else:
                continue
            seen_roots.update(roots)
            bad = FORBIDDEN.intersection(roots)
            assert not bad, f"{path.name}:{node.lineno} imports {sorted(bad)}"
    assert {"numpy", "networkx", "attrs"} <= seen_roots  # the walk did see the real imports


def test_ir_imports_without_frameworks_at_runtime():
    # load torch2keras.ir under a stub parent package, so that the package __init__ (which may
    # legitimately import torch) is not involved, then use it and look at sys.modules
    code = textwrap.dedent(f"""
        import sys, types
        pkg = types.ModuleType("torch2keras")
        pkg.__path__ = [{str(IR_DIR.parent)!r}]
        sys.modules["torch2keras"] = pkg
        import numpy as np
        import torch2keras.ir, torch2keras.ir.evaluate
        from torch2keras.ir import Graph, TensorType
        g = Graph("t")
        x = g.add_input("x", TensorType((1, 2, 3, 3)))
        g.set_outputs(["y"], [g.add_node("relu", [x]).output])
        g.verify(); str(g); g.to_json()
        print(sorted(m for m in sys.modules if m.split(".")[0] in {sorted(FORBIDDEN)!r}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
