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
from compat import import_torchvision, seeded_model

TOL = 1e-4  # absolute, and relative to the output's magnitude where that exceeds 1


def _classifier(name):
    return lambda: getattr(import_torchvision().models, name)()


def _googlenet():
    return import_torchvision().models.googlenet(aux_logits=False, init_weights=True)


def _deeplab():  # with the auxiliary head: a dict output {"out", "aux"}
    seg = import_torchvision().models.segmentation
    return seg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=True)


def _lraspp():
    seg = import_torchvision().models.segmentation
    return seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)


ZOO = {
    "squeezenet1_1": _classifier("squeezenet1_1"),
    "mobilenet_v3_small": _classifier("mobilenet_v3_small"),
    "resnet18": _classifier("resnet18"),
    "resnet50": _classifier("resnet50"),
    "mobilenet_v2": _classifier("mobilenet_v2"),
    "mobilenet_v3_large": _classifier("mobilenet_v3_large"),
    "efficientnet_b0": _classifier("efficientnet_b0"),
    "convnext_tiny": _classifier("convnext_tiny"),
    "vit_b_16": _classifier("vit_b_16"),
    "googlenet": _googlenet,
    "deeplabv3_mobilenet_v3_large": _deeplab,
    "lraspp_mobilenet_v3_large": _lraspp,
}
FAST = ["squeezenet1_1"]  # (torchvision classifiers run by default in test_torchvision.py)
OUTPUT_NAMES = {"deeplabv3_mobilenet_v3_large": ["out", "aux"], "lraspp_mobilenet_v3_large": ["out"]}
# models whose BatchNorm statistics need a batch of more than one image: DeepLab's ASPP pooling branch
# normalises a 1x1 map, one value per channel with batch 1, which training-mode BatchNorm refuses
CALIBRATION_BATCH = {"deeplabv3_mobilenet_v3_large": 2}


def _error(got, ref) -> float:
    """max |got - ref| over max(1, max |ref|): absolute for small outputs, relative for large ones."""
    diff = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))))
    return diff / max(1.0, float(np.max(np.abs(ref))))


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in ZOO])
def test_zoo_model(name, tmp_path):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    calibration = torch.cat([x] + [torch.randn_like(x) for _ in range(CALIBRATION_BATCH.get(name, 1) - 1)])
    model = seeded_model(ZOO[name], calibration)
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
