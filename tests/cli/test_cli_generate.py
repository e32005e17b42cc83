"""``torch2keras generate``: the ids it prints equal PyTorch's ``model.generate`` (greedy) and the
library's seeded sampling; a bad file or option is one ``error:`` line and exit 2, found before the
LiteRT runtime is loaded."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from causal_lms import tiny_llama
from torch2keras import generative
from torch2keras.cli import main

PROMPT = [5, 17, 99, 3, 42, 7]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    model = tiny_llama()
    path = str(tmp_path_factory.mktemp("gen") / "llama.tflite")
    generative.export_tflite(model, path, max_context=64, prefill_len=16)
    return model, path


def _printed(capsys) -> list[int]:
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    return [int(t) for t in lines[0].split()]


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1
    return err[0]


def test_greedy_ids_equal_pytorch(llama, capsys):
    model, path = llama
    assert main(["generate", path, "--prompt-ids", ",".join(map(str, PROMPT)), "--max-new-tokens", "20"]) == 0
    prompt = torch.tensor([PROMPT])
    with torch.no_grad():
        ref = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False,
                             pad_token_id=0)[0, len(PROMPT):].tolist()
    assert _printed(capsys) == ref


def test_sampling_equals_the_library_with_the_same_seed(llama, capsys):
    _, path = llama
    assert main(["generate", path, "--prompt-ids", "1,2,3", "--max-new-tokens", "12", "--sample", "--temperature",
                 "2.0", "--top-k", "20", "--seed", "3"]) == 0
    ref = generative.generate(path, [1, 2, 3], 12, do_sample=True, temperature=2.0, top_k=20, seed=3)
    assert _printed(capsys) == ref[3:].tolist()


def test_missing_file(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "none.tflite"), "--prompt-ids", "1,2"]) == 2
    assert "none.tflite: no such file" in _one_error_line(capsys)


@pytest.mark.parametrize("ids, message", [("1,x,3", "expected token ids separated by commas"),
                                          ("1,-2", "must not be negative")])
def test_bad_prompt_ids(llama, capsys, ids, message):
    assert main(["generate", llama[1], "--prompt-ids", ids]) == 2
    assert message in _one_error_line(capsys)


@pytest.mark.parametrize("extra, message", [(["--temperature", "0.5"], "--temperature needs --sample"),
                                            (["--sample", "--top-k", "0"], "--top-k 0: must be 1 or more")])
def test_bad_sampling_options(llama, capsys, extra, message):
    assert main(["generate", llama[1], "--prompt-ids", "1"] + extra) == 2
    assert message in _one_error_line(capsys)


def test_ids_outside_the_vocabulary_and_too_long_a_generation(llama, capsys):
    assert main(["generate", llama[1], "--prompt-ids", "1,128"]) == 2
    assert "must lie in [0, 128)" in _one_error_line(capsys)
    assert main(["generate", llama[1], "--prompt-ids", "1,2", "--max-new-tokens", "63"]) == 2
    assert "exceed the file's max_context=64" in _one_error_line(capsys)


def test_bad_arguments_stop_before_the_runtime_loads(tmp_path):
    code = ("import sys; from torch2keras.cli import main; "
            f"code = main(['generate', {str(tmp_path / 'none.tflite')!r}, '--prompt-ids', '1']); "
            "print(code, 'ai_edge_litert' in sys.modules, 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split() == ["2", "False", "False"], out.stderr
