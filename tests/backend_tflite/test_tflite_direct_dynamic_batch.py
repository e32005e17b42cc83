"""The direct TFLite writer with a run-time batch (``backend_tflite/dynamic_batch.py``): files whose
inputs have -1 as their leading size in ``shape_signature``, run in LiteRT at batches 1, 3 and 5
against PyTorch; what depends on the batch size in a form the writer does not rewrite is refused
(and ``backend="auto"`` falls back on the converter); a file wrong at another batch size fails the
export's check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.backend_tflite import DirectExportError
from torch2keras.backend_tflite.dynamic_batch import BATCH_SIZES, other_batch
from torch2keras.backend_tflite.export import batch_mismatch, export_direct
from torch2keras.ir import NumericalMismatchError
from torch2keras.tflite.runtime import run_tflite

TOL = 1e-5  # max |error|, scaled by max(1, max |PyTorch output|)
BATCHES = (1, 3, 5)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return torch.softmax(self.net(x), dim=-1)


class Views(nn.Module):
    """Reshapes naming the batch (x.shape[0]) and leaving it to -1, around a linear layer."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        y = self.fc(x.view(-1, 6))  # [batch * 4, 6]
        y = y.reshape(x.shape[0], 4, 2, 3).permute(0, 2, 1, 3)
        return y.reshape(x.shape[0], -1) + x.view(x.shape[0], 24)[:, :1]


class ExpandsBatchSum(nn.Module):
    """The batch's sum expanded back to the batch's size, read as the file runs (dim, dynamic_expand)."""

    def forward(self, x):
        return x.sum(0, keepdim=True).expand(x.shape[0], -1) * x


class FoldsBatch(nn.Module):
    """The batch folded into a later axis ([2, 2 * batch]) and back, plus zeros of the batch's size."""

    def forward(self, x):
        b = x.shape[0]
        return torch.relu(x.view(2, b * 2) - 0.1).view(b, 4) + torch.zeros(b, 1)


class RunningExtremes(nn.Module):
    """cummax / cummin along later axes: SLICEs of the whole batch (size -1 there)."""

    def forward(self, x):
        return torch.cummax(x, 1)[0] + torch.cummin(x, 2)[0]


class SortsBatch(nn.Module):
    """Sorting along the batch: a TOPK_V2 of k = the batch size."""

    def forward(self, x):
        return torch.sort(x, dim=0)[0] * 2


class Ranges(nn.Module):
    """Ranges as long as the batch, read as the file runs (arange: RANGE in int64, float32, int32)."""

    def forward(self, x):
        b = x.shape[0]
        rows = torch.arange(b)[:, None] * x + torch.arange(1, b + 1, dtype=torch.float32)[:, None]
        return rows + torch.arange(3 * b, 0, -3, dtype=torch.int32)[:, None]


class SlicesBatch(nn.Module):
    """Slices along axes of run-time size (dynamic_slice): bounds read as the file runs (the
    batch), constant ones past it, a step of 2, first and last rows (x[0], x[-1], y[-1:])."""

    def forward(self, x):
        b = x.shape[0]
        y = torch.cat([x, x * 2], 0)  # [2 * batch, ...]
        return y[b:] - y[:b] + y[1::2] * x[-1] + x[0] + y.narrow(0, b, b) + y[-1:]


def _encoder():
    return nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)


CASES = {
    "cnn_channels_last": (CNN, (3, 8, 8), "channels_last"),
    "mlp": (MLP, (12,), None),
    "encoder_layer": (_encoder, (6, 16), None),
    "views": (Views, (4, 6), None),
    "expands_batch_sum": (ExpandsBatchSum, (5,), None),
    "folds_batch": (FoldsBatch, (4,), None),
    "running_extremes": (RunningExtremes, (6, 3), None),
    "ranges": (Ranges, (5,), None),
    "slices_batch": (SlicesBatch, (5,), None),
}


def _scaled_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - want))) / max(1.0, float(np.max(np.abs(want))))


