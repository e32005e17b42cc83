"""Selective int8 quantization (``export_tflite(quantize="int8", keep_float=..., target_agreement=...)``):
which ops the file computes in float32 (counted), the top-1 agreement it reports against PyTorch's,
the rule that the agreement's lower confidence bound (not the share counted) reaches the target,
and the errors for names that are no layer, too few held-out rows and options that do not apply."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.tflite import selective
from torch2keras.tflite.file import read_tflite
from torch2keras.tflite.runtime import run_tflite, tflite_runner

HOLDOUT = 300  # held-out inputs: all agreeing, 300 rows show 0.99 at 95% confidence (268 would)


def _outlier_mlp() -> nn.Module:
    """linear-relu, linear-relu whose first output channel is ~300x the others (per-tensor int8
    leaves the other channels a few steps), linear reading that channel scaled back down: int8
    throughout mixes the classes up; the middle and last layers in float32 do not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    with torch.no_grad():
        model[2].weight[0].mul_(300.0)
        model[2].bias[0] = 50.0
        model[4].weight[:, 0].mul_(1 / 300.0)
    return model


@pytest.fixture(scope="module")
def compiled():
    model = _outlier_mlp()
    generator = torch.Generator().manual_seed(1)
    calibration = [(torch.randn(1, 16, generator=generator).numpy(),) for _ in range(32)]
    holdout = [(torch.randn(1, 16, generator=generator).numpy(),) for _ in range(HOLDOUT)]
    return model, torch2keras.compile(model, torch.randn(1, 16), validate="outputs"), calibration, holdout


def _fully_connected(path: str) -> dict[str, int]:
    """FULLY_CONNECTED ops of the file by the dtype they write."""
    f = read_tflite(path)
    counts: dict[str, int] = {}
    for op in f.main_ops():
        if op.name == "FULLY_CONNECTED":
            dtype = f.tensor(op.outputs[0]).dtype
            counts[dtype] = counts.get(dtype, 0) + 1
    return counts


def _torch_agreement(model, path: str, holdout, name: str) -> float:
    same = 0
    for (x,) in holdout:
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy().argmax(-1)
        got = next(iter(run_tflite(path, {name: x}).values())).argmax(-1)
        same += int(np.all(got == want))
    return same / len(holdout)


def test_target_agreement_keeps_the_layers_where_int8_error_jumps_float(compiled, tmp_path):
    model, result, calibration, holdout = compiled
    path = result.export_tflite(str(tmp_path / "selective.tflite"), quantize="int8", calibration=calibration,
                                holdout=holdout, io_dtype="float32", target_agreement=0.95, delegates=False)
    choice = result.report.quantization_selection
    assert choice.agreement_int8 < 0.9 and choice.agreement_bound >= 0.95 and choice.reached
    assert choice.agreement_bound == selective.agreement_lower_bound(round(choice.agreement * HOLDOUT), HOLDOUT)
    assert choice.samples == choice.rows == HOLDOUT and sorted(choice.kept_float) == ["linear_1", "output"]
    assert _fully_connected(path) == {"float32": 2, "int8": 1} and choice.float_ops == 2
    assert [s["agreement"] for s in choice.steps][0] == choice.agreement_int8 and len(choice.steps) == 3
    # the agreement is measured: the written file against PyTorch agrees as reported (near-ties aside)
    assert abs(_torch_agreement(model, path, holdout, result.input_names[0]) - choice.agreement) <= 2 / HOLDOUT
    assert choice.bytes_int8 < choice.bytes < choice.bytes_float
    assert set(choice.latency_ms) == {"float32", "int8", "selective"}
    assert "selective int8: top-1 agreement" in result.report.summary()


def test_keep_float_by_layer_name_or_module_path(compiled, tmp_path):
    _, result, calibration, holdout = compiled
    for names in (["linear_1"], ["2"], ["[24]"]):
        path = result.export_tflite(str(tmp_path / "kept.tflite"), quantize="int8", calibration=calibration,
                                    holdout=holdout[:4], io_dtype="float32", keep_float=names, delegates=False)
        expected = {"float32": 2, "int8": 1} if names == ["[24]"] else {"float32": 1, "int8": 2}
        assert _fully_connected(path) == expected, names
        assert result.report.quantization_selection.target is None
    assert result.report.quantization_selection.kept_float == ["linear_1", "output"]


def test_selective_quantization_errors(compiled, tmp_path):
    _, result, calibration, holdout = compiled
    path = str(tmp_path / "bad.tflite")
    with pytest.raises(ValueError, match=r"keep_float: 'conv9' name\(s\) no op .* layers here: linear, relu, linear_1"):
        result.export_tflite(path, quantize="int8", calibration=calibration, keep_float=["conv9"], delegates=False)
    with pytest.raises(ValueError, match=r'keep_float keeps layers float in a calibrated int8 file: quantize="int8"'):
        result.export_tflite(path, quantize="dynamic_int8", keep_float=["linear"])
    with pytest.raises(ValueError, match=r"target_agreement is a share of held-out inputs, in \(0, 1\) \(its lower "
                                         r"confidence bound never shows 1\), got 99"):
        result.export_tflite(path, quantize="int8", calibration=calibration, target_agreement=99)
    with pytest.raises(ValueError, match=r"in \(0, 1\) .*got 1.0"):
        result.export_tflite(path, quantize="int8", calibration=calibration, target_agreement=1.0)
    with pytest.raises(ValueError, match=r"target_agreement=0.99 is shown at 95% confidence .* only by at least 268 "
                                         r"held-out output rows, all agreeing; the 64 held-out input\(s\) give 64"):
        result.export_tflite(path, quantize="int8", calibration=calibration, holdout=holdout[:64],
                             target_agreement=0.99, delegates=False)
    with pytest.raises(ValueError, match=r"keep_float takes a list of layer names \(strings\), got 'linear'"):
        result.export_tflite(path, quantize="int8", calibration=calibration, keep_float="linear")


