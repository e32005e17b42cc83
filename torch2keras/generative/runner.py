"""``LiteRTCausalLM``: a file written by ``export_tflite`` run in LiteRT, one token step at a time.

It holds the key/value caches between calls (the signatures take and return them) and the
number of tokens they hold; ``prefill`` feeds a prompt (in chunks of the file's prefill length)
and ``decode`` one token, each returning the logits of the last token fed.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["LiteRTCausalLM"]


class LiteRTCausalLM:
    """The ``prefill`` and ``decode`` signatures of one ``.tflite`` file and the cache state."""

    def __init__(self, path: str, num_threads: Optional[int] = None, delegates: bool = True) -> None:
        """delegates: LiteRT's default XNNPACK delegate (fast prefill; it packs a float copy of
        the weights for each signature: about three times a float32 file's size in memory);
        False: LiteRT's own kernels read the weights where the file is mapped (about its size)."""
        from ..tflite.runtime import interpreter

        self.path = str(path)
        self.interpreter = interpreter(self.path, delegates=delegates, num_threads=num_threads)
        keys = self.interpreter.get_signature_list()
        missing = {"prefill", "decode"} - set(keys)
        if missing:
            raise ValueError(f"{self.path} has no {sorted(missing)} signature (it has {sorted(keys)}): write it with "
                             f"torch2keras.generative.export_tflite")
        self._prefill = self.interpreter.get_signature_runner("prefill")
        self._decode = self.interpreter.get_signature_runner("decode")
        details = self._prefill.get_input_details()
        self.prefill_len = int(details["tokens"]["shape"][1])
        self.token_dtype = details["tokens"]["dtype"]
        self.position_dtype = details["input_pos"]["dtype"]
        # files written with last_logits_only: prefill returns the row of tokens[last_index] only
        self.last_index_dtype = details["last_index"]["dtype"] if "last_index" in details else None
        self.cache_specs = {name: (tuple(int(n) for n in d["shape"]), d["dtype"]) for name, d in details.items()
                            if name.startswith("kv_cache_")}
        self.max_context = int(next(iter(self.cache_specs.values()))[0][2])
        self.vocab_size = int(self._decode.get_output_details()["logits"]["shape"][-1])
        self.reset()

    def reset(self) -> None:
        """Empty caches: the next ``prefill`` starts a new sequence."""
        self.cache = {name: np.zeros(shape, dtype) for name, (shape, dtype) in self.cache_specs.items()}
        self.position = 0

    def _step(self, runner, tokens: np.ndarray, start: int, **extra: np.ndarray) -> np.ndarray:
        out = runner(tokens=tokens.astype(self.token_dtype)[None, :],
                     input_pos=np.asarray([start], self.position_dtype), **extra, **self.cache)
        self.cache = {name: out[name] for name in self.cache_specs}
        return out["logits"][0]

    def _prefill_chunk(self, padded: np.ndarray, start: int, last: int) -> np.ndarray:
        """One prefill call; the logits of ``padded[last]``."""
        if self.last_index_dtype is None:
            return self._step(self._prefill, padded, start)[last]
        return self._step(self._prefill, padded, start, last_index=np.asarray([last], self.last_index_dtype))[0]

    def prefill(self, prompt: Sequence[int]) -> np.ndarray:
        """Feed ``prompt`` after the tokens already held; the logits of its last token."""
        prompt = np.asarray(prompt, np.int64).reshape(-1)
        n, start, p = len(prompt), self.position, self.prefill_len
        if n == 0:
            raise ValueError("prefill needs at least one token")
        self._check_room(n)
        logits = None
        for begin in range(0, n, p):
            # the last chunk ends at the prompt's end (re-feeding earlier tokens rewrites their
            # entries with equal values) unless the whole prompt is shorter than a chunk
            begin = min(begin, max(n - p, 0))
            chunk = prompt[begin:begin + p]
            padded = np.concatenate([chunk, np.zeros(p - len(chunk), np.int64)])
            if start + begin + p > self.max_context:  # the padding would run past the cache
                return self._decode_each(prompt[begin:], start + begin)
            logits = self._prefill_chunk(padded, start + begin, len(chunk) - 1)
        self.position = start + n
        return logits

    def _decode_each(self, tokens: np.ndarray, start: int) -> np.ndarray:
        self.position = start
        for token in tokens:
            logits = self.decode(int(token))
        return logits

    def decode(self, token: int) -> np.ndarray:
        """Feed one token after the tokens already held; its logits."""
        self._check_room(1)
        logits = self._step(self._decode, np.asarray([token], np.int64), self.position)[0]
        self.position += 1
        return logits

    def _check_room(self, n: int) -> None:
        if self.position + n > self.max_context:
            raise ValueError(f"{self.position} tokens held and {n} more exceed the file's max_context="
                             f"{self.max_context}: export with a larger max_context")
