"""``torch2keras.generative.export_tflite``: a Hugging Face causal LM as one ``.tflite`` file with
a ``prefill`` and a ``decode`` signature over a static key/value cache, sharing one copy of the
weights.

Signature inputs: ``tokens`` [1, T] (int64), ``input_pos`` [1] (int64: the position of
``tokens[0]``, i.e. how many tokens the cache already holds) and the caches
``kv_cache_k_<layer>``, ``kv_cache_v_<layer>`` [1, kv_heads, max_context, head_dim]; outputs:
``logits`` [1, T, vocab] and the updated caches under the same names. ``prefill`` takes
``T = prefill_len`` tokens (a shorter prompt is padded at the end: the padding's cache entries
lie beyond the prompt and are overwritten before anything attends to them), ``decode`` one.
Several prefill lengths (``prefill_len=(16, 64, 256)``: buckets) write one ``prefill_<n>``
signature per length instead of ``prefill``, over the same weights.
An encoder-decoder model (T5, Whisper) also gets an ``encode`` signature (``seq2seq_step``:
encoder input -> ``cross_cache_*``, the cross-attention keys and values of every decoder layer,
computed once), which its decoder signatures take as inputs besides the self-attention cache;
its ``prefill`` is optional.
With ``last_logits_only`` (the default) ``prefill`` also takes ``last_index`` [1] (int64: the
index in ``tokens`` of the prompt's last real token) and returns only that token's ``logits``
[1, 1, vocab].
With ``cache="state"`` (causal LMs) the cache is no signature input or output: it lives in
resource variables of the file that ``prefill`` and ``decode`` share (``state_step``), and the
signatures take ``tokens``, ``input_pos`` (and ``last_index``) only. The file's metadata
records the cache kind and layout (``file_metadata``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import attrs
import torch

from ..signatures import SignaturesResult, to_tflite_signatures
from .layout import CacheLayout, cache_layout
from .file_metadata import file_metadata
from .seq2seq_step import Seq2SeqStep, TextEncodeStep, encode_step, seq2seq_layouts
from .state_step import CACHE_KINDS, StateCacheStep
from .step import CausalLMStep

__all__ = ["GenerativeExport", "export_tflite", "prefill_lengths", "prefill_signature_names", "signature_modules"]


@attrs.define
class GenerativeExport:
    """The written file (``result``: sizes, seconds, errors per signature), its cache layout, where
    the cache lives (``cache``: ``"arguments"`` or ``"state"``) and, for an encoder-decoder
    model, the cross-attention cache's layout (``cross_layout``)."""

    result: SignaturesResult
    layout: CacheLayout
    prefill_len: Union[int, tuple[int, ...], None]
    cross_layout: Optional[CacheLayout] = None
    cache: str = "arguments"

    @property
    def prefill_lens(self) -> tuple[int, ...]:
        """The file's prefill lengths, ascending (none: an encoder-decoder file without prefill)."""
        return () if self.prefill_len is None else prefill_lengths(self.prefill_len)

    @property
    def path(self) -> str:
        return self.result.path


def prefill_lengths(prefill_len: Union[int, Sequence[int]]) -> tuple[int, ...]:
    """``prefill_len`` (one length or several) as ascending distinct lengths."""
    lens = (prefill_len,) if isinstance(prefill_len, int) else tuple(sorted({int(n) for n in prefill_len}))
    if not lens:
        raise ValueError("prefill_len=(): give at least one prefill length")
    return lens


def prefill_signature_names(prefill_len: Union[int, Sequence[int]]) -> dict[str, int]:
    """``{signature: tokens}``: ``{"prefill": n}`` for one length (an int), else one
    ``prefill_<n>`` per length."""
    if isinstance(prefill_len, int):
        return {"prefill": prefill_len}
    return {f"prefill_{n}": n for n in prefill_lengths(prefill_len)}


def signature_modules(model: torch.nn.Module, max_context: int, prefill_len: Union[int, Sequence[int], None],
                      last_logits_only: bool = True, encoder_len: Optional[int] = None, cache: str = "arguments"
                      ) -> dict[str, tuple[torch.nn.Module, tuple]]:
    """``{"prefill": (step, example inputs), "decode": (step, example inputs)}`` (several
    prefill lengths: ``prefill_<n>`` each): one ``CausalLMStep`` (one set of weights) called with
    each prefill length's tokens (and, with ``last_logits_only``, a ``last_index`` that is not
    the last row) and with one. An encoder-decoder model (``config.is_encoder_decoder``): an
    ``encode`` entry first (``encoder_len``: its input length), a ``Seq2SeqStep`` for the
    decoder's entries, and ``prefill_len`` may be None (no prefill: a decoder prompt is fed one
    decode step at a time). ``cache="state"``: a causal LM's step holds its cache as state
    (``StateCacheStep``), its example inputs are tokens and positions only."""
    _check_float32(model)
    if cache not in CACHE_KINDS:
        raise ValueError(f"cache={cache!r}: give one of {CACHE_KINDS}")
    if getattr(model.config, "is_encoder_decoder", False):
        if cache != "arguments":
            raise ValueError(f"{type(model).__name__} is an encoder-decoder model: cache=\"state\" is written for "
                             f"causal LMs (an encoder-decoder file takes its caches as arguments)")
        return _seq2seq_modules(model, max_context, prefill_len, last_logits_only, encoder_len)
    if prefill_len is None:
        raise ValueError(f"{type(model).__name__}: give prefill_len, the tokens one prefill call takes")
    if encoder_len is not None:
        raise ValueError(f"encoder_len={encoder_len}: {type(model).__name__} has no encoder")
    step = CausalLMStep(model.eval(), cache_layout(model, max_context))
    return _decoder_modules(StateCacheStep(step) if cache == "state" else step, prefill_len, last_logits_only)


