"""GRUs unrolled over their steps (passes/unroll_gru.py): every configuration against PyTorch in
Keras (``compile(extra_passes=["unroll_gru"])``) and in LiteRT (``to_tflite``, which unrolls
GRUs within the measured limits), the file's ops all taken by XNNPACK; the limits on the
measured sizes; what stays a loop; the compiled model's direct export writing the same file."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from models import Fn
from torch2keras.frontend_torch import capture, lower
from torch2keras.passes import DeadCodeElimination, FoldConstants, PassManager
from torch2keras.passes.recurrent import GRU_MAX_BYTES, GRU_MAX_STEPS, direct_unroll_passes
from torch2keras.tflite.file import read_tflite

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backend_tflite"))
from direct_check import xnnpack_leftovers  # noqa: E402

TOL = 1e-5


def _gru_model(features, hidden, every_result=True, **kwargs):
    gru = nn.GRU(features, hidden, **kwargs)
    return Fn((lambda m, *xs: m(*xs)) if every_result else (lambda m, x: m(x)[0]), gru).eval()


def _reference(model, inputs):
    with torch.no_grad():
        out = model(*inputs)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


CASES = {  # name: (GRU arguments, input shape, given state)
    "one_layer_batch_first": (dict(batch_first=True), (3, 7, 6), False),
    "two_layers_batch_first": (dict(num_layers=2, batch_first=True), (2, 10, 6), False),
    "time_major_batch3": (dict(num_layers=2), (5, 3, 6), False),
    "bidirectional_two_layers": (dict(num_layers=2, bidirectional=True), (4, 2, 6), True),
    "given_state_no_bias": (dict(bias=False), (5, 3, 6), True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_unrolled_gru_matches_pytorch_in_keras_and_litert(name, tmp_path):
    kwargs, shape, given = CASES[name]
    torch.manual_seed(0)
    model = _gru_model(6, 5, **kwargs)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    batch = shape[0] if kwargs.get("batch_first") else shape[1]
    inputs = (torch.randn(*shape),) + ((torch.randn(layers, batch, 5),) if given else ())
    ref = _reference(model, inputs)

    result = torch2keras.compile(model, inputs, extra_passes=["unroll_gru"], on_mismatch="raise", atol=TOL, rtol=TOL)
    assert not result.ir.nodes_by_op("gru")
    keras_out = result.keras_model([np.asarray(t) for t in inputs])
    for got, want in zip(keras_out, ref):
        assert np.max(np.abs(np.asarray(got) - want)) < TOL

    written = torch2keras.to_tflite(model, inputs, str(tmp_path / f"{name}.tflite"), atol=TOL, rtol=TOL)
    assert written.max_abs_error < TOL
    assert "WHILE" not in written.op_counts
    assert xnnpack_leftovers(written.path) == []


@pytest.mark.parametrize("batch_first", [True, False])
def test_unrolled_gru_runs_whole_on_xnnpack(batch_first, tmp_path):
    """A 2-layer GRU over 10 steps, unrolled: each step's projection a STRIDED_SLICE (no 10-piece
    SPLIT), each step's gates a SPLIT of 3, the first step of each layer without a
    FULLY_CONNECTED (zero state), and the sequence a tree of CONCATENATIONs of at most 5 (no
    PACK): every op on XNNPACK."""
    torch.manual_seed(0)
    model = _gru_model(6, 5, every_result=False, num_layers=2, batch_first=batch_first)
    inputs = (torch.randn(2, 10, 6) if batch_first else torch.randn(10, 2, 6),)
    written = torch2keras.to_tflite(model, inputs, str(tmp_path / "gru.tflite"), atol=TOL, rtol=TOL)
    counts = written.op_counts
    assert written.max_abs_error <= TOL
    assert "PACK" not in counts and counts["CONCATENATION"] == 2 * 3  # 10 rows: 5 + 5, joined; twice
    assert counts["FULLY_CONNECTED"] == 2 * (1 + 9) and counts["STRIDED_SLICE"] == 2 * 10
    assert xnnpack_leftovers(written.path) == []


MEASURED = {  # (hidden, steps) of a 2-layer GRU: unrolled / loop latency measured on XNNPACK, 2 threads
    (32, 10): 0.61, (64, 20): 0.81, (64, 32): 1.0, (32, 64): 1.24, (128, 50): 1.64,
}


@pytest.mark.parametrize("hidden,steps", list(MEASURED))
def test_auto_unrolls_the_gru_sizes_measured_faster_unrolled(hidden, steps):
    """to_tflite's passes unroll the 2-layer GRUs whose unrolled file measured faster than the
    loop (0.61x, 0.81x) and leave the others whole (1.0x and slower), saying why."""
    torch.manual_seed(0)
    model = _gru_model(16, hidden, every_result=False, num_layers=2, batch_first=True)
    graph = lower(capture(model, (torch.randn(1, steps, 16),), {}), "m")
    PassManager([DeadCodeElimination(), FoldConstants(), *direct_unroll_passes("auto")]).run(graph)
    assert bool(graph.nodes_by_op("gru")) == (MEASURED[hidden, steps] >= 1.0)
    if graph.nodes_by_op("gru"):
        reasons = " ".join(graph.meta["rewrites"]["unroll_gru"].values())
        read = steps * 4 * 2 * 3 * hidden * hidden
        assert (f"max_steps={GRU_MAX_STEPS}" if steps > GRU_MAX_STEPS else f"reads {read / 1e6:.2f} MB") in reasons
        assert steps > GRU_MAX_STEPS or read > GRU_MAX_BYTES


def test_gru_with_large_recurrent_weights_is_a_loop(tmp_path):
    """128 units over 20 steps read 3.9 MB of recurrent weights unrolled (more than
    GRU_MAX_BYTES, where the loop measured faster): to_tflite writes one WHILE, outputs vs
    PyTorch; extra_passes=["unroll_gru"] unrolls it in Keras all the same."""
    torch.manual_seed(0)
    model, steps = _gru_model(8, 128, every_result=False, batch_first=True), 20
    gru = model.child
    assert steps <= GRU_MAX_STEPS and steps * 4 * gru.weight_hh_l0.numel() > GRU_MAX_BYTES
    inputs = (torch.randn(1, steps, 8),)
    written = torch2keras.to_tflite(model, inputs, str(tmp_path / "large_gru.tflite"), atol=1e-4, rtol=1e-4)
    assert written.op_counts["WHILE"] == 1 and written.max_abs_error <= 1e-4
    result = torch2keras.compile(model, inputs, extra_passes=["unroll_gru"], on_mismatch="raise")
    assert not result.ir.nodes_by_op("gru")


def test_compiled_export_writes_the_gru_as_to_tflite_does(tmp_path):
    """``compile(...).export_tflite(backend="direct")`` unrolls the GRU as ``to_tflite`` does
    (the same ops), both match PyTorch; the compiled IR keeps its ``gru`` (the Keras model's)."""
    torch.manual_seed(0)
    model = _gru_model(6, 5, every_result=False, num_layers=2, batch_first=True)
    x = torch.randn(2, 10, 6)
    want = _reference(model, (x,))[0]
    written = torch2keras.to_tflite(model, (x,), str(tmp_path / "to_tflite.tflite"), atol=TOL, rtol=TOL)
    result = torch2keras.compile(model, (x,))
    path = result.export_tflite(str(tmp_path / "export.tflite"), backend="direct")
    counts = read_tflite(path).op_counts()
    assert counts == read_tflite(written.path).op_counts() and "WHILE" not in counts
    assert len(result.ir.nodes_by_op("gru")) == 1
    assert np.max(np.abs(result.run_tflite(path, [x.numpy()])[0] - want)) <= TOL
    assert xnnpack_leftovers(path) == []
