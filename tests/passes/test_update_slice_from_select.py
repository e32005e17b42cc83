"""A select writing a run of rows at a run-time start (passes/update_slice_from_select.py)
becomes a dynamic update slice: outputs vs PyTorch at several starts (Keras and the direct
TFLite writer), the ops counted in the IR and the file, and the selects it must leave alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.tflite.file import op_counts

HEADS, LENGTH, DIM = 2, 16, 4


class _CacheWrite(nn.Module):
    """``cache`` with ``new``'s rows at ``start``, as ``generative.cache.written`` writes it
    (``clamp``: the start clamped into range first; ``inside``: the select written with the
    complementary condition)."""

    def __init__(self, clamp: bool = True, inside: bool = False) -> None:
        super().__init__()
        self.clamp, self.inside = clamp, inside

    def forward(self, cache, new, start):
        slots = torch.arange(cache.shape[2])
        steps = new.shape[2]
        start = start.reshape(())
        if self.clamp:
            start = start.clamp(0, cache.shape[2] - steps)
        if steps > 1:
            new = new.index_select(2, (slots - start).clamp(0, steps - 1))
        if self.inside:
            written = (slots >= start) & (slots < start + steps)
            return torch.where(written.reshape(1, 1, -1, 1), new, cache) * 2
        kept = (slots < start) | (slots >= start + steps)
        return torch.where(kept.reshape(1, 1, -1, 1), cache, new) * 2


def _inputs(steps: int, start: int):
    g = torch.Generator().manual_seed(steps)
    return (torch.randn(1, HEADS, LENGTH, DIM, generator=g), torch.randn(1, HEADS, steps, DIM, generator=g),
            torch.tensor([start]))


def _expected(module: nn.Module, steps: int, start: int) -> np.ndarray:
    with torch.no_grad():
        return module(*_inputs(steps, start)).numpy()


@pytest.mark.parametrize("steps,inside", [(1, False), (5, False), (5, True)])
def test_a_clamped_run_of_rows_is_one_update(steps, inside, tmp_path):
    module = _CacheWrite(inside=inside)
    result = torch2keras.compile(module, _inputs(steps, 3))
    assert result.report.ok and result.report.max_abs_error < 1e-6
    ops = result.ir.op_counts()
    assert ops.get("dynamic_update_slice") == 1 and "where" not in ops and "index_select" not in ops
    path = str(tmp_path / "write.tflite")
    result.export_tflite(path, backend="direct")
    counts = op_counts(path)
    assert counts["DYNAMIC_UPDATE_SLICE"] == 1 and not {"SELECT_V2", "SELECT", "GATHER"} & set(counts)
    for start in (0, 7, LENGTH - steps):  # the first, a middle and the last place the rows fit
        feed = [t.numpy() for t in _inputs(steps, start)]
        want = _expected(module, steps, start)
        assert np.max(np.abs(result.run_keras(feed)[0] - want)) < 1e-6
        assert np.max(np.abs(result.run_tflite(path, feed)[0] - want)) < 1e-6


def test_an_unclamped_start_keeps_the_select(tmp_path):
    """Unclamped, a start near the end writes only the rows that fit; an update slice would
    move them into range: the select stays, and computes PyTorch's rows."""
    module = _CacheWrite(clamp=False)
    result = torch2keras.compile(module, _inputs(4, 3))
    assert "dynamic_update_slice" not in result.ir.op_counts() and result.ir.op_counts()["where"] == 1
    path = str(tmp_path / "select.tflite")
    result.export_tflite(path, backend="direct")
    assert "DYNAMIC_UPDATE_SLICE" not in op_counts(path)
    feed = [t.numpy() for t in _inputs(4, LENGTH - 2)]
    assert np.max(np.abs(result.run_tflite(path, feed)[0] - _expected(module, 4, LENGTH - 2))) < 1e-6


class _NotARun(nn.Module):
    """Selects that look like a cache write but are not one run of rows at ``start``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, cache, new, start):
        slots = torch.arange(cache.shape[2])
        start = start.reshape(()).clamp(0, cache.shape[2] - 2)
        if self.kind == "wider_than_the_rows":  # 2 slots written from 1 row: a broadcast, not an update
            kept = (slots < start) | (slots >= start + 2)
        elif self.kind == "not_an_iota":  # slots in another order
            kept = (slots.flip(0) < start) | (slots.flip(0) >= start + 1)
        else:  # one comparison only: everything from start on
            kept = slots < start
        return torch.where(kept.reshape(1, 1, -1, 1), cache, new)


@pytest.mark.parametrize("kind", ["wider_than_the_rows", "not_an_iota", "open_ended"])
def test_selects_that_are_not_one_run_stay(kind):
    module = _NotARun(kind)
    result = torch2keras.compile(module, _inputs(1, 5))
    assert result.report.ok and result.report.max_abs_error < 1e-6
    assert "dynamic_update_slice" not in result.ir.op_counts()


def test_the_update_clamps_its_start_as_tflite_does():
    from torch2keras.ir.evaluate import evaluate

    x, rows = np.zeros((1, 5, 2), np.float32), np.ones((1, 2, 2), np.float32)
    for start, first in ((-3, 0), (1, 1), (4, 3), (9, 3)):
        out = evaluate("dynamic_update_slice", [x, rows, np.asarray(start)], {"axis": 1})[0]
        assert np.flatnonzero(out[0, :, 0]).tolist() == [first, first + 1]
