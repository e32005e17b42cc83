"""The ``torch2keras`` command line: ``convert`` a model, run passes on an IR file (``opt``), or
list what is ``supported``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from typing import Optional, Sequence

__all__ = ["main"]


def _load_factory(spec: str):
    """``package.module:factory`` or ``path/to/file.py:factory`` -> the callable."""
    if ":" not in spec:
        raise SystemExit(f"error: expected MODULE:FACTORY, got {spec!r}")
    module_name, attr = spec.rsplit(":", 1)
    if module_name.endswith(".py") or os.path.sep in module_name:
        path = os.path.abspath(module_name)
        spec_ = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
        if spec_ is None or spec_.loader is None:
            raise SystemExit(f"error: cannot import {module_name}")
        module = importlib.util.module_from_spec(spec_)
        sys.modules[spec_.name] = module
        spec_.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SystemExit(f"error: {module_name} has no attribute {attr!r}") from None


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: expected e.g. 1,3,224,224") from None


def _dynamic(text: str) -> tuple[Optional[str], dict[int, Optional[str]]]:
    """``[INPUT:]AXIS[=NAME],...`` -> (input name or None for the first input, {axis: dim name})."""
    name, _, axes = text.rpartition(":")
    dims: dict[int, Optional[str]] = {}
    try:
        for part in axes.split(","):
            axis, _, dim = part.partition("=")
            dims[int(axis)] = dim.strip() or None
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad dynamic dims {text!r}: expected e.g. x:0=batch,2=height,3=width") \
            from None
    return name or None, dims


def _dynamic_shapes(specs) -> object:
    """The ``--dynamic`` options as ``compile``'s ``dynamic_shapes``."""
    if not specs:
        return None
    named = {name: dims for name, dims in specs if name is not None}
    unnamed = [dims for name, dims in specs if name is None]
    if unnamed and (named or len(unnamed) > 1):
        raise SystemExit("error: --dynamic without an input name (AXIS=NAME,...) applies to the first input; "
                         "name the inputs (INPUT:AXIS=NAME,...) to give several")
    return [unnamed[0]] if unnamed else named


class _Progress:
    """One line per stage with its elapsed time (rewritten in place on a terminal)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.tty = self.stream.isatty()

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.start
        line = f"[{elapsed:6.1f}s] {message}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _convert(args: argparse.Namespace) -> int:
    import torch

    import torch2keras

    if args.quantize == "int8" and not args.calibration:
        raise SystemExit("error: --quantize int8 needs --calibration FILE.npz (representative inputs)")
    if args.calibration and args.quantize != "int8":
        raise SystemExit("error: --calibration is used by --quantize int8 only")
    if args.dump_weights and not args.dump_ir:
        raise SystemExit("error: --dump-weights goes with --dump-ir DIR")
    factory = _load_factory(args.model)
    progress = _Progress()
    progress("building the model")
    model = factory()
    if args.weights:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        model.load_state_dict(state)
    torch.manual_seed(args.seed)
    inputs = tuple(torch.randn(*shape) for shape in args.input_shape)
    layout = "channels_last" if args.channels_last else None
    result = torch2keras.compile(model.eval(), inputs, dynamic_shapes=_dynamic_shapes(args.dynamic),
                                 input_layouts=layout, output_layouts=layout,
                                 dump_ir=args.dump_ir, dump_weights=args.dump_weights, progress=progress,
                                 atol=args.atol, on_mismatch="ignore")
    tflite_options = _tflite_options(args, result)
    for out in args.output:
        progress(f"writing {out}")
        if out.endswith(".tflite"):
            result.export_tflite(out, **tflite_options)
        elif out.endswith(".keras"):
            result.save(out)
        else:
            result.export_saved_model(out)
    if args.draw:
        progress(f"drawing {args.draw}")
        result.draw(args.draw)
    progress("done")
    progress.done()
    result.report.print()  # coloured on a terminal
    for out in [*args.output, *([args.draw] if args.draw else [])]:
        print(f"wrote {out}")
    if args.report_json:
        with open(args.report_json, "w") as f:
            f.write(result.report.to_json())
    return 0 if result.report.ok else 1


def _tflite_options(args: argparse.Namespace, result) -> dict:
    """export_tflite's keyword arguments from --quantize / --calibration / --holdout / --io-dtype."""
    from torch2keras.quantize import load_npz

    shapes = [tuple(x.shape) for x in result._example_inputs]
    options: dict = {"quantize": args.quantize, "allow_flex": args.allow_flex}
    try:
        if args.calibration:
            options["calibration"] = load_npz(args.calibration, result.input_names, shapes)
            options["io_dtype"] = args.io_dtype
        if args.holdout:
            options["holdout"] = load_npz(args.holdout, result.input_names, shapes)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    return options


def _passes(text: str) -> list:
    """``-p``'s pass list: registered names, each optionally with ``{option=value, ...}``."""
    from torch2keras.ir import IRSyntaxError
    from torch2keras.ir.parser import parse_pass_specs
    from torch2keras.passes import PASSES

    try:
        specs = parse_pass_specs(text)
    except IRSyntaxError as e:
        raise SystemExit(f"error: -p {text!r}: {e.problem} (column {e.column})") from None
    out = []
    for name, options in specs:
        if name not in PASSES:
            raise SystemExit(f"error: unknown pass {name!r}; registered: {', '.join(sorted(PASSES))}")
        try:
            out.append(PASSES[name](**options))
        except TypeError as e:
            raise SystemExit(f"error: pass {name!r}: {e}") from None
    return out


