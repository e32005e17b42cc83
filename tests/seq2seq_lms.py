"""Tiny Hugging Face encoder-decoder models with seeded random weights (no downloads): T5 (a
text encoder: relative position buckets, gated-GELU feed-forward, tied and scaled output
embedding) and Whisper (an audio encoder: convolutions over mel features, learned positions).

The weights are drawn larger than the models' defaults (``initializer_factor``, ``init_std``):
with the defaults, random weights generate one token over and over, which would not show a
cache that misplaces anything.
"""

from __future__ import annotations

import torch

from causal_lms import VOCAB, transformers

T5_VOCAB = 1024
T5_START = 0  # T5's decoder_start_token_id (its pad id)
WHISPER_START = 1
MEL_BINS, SOURCE_POSITIONS = 8, 16  # Whisper's encoder takes [1, 8, 32] features (two convolutions, stride 1 and 2)


def _redrawn_zeros(model: torch.nn.Module) -> torch.nn.Module:
    """Parameters initialised to zeros (biases) re-drawn, so that each of them reaches the logits."""
    model.eval()
    model.generation_config.eos_token_id = None  # greedy generation runs its full length
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.1)
    return model


def small_t5(seed: int = 0) -> torch.nn.Module:
    """T5 v1.1's shape, small (3.7 MB of weights: enough for them to dominate the file), 8
    relative position buckets up to distance 20, so that encoder and decoder positions reach
    the logarithmic buckets and the last one."""
    torch.manual_seed(seed)
    config = transformers.T5Config(vocab_size=T5_VOCAB, d_model=128, d_kv=16, d_ff=256, num_layers=2,
                                   num_decoder_layers=2, num_heads=8, relative_attention_num_buckets=8,
                                   relative_attention_max_distance=20, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                                   initializer_factor=2.0, decoder_start_token_id=T5_START)
    return _redrawn_zeros(transformers.T5ForConditionalGeneration(config))


def tiny_whisper(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=MEL_BINS, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=SOURCE_POSITIONS, max_target_positions=64, pad_token_id=0, bos_token_id=WHISPER_START,
        eos_token_id=2, decoder_start_token_id=WHISPER_START, suppress_tokens=None, begin_suppress_tokens=None,
        init_std=0.5)
    return _redrawn_zeros(transformers.WhisperForConditionalGeneration(config))
