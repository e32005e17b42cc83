"""The ``torch2keras`` command line: every subcommand and its options are declared here.

    torch2keras convert MODEL (--input-shape SHAPE | --inputs FILE.npz) -o OUT [options]
    torch2keras opt -p PASS,... FILE [-o OUT] [--no-verify]
    torch2keras supported [NAME] [--unsupported]
    torch2keras generate FILE.tflite --prompt-ids 1,2,3 [--encoder-ids 4,5,6] [--max-new-tokens N] [--sample ...]
    torch2keras --version

A subcommand is a ``_add_<name>`` function registering its parser here and a module in
``torch2keras/commands/`` running it. ``convert`` checks its arguments and files before torch
is imported (``commands/preflight.py``); exit codes are in ``commands/exits.py``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import traceback
from typing import Optional, Sequence

from . import __version__
from .commands import preflight
from .commands.exits import CONVERSION_FAILED, EXIT_CODES, USAGE, ConversionFailed, UsageError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """--version: torch2keras's version and those of the libraries it runs on."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, default: object = argparse.SUPPRESS,
                 help: Optional[str] = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: Optional[str] = None) -> None:
        found = []
        for dist in ("torch", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert"):
            try:
                found.append(f"{dist} {importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                continue
        print(f"torch2keras {__version__} ({', '.join(found)})")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="torch2keras", description="Compile PyTorch models to Keras 3, SavedModel and TFLite.",
                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, help="show the versions of torch2keras and its libraries")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_convert(sub)
    _add_opt(sub)
    _add_supported(sub)
    _add_generate(sub)
    return parser


def _add_convert(sub: "argparse._SubParsersAction") -> None:
    conv = sub.add_parser("convert", help="convert a model built by MODULE:FACTORY", epilog=EXIT_CODES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    conv.add_argument("model", help="MODULE:FACTORY or path/file.py:FACTORY, a callable returning the nn.Module "
                      "(e.g. torchvision.models:resnet18)")
    inputs = conv.add_argument_group("example inputs (one of --input-shape and --inputs)")
    inputs.add_argument("--input-shape", type=preflight.shape, action="append", metavar="SHAPE",
                        help="shape of one random input, e.g. 1,3,224,224 (repeat for several inputs)")
    inputs.add_argument("--input-dtype", type=preflight.dtype_spec, action="append", metavar="[INPUT=]DTYPE",
                        help="dtype of random inputs (default float32), e.g. int64 for token ids: once for all "
                        "inputs, once per --input-shape, or INPUT=DTYPE; integers are drawn in [0, n), n the "
                        "smallest nn.Embedding's size (else 10)")
    inputs.add_argument("--inputs", metavar="FILE.npz",
                        help="real example inputs, any count and dtype: one array per input, named after forward's "
                        "arguments (np.savez(f, ids=...)) or by position (arr_0, arr_1, ...)")
    inputs.add_argument("--dynamic", type=preflight.dynamic_spec, action="append", metavar="[INPUT:]AXIS[=NAME],...",
                        help="dynamic dims of an input, e.g. x:0=batch,2=height,3=width (an axis without a name is "
                        "dynamic and unnamed; without INPUT: the first input; repeat for several inputs)")
    conv.add_argument("--weights", help="a state_dict file, loaded with torch.load(weights_only=True)")
    conv.add_argument("-o", "--output", action="append", required=True,
                      help="model.keras, model.h5, model.tflite or a SavedModel folder (repeatable)")
    conv.add_argument("--channels-last", action="store_true", help="channels-last inputs and outputs")
    conv.add_argument("--layout", type=preflight.layout_spec, action="append", metavar="NAME=LAYOUT",
                      help="layout of one input or output: channels_last or channels_first, e.g. x=channels_last "
                      "(repeatable; overrides --channels-last for that name)")
    conv.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass to DIR")
    conv.add_argument("--dump-weights", action="store_true",
                      help="with --dump-ir, also write each stage's large constants (NN_stage.txt.npz) for 'opt'")
    conv.add_argument("--report-json", metavar="FILE", help="write the report as JSON")
    conv.add_argument("--draw", metavar="FILE", help="draw the final IR: FILE.svg or a self-contained, "
                      "interactive FILE.html, with layouts, transposes and per-value errors vs PyTorch (if ops have no "
                      "lowering: the captured graph, those calls in red)")
    _add_tflite_options(conv)
    check = conv.add_argument_group("checks against PyTorch")
    check.add_argument("--atol", type=float, help="absolute tolerance: pass when max |err| <= atol + rtol * max |ref| "
                       "(both default 1e-4; give one and the other is 0)")
    check.add_argument("--rtol", type=float, help="relative tolerance (see --atol)")
    check.add_argument("--strict", action="store_true",
                       help="exit 3 when code was specialised to the example (a Python `if` on tensor data)")
    check.add_argument("--seed", type=int, default=0, help="seed of the random example inputs")
    shown = conv.add_argument_group("messages")
    shown.add_argument("--verbose", action="store_true", help="show the libraries' logs and warnings")
    shown.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    conv.set_defaults(func=_convert)


def _add_tflite_options(conv: argparse.ArgumentParser) -> None:
    tflite = conv.add_argument_group("TFLite")
    tflite.add_argument("--quantize", type=preflight.quantize_list, metavar="VARIANTS",
                        help="quantize .tflite outputs: fp16 (float16 weights), dynamic_int8 (int8 weights), int8 "
                        "(full integer, needs --calibration), dynamic_int4 (int4 weights, written directly), "
                        "dynamic_int4_b32 / _b64 / _b128 (int4, a scale per block of 32 / 64 / 128 inputs), weight_only_int8 / "
                        "weight_only_int4 (int8 / int4 weights dequantized to float: float products); several "
                        "separated by commas write one file each, named after -o (m.tflite -> m_fp16.tflite; "
                        "float32 keeps m.tflite)")
    tflite.add_argument("--keep-float", type=lambda text: [p for p in text.split(",") if p], metavar="MODULE,...",
                        help="with int8/int4 weights or --quantize int8: layers kept float32, by torch module path or "
                        "glob, e.g. lm_head,model.embed_tokens (weights: the file is written directly, without "
                        "TensorFlow's converter; int8: a DEQUANTIZE before such a layer, a QUANTIZE after)")
    tflite.add_argument("--target-agreement", type=preflight.fraction, metavar="F",
                        help="with --quantize int8: keep the layers whose int8 error jumps first in float32 until "
                        "top-1 agreement with the float file reaches F (e.g. 0.99) at 95%% confidence: the Wilson "
                        "lower bound of the agreement on the --holdout inputs (0.99 needs >= 268 of them)")
    tflite.add_argument("--min-quantized-elements", type=int, metavar="N",
                        help="with int8/int4 weights: weights smaller than N elements stay float32 (default 1024)")
    tflite.add_argument("--calibration", metavar="FILE.npz",
                        help="representative inputs for --quantize int8: one array per input name (or arr_0, arr_1, "
                        "...) of shape [samples, *input shape], in PyTorch's layout")
    tflite.add_argument("--holdout", metavar="FILE.npz",
                        help="held-out inputs (same layout) for the int8 per-layer check (default: the example input)")
    tflite.add_argument("--io-dtype", choices=["int8", "uint8", "float32"], default="int8",
                        help="input/output type of an int8 .tflite (default int8)")
    tflite.add_argument("--allow-flex", action="store_true",
                        help="keep TensorFlow ops without a TFLite builtin as Flex ops (needs the Flex delegate)")


def _add_opt(sub: "argparse._SubParsersAction") -> None:
    opt = sub.add_parser("opt", help="run passes on an IR file (written by --dump-ir or ir.save_ir)")
    opt.add_argument("file", help="the IR text; its large constants are read from FILE.npz when it exists")
    opt.add_argument("-p", "--passes", required=True, metavar="PASS,...",
                     help="registered pass names, in order, e.g. dce,fold_constants; options in braces, e.g. "
                          "\"assign_layout{input_layouts='channels_last'}\"")
    opt.add_argument("-o", "--output", metavar="OUT", help="write the result to OUT (and OUT.npz) instead of stdout")
    opt.add_argument("--no-verify", action="store_true", help="do not verify the IR before and after each pass")
    opt.set_defaults(func=_opt)


def _add_supported(sub: "argparse._SubParsersAction") -> None:
    sup = sub.add_parser("supported", help="list the torch ops that have a lowering, by family")
    sup.add_argument("pattern", nargs="?", metavar="NAME", help="look up the ops whose name contains NAME")
    sup.add_argument("--unsupported", action="store_true",
                     help="list instead the Core ATen ops that are deliberately not lowered, with the reason")
    sup.set_defaults(func=_supported)


def _add_generate(sub: "argparse._SubParsersAction") -> None:
    gen = sub.add_parser("generate", help="generate token ids with a .tflite written by generative.export_tflite")
    gen.add_argument("file", metavar="FILE.tflite", help="a file with prefill and decode signatures (an "
                     "encoder-decoder one: encode and decode)")
    gen.add_argument("--prompt-ids", required=True, metavar="ID,...", help="the prompt's token ids, e.g. 1,2,3 (an "
                     "encoder-decoder file: the decoder's, e.g. its decoder start token)")
    gen.add_argument("--encoder-ids", metavar="ID,...", help="an encoder-decoder file's encoder input ids (T5's "
                     "input_ids), e.g. 4,5,6")
    gen.add_argument("--max-new-tokens", type=int, default=16, metavar="N", help="tokens to generate (default 16)")
    gen.add_argument("--eos-token-id", type=int, metavar="ID", help="stop after generating this id")
    draw = gen.add_argument_group("sampling (default: greedy)")
    draw.add_argument("--sample", action="store_true", help="draw each token instead of taking the argmax")
    draw.add_argument("--temperature", type=float, metavar="T", help="divide the logits by T (default 1)")
    draw.add_argument("--top-k", type=int, metavar="K", help="draw among the K most likely tokens")
    draw.add_argument("--seed", type=int, metavar="S", help="seed of the draws")
    gen.set_defaults(func=_generate)


def _convert(args: argparse.Namespace) -> int:
    if os.getcwd() not in sys.path and "" not in sys.path:  # MODULE:FACTORY may live in the current folder
        sys.path.insert(0, os.getcwd())
    plan = preflight.check(args)
    from .commands import convert  # torch: imported once the arguments are known to be right

    return convert.run(args, plan)


def _opt(args: argparse.Namespace) -> int:
    from .commands import opt

    return opt.run(args)


def _supported(args: argparse.Namespace) -> int:
    from .commands import supported

    return supported.run(args)


def _generate(args: argparse.Namespace) -> int:
    from .commands import generate

    return generate.run(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        return _fail(args, e, USAGE)
    except ConversionFailed as e:
        return _fail(args, e, CONVERSION_FAILED)
    except KeyboardInterrupt:
        print("torch2keras: interrupted", file=sys.stderr)
        return 130


def _fail(args: argparse.Namespace, e: Exception, code: int) -> int:
    if getattr(args, "debug", False):
        cause = e.__cause__ or e
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
    print(f"torch2keras {args.command}: error: {e}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
