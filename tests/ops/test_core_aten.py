"""Every Core ATen op (``torch.Tag.core``) is lowered and tested, or listed as unsupported with
its reason (``torch2keras/frontend_torch/unsupported.py``).

A lowered op is tested either by an OpInfo entry whose default case (``suite.default_case``,
checked numerically by ``test_first_sample``, which also checks that its graph contains the op)
contains it -- ``CORE_VIA_OPINFO`` (``core_coverage.py``) -- or, for ops
torch.export never produces from OpInfo's samples, by a direct call traced without
decompositions and compared with PyTorch here, through Keras and TFLite -- ``DIRECT`` (the ops
TFLite has no builtin kernel for are in ``DIRECT_NO_TFLITE`` with the reason).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.utils._pytree as pytree

import harness
import suite
import torch2keras
import torch2keras.stages as stages
from core_coverage import CORE_VIA_OPINFO
from expectations import FIRST_SAMPLE
from torch2keras.frontend_torch import LOWERINGS
from torch2keras.frontend_torch.capture import Captured
from torch2keras.frontend_torch.unsupported import UNSUPPORTED, core_aten_ops

aten = torch.ops.aten


def _x(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


_INDICES = torch.tensor([0, 2, 4, 5, 4, 3, 2, 9])
_OFFSETS = torch.tensor([0, 3, 5])
_SCATTER_INDEX = torch.tensor([[0, 1, 2], [2, 0, 1]])

# op -> (function over the inputs, inputs); tensors closed over by the function are constants
DIRECT = {
    "aten._adaptive_avg_pool2d.default": (lambda x: aten._adaptive_avg_pool2d(x, [4, 2]), [_x(1, 3, 8, 6)]),
    "aten._embedding_bag.default": (
        lambda w: aten._embedding_bag(w, _INDICES, _OFFSETS, False, 1)[0], [_x(10, 4)]),
    "aten._log_softmax.default": (lambda x: aten._log_softmax(x, 1, False), [_x(2, 5, 3)]),
    "aten._softmax.default": (lambda x: aten._softmax(x, 1, False), [_x(2, 5, 3)]),
    "aten._native_batch_norm_legit.default": (
        lambda x, w, b: aten._native_batch_norm_legit(x, w, b, torch.zeros(3), torch.ones(3), False, 0.1, 1e-5)[0],
        [_x(2, 3, 4, 4), _x(3, seed=1), _x(3, seed=2)]),
    "aten._native_batch_norm_legit.no_stats": (
        lambda x, w, b: aten._native_batch_norm_legit.no_stats(x, w, b, True, 0.1, 1e-5)[0],
        [_x(2, 3, 4, 4), _x(3, seed=1), _x(3, seed=2)]),
    "aten._native_batch_norm_legit_no_training.default": (
        lambda x, w, b: aten._native_batch_norm_legit_no_training(x, w, b, torch.zeros(3) + 0.5, torch.ones(3) * 2,
                                                                  0.1, 1e-5)[0],
        [_x(2, 3, 4, 4), _x(3, seed=1), _x(3, seed=2)]),
    "aten.avg_pool1d.default": (lambda x: aten.avg_pool1d(x, [3], [2], [1], True, False), [_x(2, 3, 9)]),
    "aten.bitwise_and.Scalar": (lambda x: aten.bitwise_and.Scalar(x, 6), [torch.arange(-8, 8)]),
    "aten.bitwise_or.Scalar": (lambda x: aten.bitwise_or.Scalar(x, 6), [torch.arange(-8, 8)]),
    "aten.bitwise_xor.Scalar": (lambda x: aten.bitwise_xor.Scalar(x, 6), [torch.arange(-8, 8, dtype=torch.int32)]),
    "aten.col2im.default": (lambda x: aten.col2im(x, [5, 6], [2, 3], [1, 1], [1, 0], [1, 2]), [_x(1, 12, 12)]),
    "aten.div.Scalar_mode": (lambda x: aten.div.Scalar_mode(x, 0.7, rounding_mode="floor"), [_x(3, 4)]),
    "aten.fill.Scalar": (lambda x: aten.fill.Scalar(x, 2.5) + x, [_x(3, 4)]),
    "aten.native_dropout.default": (lambda x: aten.native_dropout(x, 0.5, False)[0], [_x(3, 4)]),
    "aten.prod.dim_int": (lambda x: aten.prod.dim_int(x, 1, True), [_x(3, 4, 2)]),
    "aten.reflection_pad1d.default": (lambda x: aten.reflection_pad1d(x, [2, 1]), [_x(2, 3, 5)]),
    "aten.reflection_pad2d.default": (lambda x: aten.reflection_pad2d(x, [2, 1, 0, 3]), [_x(1, 2, 5, 6)]),
    "aten.reflection_pad3d.default": (lambda x: aten.reflection_pad3d(x, [1, 1, 2, 0, 0, 1]), [_x(1, 2, 3, 4, 5)]),
    "aten.replication_pad2d.default": (lambda x: aten.replication_pad2d(x, [2, 1, 0, 3]), [_x(1, 2, 5, 6)]),
    "aten.replication_pad3d.default": (lambda x: aten.replication_pad3d(x, [1, 1, 2, 0, 0, 1]), [_x(1, 2, 3, 4, 5)]),
    "aten.scatter.value": (lambda x: aten.scatter.value(x, 1, _SCATTER_INDEX, -3.5), [_x(2, 4)]),
    "aten.select_scatter.default": (lambda x, s: aten.select_scatter(x, s, 1, -2), [_x(2, 4, 3), _x(2, 3, seed=1)]),
    "aten.squeeze.dim": (lambda x: aten.squeeze.dim(x, 1) * 2, [_x(3, 1, 4)]),
    "aten.upsample_nearest2d.vec": (lambda x: aten.upsample_nearest2d.vec(x, None, [1.5, 2.0]), [_x(1, 2, 4, 3)]),
    "aten.var.dim": (lambda x: aten.var.dim(x, [0, 2], False, True), [_x(3, 4, 5)]),
}

# ops of DIRECT whose TFLite form is not checked, with the reason
DIRECT_NO_TFLITE: dict[str, str] = {}

# size queries appear only in graphs of dynamic shapes: tests/test_dynamic.py converts them
DYNAMIC_SHAPES = {"aten.sym_size.int"}


def test_every_core_aten_op_is_lowered_and_tested_or_unsupported():
    """Each Core ATen op: lowered and tested (CORE_VIA_OPINFO or DIRECT), or unsupported with a reason."""
    core = core_aten_ops()
    assert len(core) > 150
    tested = {op for ops in CORE_VIA_OPINFO.values() for op in ops} | set(DIRECT) | DYNAMIC_SHAPES
    problems = []
    for op in core:
        name = str(op)
        if op in UNSUPPORTED:
            if op in LOWERINGS:
                problems.append(f"{name}: lowered and listed as unsupported")
            elif not UNSUPPORTED[op].strip():
                problems.append(f"{name}: listed as unsupported without a reason")
        elif op not in LOWERINGS:
            problems.append(f"{name}: neither lowered nor listed as unsupported")
        elif name not in tested:
            problems.append(f"{name}: lowered, but no test (add it to DIRECT or CORE_VIA_OPINFO)")
    assert not problems, "\n".join(problems)


def test_core_op_tests_are_real():
    """What vouches for an op runs: OpInfo entries are in scope and expected to pass, DIRECT ops are lowered."""
    assert set(CORE_VIA_OPINFO) <= set(suite.in_scope_names()), "an out-of-scope entry vouches for an op"
    assert not set(CORE_VIA_OPINFO) & set(FIRST_SAMPLE), "an entry listed as failing cannot vouch for an op"
    lowered = {str(op) for op in core_aten_ops() if op in LOWERINGS and op not in UNSUPPORTED}
    assert set(DIRECT) <= lowered, f"DIRECT tests ops that are not lowered Core ATen ops: {set(DIRECT) - lowered}"
    assert set(DIRECT_NO_TFLITE) <= set(DIRECT)


def _ops_of(graph) -> set[str]:
    return {str(n.target) for n in graph.nodes
            if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload)}


def _trace(fn, inputs) -> Captured:
    """The ATen ops exactly as called (no decomposition, no functionalization)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    gm = make_fx(fn, tracing_mode="real", pre_dispatch=True)(*inputs)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    constants = {n.name: getattr(gm, n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    out = next(n for n in gm.graph.nodes if n.op == "output")
    outs = pytree.tree_flatten(out.args[0])[0]
    return Captured(graph=gm.graph, constants=constants, user_inputs=[p.name for p in placeholders],
                    input_names=[f"x{i}" for i in range(len(placeholders))], user_outputs=outs,
                    output_names=["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))],
                    method="trace")


class _AsModule(torch.nn.Module):
    """``fn`` as a module, for the reference run of ``compile`` (capture is replaced by the exact trace)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


@pytest.mark.parametrize("op", sorted(DIRECT))
def test_core_op_direct(op, monkeypatch, tmp_path):
    """The op alone, through Keras and TFLite, against PyTorch."""
    fn, inputs = DIRECT[op]
    captured = _trace(fn, inputs)
    assert op in _ops_of(captured.graph)
    monkeypatch.setattr(stages, "capture", lambda *args, **kwargs: captured)
    result = torch2keras.compile(_AsModule(fn), tuple(inputs), validate=False)
    feed = [t.numpy() for t in inputs]
    with torch.no_grad():
        want = pytree.tree_flatten(fn(*[t.clone() for t in inputs]))[0]
    assert all(w.abs().max() > 1e-3 for w in want if w.dtype.is_floating_point), "degenerate reference"
    runs = {"Keras": result.run_keras(feed)}
    if op not in DIRECT_NO_TFLITE:
        path = result.export_tflite(str(tmp_path / "op.tflite"), validate=False)
        runs["TFLite"] = result.run_tflite(path, feed)
    for backend, got in runs.items():
        assert len(got) == len(want)
        for g, w in zip(got, want):
            ok, err, what = harness.compare(g, w)
            assert ok, f"{op} ({backend}): {what}"


def test_cli_lists_unsupported_ops_with_reasons(capsys):
    from torch2keras.cli import main

    assert main(["supported", "--unsupported"]) == 0
    out = capsys.readouterr().out
    for op, reason in UNSUPPORTED.items():
        assert f"{op}: {reason}" in out
    assert main(["supported", "scatter_reduce"]) == 0  # the grouped listing abbreviates: look the op up
    assert "aten.scatter_reduce.two" in capsys.readouterr().out
