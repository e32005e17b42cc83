"""``LiteRTCausalLM``: a file written by ``export_tflite`` run in LiteRT, one token step at a time.

It holds the key/value caches between calls (the signatures take and return them; a
``cache="state"`` file keeps them in its variables, one cache per interpreter) and the number
of tokens they hold; ``prefill`` feeds a prompt (in chunks of the file's prefill lengths,
``prefill_plan``) and ``decode`` one token, each returning the logits of the last token fed.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from .file_metadata import read_file_metadata

__all__ = ["LiteRTCausalLM", "prefill_plan"]

_PREFILL = re.compile(r"prefill(_(\d+))?$")


def prefill_plan(n: int, start: int, lengths: Sequence[int], max_context: int) -> list[tuple[int, int]]:
    """How a prompt of ``n`` tokens fed after ``start`` held ones is split over prefill calls:
    ``[(begin, length), ...]``, each call taking ``prompt[begin:begin + length]`` padded to
    ``length`` (one of ``lengths``); ``length`` 0 feeds ``prompt[begin:]`` one decode step at a
    time. Chunks of the largest length while more than it remains, then the smallest length
    that holds the rest (the fewest padded tokens). Where that padding would run past the cache,
    the smallest length that holds the rest and fits in the prompt ends at the prompt's end
    (re-feeding tokens already fed rewrites their entries with equal values); failing that,
    decode steps."""
    lengths = sorted(lengths)
    plan, begin = [], 0
    while n - begin > lengths[-1]:
        plan.append((begin, lengths[-1]))
        begin += lengths[-1]
    rest = n - begin
    holding = [p for p in lengths if p >= rest]
    if start + begin + holding[0] <= max_context:
        return plan + [(begin, holding[0])]
    refeed = [p for p in holding if p <= n]
    return plan + [(n - refeed[0], refeed[0]) if refeed else (begin, 0)]


class LiteRTCausalLM:
    """The ``prefill`` (or ``prefill_<n>``) and ``decode`` signatures of one ``.tflite`` file and
    the cache state (``LiteRTSeq2SeqLM``: an encoder-decoder file, whose prefill is optional)."""

    def __init__(self, path: str, num_threads: Optional[int] = None, delegates: bool = True) -> None:
        """delegates: LiteRT's default XNNPACK delegate (fast prefill; it packs a float copy of
        the weights for each signature: about three times a float32 file's size in memory);
        False: LiteRT's own kernels read the weights where the file is mapped (about its size)."""
        from ..tflite.runtime import interpreter

        self.path = str(path)
        self.interpreter = interpreter(self.path, delegates=delegates, num_threads=num_threads)
        keys = self.interpreter.get_signature_list()
        prefills = [key for key in keys if _PREFILL.match(key)]
        self._check_signatures(sorted(keys), prefills)
        runners = [self.interpreter.get_signature_runner(key) for key in prefills]
        lengths = [int(r.get_input_details()["tokens"]["shape"][1]) for r in runners]
        self._prefills = dict(sorted(zip(lengths, runners), key=lambda item: item[0]))
        self._decode = self.interpreter.get_signature_runner("decode")
        self._read_details((runners[0] if runners else self._decode).get_input_details())
        self.context: dict[str, np.ndarray] = {}  # inputs every step takes besides tokens, position and cache
        self.reset()

    def _check_signatures(self, keys: list[str], prefills: list[str]) -> None:
        if "encode" in keys:
            raise ValueError(f"{self.path} is an encoder-decoder file (it has an encode signature): give its "
                             f"encoder input (generate(..., encoder_input=...), LiteRTSeq2SeqLM.encode; on the "
                             f"command line --encoder-ids)")
        if not prefills or "decode" not in keys:
            raise ValueError(f"{self.path} has no prefill and decode signatures (it has {keys}): write it "
                             f"with torch2keras.generative.export_tflite")

    @property
    def prefill_lens(self) -> tuple[int, ...]:
        """The file's prefill lengths, ascending (one unless it has ``prefill_<n>`` buckets)."""
        return tuple(self._prefills)

    @property
    def prefill_len(self) -> int:
        """The longest prefill call (0 for a file without prefill: decode steps feed a prompt)."""
        return self.prefill_lens[-1] if self._prefills else 0

    def _read_details(self, details: dict) -> None:
        self.token_dtype = details["tokens"]["dtype"]
        self.position_dtype = details["input_pos"]["dtype"]
        # files written with last_logits_only: prefill returns the row of tokens[last_index] only
        self.last_index_dtype = details["last_index"]["dtype"] if "last_index" in details else None
        self.cache_specs = {name: (tuple(int(n) for n in d["shape"]), d["dtype"]) for name, d in details.items()
                            if name.startswith("kv_cache_")}  # (none: the cache is state, inside the file)
        self.cache_kind = "arguments" if self.cache_specs else "state"
        self.max_context = int(next(iter(self.cache_specs.values()))[0][2]) if self.cache_specs else \
            self._state_max_context()
        self.vocab_size = int(self._decode.get_output_details()["logits"]["shape"][-1])

    def _state_max_context(self) -> int:
        record = read_file_metadata(self.path)
        if record.get("cache") != "state":
            raise ValueError(f"{self.path}: its signatures take no kv_cache_* inputs and its metadata names no cache "
                             f"kept as state: write it with torch2keras.generative.export_tflite")
        return int(record["max_context"])

    def reset(self) -> None:
        """Empty caches: the next ``prefill`` starts a new sequence (a ``cache="state"`` file's
        variables keep the last sequence's entries, which the new one overwrites before it
        attends to them)."""
        self.cache = {name: np.zeros(shape, dtype) for name, (shape, dtype) in self.cache_specs.items()}
        self.position = 0

    def _step(self, runner, tokens: np.ndarray, start: int, **extra: np.ndarray) -> np.ndarray:
        out = runner(tokens=tokens.astype(self.token_dtype)[None, :],
                     input_pos=np.asarray([start], self.position_dtype), **extra, **self.context, **self.cache)
        self.cache = {name: out[name] for name in self.cache_specs}
        return out["logits"][0]

    def _prefill_chunk(self, chunk: np.ndarray, length: int, start: int) -> np.ndarray:
        """One call of the ``length`` prefill on ``chunk`` padded; the logits of its last token."""
        runner, last = self._prefills[length], len(chunk) - 1
        padded = np.concatenate([chunk, np.zeros(length - len(chunk), np.int64)])
        if self.last_index_dtype is None:
            return self._step(runner, padded, start)[last]
        return self._step(runner, padded, start, last_index=np.asarray([last], self.last_index_dtype))[0]

    def prefill(self, prompt: Sequence[int]) -> np.ndarray:
        """Feed ``prompt`` after the tokens already held; the logits of its last token."""
        prompt = np.asarray(prompt, np.int64).reshape(-1)
        n, start = len(prompt), self.position
        if n == 0:
            raise ValueError("prefill needs at least one token")
        self._check_room(n)
        if not self._prefills:  # (a file with a decode signature only)
            return self._decode_each(prompt, start)
        for begin, length in prefill_plan(n, start, self.prefill_lens, self.max_context):
            if length == 0:
                return self._decode_each(prompt[begin:], start + begin)
            logits = self._prefill_chunk(prompt[begin:begin + length], length, start + begin)
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
