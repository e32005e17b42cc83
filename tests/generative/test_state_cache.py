"""``generative.export_tflite(..., cache="state")``: the key/value cache kept in resource
variables of the file that prefill and decode share; the signatures take tokens and positions
only, and generation in LiteRT gives PyTorch's greedy token ids."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from causal_lms import VOCAB, tiny_llama
from seq2seq_lms import small_t5
from torch2keras import generative, to_tflite_signatures
from torch2keras.backend_tflite.schema import fb
from torch2keras.generative.file_metadata import read_file_metadata
from torch2keras.generative.runner import LiteRTCausalLM
from torch2keras.tflite.file import read_tflite

MAX_CONTEXT, PREFILL_LEN = 64, 16
RTOL = 1e-4


@pytest.fixture(scope="module")
def llama_files(tmp_path_factory):
    """The tiny Llama written with its cache as state and as arguments."""
    folder = tmp_path_factory.mktemp("state_cache")
    model = tiny_llama()
    files = {cache: generative.export_tflite(model, str(folder / f"{cache}.tflite"), max_context=MAX_CONTEXT,
                                             prefill_len=PREFILL_LEN, cache=cache)
             for cache in ("state", "arguments")}
    return model, files


def _prompt(length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


def _torch_greedy(model: torch.nn.Module, prompt: torch.Tensor, new: int) -> tuple[np.ndarray, list[np.ndarray]]:
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new, do_sample=False,
                             pad_token_id=0, return_dict_in_generate=True, output_logits=True)
    return out.sequences[0].numpy(), [step[0].numpy() for step in out.logits]


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref)))


def test_signatures_take_tokens_and_positions_only(llama_files):
    _, files = llama_files
    exported = files["state"]
    assert exported.cache == "state" and max(exported.result.max_abs_errors.values()) <= 1e-4
    runner = LiteRTCausalLM(exported.path)
    inputs = {key: sorted(runner.interpreter.get_signature_runner(key).get_input_details())
              for key in ("prefill", "decode")}
    assert inputs == {"prefill": ["input_pos", "last_index", "tokens"], "decode": ["input_pos", "tokens"]}
    assert list(runner.interpreter.get_signature_runner("decode").get_output_details()) == ["logits"]
    assert (runner.cache_kind, runner.max_context, runner.cache_specs) == ("state", MAX_CONTEXT, {})
    assert read_file_metadata(exported.path) == {"cache": "state", "max_context": MAX_CONTEXT, "num_layers": 2,
                                                 "kv_heads": 2, "head_dim": 8}
    assert read_file_metadata(files["arguments"].path)["cache"] == "arguments"


def test_prefill_and_decode_share_one_variable_per_cache_tensor(llama_files):
    _, files = llama_files
    path = files["state"].path
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(open(path, "rb").read(), 0))
    names = {code: name for name, code in vars(fb.BuiltinOperator).items() if isinstance(code, int)}
    shared = []
    for sub in model.subgraphs[:2]:  # prefill, decode (then the initialisation)
        ops = [(names[model.operatorCodes[op.opcodeIndex].builtinCode], op.builtinOptions) for op in sub.operators]
        assert ops[0][0] == "CALL_ONCE" and ops[0][1].initSubgraphIndex == 2
        shared.append(sorted(o.sharedName.decode() for name, o in ops if name == "VAR_HANDLE"))
    cache = [f"kv_cache_{kind}_{i}" for i in range(2) for kind in "kv"]
    assert shared[0] == shared[1] == sorted(cache)
    counts = read_tflite(path).op_counts()
    # reads and writes: 4 cache tensors in each signature (and the initialisation's FILLs and assignments)
    assert (counts["READ_VARIABLE"], counts["ASSIGN_VARIABLE"], counts["FILL"]) == (8, 12, 4)


def test_greedy_32_tokens_equal_pytorch(llama_files):
    model, files = llama_files
    path = files["state"].path
    prompt = _prompt(16, seed=1)
    ref_ids, ref_logits = _torch_greedy(model, prompt, 32)
    np.testing.assert_array_equal(generative.generate(path, prompt[0].numpy(), 32), ref_ids)
    runner = LiteRTCausalLM(path)  # the same steps, comparing logits (PyTorch's tokens fed)
    worst = _relative_error(runner.prefill(prompt[0].numpy()), ref_logits[0])
    for step in range(1, 32):
        worst = max(worst, _relative_error(runner.decode(int(ref_ids[16 + step - 1])), ref_logits[step]))
    assert worst <= RTOL


@pytest.mark.parametrize("delegates", [True, False])
def test_later_sequences_on_one_interpreter_need_no_clearing(llama_files, delegates):
    """A runner generates again over the entries the previous sequence left in its variables
    (a longer one, then a shorter prompt): each sequence reads only what it wrote."""
    model, files = llama_files
    runner = LiteRTCausalLM(files["state"].path, delegates=delegates)
    for length, seed, new in ((20, 2, 24), (5, 3, 12), (20, 2, 24)):
        prompt = _prompt(length, seed)
        ids = generative.generate(runner, prompt[0].numpy(), new)
        np.testing.assert_array_equal(ids, _torch_greedy(model, prompt, new)[0])


def test_file_within_5_percent_of_the_argument_cache_file(llama_files):
    """The same weights, stored once; the variables' empty initial values are FILLs, not stored."""
    _, files = llama_files
    state, arguments = files["state"].result.bytes, files["arguments"].result.bytes
    assert arguments < state <= 1.05 * arguments


