"""Hugging Face encoder-decoder models (T5, Whisper) exported as ``encode`` and decoder signatures
(``generative.export_tflite``) and run in LiteRT (``generative.generate``): greedy token ids
equal PyTorch's ``model.generate``, the encoder's cross-attention keys and values and each
step's logits match PyTorch's within 1e-4 (relative), and the file holds one copy of the
weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seq2seq_lms import MEL_BINS, SOURCE_POSITIONS, T5_START, T5_VOCAB, WHISPER_START, small_t5, tiny_whisper
from torch2keras import generative
from torch2keras.backend_tflite.writer import build_signatures
from torch2keras.cli import main

MAX_CONTEXT, ENCODER_LEN, NEW = 32, 16, 20
RTOL = 1e-4


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    model = small_t5()
    path = str(tmp_path_factory.mktemp("t5") / "t5.tflite")
    return model, generative.export_tflite(model, path, max_context=MAX_CONTEXT, encoder_len=ENCODER_LEN)


def _encoder_ids(length: int = 11, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, T5_VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


def _relative_error(got: np.ndarray, ref) -> float:
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref)) / np.max(np.abs(ref)))


def _t5_greedy(model, ids: torch.Tensor, new: int, decoder_ids=(T5_START,)) -> tuple[np.ndarray, list[np.ndarray]]:
    """PyTorch's greedy decoder ids (the decoder prompt included) and each generated step's logits."""
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), decoder_input_ids=torch.tensor([decoder_ids]),
                             max_new_tokens=new, do_sample=False, return_dict_in_generate=True, output_logits=True)
    return out.sequences[0].numpy(), [step[0].numpy() for step in out.logits]


def _check_steps(runner: generative.LiteRTSeq2SeqLM, encoder_input, ref_ids: np.ndarray, ref_logits: list,
                 prompt_len: int) -> float:
    """PyTorch's tokens fed to the file: the worst relative logits error over the steps."""
    runner.encode(encoder_input)
    worst = _relative_error(runner.prefill(ref_ids[:prompt_len]), ref_logits[0])
    for step in range(1, len(ref_logits)):
        worst = max(worst, _relative_error(runner.decode(int(ref_ids[prompt_len + step - 1])), ref_logits[step]))
    assert worst <= RTOL
    return worst


def test_t5_file_has_encode_and_decode_over_one_copy_of_the_weights(t5):
    model, exported = t5
    assert set(exported.result.max_abs_errors) == {"encode", "decode"}
    runner = generative.LiteRTSeq2SeqLM(exported.path)
    assert (runner.prefill_len, runner.max_context, runner.source_len) == (0, MAX_CONTEXT, ENCODER_LEN)
    cross = runner.interpreter.get_signature_runner("encode").get_output_details()
    assert sorted(cross) == ["cross_cache_k_0", "cross_cache_k_1", "cross_cache_mask", "cross_cache_v_0",
                             "cross_cache_v_1"]
    assert tuple(cross["cross_cache_k_0"]["shape"]) == (1, 8, ENCODER_LEN, 16)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    stored, _ = build_signatures(exported.result.graphs)
    assert weights <= stored.weight_bytes < 1.05 * weights  # two copies would be 2x
    assert exported.result.bytes < 1.05 * weights  # (3.7 MB of weights: the graphs add 2 %)


def test_t5_encode_holds_no_decoding_weights_and_decode_no_encoder_weights(t5):
    """``encode`` computes the cross-attention keys and values only (the decoder step of the
    forward that records them is dropped); the decoder signature never runs the encoder."""
    model, exported = t5
    graphs = exported.result.graphs

    def holds(key: str, weight: torch.nn.Parameter) -> bool:
        return any(n.op == "constant" and np.shares_memory(n.attrs["value"], weight.detach().numpy())
                   for n in graphs[key])

    decoder_layer = model.decoder.block[1].layer
    assert holds("encode", decoder_layer[1].EncDecAttention.k.weight)
    assert not holds("encode", decoder_layer[1].EncDecAttention.q.weight)
    assert not holds("encode", decoder_layer[0].SelfAttention.q.weight)
    assert not holds("decode", decoder_layer[1].EncDecAttention.k.weight)
    assert not holds("decode", model.encoder.block[1].layer[0].SelfAttention.q.weight)


