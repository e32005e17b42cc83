"""``LiteRTSeq2SeqLM``: an encoder-decoder file written by ``export_tflite`` run in LiteRT.

``encode(encoder_input)`` runs the ``encode`` signature once and keeps its outputs (the
cross-attention keys and values, and a text encoder's mask) as inputs of every later decoder
step; ``prefill`` and ``decode`` then feed the decoder as ``LiteRTCausalLM`` feeds a causal LM
(a file without a ``prefill`` signature feeds a decoder prompt one decode step at a time).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from .runner import LiteRTCausalLM

__all__ = ["LiteRTSeq2SeqLM"]

_CROSS = "cross_cache_"


class LiteRTSeq2SeqLM(LiteRTCausalLM):
    """The ``encode``, ``decode`` (and optional ``prefill``) signatures of one file, the decoder's
    cache and the encoder's output (``context``)."""

    def __init__(self, path: str, num_threads: Optional[int] = None, delegates: bool = True) -> None:
        super().__init__(path, num_threads=num_threads, delegates=delegates)
        self._encode = self.interpreter.get_signature_runner("encode")
        self.encoder_inputs = {name: (tuple(int(n) for n in d["shape"]), d["dtype"])
                               for name, d in self._encode.get_input_details().items()}
        wanted = {name for name in self._decode.get_input_details() if name.startswith(_CROSS)}
        produced = set(self._encode.get_output_details())
        if not wanted <= produced:
            raise ValueError(f"{self.path}: decode reads {sorted(wanted - produced)}, which encode does not return")
        self._context_names = sorted(wanted)

    def _check_signatures(self, keys: list[str], prefills: list[str]) -> None:
        if "encode" not in keys or "decode" not in keys:
            raise ValueError(f"{self.path} has no encode and decode signatures (it has {keys}): write an "
                             f"encoder-decoder model with torch2keras.generative.export_tflite")

    @property
    def source_len(self) -> int:
        """The encoder's input length (a text input is padded to it)."""
        return int(next(iter(self.encoder_inputs.values()))[0][-1])

    def encode(self, encoder_input: Union[Sequence[int], np.ndarray]) -> None:
        """Run the encoder on ``encoder_input`` (token ids, at most ``source_len``; or the
        features an audio encoder takes) and empty the decoder's cache: the next ``prefill`` or
        ``decode`` starts the output sequence."""
        text = "input_ids" in self.encoder_inputs
        out = self._encode(**(self._text_feed(encoder_input) if text else self._feature_feed(encoder_input)))
        self.context = {name: out[name] for name in self._context_names}
        self.reset()

    def _text_feed(self, ids: Sequence[int]) -> dict[str, np.ndarray]:
        ids = np.asarray(ids, np.int64).reshape(-1)
        (shape, dtype), (_, mask_dtype) = self.encoder_inputs["input_ids"], self.encoder_inputs["attention_mask"]
        if not 1 <= len(ids) <= shape[1]:
            raise ValueError(f"the encoder takes 1 to {shape[1]} token ids (the file's encoder_len); got {len(ids)}")
        if not (0 <= ids.min() and ids.max() < self.vocab_size):
            raise ValueError(f"the encoder's token ids must lie in [0, {self.vocab_size}) (the file's vocabulary); "
                             f"got {ids.min()}..{ids.max()}")
        padded, mask = np.zeros(shape, dtype), np.zeros(shape, mask_dtype)
        padded[0, :len(ids)], mask[0, :len(ids)] = ids, 1
        return {"input_ids": padded, "attention_mask": mask}

    def _feature_feed(self, features: np.ndarray) -> dict[str, np.ndarray]:
        (name, (shape, dtype)), = self.encoder_inputs.items()
        features = np.asarray(features, dtype)
        if features.shape not in (shape, shape[1:]):
            raise ValueError(f"the encoder takes {name} of shape {list(shape)}; got {list(features.shape)}")
        return {name: features.reshape(shape)}
