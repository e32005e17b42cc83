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


class GRUTwoConvs(nn.Module):
    """nobuco README: a GRU whose output feeds two Conv1d (the lazy approach transposes twice)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(32, 128, num_layers=1, batch_first=True, bidirectional=False)
        self.conv1 = nn.Conv1d(12, 40, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(12, 60, kernel_size=1, padding=0)

    def forward(self, x):
        x, hx = self.gru(x)
        return self.conv1(x), self.conv2(x)


class ReshapeBetweenConvs(nn.Module):
    """nobuco README: Conv1d -> reshape(-1, 6, 2) -> Conv1d."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(3, 3, kernel_size=1)
        self.conv2 = nn.Conv1d(6, 6, kernel_size=1)

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(-1, 6, 2)
        return self.conv2(x)


class ReshapeBetweenConvsPermuted(ReshapeBetweenConvs):
    """The same with the permute-reshape-permute trick."""

    def forward(self, x):
        x = self.conv1(x)
        x = x.permute(0, 2, 1)
        x = x.reshape(-1, 2, 6)
        x = x.permute(0, 2, 1)
        return self.conv2(x)


class PixelUnshuffleConvShuffle(nn.Module):
    """nobuco README: PixelUnshuffle(4) -> Conv2d 1x1 -> PixelShuffle(4)."""

    def __init__(self, factor: int = 4):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(3 * factor ** 2, 3 * factor ** 2, kernel_size=1)

    def forward(self, x):
        x = nn.PixelUnshuffle(self.factor)(x)
        x = self.conv(x)
        return nn.PixelShuffle(self.factor)(x)


class RecurrentStack(nn.Module):
    def __init__(self, cls, **kwargs):
        super().__init__()
        self.rnn = cls(16, 24, **kwargs)

    def forward(self, x):
        return self.rnn(x)


class ScalarInputs(nn.Module):
    """0-d inputs: a scale and an offset applied around a conv, and a 0-d output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, image, scale, offset):
        y = torch.relu(self.conv(image) * scale) + offset.exp()
        return y, torch.tanh(scale * offset) + y.mean()


class OnlyScalarInput(nn.Module):
    """The model's single input is 0-d (a time step, a temperature, ...)."""

    def __init__(self):
        super().__init__()
        self.freqs = nn.Parameter(torch.linspace(0.5, 4.0, 8))

    def forward(self, t):
        angles = t * self.freqs
        return torch.cat([angles.sin(), angles.cos()]), t * t
