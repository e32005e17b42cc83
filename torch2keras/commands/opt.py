"""``torch2keras opt``: run registered passes on an IR file, verified, and print or save the result.

The file is an IR text (``compile(dump_ir=...)``, ``ir.save_ir``) with its large constants in
``FILE.npz`` when that exists (``compile(dump_weights=True)``, ``--dump-weights``); without
them the passes run on stand-ins and one that needs their values stops, saying so. Neither torch
nor TensorFlow is imported.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..ir import IRSyntaxError, Torch2KerasError, load_ir, print_graph, save_ir
from ..ir.parser import parse_pass_specs
from ..passes import PASSES, Pass, PassManager
from .exits import OK, ConversionFailed, UsageError

__all__ = ["passes_from_text", "run"]


def passes_from_text(text: str) -> list[Pass]:
    """``-p``'s list: registered pass names, each optionally with ``{option=value, ...}``."""
    try:
        specs = parse_pass_specs(text)
    except IRSyntaxError as e:
        raise UsageError(f"-p {text!r}: {e.problem} (column {e.column})") from None
    out = []
    for name, options in specs:
        if name not in PASSES:
            raise UsageError(f"unknown pass {name!r}; registered: {', '.join(sorted(PASSES))}")
        try:
            out.append(PASSES[name](**options))
        except TypeError as e:
            raise UsageError(f"pass {name!r}: {e}") from None
    return out


def run(args: argparse.Namespace) -> int:
    passes = passes_from_text(args.passes)
    try:
        graph = load_ir(args.file)
    except (OSError, IRSyntaxError) as e:
        raise UsageError(str(e)) from None
    elided = graph.meta.get("elided_weights", [])
    if elided:
        missing = "" if os.path.exists(f"{args.file}.npz") else f" (no {args.file}.npz)"
        print(f"note: {args.file} has {len(elided)} large constant(s) without values{missing}: passes that compute "
              "with them stop with an error; dump with --dump-weights (compile(..., dump_weights=True)) to have them",
              file=sys.stderr)
    try:
        if not args.no_verify:
            graph.verify()
        PassManager(passes, verify=not args.no_verify).run(graph)
    except Torch2KerasError as e:
        raise ConversionFailed(str(e)) from e
    if args.output:
        save_ir(graph, args.output)
    else:
        sys.stdout.write(print_graph(graph))
    return OK
