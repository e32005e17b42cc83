"""``torch2keras generate``: token ids generated in LiteRT by a file ``generative.export_tflite`` wrote
(a causal LM's, or an encoder-decoder model's given ``--encoder-ids``).

The arguments are checked (``check``) before the LiteRT runtime is loaded, so that a typo is
one ``error:`` line and exit 2. The generated ids (the prompt excluded) are printed on one line,
separated by spaces.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

from .exits import OK, UsageError

__all__ = ["check", "prompt_ids", "run"]


def prompt_ids(text: str, flag: str = "--prompt-ids") -> list[int]:
    """``--prompt-ids``'s (or ``flag``'s) ``1,2,3`` -> [1, 2, 3] (at least one id, none negative)."""
    try:
        ids = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected token ids separated by commas, e.g. 1,2,3") from None
    if any(i < 0 for i in ids):
        raise UsageError(f"{flag} {text!r}: token ids must not be negative")
    return ids


def check(args: argparse.Namespace) -> tuple[list[int], Optional[list[int]]]:
    """The prompt's ids and the encoder's (None without ``--encoder-ids``); raises
    ``UsageError`` for a missing file or a bad option."""
    if not os.path.isfile(args.file):
        raise UsageError(f"{args.file}: no such file (a .tflite written by torch2keras.generative.export_tflite)")
    ids = prompt_ids(args.prompt_ids)
    encoder = None if args.encoder_ids is None else prompt_ids(args.encoder_ids, "--encoder-ids")
    if args.max_new_tokens < 0:
        raise UsageError(f"--max-new-tokens {args.max_new_tokens}: must be 0 or more")
    if not args.sample:
        given = [flag for flag, value in (("--temperature", args.temperature), ("--top-k", args.top_k),
                                          ("--seed", args.seed)) if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --sample "
                             "(greedy decoding draws nothing)")
    if args.temperature is not None and args.temperature <= 0:
        raise UsageError(f"--temperature {args.temperature}: must be > 0")
    if args.top_k is not None and args.top_k < 1:
        raise UsageError(f"--top-k {args.top_k}: must be 1 or more")
    return ids, encoder


def run(args: argparse.Namespace) -> int:
    ids, encoder = check(args)
    from ..generative.generation import generate  # the LiteRT runtime: once the arguments are right

    try:
        out = generate(args.file, ids, args.max_new_tokens, do_sample=args.sample,
                       temperature=1.0 if args.temperature is None else args.temperature, top_k=args.top_k,
                       seed=args.seed, eos_token_id=args.eos_token_id, encoder_input=encoder)
    except ValueError as e:  # not a generative file (of that kind), a prompt too long or ids outside the vocabulary
        raise UsageError(f"{args.file}: {e}") from e
    print(" ".join(str(int(i)) for i in out[len(ids):]))
    return OK