@pytest.mark.parametrize("agree, total", [(298, 300), (299, 300), (300, 300), (0, 10), (7, 10), (995, 1000),
                                          (1151, 1157)])
def test_agreement_lower_bound_is_the_wilson_score_bound(agree, total):
    """The bound is the agreement at which the one-sided score test at 5% just rejects: the
    observed share lies z = 1.645 standard errors above it; with scipy, its Wilson interval's
    lower end at 90% two-sided (= 95% one-sided)."""
    bound = selective.agreement_lower_bound(agree, total)
    z = NormalDist().inv_cdf(0.95)
    p = agree / total
    assert 0.0 <= bound <= p
    if 0 < bound:
        assert (p - bound) / math.sqrt(bound * (1 - bound) / total) == pytest.approx(z, rel=1e-9)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert bound == pytest.approx(scipy_stats.binomtest(agree, total).proportion_ci(0.90, "wilson").low, abs=1e-12)


def test_the_rule_asks_for_the_bound_not_the_share():
    """2 disagreements in 300 rows (99.33%) do not show 0.99; none do; 0.99 needs 268 rows."""
    assert 298 / 300 >= 0.99 and not selective.reached_target(298, 300, 0.99)
    assert selective.reached_target(300, 300, 0.99) and not selective.reached_target(299, 300, 0.99)
    assert selective.rows_needed(0.99) == 268
    assert selective.reached_target(268, 268, 0.99) and not selective.reached_target(267, 267, 0.99)
    assert selective.rows_needed(1.0) is None and not selective.reached_target(10 ** 9, 10 ** 9, 1.0)


def _classes(path: str, name: str, inputs: list[np.ndarray]) -> np.ndarray:
    runner = tflite_runner(path, delegates=False)
    return np.array([next(iter(runner(**{name: x}).values())).argmax(-1)[0] for x in inputs])


def test_two_disagreements_in_300_keep_layers_float(compiled, tmp_path):
    """Held-out inputs on which the all-int8 file disagrees with the float file on exactly 2 of
    300 (99.33% >= 0.99, as mobilenet_v3_small's did): target 0.99 still keeps layers float,
    until all 300 agree."""
    _, result, calibration, _ = compiled
    name = result.input_names[0]
    generator = torch.Generator().manual_seed(2)
    pool = [torch.randn(1, 16, generator=generator).numpy() for _ in range(800)]
    float_path = result.export_tflite(str(tmp_path / "float.tflite"), validate=False, delegates=False)
    int8_path = result.export_tflite(str(tmp_path / "int8.tflite"), quantize="int8", calibration=calibration,
                                     holdout=[(x,) for x in pool[:4]], io_dtype="float32", keep_float=[],
                                     validate=False, delegates=False)
    same = _classes(float_path, name, pool) == _classes(int8_path, name, pool)
    agreeing, disagreeing = [x for x, s in zip(pool, same) if s], [x for x, s in zip(pool, same) if not s]
    holdout = [(x,) for x in agreeing[:298] + disagreeing[:2]]
    assert len(holdout) == 300
    result.export_tflite(str(tmp_path / "selective.tflite"), quantize="int8", calibration=calibration,
                         holdout=holdout, io_dtype="float32", target_agreement=0.99, validate=False, delegates=False)
    choice = result.report.quantization_selection
    assert choice.steps[0]["agree"] == 298 and choice.agreement_int8 >= 0.99
    assert choice.agreement_bound_int8 < 0.99 and choice.kept_float
    assert choice.agreement == 1.0 and choice.agreement_bound >= 0.99 and choice.reached


@pytest.mark.parametrize("reaching, total, found, tries", [
    (lambda n: n >= 13, 40, 13, [1, 2, 4, 8, 16, 12, 14, 13]),
    (lambda n: n == 3 or n >= 20, 40, 20, [1, 2, 4, 8, 16, 32, 24, 20, 18, 19]),  # agreement not monotone
    (lambda n: n >= 40, 40, 40, [1, 2, 4, 8, 16, 32, 40, 36, 38, 39]),  # only all layers float reach
    (lambda n: False, 5, None, [1, 2, 4, 5]),
])
def test_search_prefix_doubles_then_bisects(reaching, total, found, tries):
    """The counts of first ranked layers tried: doubling up to all of them, then bisection; the
    count found reaches and the one below it tried does not."""
    calls = []

    def reaches(n):
        calls.append(n)
        return reaching(n)

    assert selective.search_prefix(total, reaches, budget=24) == found
    assert calls == tries


def test_search_prefix_stops_at_its_budget():
    calls = []
    assert selective.search_prefix(100, lambda n: calls.append(n) or n >= 90, budget=5) is None
    assert calls == [1, 2, 4, 8, 16]