def test_t5_encode_equals_the_models_own_cross_attention_cache(t5):
    """The file's keys and values of an 11-token input padded to 16 equal those the model's own
    forward caches (``model(...).cache.cross_attention_cache``) for the 11 tokens unpadded."""
    model, exported = t5
    ids = _encoder_ids()
    runner = generative.LiteRTSeq2SeqLM(exported.path)
    runner.encode(ids[0].numpy())
    with torch.no_grad():
        cache = model(ids, decoder_input_ids=torch.tensor([[T5_START]]), use_cache=True).cache.cross_attention_cache
    for i, layer in enumerate(cache.layers):
        for kind, ref in (("k", layer.keys), ("v", layer.values)):
            assert _relative_error(runner.context[f"cross_cache_{kind}_{i}"][:, :, :11], ref.numpy()) <= RTOL
    np.testing.assert_array_equal(runner.context["cross_cache_mask"][0], np.arange(ENCODER_LEN) < 11)


def test_t5_greedy_tokens_and_logits_equal_pytorch(t5):
    model, exported = t5
    ids = _encoder_ids()
    ref_ids, ref_logits = _t5_greedy(model, ids, NEW)
    got = generative.generate(exported.path, [T5_START], NEW, encoder_input=ids[0].numpy())
    np.testing.assert_array_equal(got, ref_ids)
    assert len(set(ref_ids.tolist())) >= 10  # the weights generate varied tokens
    _check_steps(generative.LiteRTSeq2SeqLM(exported.path), ids[0].numpy(), ref_ids, ref_logits, 1)


def test_t5_a_full_length_input(t5):
    model, exported = t5
    ids = _encoder_ids(ENCODER_LEN, seed=5)
    got = generative.generate(exported.path, [T5_START], 12, encoder_input=ids[0].numpy())
    np.testing.assert_array_equal(got, _t5_greedy(model, ids, 12)[0])


def test_t5_sampling_is_seeded_and_top_1_is_greedy(t5):
    _, exported = t5
    ids = _encoder_ids()[0].numpy()
    draw = dict(do_sample=True, temperature=2.0, encoder_input=ids)
    first = generative.generate(exported.path, [T5_START], 12, seed=3, **draw)
    np.testing.assert_array_equal(first, generative.generate(exported.path, [T5_START], 12, seed=3, **draw))
    assert not np.array_equal(first, generative.generate(exported.path, [T5_START], 12, seed=4, **draw))
    greedy = generative.generate(exported.path, [T5_START], 12, encoder_input=ids)
    np.testing.assert_array_equal(generative.generate(exported.path, [T5_START], 12, top_k=1, seed=5, **draw), greedy)


def test_t5_command_line(t5, capsys):
    model, exported = t5
    ids = _encoder_ids()
    argv = ["generate", exported.path, "--encoder-ids", ",".join(map(str, ids[0].tolist())), "--prompt-ids",
            str(T5_START), "--max-new-tokens", "16"]
    assert main(argv) == 0
    printed = [int(t) for t in capsys.readouterr().out.split()]
    assert printed == _t5_greedy(model, ids, 16)[0][1:].tolist()
    assert main(["generate", exported.path, "--prompt-ids", "0"]) == 2
    assert "is an encoder-decoder file (it has an encode signature): give its encoder input" in capsys.readouterr().err
    assert main(argv[:3] + ["1,x"] + argv[4:]) == 2
    assert "--encoder-ids '1,x': expected token ids separated by commas" in capsys.readouterr().err


def test_t5_errors(t5, tmp_path):
    model, exported = t5
    runner = generative.LiteRTSeq2SeqLM(exported.path)
    with pytest.raises(ValueError, match=rf"the encoder takes 1 to {ENCODER_LEN} token ids .*; got {ENCODER_LEN + 1}"):
        runner.encode(np.zeros(ENCODER_LEN + 1, np.int64))
    with pytest.raises(ValueError, match=rf"must lie in \[0, {T5_VOCAB}\) \(the file's vocabulary\); "
                                         rf"got 3..{T5_VOCAB}"):
        runner.encode([3, T5_VOCAB])
    with pytest.raises(ValueError, match="an encoder-decoder model needs encoder_input"):
        generative.generate(runner, [T5_START], 4)
    with pytest.raises(ValueError, match="give encoder_len, the encoder's input length"):
        generative.signature_modules(model, MAX_CONTEXT, None)


