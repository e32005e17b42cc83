"""Peak resident memory: ``torch2keras.memory.PeakRSS`` sees an allocation made and freed inside
its span (nested spans too); the stages of ``to_tflite`` copy no weights (lowering, the passes
and the writer each add far less than the weights' bytes to the process's peak RSS); a long
stage reports its time, memory and progress to the progress callback."""

from __future__ import annotations

import re
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from torch2keras.memory import PeakRSS, current_rss
from torch2keras.stages import Stages

MB = 1 << 20
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


def _allocate_and_free(nbytes: int) -> None:
    block = np.ones(nbytes // 8)  # written: resident
    del block


@linux
def test_peak_of_a_span_includes_memory_freed_inside_it():
    with PeakRSS() as outer:
        with PeakRSS() as small:
            _allocate_and_free(16 * MB)
        with PeakRSS() as big:
            _allocate_and_free(200 * MB)
        after = current_rss()
    assert big.peak - big.start >= 190 * MB
    assert small.peak - small.start < 100 * MB  # the big block came later: not in this span
    assert outer.peak >= big.peak and outer.peak - after >= 150 * MB  # freed, still in the outer peak


class Tower(nn.Module):
    """Four 2048 x 2048 linear layers: 64 MiB of float32 weights."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(2048, 2048, bias=False) for _ in range(4)])

    def forward(self, x):
        return torch.tanh(self.layers(x))


@linux
@pytest.mark.parametrize("quantize", [None, "fp16"])
def test_conversion_stages_copy_no_weights(tmp_path, quantize):
    """Lowering and the passes hold views of the parameters; the writer streams them into the
    file (an fp16 file: their float16 halves). One copy of the weights would add 64 MiB."""
    torch.manual_seed(0)
    model = Tower().eval()
    weights = sum(p.numel() * 4 for p in model.parameters())
    tolerance = 1e-4 if quantize is None else 1e-2
    result = torch2keras.to_tflite(model, torch.randn(2, 2048), str(tmp_path / "tower.tflite"), quantize=quantize,
                                   atol=tolerance)
    grown = {stage: result.memory[stage] - result.memory_start[stage] for stage in result.memory}
    assert set(grown) == {"reference", "capture", "lower", "passes", "write"}
    assert all(result.memory_start[s] >= weights for s in grown)  # the model's weights are resident
    assert grown["lower"] < weights / 4 and grown["passes"] < weights / 4, grown
    written = weights / 2 if quantize == "fp16" else 0  # the float16 weights the file holds
    assert grown["write"] < written + weights / 2, grown


def test_a_long_stage_reports_its_time_memory_and_progress():
    said: list[str] = []
    run = Stages(said.append, heartbeat=0.05)

    def slow() -> str:
        run.detail("1.00 of 2.00 GB of weights written")
        time.sleep(0.3)
        return "done"

    assert run("write", slow) == "done" and run("quick", lambda: None) is None
    # (a loaded machine may let the quick stage outlive the 0.05 s heartbeat too: only the beats of
    # "write", said before "quick..." was announced, are checked)
    assert said[0] == "write..." and "quick..." in said
    beats = said[1:said.index("quick...")]
    assert len(beats) >= 2 and all(re.fullmatch(r"write: \d+ s, \d+\.\d GB resident, 1\.00 of 2\.00 GB of weights "
                                                r"written", b) for b in beats), beats
    assert set(run.timings) == set(run.memory) == {"write", "quick"} and run.timings["write"] >= 0.3
