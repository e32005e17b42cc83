"""Quantization of trained networks: scikit-learn's digits (8x8, upsampled to 32x32), 757
training, 500 selection and 540 held-out images; a small CNN, torchvision's mobilenet_v3_small
and resnet18 (num_classes=10), each trained a few epochs on the CPU.

Per network and variant -- float32, fp16, dynamic-range int8 and calibrated int8 (the TF
converter path: ``compile(...).export_tflite(quantize=...)``, 100 calibration images),
selective calibrated int8 (``target_agreement=0.99`` on the 500 selection images, which the
network was not trained on: layers kept float until the one-sided 95% lower confidence bound of
the top-1 agreement with float there reaches 99%, at most 1 disagreement), PT2E
static PTQ and PT2E QAT (quantized in PyTorch, written by ``to_tflite`` with PyTorch's scales):
held-out accuracy, top-1 agreement with the float PyTorch model and (PT2E) with the quantized
model in torch, the share of output elements within one int8 step of torch's quantized model,
file size, LiteRT latency against the float file (2 threads, median, interleaved), TRANSPOSE
count, and the float ops between quantized ones (ops writing float32 between a DEQUANTIZE and a
QUANTIZE, counted in the file). Writes benchmarks/results/quantization_trained.json and .md.

The ceiling of "within one step": torch's quantized model against itself computed in float64
(``float64_model``: every dequantize, float op and quantize in double precision, the same
integers and parameters): how far torch's own float32 rounding moves its integers. And the same
model with its global average pools rounded exactly (``exact_pools``: the mean of the integers rounded half away from
zero, as TFLite's int8 AVERAGE_POOL_2D rounds; torch rounds a float32 mean, so its exact .5 ties
fall either way with float noise). Trained weights are cached in benchmarks/results/cache
(``--retrain`` trains again).

    nice python benchmarks/quantization_trained.py [--networks cnn,mobilenet_v3_small,resnet18] [--runs 50]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import torch2keras  # noqa: E402
from compat import import_torchvision  # noqa: E402
from layout import latencies_ms  # noqa: E402
from torch2keras.tflite.file import read_tflite  # noqa: E402
from torch2keras.tflite.runtime import tflite_runner  # noqa: E402

N_TRAIN, N_CALIBRATION, N_SELECTION = 1257, 100, 500
# selective int8 selects on images drawn like the held-out ones: the network is not trained on
# them (on training images the trained network is more confident and int8 agrees more often:
# mobilenet_v3_small's all-int8 file agreed on 99.74% of 1157 training images, 98.70% of the
# held-out ones); calibration uses training images
N_FIT = N_TRAIN - N_SELECTION  # the images the networks are trained on
TARGET_AGREEMENT = 0.99
EPOCHS = {"cnn": 13, "mobilenet_v3_small": 25, "resnet18": 5}  # (about as many steps as on 1257 images)
QAT_STEPS = 10  # batches of 32 of quantization-aware training from the trained float weights
CONVERTER = {"float32": {}, "fp16": {"quantize": "fp16"}, "dynamic_int8": {"quantize": "dynamic_int8"},
             "int8": {"quantize": "int8", "io_dtype": "float32"}}


class SmallCNN(nn.Module):
    """Four conv-bn-relu blocks (three strided) on 32x32 digits, maxpool to 1x1, linear."""

    def __init__(self) -> None:
        super().__init__()
        widths = [1, 16, 32, 32, 64]
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Conv2d(a, b, 3, stride=1 if k == 0 else 2, padding=1),
                                                    nn.BatchNorm2d(b), nn.ReLU())
                                      for k, (a, b) in enumerate(zip(widths, widths[1:]))])
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(x)), 1))


def digits(channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train x, train y, test x, test y): 32x32 in [0, 1], a seeded split 1257 / 540 (the training
    part: N_FIT images to train on, then N_SELECTION)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = nn.functional.interpolate(torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0, size=(32, 32),
                                  mode="bilinear", align_corners=False).repeat(1, channels, 1, 1)
    y = torch.tensor(data.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


CACHE = os.path.join(HERE, "results", "cache")


def build(name: str) -> tuple[nn.Module, int]:
    """The untrained network and its input channels."""
    torch.manual_seed(0)
    if name == "cnn":
        return SmallCNN(), 1
    torchvision = import_torchvision()
    return getattr(torchvision.models, name)(num_classes=10), 3


SHIFT = 2  # training batches are shifted by up to this many pixels each way (the same shift per batch)
RECIPE = f"onecycle_shift{SHIFT}"  # (in the cache's file names: other training, other weights)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> nn.Module:
    """Adam with a one-cycle learning rate (peak ``lr``), batches of 32 shifted by up to ``SHIFT``
    pixels: mobilenet_v3_small on the 757 training images reaches 99.1% held-out accuracy this way
    (96.1% unshifted, 84.4% with a constant learning rate)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * -(-len(y) // 32))
    generator = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for k in range(0, len(y), 32):
            batch = order[k:k + 32]
            i, j = torch.randint(0, 2 * SHIFT + 1, (2,), generator=generator).tolist()
            shifted = nn.functional.pad(x[batch], (SHIFT,) * 4)[:, :, i:i + x.shape[2], j:j + x.shape[3]]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(shifted), y[batch]).backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def _quantizer(**config):
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, **config))


