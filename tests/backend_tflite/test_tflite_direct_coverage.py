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
from models import ConvScan, DecayingSum, Fn, Halving
from torch2keras.backend_tflite import write_tflite


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


@pytest.mark.parametrize("delegates", [True, False])
def test_sinh_cosh_special_values(delegates, tmp_path):
    """sinh / cosh at +-inf, NaN, signed zeros, past float32 overflow (89.416) and near it, with
    XNNPACK and with the plain kernels (whose EXP saturates and whose MUL clamps to the float32
    range): NaN and infinities where PyTorch has them, signed zeros kept, relative error <= 1e-5.
    (Between 89.07 and 89.416 XNNPACK's EXP overflows before float32 does: not tested.)"""
    x = torch.tensor([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-7, -0.3, 0.6, -2.0, 20.0, 88.0, -89.0, 89.42, 1e20])
    model = Fn(lambda v: (torch.sinh(v), torch.cosh(v))).eval()
    graph = annotated_ir(model, (x,))
    written = write_tflite(graph, str(tmp_path / "hyperbolic.tflite"))
    for got, want in zip(run_file(graph, written.path, [x.numpy()], delegates=delegates), reference(model, (x,))):
        assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))
        assert np.array_equal(got[np.isinf(want)], want[np.isinf(want)])
        assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))
        finite = np.isfinite(want)
        assert float(np.max(np.abs(got[finite] - want[finite]) / np.maximum(1.0, np.abs(want[finite])))) <= 1e-5


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


# ---------------------------------------------------------------- control flow (IF / WHILE subgraphs)


class Branches(nn.Module):
    """torch.cond on the data: a conv + tanh or a conv + sigmoid, then a shared conv."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.post = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = torch.cond(x.mean() > 0, lambda v: torch.tanh(self.a(v)), lambda v: torch.sigmoid(self.b(v)) - 1, (x,))
        return self.post(y)


class SignedRows(nn.Module):
    """A torch.cond per row inside a map (IF inside a WHILE body)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        from torch._higher_order_ops.map import map as torch_map

        def per_row(row):
            return torch.cond(row.sum() > 0, lambda v: self.lin(v) * 2.0, lambda v: -v - 1.0, (row,))

        return torch_map(per_row, x)


def _check_inputs(model, graph, written, inputs_list):
    for inputs in inputs_list:
        outs = run_file(graph, written.path, [t.numpy() for t in inputs])
        for o, r in zip(outs, reference(model, inputs)):
            assert o.shape == r.shape and float(np.max(np.abs(o - r))) <= 1e-4 * max(1.0, float(np.max(np.abs(r))))


@pytest.mark.parametrize("name", ["cond", "while_loop", "scan", "map_of_cond", "scan_of_convs"])
def test_control_flow(name, tmp_path):
    """IF / WHILE with their regions as subgraphs: outputs vs PyTorch on inputs taking each
    branch and different trip counts."""
    torch.manual_seed(0)
    model, inputs_list = {
        "cond": lambda: (Branches(), [(torch.rand(1, 3, 6, 6),), (-torch.rand(1, 3, 6, 6),)]),
        "while_loop": lambda: (Halving(), [(torch.randn(2, 4) * 0.1,), (torch.randn(2, 4) - 10,), (torch.rand(2, 4) + 5,)]),
        "scan": lambda: (DecayingSum(), [(torch.randn(6, 2, 4),), (torch.randn(6, 2, 4) * 3,)]),
        "map_of_cond": lambda: (SignedRows(), [(torch.randn(5, 4),), (torch.randn(5, 4) + 1,)]),
        "scan_of_convs": lambda: (ConvScan(), [(torch.randn(4, 1, 3, 6, 6),)]),
    }[name]()
    model = model.eval()
    graph, written = check_direct(model, inputs_list[0], tmp_path, name)
    _check_inputs(model, graph, written, inputs_list[1:])
    loop = "IF" if name == "cond" else "WHILE"
    assert written.op_counts[loop] == 1


# ---------------------------------------------------------------- GRU left whole


@pytest.mark.parametrize("kwargs,given", [(dict(batch_first=True), False), (dict(num_layers=2, bidirectional=True), True)])
def test_gru_longer_than_the_unrolled_limit_is_a_loop(kwargs, given, tmp_path):
    """A GRU the unroll_gru pass leaves whole (here 48 steps, more than to_tflite unrolls:
    GRU_MAX_STEPS) is one WHILE per layer and direction, its body one step; outputs and h_n vs
    PyTorch. (The unrolled form: tests/passes/test_unroll_gru.py.)"""
    from torch2keras.passes.recurrent import GRU_MAX_STEPS

    torch.manual_seed(0)
    gru = nn.GRU(6, 5, **kwargs)
    steps, layers = GRU_MAX_STEPS + 16, kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    x = torch.randn(2, steps, 6) if kwargs.get("batch_first") else torch.randn(steps, 2, 6)
    inputs = (x, torch.randn(layers, 2, 5)) if given else (x,)
    model = Fn(lambda m, *xs: m(*xs), gru).eval()
    graph, written = check_direct(model, inputs, tmp_path, "long_gru")
    assert max(_errors(model, inputs, graph, written)) <= 1e-4
    assert written.op_counts["WHILE"] == layers and sum(written.op_counts.values()) < 40


# ---------------------------------------------------------------- scatter reductions


