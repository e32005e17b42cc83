"""Hugging Face causal LMs exported as prefill/decode signatures (``generative.export_tflite``)
and run in LiteRT (``generative.generate``): greedy token ids equal PyTorch's
``model.generate``, and each step's logits match PyTorch's within 1e-4 (relative)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causal_lms import BUILDERS, VOCAB, transformers
from torch2keras import generative, to_tflite_signatures
from torch2keras.backend_tflite.writer import build_signatures
from torch2keras.generative.runner import LiteRTCausalLM

MAX_CONTEXT, PREFILL_LEN = 64, 16
RTOL = 1e-4


def _export(family: str, folder) -> tuple[torch.nn.Module, str, generative.GenerativeExport]:
    model = BUILDERS[family]()
    exported = generative.export_tflite(model, str(folder / f"{family}.tflite"), max_context=MAX_CONTEXT,
                                        prefill_len=PREFILL_LEN)
    return model, exported.path, exported


def _prompt(length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


def _torch_greedy(model: torch.nn.Module, prompt: torch.Tensor, new: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """PyTorch's greedy ids (prompt included) and the logits of each generated step."""
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new, do_sample=False,
                             pad_token_id=0, return_dict_in_generate=True, output_logits=True)
    return out.sequences[0].numpy(), [step[0].numpy() for step in out.logits]


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref)))


def _check_greedy(model: torch.nn.Module, path: str, prompt_len: int, new: int) -> float:
    """Greedy ids in LiteRT == PyTorch's; returns the worst relative logits error over the steps."""
    prompt = _prompt(prompt_len)
    ref_ids, ref_logits = _torch_greedy(model, prompt, new)
    ids = generative.generate(path, prompt[0].numpy(), new)
    np.testing.assert_array_equal(ids, ref_ids)
    runner = LiteRTCausalLM(path)  # the same steps, comparing logits (PyTorch's tokens fed)
    worst = _relative_error(runner.prefill(prompt[0].numpy()), ref_logits[0])
    for step in range(1, new):
        worst = max(worst, _relative_error(runner.decode(int(ref_ids[prompt_len + step - 1])), ref_logits[step]))
    assert worst <= RTOL
    return worst


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return _export("llama", tmp_path_factory.mktemp("llama"))


def test_llama_signatures_share_weights_and_match_pytorch(llama):
    model, path, exported = llama
    assert set(exported.result.max_abs_errors) == {"prefill", "decode"}
    assert max(exported.result.max_abs_errors.values()) <= 1e-4
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    stored, _ = build_signatures(exported.result.graphs)
    assert weights <= stored.weight_bytes < 1.05 * weights  # one copy of the weights (two would be 2x)
    runner = LiteRTCausalLM(path)
    assert (runner.prefill_len, runner.max_context) == (PREFILL_LEN, MAX_CONTEXT)
    # grouped-query attention: 2 key/value heads for 4 query heads
    assert runner.cache_specs["kv_cache_k_0"][0] == (1, 2, MAX_CONTEXT, 8)


def test_llama_graphs_hold_the_models_weights_not_copies(llama):
    """Both signatures' IR constants are numpy views of the model's parameters (a billion-
    parameter model is converted with one copy of its weights in memory: the model's)."""
    model, _, exported = llama
    params = [p.detach().numpy() for p in model.parameters()]
    matrices = sum(p.size >= 256 for p in params)  # (not the norms' vectors)
    for key, graph in exported.result.graphs.items():
        weights = [n.attrs["value"] for n in graph if n.op == "constant" and n.attrs["value"].size >= 256]
        assert len(weights) >= matrices, key
        assert [w.shape for w in weights if not any(np.shares_memory(w, p) for p in params)] == [], key


def test_llama_memory_record_per_stage(llama):
    model, _, exported = llama
    result = exported.result
    assert set(result.memory) == set(result.timings) == {f"{key} {stage}" for key in ("prefill", "decode") for stage in
                                                        ("reference", "capture", "lower", "passes")} | {"write", "validate"}
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert all(weights < result.memory_start[s] <= result.memory[s] < 64e9 for s in result.memory)


