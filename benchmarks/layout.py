"""Layout benchmark: transposes, op counts and TFLite latency, ours vs the layout optimiser off
vs native Keras models, all measured in one run; plus conversion-time growth with model size.

Writes benchmarks/results/layout.json and prints ratio tables. Latency: LiteRT interpreter,
2 threads, --rounds rounds of --runs invocations per file (files reloaded every round in rotated
order, invocations interleaved); ratios are medians of the per-round ratios. Our file is written by
both TFLite backends (``ours``: the TF converter, ``ours_direct``: the direct writer). Usage:

    python benchmarks/layout.py [--models resnet18,vit_b_16] [--rounds 5] [--runs 10] [--growth 50,200,800]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import torch2keras  # noqa: E402
from torch2keras.tflite.convert import keras_to_tflite  # noqa: E402
from torch2keras.tflite.file import op_counts  # noqa: E402
from torch2keras.tflite.runtime import latency_medians, latency_rounds  # noqa: E402
from zoo import seeded_model, torchvision_model  # noqa: E402

CL = "channels_last"
MODELS = ["resnet18", "resnet50", "resnet50_v1", "mobilenet_v3_large", "convnext_tiny", "vit_b_16", "transformer_encoder",
          "nobuco_essentials", "gru_two_convs"]
NATIVE = {"resnet50": "ResNet50", "resnet50_v1": "ResNet50", "mobilenet_v3_large": "MobileNetV3Large"}


def resnet50_v1():
    """torchvision's resnet50 (v1.5: a downsampling block strides in its 3x3 conv) with the stride
    moved to the block's first 1x1 conv, as in Keras's ResNet50 (v1): the same network as the
    native Keras model (torchvision's has ~6% more multiply-adds and 3 more PADs, since TFLite's
    SAME padding of a stride-2 3x3 conv on an even size is not torch's)."""
    from zoo import import_torchvision

    model = import_torchvision().models.resnet50()
    for layer in (model.layer2, model.layer3, model.layer4):
        block = layer[0]
        block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)
    return model


def build(name: str):
    """(model, example input, I/O layout) with random, seeded weights."""
    torch.manual_seed(0)
    if name == "transformer_encoder":
        layer = nn.TransformerEncoderLayer(d_model=256, nhead=8, dim_feedforward=1024, batch_first=True)
        x = torch.randn(1, 64, 256)
        return seeded_model(lambda: nn.TransformerEncoder(layer, 4, enable_nested_tensor=False), x), x, {}
    if name == "nobuco_essentials":
        from models import NobucoEssentials

        return NobucoEssentials().eval(), torch.rand(1, 3, 256, 256), dict(input_layouts=CL, output_layouts=CL)
    if name == "gru_two_convs":
        from models import GRUTwoConvs

        return GRUTwoConvs().eval(), torch.randn(1, 12, 32), dict(output_layouts=CL)
    x = torch.randn(1, 3, 224, 224)
    if name == "resnet50_v1":
        return seeded_model(resnet50_v1, x), x, dict(input_layouts=CL, output_layouts=CL)
    layouts = dict(input_layouts=CL, output_layouts=CL) if not name.startswith("vit") else dict(input_layouts=CL)
    return torchvision_model(name, x), x, layouts