@pytest.mark.parametrize("reduce", ["amax", "amin", "prod", "mean"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(reduce, include_self, tmp_path):
    """scatter_reduce with repeated indices and untouched elements: UNSORTED_SEGMENT_MAX / _MIN /
    _PROD / _SUM, combined with x's values or put in place."""
    torch.manual_seed(0)
    index = torch.tensor([[0, 2, 0, 4, 2], [1, 1, 3, 3, 1]])
    model = Fn(lambda x, src: x.scatter_reduce(1, index, src, reduce=reduce, include_self=include_self))
    inputs = (torch.randn(2, 6), torch.randn(2, 5))
    graph, written = check_direct(model.eval(), inputs, tmp_path, f"scatter_{reduce}")
    assert max(_errors(model, inputs, graph, written)) <= 1e-5
    segment = {"amax": "UNSORTED_SEGMENT_MAX", "amin": "UNSORTED_SEGMENT_MIN", "prod": "UNSORTED_SEGMENT_PROD",
               "mean": "UNSORTED_SEGMENT_SUM"}[reduce]
    assert segment in written.op_counts


def test_lgamma_digamma(tmp_path):
    """lgamma and digamma on both sides of the reflection (0.5), near and at the poles, at 0,
    +-inf and NaN: NaN / inf where PyTorch has them, else within 1e-4 (scaled)."""
    x = torch.tensor([0.5, 0.7, 1.0, 2.0, 3.5, 10.0, 55.5, 1e4, 0.3, 1e-3, -1e-3, -0.5, -1.5, -2.7, -7.3,
                      -1.0, -3.0, 0.0, np.inf, -np.inf, np.nan])
    model = Fn(lambda v: (torch.lgamma(v), torch.digamma(v))).eval()
    graph = annotated_ir(model, (x,))
    written = write_tflite(graph, str(tmp_path / "gamma.tflite"))
    assert max(_errors(model, (x,), graph, written)) <= 1e-4
    assert "CUSTOM" not in written.op_counts and written.op_counts["SIN"] >= 1 and written.op_counts["SELECT_V2"] >= 5


@pytest.mark.parametrize("name", ["avg_3d", "avg_3d_after_conv"])
def test_adaptive_avg_pool_3d(name, tmp_path):
    """3-d adaptive average pools the frontend keeps whole (windows dividing the map; no 3-d pool
    builtin): a MEAN per output position along each axis that changes size, concatenated."""
    torch.manual_seed(0)
    model, x, concats = {
        "avg_3d": (nn.AdaptiveAvgPool3d((7, 3, 4)), torch.randn(2, 3, 7, 9, 8), 2),
        "avg_3d_after_conv": (nn.Sequential(nn.Conv3d(3, 4, 1), nn.AdaptiveAvgPool3d((1, 3, 2))),
                              torch.randn(1, 3, 5, 9, 8), 3),
    }[name]
    graph, written = check_direct(model.eval(), (x,), tmp_path, name)
    assert max(_errors(model.eval(), (x,), graph, written)) <= 1e-5
    assert written.op_counts.get("CONCATENATION") == concats, written.op_counts


def test_integer_and_or(tmp_path):
    """int32 & and | (no TFLite builtin): over the whole range, negative values, the extremes and
    broadcast constants, exactly as PyTorch; int8 too."""
    g = torch.Generator().manual_seed(0)
    extremes = torch.tensor([0, -1, 1, 2 ** 31 - 1, -2 ** 31, 65535, -65536, 65536, -32768, 12345], dtype=torch.int32)
    a = torch.cat([torch.randint(-2 ** 31, 2 ** 31 - 1, (30,), generator=g, dtype=torch.int32), extremes])
    b = torch.cat([torch.randint(-2 ** 31, 2 ** 31 - 1, (30,), generator=g, dtype=torch.int32), extremes.flip(0)])
    model = Fn(lambda x, y: (x & y, x | y, x & 0x0F0F, x | -77, (x.to(torch.int8) & y.to(torch.int8)),
                             (x.to(torch.int8) | y.to(torch.int8)))).eval()
    graph = annotated_ir(model, (a, b))
    written = write_tflite(graph, str(tmp_path / "and_or.tflite"))
    outs = run_file(graph, written.path, [a.numpy(), b.numpy()])
    for got, want in zip(outs, reference(model, (a, b))):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert "BITWISE_XOR" in written.op_counts


def test_to_tflite_check_takes_nan_and_inf_where_torch_has_them(tmp_path):
    """to_tflite's check against PyTorch: log of a negative number (NaN) and of 0 (-inf) agree
    with torch's NaN and -inf (error 0); a NaN against a number fails the check."""
    import torch2keras

    from torch2keras.direct import _check
    from torch2keras.ir import NumericalMismatchError

    model = Fn(lambda x: torch.log(x) * 2)
    x = torch.tensor([[1.0, -1.0, 0.0, 4.0]])
    written = torch2keras.to_tflite(model, x, str(tmp_path / "log.tflite"))
    assert written.max_abs_error == 0.0
    # a NaN of the file where the reference holds a number is a mismatch, not an error of NaN
    numbers = np.nan_to_num(model(x).numpy(), nan=1.0, neginf=-1.0)
    with pytest.raises(NumericalMismatchError, match="max \\|err\\| inf"):
        _check(written, written.ir, (x,), {}, [numbers], 1e-4, 1e-4)
