"""A PyTorch model with the weights a weight-quantized ``.tflite`` file computes with: each
linear and embedding weight the file quantizes (``WeightQuantization.quantizes``: the module
path, the size) replaced by its dequantized value (``WeightQuantization.quantize``)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from torch2keras import WeightQuantization


def dequantized(model: nn.Module, mode: WeightQuantization) -> nn.Module:
    """A copy of ``model`` with the file's dequantized weights (``model`` is left as it is)."""
    result = copy.deepcopy(model)
    with torch.no_grad():
        for name, module in result.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)) and mode.quantizes(name, module.weight.numel()):
                module.weight.copy_(torch.from_numpy(mode.quantize(module.weight.detach().numpy()).dequantized()))
    return result