def _decoder_modules(step: Union[CausalLMStep, StateCacheStep], prefill_len: Union[int, Sequence[int], None], last_logits_only: bool
                     ) -> dict[str, tuple[torch.nn.Module, tuple]]:
    """The prefill entries (none for ``prefill_len=None``) and the decode entry of ``step``."""
    max_context = step.layout.max_context
    names = {} if prefill_len is None else prefill_signature_names(prefill_len)
    for n in names.values():
        if not 1 <= n <= max_context:
            raise ValueError(f"prefill_len={n} must be between 1 and max_context={max_context}")
    decode_at = min(max(names.values(), default=max_context // 2), max_context - 1)
    modules = {name: (step, step.example_inputs(n, 0, seed=0, last_index=n // 2 if last_logits_only else None))
               for name, n in names.items()}
    modules["decode"] = (step, step.example_inputs(1, decode_at, seed=1))
    return modules


def _seq2seq_modules(model: torch.nn.Module, max_context: int, prefill_len: Union[int, Sequence[int], None],
                     last_logits_only: bool, encoder_len: Optional[int]) -> dict[str, tuple[torch.nn.Module, tuple]]:
    encode = encode_step(model)
    if isinstance(encode, TextEncodeStep) and encoder_len is None:
        raise ValueError(f"{type(model).__name__}: give encoder_len, the encoder's input length (shorter inputs "
                         f"are padded to it)")
    example = encode.example_inputs(encoder_len, seed=2)
    layout, cross_layout = seq2seq_layouts(encode, example, max_context)
    step = Seq2SeqStep(model.eval(), layout, cross_layout, encoder_mask=isinstance(encode, TextEncodeStep))
    return {"encode": (encode, example), **_decoder_modules(step, prefill_len, last_logits_only)}


def _check_float32(model: torch.nn.Module) -> None:
    dtypes = sorted({str(p.dtype).replace("torch.", "") for p in model.parameters() if p.is_floating_point()})
    if dtypes not in ([], ["float32"]):
        raise TypeError(f"{type(model).__name__} holds {', '.join(dtypes)} weights: export_tflite converts float32 "
                        f"models (quantize=\"fp16\" stores float16 weights). Load it with "
                        f"from_pretrained(..., dtype=torch.float32) or convert it with model.float()")


def export_tflite(model: torch.nn.Module, path: str, *, max_context: int,
                  prefill_len: Union[int, Sequence[int], None] = None, encoder_len: Optional[int] = None,
                  last_logits_only: bool = True, cache: str = "arguments", quantize: Any = None,
                  validate: bool = True, atol: float = 1e-4, rtol: float = 1e-4,
                  progress: Optional[Callable[[str], None]] = None) -> GenerativeExport:
    """Write ``model`` (a Hugging Face ``...ForCausalLM``, or an encoder-decoder
    ``T5ForConditionalGeneration`` / ``WhisperForConditionalGeneration``, unmodified) to ``path``
    (see the module docstring). max_context: the cache's length, the most tokens a generation
    can hold; prefill_len: the tokens one prefill call takes (longer prompts take several);
    several lengths (a tuple) write a ``prefill_<n>`` signature each, and ``LiteRTCausalLM``
    feeds each chunk of a prompt to the smallest that holds it (required for a causal LM; an
    encoder-decoder file without it feeds its decoder prompt, usually one start token, to
    ``decode``). encoder_len: a text encoder's input length (shorter inputs are padded).
    last_logits_only: ``prefill`` returns the logits of the last real prompt token only (else
    of all ``prefill_len`` positions). cache: ``"arguments"`` (the signatures take and return
    the cache: the caller holds it) or ``"state"`` (a causal LM's cache kept in variables of the
    file that its signatures share: the caller feeds tokens and positions only; one cache per
    interpreter). quantize: None,
    ``"fp16"``, a weight quantization mode (``"dynamic_int8"``, ``"dynamic_int4"``,
    ``"dynamic_int4_b32"``, ...) or a ``WeightQuantization`` (``to_tflite``). validate: each signature run in LiteRT against PyTorch (``atol``, ``rtol``)."""
    modules = signature_modules(model, max_context, prefill_len, last_logits_only, encoder_len, cache)
    step = modules["decode"][0]
    result = to_tflite_signatures(modules, path, quantize=quantize, validate=validate, atol=atol, rtol=rtol,
                                  progress=progress, metadata=file_metadata(step.layout, cache))
    lens = prefill_len if isinstance(prefill_len, int) or prefill_len is None else prefill_lengths(prefill_len)
    return GenerativeExport(result, step.layout, lens, getattr(step, "cross_layout", None), cache)