def test_llama_without_xnnpack_generates_pytorch_greedy_ids(llama):
    """LiteRT's own kernels reading the mapped file (``delegates=False``: no packed copy of the
    weights per signature) generate what PyTorch does."""
    model, path, _ = llama
    prompt = _prompt(16)
    ids = generative.generate(LiteRTCausalLM(path, delegates=False), prompt[0].numpy(), 12)
    np.testing.assert_array_equal(ids, _torch_greedy(model, prompt, 12)[0])


def test_llama_greedy_32_tokens_equal_pytorch(llama):
    model, path, _ = llama
    _check_greedy(model, path, prompt_len=16, new=32)


@pytest.mark.parametrize("prompt_len", [5, 40])
def test_llama_prompt_shorter_and_longer_than_prefill(llama, prompt_len):
    """A short prompt is padded; a long one is fed in chunks, the last ending at the prompt's end."""
    model, path, _ = llama
    _check_greedy(model, path, prompt_len=prompt_len, new=8)


def test_sampling_is_seeded_and_top_1_is_greedy(llama):
    _, path, _ = llama
    prompt = _prompt(16)[0].numpy()
    first = generative.generate(path, prompt, 12, do_sample=True, temperature=2.0, seed=3)
    again = generative.generate(path, prompt, 12, do_sample=True, temperature=2.0, seed=3)
    other = generative.generate(path, prompt, 12, do_sample=True, temperature=2.0, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    greedy = generative.generate(path, prompt, 12)
    np.testing.assert_array_equal(generative.generate(path, prompt, 12, do_sample=True, top_k=1, seed=5), greedy)


def test_a_bfloat16_model_is_refused_saying_how_to_load_it(tmp_path):
    model = BUILDERS["llama"]().to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"LlamaForCausalLM holds bfloat16 weights: export_tflite converts float32 "
                                        r"models .* from_pretrained\(\.\.\., dtype=torch.float32\) or .* model.float\(\)"):
        generative.export_tflite(model, str(tmp_path / "bf16.tflite"), max_context=MAX_CONTEXT, prefill_len=PREFILL_LEN)


def test_too_long_a_generation_is_an_error(llama):
    _, path, _ = llama
    with pytest.raises(ValueError, match="exceed the file's max_context=64"):
        generative.generate(path, _prompt(40)[0].numpy(), 32)
    with pytest.raises(ValueError, match=r"must lie in \[0, 128\) \(the file's vocabulary\); got 1..128"):
        generative.generate(path, [1, 128], 4)


def _prefill_io(path: str) -> tuple[list[str], tuple[int, ...]]:
    runner = LiteRTCausalLM(path)
    prefill = runner.interpreter.get_signature_runner("prefill")
    return sorted(prefill.get_input_details()), tuple(prefill.get_output_details()["logits"]["shape"])


def test_prefill_returns_the_last_real_tokens_logits_only(llama):
    """The default file's prefill takes ``last_index`` and returns one row of logits; that row
    (PyTorch's, within 1e-4 relative) is checked for padded prompts by ``_check_greedy``."""
    _, path, _ = llama
    inputs, logits = _prefill_io(path)
    assert "last_index" in inputs and logits == (1, 1, VOCAB)
    decode = LiteRTCausalLM(path).interpreter.get_signature_runner("decode")
    assert "last_index" not in decode.get_input_details()


def test_all_prefill_logits_when_asked(tmp_path):
    model = BUILDERS["llama"]()
    path = generative.export_tflite(model, str(tmp_path / "all.tflite"), max_context=MAX_CONTEXT,
                                    prefill_len=PREFILL_LEN, last_logits_only=False).path
    inputs, logits = _prefill_io(path)
    assert "last_index" not in inputs and logits == (1, PREFILL_LEN, VOCAB)
    _check_greedy(model, path, prompt_len=5, new=8)


