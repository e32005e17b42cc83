"""Dynamic sequence length through Hugging Face causal LMs: sizes in index arithmetic (the
causal mask's ``padding_mask[batch_idx, kv_idx]``) are symbolic, and the converted models match
PyTorch at other lengths in Keras and TFLite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2keras
from support import max_abs_error

ATOL = 1e-4


class MaskByIndices(nn.Module):
    """A mask indexed with two broadcast index tensors over a dynamic axis (strides s0, 1) and
    a negative index into it (counted from the run-time end)."""

    def forward(self, x):  # x: [b, n]
        b, n = x.shape
        rows = torch.arange(b)[:, None]
        cols = torch.arange(n)[None, :]
        picked = x[rows, cols.flip(-1)]
        return picked + x[:, -1:] + x[rows, torch.tensor([[-2]])]


def test_two_index_tensors_over_a_dynamic_axis(tmp_path):
    model = MaskByIndices()
    result = torch2keras.compile(model, torch.randn(2, 7), dynamic_shapes={"x": {0: "batch", 1: "n"}})
    path = result.export_tflite(str(tmp_path / "mask.tflite"))
    for shape in [(2, 7), (3, 11)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[1]))
        ref = model(x).numpy()
        assert max_abs_error(result.run_keras([x.numpy()])[0], ref) <= ATOL
        assert max_abs_error(result.run_tflite(path, [x.numpy()])[0], ref) <= ATOL


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_causal_lm_dynamic_sequence_length(family, tmp_path):
    from causal_lms import BUILDERS, VOCAB, Logits

    model = Logits(BUILDERS[family]())
    ids = torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(0))
    result = torch2keras.compile(model, ids, dynamic_shapes={"input_ids": {1: "seq"}}, on_mismatch="raise")
    path = result.export_tflite(str(tmp_path / f"{family}.tflite"))
    assert result.report.tflite["signature"]["input_ids"] == [1, -1]
    for length in (5, 13):
        ids = torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            ref = model(ids).numpy()
        assert np.abs(ref).max() > 1e-2
        for out in (result.run_keras([ids.numpy()])[0], result.run_tflite(path, [ids.numpy()])[0]):
            assert max_abs_error(out, ref) <= ATOL