def _input_signature(path: str) -> list[int]:
    from ai_edge_litert.interpreter import Interpreter

    return [int(d) for d in Interpreter(model_path=path).get_input_details()[0]["shape_signature"]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_written_with_a_run_time_batch(case, tmp_path):
    make, shape, layout = CASES[case]
    torch.manual_seed(0)
    model = make().eval()
    path = str(tmp_path / f"{case}.tflite")
    result = torch2keras.to_tflite(model, torch.randn(2, *shape), path, dynamic_shapes=[{0: "batch"}],
                                   input_layouts=layout)
    assert result.max_abs_error is not None and result.max_abs_error < 1e-4  # (at batches 2 and 4)
    assert _input_signature(path)[0] == -1
    name = result.ir.input_names[0]
    for batch in BATCHES:
        x = torch.randn(batch, *shape)
        with torch.no_grad():
            want = model(x).numpy()
        feed = x.numpy().transpose(0, 2, 3, 1) if layout else x.numpy()
        got = list(run_tflite(path, {name: feed}).values())[0]
        assert got.shape == want.shape, (case, batch)
        assert _scaled_error(got, want) <= TOL, (case, batch, _scaled_error(got, want))


def test_export_tflite_direct_records_the_run_time_batch(tmp_path):
    torch.manual_seed(0)
    model = CNN().eval()
    compiled = torch2keras.compile(model, torch.randn(2, 3, 8, 8), dynamic_shapes={"x": {0: "batch"}},
                                   input_layouts="channels_last")
    path = compiled.export_tflite(str(tmp_path / "cnn.tflite"), backend="direct")
    record = compiled.report.tflite
    assert record["backend"] == "direct" and record["signature"] == {"x": [-1, 8, 8, 3], "output": [-1, 10]}
    assert record["max_abs_error"] < 1e-4
    x = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        want = model(x).numpy()
    assert _scaled_error(compiled.run_tflite(path, [x.numpy()])[0], want) <= TOL


def test_op_depending_on_the_batch_size_is_refused(tmp_path):
    with pytest.raises(DirectExportError, match=r"IR op 'sort' .* is written with its TOPK_V2 constant 'sort/k' "
                                                r"holding the batch size: it depends on the batch size"):
        torch2keras.to_tflite(SortsBatch(), torch.randn(3, 4), str(tmp_path / "sort.tflite"),
                              dynamic_shapes={"x": {0: "batch"}})


def test_auto_falls_back_on_the_converter(tmp_path):
    compiled = torch2keras.compile(SortsBatch(), torch.randn(3, 4), dynamic_shapes={"x": {0: "batch"}})
    with pytest.warns(UserWarning, match=r"depends on the batch size(.|\n)*TFLite converter instead"):
        compiled.export_tflite(str(tmp_path / "sort.tflite"), backend="auto")
    assert compiled.report.tflite["backend"] == "converter"


def test_a_sequence_length_stays_refused(tmp_path):
    with pytest.raises(DirectExportError, match=r"has a run-time size \(f32\[2,seq,12\]\) other than its stored "
                                                r"leading size"):
        torch2keras.to_tflite(MLP(), torch.randn(2, 5, 12), str(tmp_path / "seq.tflite"),
                              dynamic_shapes={"x": {1: "seq"}})


def test_two_run_time_sizes_stay_refused(tmp_path):
    with pytest.raises(DirectExportError, match=r"has a run-time size .* other than its stored leading size"):
        torch2keras.to_tflite(MLP(), torch.randn(2, 5, 12), str(tmp_path / "two.tflite"),
                              dynamic_shapes={"x": {0: "batch", 1: "seq"}})


def test_wrong_at_another_batch_size_fails_the_check(tmp_path):
    """A file right on the example and wrong at another batch size: an error, or with "auto" a
    warning and the converter."""
    torch.manual_seed(0)
    model = MLP().eval()
    x = torch.randn(2, 12)
    compiled = torch2keras.compile(model, x, dynamic_shapes={"x": {0: "batch"}}, validate=False)
    graph, path = compiled.ir, str(tmp_path / "mlp.tflite")
    with torch.no_grad():
        reference = [model(x).numpy()]
    size, inputs = other_batch(graph, [x.numpy()])
    assert size == 4 and inputs[0].shape == (4, 12) and not np.array_equal(inputs[0][:2], x.numpy())

    def run(p, delegates):
        return [run_tflite(p, {"x": x.numpy()})["output"]]

    def run_batch(p):  # a reference off by 1 at the other batch size
        got = run_tflite(p, {"x": inputs[0]})["output"]
        return size, [got], [got + 1.0]

    with pytest.raises(NumericalMismatchError, match=r"written with a run-time batch, differs from the reference "
                                                     r"at batch 4: output 0 max \|err\| 1"):
        export_direct(graph, path, "direct", None, run, reference, run_batch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert export_direct(graph, path, "auto", None, run, reference, run_batch) is None
    assert any("TFLite converter instead" in str(w.message) for w in caught)
    done = export_direct(graph, path, "direct", None, run, reference,
                         lambda p: (size, [run_tflite(p, {"x": inputs[0]})["output"]],
                                    [model(torch.from_numpy(inputs[0])).detach().numpy()]))
    assert done.record["signature"] == {"x": [-1, 12], "output": [-1, 4]}


def test_batch_sizes_written_at():
    assert len(set(BATCH_SIZES)) == 2 and 1 not in BATCH_SIZES


def test_batch_check_takes_nan_where_the_reference_has_it():
    """The check at another batch size compares as every output check does (ir.compare): NaN and
    -inf where the reference has them agree; a NaN against a number is a difference."""
    reference = np.array([[1.0, np.nan, -np.inf]])
    assert batch_mismatch(4, [reference.copy()], [reference]) is None
    assert "output 0 max |err| inf" in batch_mismatch(4, [np.array([[1.0, np.nan, 0.0]])], [np.array([[1.0, 2.0, 0.0]])])