@pytest.mark.parametrize("family", sorted(set(BUILDERS) - {"llama"}))
def test_greedy_32_tokens_equal_pytorch(family, tmp_path):
    """Each family (causal_lms.BUILDERS); the sliding-window ones (Gemma2, Gemma3, Mistral: a
    window of 8) generate 48 tokens, so the window decides what their sliding layers see, and
    also take a 40-token prompt in chunks of 16 (the window spanning a chunk boundary)."""
    model, path, exported = _export(family, tmp_path)
    assert max(exported.result.max_abs_errors.values()) <= 1e-4
    for graph in exported.result.graphs.values():  # each cache written by one update, not a select over it
        assert graph.op_counts().get("dynamic_update_slice") == 2 * exported.layout.num_layers
    _check_greedy(model, path, prompt_len=16, new=32)
    if getattr(model.config, "sliding_window", None):
        _check_greedy(model, path, prompt_len=40, new=8)


@pytest.mark.slow
def test_two_signatures_within_5_percent_of_one(tmp_path):
    """A model whose weights dominate the file (13 MB): prefill + decode vs prefill alone."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=2048, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(config).eval()
    both = generative.export_tflite(model, str(tmp_path / "both.tflite"), max_context=128, prefill_len=32)
    modules = generative.signature_modules(model, 128, 32)
    single = to_tflite_signatures({"prefill": modules["prefill"]}, str(tmp_path / "prefill.tflite"))
    assert max(both.result.max_abs_errors.values()) <= 1e-4
    assert both.result.bytes <= 1.05 * single.bytes
    buckets = generative.export_tflite(model, str(tmp_path / "buckets.tflite"), max_context=128, prefill_len=(8, 32),
                                       validate=False)
    assert both.result.bytes < buckets.result.bytes <= 1.01 * both.result.bytes  # one more signature, no weights


@pytest.mark.parametrize("n, start, plan", [
    (3, 0, [(0, 4)]), (5, 0, [(0, 8)]), (4, 0, [(0, 4)]), (6, 0, [(0, 8)]), (16, 0, [(0, 16)]),
    (17, 0, [(0, 16), (16, 4)]), (40, 0, [(0, 16), (16, 16), (32, 8)]),
    (3, 62, [(0, 0)]),  # no length holding the rest fits in the cache, the prompt is shorter than all: decode
    (9, 50, [(0, 0)]),  # the 16's padding runs past 64 and 16 > 9 tokens: decode
    (21, 41, [(0, 16), (13, 8)]),  # the 8 after 16 would run past 64: the last 8 tokens re-fed
])
def test_prefill_plan_takes_the_smallest_length_that_holds_the_rest(n, start, plan):
    assert generative.prefill_plan(n, start, (16, 4, 8), max_context=64) == plan


@pytest.fixture(scope="module")
def llama_buckets(tmp_path_factory):
    model = BUILDERS["llama"]()
    path = str(tmp_path_factory.mktemp("buckets") / "llama_buckets.tflite")
    return model, generative.export_tflite(model, path, max_context=MAX_CONTEXT, prefill_len=(16, 4, 8))


def test_prefill_buckets_are_signatures_of_one_file(llama_buckets):
    _, exported = llama_buckets
    runner = LiteRTCausalLM(exported.path)
    assert sorted(runner.interpreter.get_signature_list()) == ["decode", "prefill_16", "prefill_4", "prefill_8"]
    assert runner.prefill_lens == exported.prefill_lens == (4, 8, 16) and runner.prefill_len == 16
    assert max(exported.result.max_abs_errors.values()) <= 1e-4


@pytest.mark.parametrize("prompt_len", [3, 7, 16, 21, 45])
def test_prefill_buckets_generate_pytorch_greedy_ids(llama_buckets, prompt_len):
    """Prompts fed as one bucket, a bucket and a smaller one, several of the largest and the rest."""
    model, exported = llama_buckets
    _check_greedy(model, exported.path, prompt_len=prompt_len, new=8)


def test_prefill_buckets_call_the_planned_signatures(llama_buckets, monkeypatch):
    _, exported = llama_buckets
    runner = LiteRTCausalLM(exported.path)
    called = []
    original = runner._prefill_chunk
    monkeypatch.setattr(runner, "_prefill_chunk", lambda chunk, length, start: (
        called.append((len(chunk), length, start)), original(chunk, length, start))[1])
    runner.prefill(_prompt(21)[0].numpy())
    assert called == [(16, 16, 0), (5, 8, 16)]
    assert runner.position == 21
