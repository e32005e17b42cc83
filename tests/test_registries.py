"""The registries of all layers agree: every IR op is defined once with all its facets, lowered
only into declared ops, emitted (each emitter, Keras or direct TFLite, in its op family's
module), and its kernels and TFLite names resolve.

``torch2keras.registries.problems()`` does the checking; these tests assert it finds nothing in
the package, and that it does find a half-defined op.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from torch2keras import registries
from torch2keras.ir import Graph, TensorType
from torch2keras.ir.evaluate import evaluate
from torch2keras.ir.interpret import run_graph
from torch2keras.ir.ops import SCHEMAS, define, families
from torch2keras.ir.ops.common import same


@contextlib.contextmanager
def _temporary_op(name: str, **facets):
    define(name, "elementwise", ["x"], same, "agnostic", **facets)
    try:
        yield
    finally:
        del SCHEMAS[name]


def test_the_package_registries_agree():
    assert registries.problems() == []


def test_every_direct_emitter_is_in_its_op_family_module():
    from torch2keras.backend_tflite import EMITTERS as DIRECT

    assert registries.emitter_placement_problems(DIRECT, SCHEMAS, "direct TFLite") == []
    modules = {fn.__module__.rpartition(".")[2] for fn in DIRECT.values()}
    assert modules == {SCHEMAS[op].family for op in DIRECT}  # one module per family it emits, nothing else
    assert {"conv", "linear", "softmax", "add", "lstm", "sdpa"} <= set(DIRECT)


@pytest.mark.parametrize("backend", ["direct TFLite", "Keras"])
def test_an_emitter_in_another_family_module_is_reported(monkeypatch, backend):
    # the conv emitter (nn) registered for relu (elementwise) as well, and one for no IR op
    if backend == "Keras":
        from torch2keras.backend_keras.emitters import EMITTERS
    else:
        from torch2keras.backend_tflite import EMITTERS
    conv = EMITTERS["conv"]
    monkeypatch.setitem(EMITTERS, "relu", conv)
    monkeypatch.setitem(EMITTERS, "no_such_ir_op", conv)
    found = "\n".join(registries.problems())
    where = f"{conv.__module__}.{conv.__name__}"
    assert conv.__module__.endswith(".emitters.nn")
    assert f"{backend} emitter {where} of IR op 'relu' is not in the module of the op's family " \
           f"(emitters/elementwise.py)" in found
    assert f"{backend} emitter {where} is registered for 'no_such_ir_op', which is no IR op" in found
    assert "of IR op 'conv' is not in the module" not in found  # the correctly placed one is not reported


def test_a_direct_emitters_module_named_after_no_family_is_reported(monkeypatch):
    # without ``common`` among the package's support modules, it is a stray module
    monkeypatch.setattr(registries, "DIRECT_SUPPORT_MODULES", set())
    found = registries.problems()
    assert found == ["torch2keras.backend_tflite.emitters.common is named after no op family "
                     "(nor the helpers module, common)"]


def test_a_half_defined_op_is_reported():
    # declared in the IR only: no reference (nor a reason), no emitter, an unknown TFLite name
    with _temporary_op("half_defined_op", tflite=("NO_SUCH_BUILTIN",)):
        found = "\n".join(registries.problems())
    assert "'half_defined_op' has no reference implementation and no reason" in found
    assert "'half_defined_op' has no Keras emitter" in found
    assert "'NO_SUCH_BUILTIN' is not a TFLite builtin" in found


def test_a_reason_stands_in_for_a_reference():
    with _temporary_op("waived_op", no_reference="a test op"):
        found = "\n".join(registries.problems())
    assert "'waived_op' has no reference" not in found and "'waived_op' has no Keras emitter" in found


def test_conflicting_delegate_notes_are_reported():
    with _temporary_op("noted_op", reference=np.negative, delegate_notes={"all": {"ARG_MAX": "something else"}}):
        found = "\n".join(registries.problems())
    assert "delegate notes for all/ARG_MAX differ" in found


def test_an_op_is_defined_once():
    with pytest.raises(ValueError, match="already defined"):
        define("relu", "elementwise", ["x"], same, "agnostic", reference=np.negative)


def test_every_family_defines_ops_and_every_op_has_one_family():
    fams = families()
    assert sum(len(ops) for ops in fams.values()) == len(SCHEMAS)
    assert {"elementwise", "reduction", "shape", "indexing", "nn", "norm", "pool", "attention", "recurrent",
            "control", "state", "dynamic"} <= set(fams)


def test_lowering_source_scan_finds_emitted_ops():
    def lower_example(ctx, x):
        y = ctx.emit("relu", [x])
        return ctx.emit("add", [y, ctx.const(1.0)])

    assert registries.lowering_emits_in_source(lower_example) == {"relu", "add"}


def test_kernel_scan_finds_kernel_names():
    source = 'def f(ctx, node, x):\n    return ctx.op(node, "softmax", [x], axis=1)\nTorchOp("identity")\n'
    assert registries.kernel_names_in_source(source) == {"softmax", "identity"}


# ----------------------------------------------------------------------------- references


def test_references_agree_on_a_few_ops():
    x = np.array([[-2.0, 0.5], [3.0, -1.0]], np.float32)
    np.testing.assert_allclose(evaluate("relu", [x], {})[0], np.maximum(x, 0))
    np.testing.assert_allclose(evaluate("softmax", [x], {"axis": 1})[0].sum(axis=1), [1.0, 1.0], rtol=1e-6)
    values, indices = evaluate("sort", [x], {"axis": 1, "descending": True})
    np.testing.assert_array_equal(values, [[0.5, -2.0], [3.0, -1.0]])
    np.testing.assert_array_equal(indices, [[1, 0], [0, 1]])
    with pytest.raises(NotImplementedError, match="numpy lacks"):
        evaluate("digamma", [x], {})


def test_the_interpreter_runs_a_graph_before_and_after_layout_assignment():
    from torch2keras.passes import PassManager, default_pipeline

    g = Graph("t")
    x = g.add_input("x", TensorType((1, 2, 5, 5)))
    w = g.add_constant(np.random.default_rng(0).normal(size=(3, 2, 3, 3)).astype(np.float32), "w")
    conv = g.add_node("conv", [x, w], {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1]}).output
    y = g.add_node("softmax", [g.add_node("relu", [conv]).output], {"axis": 1}).output
    g.set_outputs(["y"], [y])
    feed = np.random.default_rng(1).normal(size=(1, 2, 5, 5)).astype(np.float32)
    before = run_graph(g, [feed])[0]
    PassManager(default_pipeline(input_layouts="channels_last")).run(g)
    assert any(v.type.layout for _, n in g.walk() for v in n.outputs)  # something is stored channels-last
    np.testing.assert_allclose(run_graph(g, {"x": feed})[0], before, atol=1e-6)
    assert before.shape == (1, 3, 5, 5)
