"""Model zoo: torchvision classification and segmentation models (random, seeded weights) convert,
and Keras and TFLite outputs match PyTorch's.

The default run converts two small models; the rest are ``slow`` (``make test-slow``). resnet18,
mobilenet_v3_large and vit_b_16 are also in tests/test_models.py's default run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torch2keras
from zoo_models import OUTPUT_NAMES, ZOO, zoo_model

TOL = 1e-4  # absolute, and relative to the output's magnitude where that exceeds 1
FAST = ["squeezenet1_1"]  # (torchvision classifiers run by default in test_torchvision.py)


def _error(got, ref) -> float:
    """max |got - ref| over max(1, max |ref|): absolute for small outputs, relative for large ones."""
    diff = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))))
    return diff / max(1.0, float(np.max(np.abs(ref))))


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in ZOO])
def test_zoo_model(name, tmp_path):
    model, x = zoo_model(name)
    with torch.no_grad():
        out = model(x.clone())
    ref = [t.numpy() for t in torch.utils._pytree.tree_flatten(out)[0]]
    assert all(np.abs(r).max() > 1e-3 for r in ref), "degenerate reference output"

    result = torch2keras.compile(model, x, name=name, validate="outputs", on_mismatch="ignore")
    if name in OUTPUT_NAMES:
        assert result.output_names == OUTPUT_NAMES[name]
    keras_out = result.run_keras([x.numpy()])
    assert len(keras_out) == len(ref)
    path = result.export_tflite(str(tmp_path / f"{name}.tflite"), validate=False)
    lite_out = result.run_tflite(path, [x.numpy()])
    keras_err = [_error(k, r) for k, r in zip(keras_out, ref)]
    lite_err = [_error(t, r) for t, r in zip(lite_out, ref)]
    print(f"{name}: Keras error {max(keras_err):.3g}, TFLite error {max(lite_err):.3g} (scaled)")
    for k, r in zip(keras_out, ref):
        assert k.shape == r.shape
    assert max(keras_err) < TOL, f"{name}: Keras differs from PyTorch by {max(keras_err):.3g} (scaled)"
    assert max(lite_err) < TOL, f"{name}: TFLite differs from PyTorch by {max(lite_err):.3g} (scaled)"