def _opt(args: argparse.Namespace) -> int:
    from torch2keras.ir import IRSyntaxError, Torch2KerasError, load_ir, print_graph, save_ir
    from torch2keras.passes import PassManager

    passes = _passes(args.passes)
    try:
        graph = load_ir(args.file)
    except (OSError, IRSyntaxError) as e:
        raise SystemExit(f"error: {e}") from None
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
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.output:
        save_ir(graph, args.output)
    else:
        sys.stdout.write(print_graph(graph))
    return 0


def _supported(args: argparse.Namespace) -> int:
    from torch2keras.frontend_torch import LOWERINGS

    if getattr(args, "unsupported", False):
        from torch2keras.frontend_torch.unsupported import UNSUPPORTED

        print(f"{len(UNSUPPORTED)} Core ATen ops are deliberately not lowered:")
        for op, reason in sorted(UNSUPPORTED.items(), key=lambda item: str(item[0])):
            print(f"  {op}: {reason}")
        return 0

    names = sorted({str(t) for t in LOWERINGS})
    print(f"{len(names)} torch ops have a lowering:")
    for n in names:
        print(f"  {n}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="torch2keras", description="Compile PyTorch models to Keras 3 / TFLite.")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert a model built by MODULE:FACTORY")
    conv.add_argument("model", help="MODULE:FACTORY or path/file.py:FACTORY returning an nn.Module")
    conv.add_argument("--input-shape", type=_shape, action="append", required=True,
                      help="shape of one input, e.g. 1,3,224,224 (repeat for several inputs)")
    conv.add_argument("--dynamic", type=_dynamic, action="append", metavar="[INPUT:]AXIS[=NAME],...",
                      help="dynamic dims of an input, e.g. x:0=batch,2=height,3=width (an axis without a name is "
                      "dynamic and unnamed; without INPUT: the first input; repeat for several inputs)")
    conv.add_argument("--weights", help="a state_dict file, loaded with torch.load(weights_only=True)")
    conv.add_argument("-o", "--output", action="append", required=True,
                      help="model.keras, model.tflite or a SavedModel directory (repeatable)")
    conv.add_argument("--channels-last", action="store_true", help="channels-last inputs and outputs")
    conv.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass to DIR")
    conv.add_argument("--dump-weights", action="store_true",
                      help="with --dump-ir, also write each stage's large constants (NN_stage.txt.npz) for 'opt'")
    conv.add_argument("--report-json", metavar="FILE", help="write the report as JSON")
    conv.add_argument("--draw", metavar="FILE", help="draw the final IR: FILE.svg or a self-contained FILE.html, "
                      "with layouts, transposes and per-value errors vs PyTorch")
    conv.add_argument("--quantize", choices=["fp16", "dynamic_int8", "int8"],
                      help="quantize .tflite outputs: float16 weights, int8 weights (dynamic range), or full "
                           "integer int8 (needs --calibration)")
    conv.add_argument("--calibration", metavar="FILE.npz",
                      help="representative inputs for --quantize int8: one array per input name (or arr_0, arr_1, "
                           "...) of shape [samples, *input shape], in PyTorch's layout")
    conv.add_argument("--holdout", metavar="FILE.npz",
                      help="held-out inputs (same layout) for the int8 per-layer check (default: the example input)")
    conv.add_argument("--io-dtype", choices=["int8", "uint8", "float32"], default="int8",
                      help="input/output type of an int8 .tflite (default int8)")
    conv.add_argument("--allow-flex", action="store_true",
                      help="keep TensorFlow ops without a TFLite builtin as Flex ops (needs the Flex delegate)")
    conv.add_argument("--atol", type=float, default=1e-4, help="tolerance of the check against PyTorch")
    conv.add_argument("--seed", type=int, default=0, help="seed of the random example inputs")
    conv.set_defaults(func=_convert)
    opt = sub.add_parser("opt", help="run passes on an IR file (written by --dump-ir or ir.save_ir)")
    opt.add_argument("file", help="the IR text; its large constants are read from FILE.npz when it exists")
    opt.add_argument("-p", "--passes", required=True, metavar="PASS,...",
                     help="registered pass names, in order, e.g. dce,fold_constants; options in braces, e.g. "
                          "\"assign_layout{input_layouts='channels_last'}\"")
    opt.add_argument("-o", "--output", metavar="OUT", help="write the result to OUT (and OUT.npz) instead of stdout")
    opt.add_argument("--no-verify", action="store_true", help="do not verify the IR before and after each pass")
    opt.set_defaults(func=_opt)
    sup = sub.add_parser("supported", help="list the torch ops that have a lowering")
    sup.add_argument("--unsupported", action="store_true",
                     help="list instead the Core ATen ops that are deliberately not lowered, with the reason")
    sup.set_defaults(func=_supported)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