def test_cache_kind_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"cache='buffers': give one of \('arguments', 'state'\)"):
        generative.export_tflite(tiny_llama(), str(tmp_path / "x.tflite"), max_context=MAX_CONTEXT,
                                 prefill_len=PREFILL_LEN, cache="buffers")
    with pytest.raises(ValueError, match="T5ForConditionalGeneration is an encoder-decoder model: cache=\"state\" is "
                                         "written for causal LMs"):
        generative.export_tflite(small_t5(), str(tmp_path / "t5.tflite"), max_context=32, encoder_len=16,
                                 cache="state")


class _TokensToLogits(torch.nn.Module):
    def forward(self, tokens, input_pos):
        return {"logits": (tokens + input_pos).float()[..., None]}


def test_a_file_without_cache_inputs_or_metadata_is_refused(tmp_path):
    path = str(tmp_path / "bare.tflite")
    step = (_TokensToLogits(), (torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, dtype=torch.long)))
    to_tflite_signatures({"prefill": step, "decode": (step[0], (torch.zeros(1, 1, dtype=torch.long), step[1][1]))},
                         path)
    with pytest.raises(ValueError, match="bare.tflite: its signatures take no kv_cache_\\* inputs and its metadata "
                                         "names no cache kept as state"):
        LiteRTCausalLM(path)


def test_benchmark_times_a_state_file_as_the_runner_runs_it(llama_files):
    """``benchmarks/state_cache.py`` times files with ``benchmarks/generative.py``'s timer: on a
    state file it feeds tokens and positions only and gets the runner's logits."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "state_cache.py")
    spec = importlib.util.spec_from_file_location("state_cache_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    state = llama_files[1]["state"].path
    timer = bench.bench.SignatureTimer(state, PREFILL_LEN, threads=1)
    assert timer.caches == {}
    prompt = np.arange(3, 9)
    _, cache = timer.run_prefill(prompt, timer.empty_cache())
    _, _, logits = timer.run_decode(7, len(prompt), cache)
    runner = LiteRTCausalLM(state, num_threads=1)
    runner.prefill(prompt)
    np.testing.assert_allclose(logits, runner.decode(7), rtol=0, atol=1e-5)
    speed = {cache: {"prefill_ms": 1.0, "decode_tokens_per_s": 2.0} for cache in bench.CACHES}
    files = {cache: {"bytes": 1e6, "decode_ops": {"ADD": 3}} for cache in bench.CACHES}
    assert "| state | 1.00 | 3 | 1.0 | 2.0 |" in bench.markdown({"files": files, "speed": speed})
