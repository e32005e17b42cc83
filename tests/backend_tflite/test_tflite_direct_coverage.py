"""Models the direct TFLite backend used to refuse (found by the test session's cross-check,
tests/direct_backend_check.py), written directly and run in LiteRT (default delegates) against
PyTorch: max abs error within 1e-4 (scaled by max(1, max |reference|) where values are large),
plus the ops that make each one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from direct_check import annotated_ir, check_direct, reference, run_file
from torch2keras.backend_tflite import write_tflite


class Fn(nn.Module):
    def __init__(self, fn, child: nn.Module | None = None):
        super().__init__()
        self.fn = fn
        self.child = child

    def forward(self, *xs):
        return self.fn(self.child, *xs) if self.child is not None else self.fn(*xs)


def _errors(model, inputs, graph, written, invocations=2):
    outs = run_file(graph, written.path, [t.numpy() for t in inputs], invocations=invocations)
    refs = reference(model, inputs)
    assert len(outs) == len(refs)
    errors = []
    for o, r in zip(outs, refs):
        finite = np.isfinite(r)
        assert np.array_equal(finite, np.isfinite(o)), "non-finite values differ from PyTorch's"
        assert np.array_equal(np.isnan(r), np.isnan(o))
        errors.append(float(np.max(np.abs(o[finite] - r[finite]) / np.maximum(1.0, np.abs(r[finite])))))
    return errors


# ---------------------------------------------------------------- elementwise


def test_acosh_atanh(tmp_path):
    """acosh near 1, mid-range, above 1e10 and below 1 (NaN); atanh near 0 (series), near +-1,
    at +-1 (inf) and beyond (NaN)."""
    x = torch.tensor([1.0, 1.0001, 1.5, 3.0, 100.0, 1e12, 3e30, 0.5, -2.0])
    y = torch.tensor([0.0, 1e-4, -0.1, 0.124, 0.126, 0.5, -0.9, 0.99999, 1.0, -1.0, 1.5])
    model = Fn(lambda a, b: (torch.acosh(a), torch.atanh(b), torch.atanh(torch.tanh(a * 0.1))))
    graph = annotated_ir(model.eval(), (x, y))  # (NaN outputs: compared by _errors)
    written = write_tflite(graph, str(tmp_path / "acosh_atanh.tflite"))
    assert max(_errors(model, (x, y), graph, written)) <= 1e-4
    assert written.op_counts.get("SELECT_V2") >= 2 and "CUSTOM" not in written.op_counts


# ---------------------------------------------------------------- LSTM final cell state


class CellState(nn.Module):
    def __init__(self, layers=1):
        super().__init__()
        self.lstm = nn.LSTM(6, 5, num_layers=layers, batch_first=True)

    def forward(self, x, h=None, c=None):
        out, (h_n, c_n) = self.lstm(x, None if h is None else (h, c))
        return out, h_n, c_n * 2


@pytest.mark.parametrize("layers,given", [(1, False), (2, False), (2, True)])
def test_lstm_final_cell_state(layers, given, tmp_path):
    """c_n: the c variables after the fused ops, PACKed; a third invocation matches PyTorch (the
    states are written afresh each call)."""
    torch.manual_seed(0)
    model = CellState(layers).eval()
    inputs = (torch.randn(3, 7, 6),) + ((torch.randn(layers, 3, 5), torch.randn(layers, 3, 5)) if given else ())
    graph, written = check_direct(model, inputs, tmp_path, f"c_n{layers}{given}", invocations=3)
    assert max(_errors(model, inputs, graph, written, invocations=3)) <= 1e-4
    assert written.op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == layers and written.op_counts["PACK"] == 1


# ---------------------------------------------------------------- data movement and pooling


@pytest.mark.parametrize("step,start,end", [(2, 0, None), (3, 1, 8), (2, -5, -1)])
def test_slice_scatter_with_a_step(step, start, end, tmp_path):
    """x[:, start:end:step] = src: CONCATENATION of x and src, one GATHER."""
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3)
    count = len(range(*slice(start, end, step).indices(9)))
    src = torch.randn(2, count, 3)
    model = Fn(lambda a, b: torch.slice_scatter(a * 2, b.tanh(), dim=1, start=start, end=end, step=step))
    graph, written = check_direct(model.eval(), (x, src), tmp_path, f"scatter{step}")
    assert max(_errors(model, (x, src), graph, written)) <= 1e-4
    assert written.op_counts["GATHER"] == 1 and written.op_counts["CONCATENATION"] == 1


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2, divisor_override=3),
                                    dict(kernel_size=3, stride=2, padding=1, divisor_override=5),
                                    dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0), ceil_mode=True,
                                         count_include_pad=False, divisor_override=7)])
def test_avg_pool3d_divisor_override(kwargs, tmp_path):
    """avg_pool3d(divisor_override=d): the 3-d mean (two 2-d pools) times torch's divisor / d per
    output position."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.AvgPool3d(**kwargs))
    x = torch.randn(2, 3, 5, 7, 6)
    graph, written = check_direct(model.eval(), (x,), tmp_path, "pool3d")
    assert max(_errors(model, (x,), graph, written)) <= 1e-4
    assert written.op_counts["AVERAGE_POOL_2D"] == 2 and written.op_counts.get("TRANSPOSE", 0) <= 2