def latencies_ms(paths: dict[str, str], runs: int, rounds: int = 5) -> dict[str, float]:
    """Each file's median latency over ``rounds`` rounds of ``tflite.runtime.latency_rounds``,
    ``runs`` invocations per file in all (used by the quantization benchmarks too)."""
    return latency_medians(latency_rounds(paths, rounds=rounds, runs=max(1, runs // rounds)))


def _ratio(rows: list[dict], a: str, b: str) -> float:
    """The median of the per-round latency ratios a / b."""
    return statistics.median(row[a] / row[b] for row in rows)


def tflite_stats(path: str) -> dict:
    counts = op_counts(path)
    return {"transposes": counts.get("TRANSPOSE", 0), "ops": sum(counts.values()), "op_counts": counts}


def native_keras(name: str, path: str) -> str:
    import keras

    keras.utils.set_random_seed(0)
    cls = getattr(keras.applications, NATIVE[name])
    kwargs = {"include_preprocessing": False} if "MobileNet" in NATIVE[name] else {}
    model = cls(weights=None, input_shape=(224, 224, 3), **kwargs)
    inputs = [keras.Input((224, 224, 3), batch_size=1, name="x")]
    model = keras.Model(inputs, model(inputs[0]))
    return keras_to_tflite(model, path, ["x"], ["output"])


def bench_model(name: str, rounds: int, runs: int, tmp: str) -> dict:
    model, x, layouts = build(name)
    row: dict = {"model": name}
    start = time.perf_counter()
    ours = torch2keras.compile(model, x, name=name, **layouts)
    row["convert_s"] = time.perf_counter() - start
    row["max_abs_error"] = ours.report.max_abs_error
    paths = {"ours": os.path.join(tmp, f"{name}.tflite"), "ours_direct": os.path.join(tmp, f"{name}_direct.tflite"),
             "layout_off": os.path.join(tmp, f"{name}_off.tflite")}
    ours.export_tflite(paths["ours"])
    ours.export_tflite(paths["ours_direct"], backend="direct")
    off = torch2keras.compile(model, x, name=name, optimize_layout=False, validate=False, **layouts)
    off.export_tflite(paths["layout_off"], validate=False)
    if name in NATIVE:
        paths["native_keras"] = native_keras(name, os.path.join(tmp, f"{name}_native.tflite"))
    for key, path in paths.items():
        row[key] = tflite_stats(path)
    rows = latency_rounds(paths, rounds=rounds, runs=runs)
    for key, ms in latency_medians(rows).items():
        row[key]["latency_ms"] = ms
    row["latency_rounds"] = rows
    row["ours"]["tflite_max_abs_error"] = ours.report.tflite["max_abs_error"]
    row["ratio_ours_vs_off"] = _ratio(rows, "ours", "layout_off")
    if "native_keras" in row:
        row["ratio_ours_vs_native"] = _ratio(rows, "ours", "native_keras")
        row["ratio_direct_vs_native"] = _ratio(rows, "ours_direct", "native_keras")
    return row


class Blocks(nn.Module):
    """N residual blocks of conv 3x3 -> batch norm -> relu, plus the skip connection."""

    def __init__(self, n: int, channels: int = 8):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(n))
        self.bns = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(n))

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = x + torch.relu(bn(conv(x)))
        return x


def growth(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        torch.manual_seed(0)
        model, x = Blocks(n).eval(), torch.randn(1, 8, 16, 16)
        start = time.perf_counter()
        result = torch2keras.compile(model, x, validate=False, input_layouts=CL, output_layouts=CL)
        seconds = time.perf_counter() - start
        nodes = 4 * n  # torch calls: conv, batch norm, relu, add
        ours = sum(v for k, v in result.report.timings.items() if k != "capture")  # lower, passes, emit
        rows.append({"blocks": n, "torch_calls": nodes, "convert_s": seconds, "ms_per_call": 1e3 * seconds / nodes,
                     "compiler_s": ours, "compiler_ms_per_call": 1e3 * ours / nodes,
                     "timings": result.report.timings, "transposes": result.report.transposes})
        print(f"  {n:4d} blocks: {seconds:7.2f} s in all, {1e3 * seconds / nodes:6.2f} ms per torch call; "
              f"without torch.export {1e3 * ours / nodes:6.2f} ms per call "
              f"({', '.join(f'{k} {v:.2f}s' for k, v in result.report.timings.items())})", flush=True)
    for row in rows:
        row["ms_per_call_ratio_vs_smallest"] = row["ms_per_call"] / rows[0]["ms_per_call"]
        row["compiler_ms_per_call_ratio_vs_smallest"] = row["compiler_ms_per_call"] / rows[0]["compiler_ms_per_call"]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=5, help="LiteRT rounds (files reloaded, rotated order)")
    parser.add_argument("--runs", type=int, default=10, help="LiteRT invocations per file and round")
    parser.add_argument("--growth", default="50,200,800")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "layout.json"))
    args = parser.parse_args(argv)
    results: dict = {"models": [], "growth": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [m for m in args.models.split(",") if m]:
            print(f"{name}...", flush=True)
            row = bench_model(name, args.rounds, args.runs, tmp)
            results["models"].append(row)
            native = row.get("native_keras")
            print(f"  TRANSPOSE ours {row['ours']['transposes']}, off {row['layout_off']['transposes']}"
                  + (f", native {native['transposes']}" if native else "")
                  + f" | ops ours {row['ours']['ops']}, off {row['layout_off']['ops']}"
                  + (f", native {native['ops']}" if native else "")
                  + f" | latency ours {row['ours']['latency_ms']:.2f} ms, off {row['layout_off']['latency_ms']:.2f} ms"
                  + (f", native {native['latency_ms']:.2f} ms" if native else "")
                  + f" | ours/off {row['ratio_ours_vs_off']:.2f}"
                  + (f", ours/native {row['ratio_ours_vs_native']:.2f} (direct {row['ratio_direct_vs_native']:.2f})"
                     if native else "")
                  + f" | max |err| {row['max_abs_error']:.1e}", flush=True)
    if args.growth:
        print("conversion time growth:")
        results["growth"] = growth([int(n) for n in args.growth.split(",")])
        last = results["growth"][-1]
        print(f"  time per torch call, largest vs smallest: {last['ms_per_call_ratio_vs_smallest']:.2f}x in all, "
              f"{last['compiler_ms_per_call_ratio_vs_smallest']:.2f}x without torch.export (capture)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
