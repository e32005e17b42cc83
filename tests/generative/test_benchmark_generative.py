"""The helpers of ``benchmarks/generative.py`` on a tiny Llama (the 135M run is ``make
bench-generative``): conversion record, the timer's calls against ``LiteRTCausalLM``, op
counts of a signature, and what a missing peer environment reports."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from torch2keras.generative.runner import LiteRTCausalLM

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "generative.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("generative_benchmark", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(bench, tmp_path_factory):
    model = bench.random_llama(bench.SHAPES["tiny"])
    path = str(tmp_path_factory.mktemp("bench") / "tiny.tflite")
    return model, bench.convert_ours(model, path, max_context=64, prefill_len=8, quantize=None)


def test_conversion_record(tiny):
    _, record = tiny
    assert record["bytes"] == os.path.getsize(record["path"])
    assert record["peak_rss"] == max(record["memory"].values()) > 0 and record["seconds"] > 0


def test_timer_decodes_as_the_runner_does(bench, tiny):
    """The timer's prefill (a prompt shorter than the signature, padded) and decode steps give
    ``LiteRTCausalLM``'s logits; its greedy tokens are PyTorch's."""
    model, record = tiny
    prompt = np.arange(3, 9)
    timer = bench.SignatureTimer(record["path"], 8, threads=1)
    _, cache = timer.run_prefill(prompt, timer.empty_cache())
    _, cache, logits = timer.run_decode(7, len(prompt), cache)
    runner = LiteRTCausalLM(record["path"], num_threads=1)
    runner.prefill(prompt)
    np.testing.assert_allclose(logits, runner.decode(7), rtol=0, atol=1e-5)
    seconds, tokens_per_second = timer.round(prompt, decode_steps=3)
    assert seconds > 0 and tokens_per_second > 0
    assert bench.greedy_matches_pytorch(model, record["path"], prompt, 6)


def test_interleaved_medians(bench, tiny):
    _, record = tiny
    timers = {"a": bench.SignatureTimer(record["path"], 8, 1), "b": bench.SignatureTimer(record["path"], 8, 1)}
    speed = bench.interleaved(timers, np.arange(1, 9), rounds=3, decode_steps=2)
    for entry in speed.values():
        assert len(entry["prefill_ms_all"]) == 3
        assert entry["prefill_ms"] == pytest.approx(float(np.median(entry["prefill_ms_all"])))


def test_decode_op_counts_write_the_cache_without_a_scatter(bench, tiny):
    """One row written per cache tensor (a dynamic update slice, not a select over the whole
    cache); no transposes of the cache, no scatter; q, k and v one product, gate and up one."""
    _, record = tiny
    ops = bench.signature_op_counts(record["path"], "decode")
    assert ops["FULLY_CONNECTED"] == 2 * 4 + 1  # q+k+v, o, gate+up, down per layer; the head
    assert ops["SPLIT"] == 2  # gate and up
    assert "TRANSPOSE" not in ops and not {"UNSORTED_SEGMENT_SUM", "SCATTER_ND"} & set(ops)
    assert ops["DYNAMIC_UPDATE_SLICE"] == 2 * 2  # the caches of 2 layers
    assert ops["SELECT_V2"] == 1  # the attention mask


def test_a_missing_peer_environment_is_reported(bench, tmp_path):
    result = bench.convert_peer(str(tmp_path / "no_python"), "w.pt", bench.SHAPES["tiny"], "x.tflite", 64, [8], "none")
    assert "not found" in result["error"]
    table = bench.markdown({"files": {"litert-torch float32": {"variant": "float32", "converter": "litert-torch",
                                                                "conversion": result}}, "speed": {}})
    assert "| float32 | litert-torch | failed:" in table