def pt2e_static(model: nn.Module, calibration: torch.Tensor):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(torch.export.export(copy.deepcopy(model).eval(), (calibration[:1],)).module(),
                            _quantizer())
    with torch.no_grad():
        for k in range(len(calibration)):
            prepared(calibration[k:k + 1])
    return convert_pt2e(prepared)


def pt2e_qat(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """``QAT_STEPS`` batches of quantization-aware training from the trained float weights."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(copy.deepcopy(model).train(), (x[:32],), dynamic_shapes=({0: batch},)).module()
    prepared = prepare_qat_pt2e(exported, _quantizer(is_qat=True))
    optimizer = torch.optim.Adam(prepared.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(2)
    order = torch.randperm(len(y), generator=generator)
    for k in range(0, 32 * QAT_STEPS, 32):
        idx = order[k:k + 32]
        optimizer.zero_grad()
        nn.functional.cross_entropy(prepared(x[idx]), y[idx]).backward()
        optimizer.step()
    move_exported_model_to_eval(prepared)
    return convert_pt2e(prepared)


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Batch-norm statistics measured again over ``x`` (a cumulative average, the weights fixed).
    mobilenet_v3's batch norms average with momentum 0.01: after a few hundred steps of fast
    training their running statistics lag the weights (held-out accuracy 47% in eval mode, 96% in
    train mode); measured again, eval mode is as accurate as train mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for k in range(0, len(x), 64):
        model(x[k:k + 64])
    for m, momentum in zip(norms, momenta):  # (QAT trains on with the usual moving average)
        m.momentum = momentum
    return model.eval()


def trained(name: str, x: torch.Tensor, y: torch.Tensor, retrain: bool) -> tuple[nn.Module, float]:
    """The network trained on (x, y), its batch-norm statistics measured again, and the training
    time (0 when the weights are read from the cache)."""
    model, _ = build(name)
    path = os.path.join(CACHE, f"quantization_trained_{name}_{EPOCHS[name]}_{len(y)}_{RECIPE}.pt")
    seconds = 0.0
    if os.path.exists(path) and not retrain:
        model.load_state_dict(torch.load(path))
    else:
        start = time.perf_counter()
        model = train(model, x, y, EPOCHS[name], 3e-3 if name != "resnet18" else 1e-3)
        seconds = time.perf_counter() - start
        os.makedirs(CACHE, exist_ok=True)
        torch.save(model.state_dict(), path)
    return recalibrate_batch_norm(model, x), seconds


def _exact_global_pool(q, scale_in, zero_in, scale_out, zero_out, qmin, qmax, dtype):
    """A global average pool of integers ``q`` rounded exactly as TFLite's int8 AVERAGE_POOL_2D
    rounds (input and result sharing parameters: the mean of the integers themselves, rounded half
    away from zero), computed in float64: ``mean(q - zero_in) * scale_in / scale_out + zero_out``."""
    v = (q.double() - zero_in).mean(dim=(2, 3), keepdim=True) * (scale_in / scale_out) + zero_out
    v = torch.sign(v) * torch.floor(torch.abs(v) + 0.5)
    return torch.clamp(v, qmin, qmax).to(dtype)


def exact_pools(quantized) -> tuple[object, int]:
    """A copy of a PT2E model whose global average pools (``dequantize -> adaptive_avg_pool2d(1)
    -> quantize``) compute their integers exactly (``_exact_global_pool``), and their count."""
    model = copy.deepcopy(quantized)
    ops = torch.ops.quantized_decomposed
    count = 0
    for node in list(model.graph.nodes):
        if node.target != torch.ops.aten.adaptive_avg_pool2d.default or list(node.args[1]) != [1, 1]:
            continue
        d = node.args[0]
        if d.target != ops.dequantize_per_tensor.default:
            continue
        for q in [u for u in node.users if u.target == ops.quantize_per_tensor.default]:
            with model.graph.inserting_after(q):
                exact = model.graph.call_function(_exact_global_pool, (d.args[0], *d.args[1:3], *q.args[1:]))
            q.replace_all_uses_with(exact)
            model.graph.erase_node(q)
            count += 1
    model.graph.eliminate_dead_code()
    model.recompile()
    return model, count


def _quantize64(x, scale, zero_point, qmin, qmax, dtype):
    return torch.clamp(torch.round(x.double() / scale) + zero_point, qmin, qmax).to(dtype)


def _dequantize64(q, scale, zero_point, qmin, qmax, dtype, **_):
    return (q.double() - zero_point) * scale


def _dequantize_per_channel64(q, scales, zero_points, axis, qmin, qmax, dtype, **_):
    shape = [1] * q.dim()
    shape[axis] = -1
    return (q.double() - zero_points.double().reshape(shape)) * scales.double().reshape(shape)


def float64_model(quantized):
    """A copy of a PT2E model computing in float64: its quantize / dequantize nodes in double
    precision (round half to even, as torch's), its float parameters and constants in float64.
    The integers it writes differ from the float32 model's only where float32 rounding decided
    them (a value within float noise of a rounding boundary, or an exact .5 tie)."""
    model = copy.deepcopy(quantized)
    ops = torch.ops.quantized_decomposed
    replace = {ops.quantize_per_tensor.default: _quantize64, ops.dequantize_per_tensor.default: _dequantize64,
               ops.dequantize_per_channel.default: _dequantize_per_channel64}
    for node in model.graph.nodes:
        node.target = replace.get(node.target, node.target)
    model.recompile()
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.dtype == torch.float32:
            tensor.data = tensor.data.double()
    for name in dir(model):
        value = getattr(model, name, None)
        if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
            setattr(model, name, value.double())
    return model


@torch.no_grad()
def float64_outputs(model, x: torch.Tensor) -> np.ndarray:
    return torch.cat([model(x[k:k + 1].double()).float() for k in range(len(x))]).numpy()


def float64_ceiling(ref: np.ndarray, out64: np.ndarray, scale: float) -> dict:
    """torch's quantized model (outputs ``ref``) against itself in float64 (``out64``): the share
    of output elements within one step, identical, top-1 agreement (the ceiling of any
    reimplementation's match: torch does not match itself closer across float precisions)."""
    steps = np.abs(out64 - ref) / scale
    return {"within_one_step": float(np.mean(steps <= 1.0 + 1e-3)), "identical": float(np.mean(steps <= 1e-3)),
            "max_steps": float(steps.max()), "top1_agreement": float(np.mean(out64.argmax(1) == ref.argmax(1)))}


def pool_rounding_ceiling(ref: np.ndarray, exact_out: np.ndarray, count: int, scale: float,
                          float_top1: np.ndarray) -> dict:
    """torch's quantized model (outputs ``ref``) against itself with exactly rounded global pools
    (``exact_out``): the share of output elements within one step, top-1 agreement (the ceiling
    of an integer file's match)."""
    steps = np.abs(exact_out - ref) / scale
    return {"pools": count, "within_one_step": float(np.mean(steps <= 1.0 + 1e-3)),
            "identical": float(np.mean(steps <= 1e-3)), "max_steps": float(steps.max()),
            "top1_agreement": float(np.mean(exact_out.argmax(1) == ref.argmax(1))),
            "top1_agreement_float_torch": float(np.mean(exact_out.argmax(1) == float_top1))}


@torch.no_grad()
def torch_outputs(model, x: torch.Tensor) -> np.ndarray:
    return torch.cat([model(x[k:k + 1]) for k in range(len(x))]).numpy()


def tflite_outputs(path: str, x: torch.Tensor) -> np.ndarray:
    runner = tflite_runner(path)
    (name,) = runner.get_input_details()
    nhwc = x.numpy().transpose(0, 2, 3, 1)
    return np.concatenate([next(iter(runner(**{name: nhwc[k:k + 1]}).values())) for k in range(len(x))])


def output_scale(path: str) -> float:
    """The scale of the int8 tensor the output's DEQUANTIZE reads."""
    f = read_tflite(path)
    (output,) = f.signatures["serving_default"]["outputs"].values()
    (dequantize,) = [op for op in f.main_ops() if op.name == "DEQUANTIZE" and output in op.outputs]
    return f.tensor(dequantize.inputs[0]).scale


def float_ops_between(path: str) -> int:
    """Ops writing float32 after a DEQUANTIZE of computed integers and before a QUANTIZE: float
    computation inside the quantized part of the file."""
    return len(read_tflite(path).float_ops_between_quantized())


def measure(path: str, test_x, test_y, float_top1, quantized=None) -> dict:
    """Accuracy, agreement, size, structure of one file (and against torch's quantized model, that
    model computed in float64, and that model with exactly rounded global pools)."""
    out = tflite_outputs(path, test_x)
    counts = read_tflite(path).op_counts()
    entry = {"bytes": os.path.getsize(path), "accuracy": float(np.mean(out.argmax(1) == test_y)),
             "top1_agreement_float_torch": float(np.mean(out.argmax(1) == float_top1)),
             "transposes": counts.get("TRANSPOSE", 0), "float_ops_between_quantized": float_ops_between(path),
             "op_counts": counts}
    if quantized is None:
        return entry
    scale = output_scale(path)

    def within_one_step(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean(np.abs(a - b) / scale <= 1.0 + 1e-3))

    ref = torch_outputs(quantized, test_x)
    entry.update({"top1_agreement_quantized_torch": float(np.mean(out.argmax(1) == ref.argmax(1))),
                  "within_one_step": within_one_step(out, ref), "max_steps": float((np.abs(out - ref) / scale).max()),
                  "quantized_torch_accuracy": float(np.mean(ref.argmax(1) == test_y))})
    out64 = float64_outputs(float64_model(quantized), test_x)
    entry["float64_ceiling"] = float64_ceiling(ref, out64, scale)
    entry["within_one_step_of_float64"] = within_one_step(out, out64)
    exact, count = exact_pools(quantized)
    exact_out = torch_outputs(exact, test_x) if count else ref
    entry["within_one_step_of_exact_pools"] = within_one_step(out, exact_out)
    entry["pool_rounding_ceiling"] = pool_rounding_ceiling(ref, exact_out, count, scale, float_top1)
    return entry


def bench(name: str, runs: int, tmp: str, retrain: bool = False) -> dict:
    start = time.perf_counter()
    all_x, all_y, test_x, test_y = digits(3 if name != "cnn" else 1)
    train_x, train_y, selection = all_x[:N_FIT], all_y[:N_FIT], all_x[N_FIT:]
    model, trained_s = trained(name, train_x, train_y, retrain)
    float_out = torch_outputs(model, test_x)
    float_top1, test_y = float_out.argmax(1), test_y.numpy()
    row = {"network": name, "epochs": EPOCHS[name], "train_s": trained_s,
           "torch_float_accuracy": float(np.mean(float_top1 == test_y)), "variants": {}}
    calibration = train_x[:N_CALIBRATION]
    compiled = torch2keras.compile(model, test_x[:1], name=name, input_layouts="channels_last", validate="outputs")
    paths = {}
    for variant, options in CONVERTER.items():
        paths[variant] = os.path.join(tmp, f"{name}_{variant}.tflite")
        extra = {"calibration": [(calibration[k:k + 1].numpy(),) for k in range(len(calibration))],
                 "holdout": [(test_x[k:k + 1].numpy(),) for k in range(4)]} if variant == "int8" else {}
        compiled.export_tflite(paths[variant], **options, **extra)
        row["variants"][variant] = measure(paths[variant], test_x, test_y, float_top1)
        print(f"  {name} {variant}: {row['variants'][variant]['accuracy']:.3f}", flush=True)
    # selective int8: layers kept float until top-1 agreement with float is shown to reach the
    # target on the selection images (not trained on; the test images stay unseen)
    paths["int8_selective"] = os.path.join(tmp, f"{name}_int8_selective.tflite")
    compiled.export_tflite(paths["int8_selective"], quantize="int8", io_dtype="float32", validate=False,
                           calibration=[(calibration[k:k + 1].numpy(),) for k in range(len(calibration))],
                           holdout=[(selection[k:k + 1].numpy(),) for k in range(len(selection))],
                           target_agreement=TARGET_AGREEMENT, delegates=False)
    choice = compiled.report.quantization_selection
    row["variants"]["int8_selective"] = measure(paths["int8_selective"], test_x, test_y, float_top1)
    row["variants"]["int8_selective"]["selection"] = {
        "target": choice.target, "samples": choice.samples, "kept_float": choice.kept_float,
        "agreement_on_selection": choice.agreement, "int8_agreement_on_selection": choice.agreement_int8,
        "agreement_bound": choice.agreement_bound, "int8_agreement_bound": choice.agreement_bound_int8,
        "confidence": choice.confidence, "reached": choice.reached, "float_ops": choice.float_ops,
        "steps": choice.steps}
    print(f"  {name} int8_selective: {len(choice.kept_float)} layer(s) float", flush=True)
    for variant, quantized in (("pt2e_static", lambda: pt2e_static(model, calibration)),
                               ("pt2e_qat", lambda: pt2e_qat(model, train_x, train_y))):
        quantized = quantized()
        paths[variant] = os.path.join(tmp, f"{name}_{variant}.tflite")
        torch2keras.to_tflite(quantized, test_x[:1], paths[variant], input_layouts="channels_last", validate=False)
        row["variants"][variant] = measure(paths[variant], test_x, test_y, float_top1, quantized)
        print(f"  {name} {variant}: {row['variants'][variant]['accuracy']:.3f}", flush=True)
    for variant, ms in latencies_ms(paths, runs).items():
        entry = row["variants"][variant]
        entry["latency_ms"] = ms
    base = row["variants"]["float32"]
    for entry in row["variants"].values():
        entry["size_ratio"] = entry["bytes"] / base["bytes"]
        entry["latency_ratio"] = entry["latency_ms"] / base["latency_ms"]
    row["total_s"] = time.perf_counter() - start
    return row


def _cell(entry: dict, key: str, fmt: str) -> str:
    return format(entry[key], fmt) if entry.get(key) is not None else "-"


def markdown(rows: list[dict]) -> str:
    lines = ["| network | variant | accuracy | top-1 vs float torch | top-1 vs quantized torch | within 1 step | "
             "ceiling (torch f64 vs f32) | within 1 step of torch f64 | ceiling (exact pools) | KB | size | latency | TRANSPOSE | "
             "float ops between q |", "|" + "---|" * 14]
    for row in rows:
        for variant, e in row["variants"].items():
            lines.append(f"| {row['network']} | {variant} | {e['accuracy']:.2%} | {e['top1_agreement_float_torch']:.2%} | "
                         f"{_cell(e, 'top1_agreement_quantized_torch', '.2%')} | {_cell(e, 'within_one_step', '.2%')} | "
                         f"{_cell(e.get('float64_ceiling', {}), 'within_one_step', '.2%')} | "
                         f"{_cell(e, 'within_one_step_of_float64', '.2%')} | "
                         f"{_cell(e.get('pool_rounding_ceiling', {}), 'within_one_step', '.2%')} | "
                         f"{e['bytes'] / 1e3:.0f} | {e['size_ratio']:.2f} | {e['latency_ratio']:.2f} | "
                         f"{e['transposes']} | {e['float_ops_between_quantized']} |")
    notes = []
    for r in rows:
        selected = r["variants"].get("int8_selective", {}).get("selection", {})
        notes.append(f"- {r['network']}: float PyTorch accuracy {r['torch_float_accuracy']:.2%} after {r['epochs']} "
                     f"epochs ({r['train_s']:.0f} s, 0: cached weights); whole row {r['total_s']:.0f} s"
                     + (f"; int8_selective kept {len(selected['kept_float'])} layer(s) float "
                        f"({', '.join(selected['kept_float'][:6])}"
                        + (" ..." if len(selected['kept_float']) > 6 else "")
                        + f"): top-1 agreement on the {selected['samples']} selection images "
                        f"{selected['int8_agreement_on_selection']:.2%} (95% lower bound "
                        f"{selected['int8_agreement_bound']:.2%}) -> {selected['agreement_on_selection']:.2%} "
                        f"(bound {selected['agreement_bound']:.2%}, target "
                        + ("reached" if selected["reached"] else "NOT reached") + ")" if selected else ""))
    return "\n".join(lines + [""] + notes) + "\n"


def write(rows: list[dict], args) -> None:
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"networks": rows, "threads": 2, "runs": args.runs, "train": N_FIT, "selection": N_SELECTION, "test": 540,
                   "calibration": N_CALIBRATION, "qat_steps": QAT_STEPS}, f, indent=2)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(markdown(rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--networks", default="cnn,mobilenet_v3_small,resnet18")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--retrain", action="store_true", help="train again (not the cached weights)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "quantization_trained.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            rows.append(bench(name, args.runs, tmp, args.retrain))
            write(rows, args)  # (after each network: a partial run keeps what it measured)
    print("\n" + markdown(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
