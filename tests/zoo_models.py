"""The test zoo's torchvision models by name, built with random, seeded weights (test-only helper,
shared by tests/e2e/test_zoo.py, the direct-backend zoo test and benchmarks/op_counts.py).

``ZOO``: the classification and segmentation models of the end-to-end zoo test; ``shufflenet_v2_x1_0``
is built here too (its channel shuffles have their own test, tests/passes/test_channel_shuffle.py).
``zoo_model(name)`` gives the model and its example input, the same for every caller: seed 0, one
224x224 image, BatchNorm statistics from that image (and more random ones where
``CALIBRATION_BATCH`` says so).
"""

from __future__ import annotations

import torch

from compat import import_torchvision, seeded_model

__all__ = ["CALIBRATION_BATCH", "OUTPUT_NAMES", "ZOO", "zoo_model"]


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
_OTHERS = {"shufflenet_v2_x1_0": _classifier("shufflenet_v2_x1_0")}
OUTPUT_NAMES = {"deeplabv3_mobilenet_v3_large": ["out", "aux"], "lraspp_mobilenet_v3_large": ["out"]}
# models whose BatchNorm statistics need a batch of more than one image: DeepLab's ASPP pooling branch
# normalises a 1x1 map, one value per channel with batch 1, which training-mode BatchNorm refuses
CALIBRATION_BATCH = {"deeplabv3_mobilenet_v3_large": 2}


def zoo_model(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """(the model of ``ZOO`` or shufflenet_v2_x1_0, in eval mode with seeded weights, its example input
    of shape (1, 3, 224, 224))."""
    factory = ZOO.get(name) or _OTHERS[name]
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    calibration = torch.cat([x] + [torch.randn_like(x) for _ in range(CALIBRATION_BATCH.get(name, 1) - 1)])
    return seeded_model(factory, calibration), x
