"""``benchmarks/lm_quality.py`` end to end on its tiny configuration (a 2-layer byte-level Llama,
30 training steps): the result's fields, perplexities that mean something (the model learned:
far below the 256 of a uniform guess), LiteRT's perplexity equal to PyTorch's with the file's
own weights dequantized, and int8 / int4 in blocks of 32 close to float. A file whose int4
scales are wrong (doubled as the file is written) fails those checks."""

from __future__ import annotations

import math
import os
import sys

import attrs
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "benchmarks"))

import lm_quality  # noqa: E402

from torch2keras import generative  # noqa: E402
from torch2keras.backend_tflite import context  # noqa: E402
from torch2keras.backend_tflite.weight_quantization import BlockwiseInt4Warning  # noqa: E402

TINY = ["--config", "tiny", "--steps", "30", "--batch", "8", "--lr", "1e-2", "--corpus-bytes", "200000",
        "--windows", "8", "--prompts", "2", "--new-tokens", "8", "--decode-rounds", "3", "--cache-dir", "",
        "--log-every", "0", "--no-kernel-check", "--variants", "float32", "dynamic_int8", "dynamic_int4_b32"]
SAME_WEIGHTS_RTOL = 0.01  # LiteRT's per-call activation quantization moves perplexity far less than this


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm_quality")
    args = lm_quality.parse_args(TINY)
    args.cache_dir = str(folder / "weights")  # the second test reads the trained weights back
    with pytest.warns(BlockwiseInt4Warning):
        result = lm_quality.run_benchmark(args, str(folder))
    return args, folder, result


def test_tiny_run_fields_and_perplexities(tiny_run):
    _, _, result = tiny_run
    assert set(result["variants"]) == {"float32", "dynamic_int8", "dynamic_int4_b32"}
    assert result["evaluation"]["predictions"] == 8 * 32
    assert result["training"]["steps"] == 30 and not result["training"]["cached"]
    assert result["torch_float_ppl"] < 40  # learned: a uniform guess over bytes is 256
    assert math.isclose(result["training"]["val_loss"], math.log(result["torch_float_ppl"]))
    for name, row in result["variants"].items():
        assert set(row) >= {"bytes", "size_ratio", "litert_ppl", "ppl_ratio", "torch_same_weights_ppl",
                            "decode_tokens_per_s", "greedy_vs_torch_float", "greedy_vs_torch_same_weights"}
        assert abs(row["litert_vs_same_weights"] - 1) < SAME_WEIGHTS_RTOL, name
        assert row["decode_tokens_per_s"] > 0
    rows = result["variants"]
    assert abs(rows["float32"]["ppl_ratio"] - 1) < 1e-3  # LiteRT float = PyTorch float
    assert abs(rows["dynamic_int8"]["ppl_ratio"] - 1) < 0.02
    assert rows["dynamic_int4_b32"]["ppl_ratio"] < 1.1
    assert rows["dynamic_int8"]["size_ratio"] < 0.35 and rows["dynamic_int4_b32"]["size_ratio"] < 0.22
    assert set(result["goals"]) == {"dynamic_int8", "dynamic_int4_b32"}
    table = lm_quality.markdown(result)
    assert table.count("\n| dynamic_int") == 2


def test_wrong_int4_scales_fail_the_checks(tiny_run, monkeypatch):
    """The same pipeline on a file whose block scales are written doubled: its LiteRT
    perplexity parts from PyTorch's with the correctly dequantized weights and from float."""
    args, folder, result = tiny_run
    real = context.quantized_tensor
    monkeypatch.setattr(context, "quantized_tensor", lambda sub, q, name: real(sub, attrs.evolve(q, scale=q.scale * 2),
                                                                              name))
    data, _ = lm_quality.corpus(args.corpus_bytes)
    train_data, val = lm_quality.split(data, args.val_fraction)
    model, training = lm_quality.trained_model(lm_quality.CONFIGS["tiny"], train_data, args)
    assert training["cached"]
    windows = lm_quality.eval_windows(val, args.windows, 32)
    path = str(folder / "broken.tflite")
    with pytest.warns(BlockwiseInt4Warning):
        generative.export_tflite(model, path, max_context=32, prefill_len=32, last_logits_only=False,
                                 quantize="dynamic_int4_b32", validate=False)
    prompt = windows[0, :16]
    row = lm_quality.score_variant(model, "dynamic_int4_b32", path, windows, [prompt], 8,
                                   [lm_quality.torch_greedy(model, prompt, 8)])
    assert math.isclose(row["torch_same_weights_ppl"], result["variants"]["dynamic_int4_b32"]["torch_same_weights_ppl"],
                        rel_tol=1e-6)
    assert row["litert_vs_same_weights"] > 1 + 10 * SAME_WEIGHTS_RTOL
    assert row["litert_ppl"] / result["torch_float_ppl"] > 1.1