def _whisper_greedy(model, features: torch.Tensor, new: int, prompt=(WHISPER_START,)
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
    """PyTorch's greedy ids (the prompt included) and each step's logits: the argmax of the
    model's full forward over the ids so far, step by step."""
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(new):
            logits = model(features, decoder_input_ids=ids).logits[0]
            ids = torch.cat([ids, logits[-1].argmax().reshape(1, 1)], 1)
    return ids[0].numpy(), list(logits[len(prompt) - 1:].numpy())


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """Whisper with a prefill of 4 tokens (its usual decoder prompt: start of transcript,
    language, task, no timestamps)."""
    model = tiny_whisper()
    path = str(tmp_path_factory.mktemp("whisper") / "whisper.tflite")
    return model, generative.export_tflite(model, path, max_context=MAX_CONTEXT, prefill_len=4)


def _features(seed: int = 1) -> torch.Tensor:
    return torch.randn(1, MEL_BINS, 2 * SOURCE_POSITIONS, generator=torch.Generator().manual_seed(seed))


def test_whisper_greedy_tokens_equal_model_generate(whisper):
    """Whisper: an audio encoder (``input_features``: two convolutions and learned positions),
    no encoder mask; learned decoder positions read at ``input_pos``. (Its ``generate`` returns
    the generated ids without the decoder start token.)"""
    model, exported = whisper
    assert set(exported.result.max_abs_errors) == {"encode", "prefill", "decode"}
    assert max(exported.result.max_abs_errors.values()) <= 1e-4
    runner = generative.LiteRTSeq2SeqLM(exported.path)
    assert runner.encoder_inputs["input_features"][0] == (1, MEL_BINS, 2 * SOURCE_POSITIONS)
    features = _features()
    with torch.no_grad():
        generated = model.generate(features, max_new_tokens=16, do_sample=False)[0].numpy()
    got = generative.generate(runner, [WHISPER_START], 16, encoder_input=features.numpy())
    np.testing.assert_array_equal(got, np.concatenate([[WHISPER_START], generated]))
    assert len(set(generated.tolist())) >= 6  # the weights generate varied tokens
    assert sorted(runner.context) == ["cross_cache_k_0", "cross_cache_k_1", "cross_cache_v_0", "cross_cache_v_1"]


@pytest.mark.parametrize("prompt", [(WHISPER_START,), (WHISPER_START, 5, 6, 7)])
def test_whisper_logits_equal_pytorch_at_every_step(whisper, prompt):
    """A one-token decoder prompt and a four-token one, each one call of the 4-token prefill."""
    model, exported = whisper
    features = _features()
    ref_ids, ref_logits = _whisper_greedy(model, features, 16, prompt)
    runner = generative.LiteRTSeq2SeqLM(exported.path)
    np.testing.assert_array_equal(generative.generate(runner, prompt, 16, encoder_input=features.numpy()), ref_ids)
    _check_steps(runner, features.numpy(), ref_ids, ref_logits, len(prompt))


def test_a_causal_step_refuses_an_encoder_decoder_model(t5):
    """(A T5 stepped as a causal LM would run its encoder on the decoder's tokens.)"""
    model, _ = t5
    with pytest.raises(TypeError, match="T5ForConditionalGeneration is an encoder-decoder model: CausalLMStep steps "
                                        r"causal LMs \(generative.export_tflite takes both\)"):
        generative.CausalLMStep(model, generative.CacheLayout(2, 8, 16, MAX_CONTEXT))


def test_whisper_max_context_within_its_decoder_positions():
    with pytest.raises(ValueError, match="max_context=65 exceeds the decoder's 64 positions"):
        generative.signature_modules(tiny_whisper(), 65, None)
