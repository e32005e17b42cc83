"""Demo: convert torchvision's mobilenet_v3_large (random weights) to .keras and .tflite.

Prints the error against PyTorch, op and transpose counts and the output paths.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo import torchvision_model  # noqa: E402

import torch2keras  # noqa: E402


def main(out_dir: str = "out") -> int:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    model = torchvision_model("mobilenet_v3_large", x)
    start = time.perf_counter()
    result = torch2keras.compile(model, x, input_layouts="channels_last", name="mobilenet_v3_large",
                                 progress=lambda m: print(f"[{time.perf_counter() - start:5.1f}s] {m}", flush=True))
    keras_path = result.save(os.path.join(out_dir, "mobilenet_v3_large.keras"))
    tflite_path = result.export_tflite(os.path.join(out_dir, "mobilenet_v3_large.tflite"))
    print()
    print(result.report.summary())
    print(f"\nKeras model:  {keras_path}\nTFLite model: {tflite_path}")
    return 0 if result.report.ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
