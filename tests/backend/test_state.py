"""Stateful models: buffers forward() mutates become Keras variables updated on every call, so
calling the Keras (or TFLite) model repeatedly follows PyTorch called repeatedly."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from fresh_process import run_saved
from torch2keras.backend_keras import state as keras_state
from models import MovingAverage, RunningCounter, StreamingConv1d
from torch2keras.ir import Graph, LoweringError, TensorType, VerificationError
from torch2keras.passes import CommonSubexpressionElimination, DeadCodeElimination, FoldConstants
from support import max_abs_error

ATOL = 1e-4
CALLS = 5



def _torch_calls(model: nn.Module, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    """PyTorch's results of consecutive calls, on a copy of the model (its state untouched)."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        return [model(x.clone()).numpy() for x in inputs]


def _keras_calls(result, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    return [result.run_keras([x.numpy()])[0] for x in inputs]


def _assert_follows(outs, refs, what: str) -> None:
    errs = [max_abs_error(o, r) for o, r in zip(outs, refs)]
    assert max(errs) < ATOL, f"{what}: errors per call {errs}"
    # the state matters: later calls differ from what a stateless model would give
    assert any(max_abs_error(r, refs[0]) > 1e-2 for r in refs[1:]) or len(refs) == 1


def _streams():
    torch.manual_seed(0)
    counter = RunningCounter().eval()
    stream = StreamingConv1d().eval()
    stream.cache.normal_()  # a non-zero initial state must be carried over
    reassigned = StreamingConv1d(reassign=True).eval()
    reassigned.load_state_dict(stream.state_dict())
    ema = MovingAverage().eval()
    ema.mean.uniform_(-1, 1)
    return {
        "counter": (counter, [torch.randn(1, 3, 4, 4) for _ in range(CALLS)]),
        "stream_copy": (stream, [torch.randn(1, 4, 2) for _ in range(CALLS)]),
        "stream_reassign": (reassigned, [torch.randn(1, 4, 2) for _ in range(CALLS)]),
        "moving_average": (ema, [torch.randn(3, 6) * 2 + 1 for _ in range(CALLS)]),
    }


@pytest.mark.parametrize("name", ["counter", "stream_copy", "stream_reassign", "moving_average"])
def test_five_calls_follow_pytorch_in_keras_and_tflite(tmp_path, name):
    model, inputs = _streams()[name]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = torch2keras.compile(model, inputs[0].clone())
    assert result.report.ok, result.report.summary()
    for k, v in model.state_dict().items():  # compile ran forward() but left the buffers as they were
        assert torch.equal(v, before[k]), k
    refs = _torch_calls(model, inputs)
    _assert_follows(_keras_calls(result, inputs), refs, "Keras")

    for backend in ("converter", "direct"):
        path = result.export_tflite(str(tmp_path / f"{name}_{backend}.tflite"), backend=backend)
        assert result.report.tflite["max_abs_error"] < ATOL  # first call of a fresh interpreter
        assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= set(result.report.tflite["op_counts"])
        session = result.tflite_session(path)
        _assert_follows([session([x.numpy()])[0] for x in inputs], refs, f"TFLite ({backend})")
        fresh = result.tflite_session(path)  # a new interpreter starts from the initial state
        assert max_abs_error(fresh([inputs[0].numpy()])[0], refs[0]) < ATOL, backend


def test_ir_shows_state_and_updates():
    model, inputs = _streams()["stream_copy"]
    result = torch2keras.compile(model, inputs[0])
    text = str(result.ir)
    assert "= state() {name='cache', value=<float32[1,4,4]>}" in text
    assert "  state_update(%" in text and "{name='cache'}" in text
    update = next(n for n in result.ir.topo_order() if n.op == "state_update")
    state = result.ir.nodes_by_op("state")[0]
    # stored as the conv reads it ([batch, time, channels]) and written in the same layout
    assert state.output.type.layout == (0, 2, 1) and update.inputs[0].type.layout == (0, 2, 1)
    ops = [n["op"] for n in result.ir.to_json()["nodes"]]
    assert ops.count("state") == 1 and ops.count("state_update") == 1
    assert result.state_names == ["cache"]
    np.testing.assert_array_equal(result.state["cache"], model.cache.numpy())


def test_reset_state_and_initial_state_of_exports(tmp_path):
    model, inputs = _streams()["counter"]
    result = torch2keras.compile(model, inputs[0])
    refs = _torch_calls(model, inputs)
    _keras_calls(result, inputs[:3])
    assert float(result.state["count"]) == 3.0
    # exports carry the initial state whatever calls came before, and leave the current one alone
    saved = result.save(str(tmp_path / "counter.keras"))
    assert float(result.state["count"]) == 3.0
    result.reset_state()
    assert float(result.state["count"]) == 0.0
    _assert_follows(_keras_calls(result, inputs), refs, "Keras after reset_state")

    loaded = torch2keras.load_model(saved)  # safe_mode=True
    feed = [result.keras_inputs([x.numpy()]) for x in inputs]
    outs = [np.asarray(loaded(f, training=False)) for f in feed]
    _assert_follows(outs, refs, "reloaded .keras")
    torch2keras.reset_state(loaded)
    assert max_abs_error(np.asarray(loaded(feed[0], training=False)), refs[0]) < ATOL


def test_compile_starts_from_the_models_current_state():
    model, inputs = _streams()["moving_average"]
    with torch.no_grad():
        for x in inputs[:2]:
            model(x)  # the model has been running for a while
    assert int(model.steps) == 2
    result = torch2keras.compile(model, inputs[2])
    assert int(model.steps) == 2
    assert int(result.state["steps"]) == 2
    refs = _torch_calls(model, inputs)
    _assert_follows(_keras_calls(result, inputs), refs, "Keras")


def test_tf_function_and_saved_model_keep_state(tmp_path):
    import tensorflow as tf

    model, inputs = _streams()["stream_copy"]
    result = torch2keras.compile(model, inputs[0])
    refs = _torch_calls(model, inputs)
    graph_fn = tf.function(lambda feed: result.keras_model(feed, training=False))
    outs = [result.torch_outputs([np.asarray(graph_fn(result.keras_inputs([x.numpy()])))])[0] for x in inputs]
    _assert_follows(outs, refs, "tf.function")
    saved = tf.saved_model.load(result.export_saved_model(str(tmp_path / "sm")))
    serve = saved.signatures["serving_default"]
    outs = [serve(**{k: tf.constant(v) for k, v in result.keras_inputs([x.numpy()]).items()})["output"].numpy()
            for x in inputs]
    _assert_follows([result.torch_outputs([o])[0] for o in outs], refs, "SavedModel")


@pytest.mark.slow
def test_reloaded_in_a_fresh_process_without_torch(tmp_path):
    model, inputs = _streams()["stream_reassign"]
    result = torch2keras.compile(model, inputs[0])
    refs = _torch_calls(model, inputs)
    path = result.save(str(tmp_path / "stream.keras"))
    feeds = [result.keras_inputs([x.numpy()]) for x in inputs]
    calls = run_saved({"stream": (path, feeds)}, tmp_path)["stream"]
    _assert_follows([outs[0] for outs in calls], refs, "reloaded in a fresh process")


class _DataDependentCounter(RunningCounter):
    def forward(self, x):
        if x.sum() > -1e9:  # torch.export refuses this: the tracing fallback captures the model
            return super().forward(x) + 1
        return x


@pytest.mark.parametrize("reassign", [False, True])
def test_tracing_fallback_keeps_state(reassign):
    torch.manual_seed(0)

    class Stream(StreamingConv1d):
        def forward(self, x):
            if x.sum() > -1e9:
                return super().forward(x)
            return x[:, :1]

    for model, shape in ((_DataDependentCounter().eval(), (1, 3)), (Stream(reassign=reassign).eval(), (1, 4, 2))):
        inputs = [torch.randn(*shape) for _ in range(CALLS)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = torch2keras.compile(model, inputs[0])
        assert result.report.capture_method == "trace"
        assert result.report.ok
        assert result.state_names == (["count"] if isinstance(model, RunningCounter) else ["cache"])
        _assert_follows(_keras_calls(result, inputs), _torch_calls(model, inputs), "Keras (traced)")


class Stream2d(nn.Module):
    """A 2-D cache of past rows, convolved channels-last."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=(0, 1))
        self.register_buffer("rows", torch.randn(1, 3, 2, 8))

    def forward(self, x):
        window = torch.cat([self.rows, x], dim=2)
        self.rows.copy_(window[:, :, -2:] * 0.5)
        return self.conv(window)


def test_channels_last_stream_keeps_its_state_channels_last(tmp_path):
    """The buffer is logically NCHW; the convs read it NHWC: the state is stored NHWC, read and
    written without a transpose (there were 2 per call), and still shown in PyTorch's order."""
    torch.manual_seed(0)
    model = Stream2d().eval()
    inputs = [torch.randn(1, 3, 1, 8) for _ in range(CALLS)]
    result = torch2keras.compile(model, inputs[0], input_layouts="channels_last", output_layouts="channels_last")
    state = result.ir.nodes_by_op("state")[0]
    update = result.ir.nodes_by_op("state_update")[0]
    assert state.output.type.layout == (0, 2, 3, 1) and update.inputs[0].type.layout == (0, 2, 3, 1)
    assert torch2keras.count_transposes(result.ir) == 0
    assert result.state["rows"].shape == (1, 3, 2, 8)  # PyTorch's order, as the buffer
    np.testing.assert_array_equal(result.state["rows"], model.rows.numpy())
    refs = _torch_calls(model, inputs)
    _assert_follows(_keras_calls(result, inputs), refs, "Keras")
    after = copy.deepcopy(model)
    with torch.no_grad():
        for x in inputs:
            after(x)
    assert max_abs_error(result.state["rows"], after.rows.numpy()) < 1e-6  # the state after 5 calls, PyTorch's order

    for backend in ("converter", "direct"):  # written with the initial state, stored NHWC
        path = result.export_tflite(str(tmp_path / f"stream2d_{backend}.tflite"), backend=backend)
        assert result.report.tflite["all_op_counts"].get("TRANSPOSE", 0) == 0
        session = result.tflite_session(path)
        _assert_follows([session([x.numpy()])[0] for x in inputs], refs, f"TFLite ({backend})")

    saved = result.save(str(tmp_path / "stream2d.keras"))
    result.reset_state()
    np.testing.assert_array_equal(result.state["rows"], model.rows.numpy())
    loaded = torch2keras.load_model(saved)
    np.testing.assert_array_equal(keras_state.get_state(loaded)["rows"], model.rows.numpy())
    outs = [result.torch_outputs([np.asarray(loaded(result.keras_inputs([x.numpy()]), training=False))])[0]
            for x in inputs]
    _assert_follows(outs, refs, "reloaded .keras")
    keras_state.set_state(loaded, {"rows": model.rows.numpy()})  # set in PyTorch's order, as read
    first = result.torch_outputs([np.asarray(loaded(result.keras_inputs([inputs[0].numpy()]), training=False))])[0]
    assert max_abs_error(first, refs[0]) < ATOL


def test_channels_last_streaming_conv1d_has_no_transposes(tmp_path):
    model, inputs = _streams()["stream_copy"]
    result = torch2keras.compile(model, inputs[0], input_layouts="channels_last", output_layouts="channels_last")
    assert result.ir.nodes_by_op("state")[0].output.type.layout == (0, 2, 1)
    assert torch2keras.count_transposes(result.ir) == 0
    refs = _torch_calls(model, inputs)
    _assert_follows(_keras_calls(result, inputs), refs, "Keras")
    session = result.tflite_session(result.export_tflite(str(tmp_path / "stream1d.tflite")))
    assert result.report.tflite["all_op_counts"].get("TRANSPOSE", 0) == 0
    _assert_follows([session([x.numpy()])[0] for x in inputs], refs, "TFLite")


def test_model_state_layer_reads_configs_without_a_layout():
    layer = keras_state.ModelState([["buf", [1, 2, 3], "float32"], ["nhwc", [1, 2, 3, 4], "float32", [0, 2, 3, 1]]])
    value = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    layer.initialize({"buf": value[0, :, :, 0][None], "nhwc": value})
    assert layer.states[0][3] == [0, 1, 2]
    assert tuple(layer._current["nhwc"].shape) == (1, 3, 4, 2)  # the variable holds the stored form
    np.testing.assert_array_equal(np.asarray(layer._current["nhwc"]), value.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(layer.values()["nhwc"], value)
    np.testing.assert_array_equal(layer.values()["buf"], value[0, :, :, 0][None])
    with pytest.raises(ValueError, match="not a permutation"):
        keras_state.ModelState([["bad", [1, 2], "float32", [0, 0]]])


def test_state_read_as_an_output_and_write_only_state(tmp_path):
    class Delay(nn.Module):  # returns the previous call's input; `seen` is written, never read
        def __init__(self):
            super().__init__()
            self.register_buffer("prev", torch.full((1, 3), -1.0))
            self.register_buffer("seen", torch.zeros(1, 3))

        def forward(self, x):
            out = self.prev.clone()
            self.prev.copy_(x)
            self.seen = x * 2
            return out

    model = Delay().eval()
    inputs = [torch.randn(1, 3) for _ in range(CALLS)]
    result = torch2keras.compile(model, inputs[0])
    assert sorted(result.state_names) == ["prev", "seen"]
    refs = _torch_calls(model, inputs)
    _assert_follows(_keras_calls(result, inputs), refs, "Keras")  # the read is a snapshot, not the variable
    np.testing.assert_allclose(result.state["seen"], inputs[-1].numpy() * 2, atol=1e-6)
    for backend in ("converter", "direct"):
        session = result.tflite_session(result.export_tflite(str(tmp_path / f"delay_{backend}.tflite"),
                                                             backend=backend))
        _assert_follows([session([x.numpy()])[0] for x in inputs], refs, f"TFLite ({backend})")


def test_mutated_parameter_is_refused():
    class Drifts(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x):
            with torch.no_grad():
                self.w.mul_(0.5)
            return x * self.w

    with pytest.raises(LoweringError, match="mutates parameter.*w.*register_buffer"):
        torch2keras.compile(Drifts().eval(), torch.randn(2, 3))


def test_mutated_plain_tensor_attribute_is_refused():
    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = torch.zeros(3)  # not a buffer

        def forward(self, x):
            self.h += 1
            return x * self.h

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export refuses it; the tracing fallback names it
        with pytest.raises(LoweringError, match="tensor attribute that is not a registered buffer") as info:
            torch2keras.compile(Hidden().eval(), torch.randn(2, 3))
    assert "self.h += 1" in str(info.value)


# ----------------------------------------------------------------------------- IR level


def _stateful_graph(update: bool = True) -> tuple[Graph, dict]:
    g = Graph("g")
    x = g.add_input("x", TensorType([2, 3], "f32"))
    count = g.add_node("state", attrs={"name": "count", "value": np.zeros((), np.float32), "dtype": "f32"},
                       types=[TensorType([], "f32")], name="count").output
    one = g.add_constant(np.float32(1.0), "one")
    new = g.add_node("add", [count, one], name="new").output
    if update:
        g.add_node("state_update", [new], {"name": "count"})
    g.set_outputs(["output"], [g.add_node("mul", [x, count], name="y").output])
    return g, {"count": count, "new": new, "one": one}


def test_passes_keep_state_reads_and_updates():
    g, v = _stateful_graph()
    g.verify()
    DeadCodeElimination().run(g)  # the update is read by nothing, yet stays (with its input)
    assert [n.op for n in g.topo_order()].count("state_update") == 1
    assert v["new"].producer in g
    FoldConstants().run(g)  # count + 1 is not a constant
    assert g.nodes_by_op("add") and g.nodes_by_op("state")
    CommonSubexpressionElimination().run(g)
    assert len(g.nodes_by_op("state_update")) == 1
    g.verify()
    assert "  state_update(%new) {name='count'}" in str(g)


def test_verifier_rejects_a_state_and_update_stored_differently():
    g = Graph("g")
    x = g.add_input("x", TensorType([1, 3, 2, 2], "f32"))
    buf = g.add_node("state", attrs={"name": "buf", "value": np.zeros((1, 3, 2, 2), np.float32), "dtype": "f32"},
                     types=[TensorType([1, 3, 2, 2], "f32", (0, 2, 3, 1))], name="buf").output
    new = g.add_node("relayout", [x], {"perm": [0, 2, 3, 1]}, types=[TensorType([1, 3, 2, 2], "f32", (0, 2, 3, 1))]).output
    g.add_node("state_update", [x], {"name": "buf"})
    g.set_outputs(["output"], [x])
    with pytest.raises(VerificationError, match=r"state 'buf' is stored as f32\[1,3,2,2\]\{0,2,3,1\}, its update as "
                                                r"f32\[1,3,2,2\]\n"):  # (the IR dump follows)
        g.verify()
    g.erase(g.nodes_by_op("state_update")[0])
    g.add_node("state_update", [new], {"name": "buf"})
    g.verify()
    assert buf.producer in g


def test_verifier_rejects_bad_state():
    g, v = _stateful_graph()
    g.add_node("state_update", [v["new"]], {"name": "count"})
    with pytest.raises(VerificationError, match="updated twice"):
        g.verify()
    g, v = _stateful_graph()
    g.add_node("state_update", [v["new"]], {"name": "other"})
    with pytest.raises(VerificationError, match="undeclared state 'other'"):
        g.verify()
    g, v = _stateful_graph(update=False)
    wide = g.add_node("reshape", [v["new"]], {"shape": [1]}).output
    g.add_node("state_update", [wide], {"name": "count"})
    with pytest.raises(VerificationError, match="its update is f32\\[1\\]"):
        g.verify()
