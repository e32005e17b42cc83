"""Small models used by the end-to-end tests (the nobuco README's examples among them)."""

from __future__ import annotations

import torch
from torch import nn


class NobucoEssentials(nn.Module):
    """conv -> hardsigmoid -> 1 - x[:, ::2] * x[:, 1::2]"""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, kernel_size=(3, 3), padding=(1, 1), stride=(2, 2))

    def forward(self, x):
        x = self.conv(x)
        x = nn.Hardsigmoid()(x)
        x = 1 - x[:, ::2] * x[:, 1::2]
        return x


class SliceReLU(nn.Module):
    def forward(self, x):
        torch.relu_(x[:, 1:2, 16:25, 8::2])  # in-place on a view: must write through to x
        return x


class ConvSliceReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, kernel_size=(3, 3), padding=(1, 1))

    def forward(self, x):
        x = self.conv(x)
        SliceReLU()(x)
        return x


class DataDependentIf(nn.Module):
    """Python control flow on a tensor's value: torch.export refuses it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        if x.mean() > -100:
            x = torch.tanh(x) + 1
        else:
            x = torch.sigmoid(x) - 1
        return x


def transformer_encoder():
    layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, image, bias):
        f = self.conv(image) + bias
        pooled = f.mean(dim=(2, 3))
        return {"features": f, "logits": self.fc(pooled)}, pooled.sum(dim=1)
