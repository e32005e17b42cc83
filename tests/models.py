"""Small models used by the end-to-end tests (the nobuco README's examples among them)."""

from __future__ import annotations

import torch
from torch import nn
from torch._higher_order_ops.scan import scan as torch_scan
from torch._higher_order_ops.while_loop import while_loop as torch_while_loop


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


class ControlIf(nn.Module):
    """nobuco README's ControlIf: a Python `if` on tensor data (export refuses it)."""

    def __init__(self):
        super().__init__()
        self.conv_pre = nn.Conv2d(3, 16, kernel_size=(1, 1))
        self.conv_true = nn.Conv2d(16, 32, kernel_size=(1, 1))
        self.conv_false = nn.Conv2d(16, 32, kernel_size=(1, 1))
        self.conv_shared = nn.Conv2d(32, 32, kernel_size=(1, 1))

    def forward(self, x):
        x = self.conv_pre(x)
        if x.mean() > 0:  # CONTROL_IF_LINE
            x = self.conv_true(x)
            x = torch.tanh(x)
            x = self.conv_shared(x)
            x = x + 1
        else:
            x = self.conv_false(x)
            x = torch.sigmoid(x)
            x = self.conv_shared(x)
            x = x - 1
        x = self.conv_shared(x)
        return x


class ControlIfCond(ControlIf):
    """The same model with the `if` written as torch.cond: both branches convert."""

    def _true(self, x):
        x = self.conv_true(x)
        x = torch.tanh(x)
        x = self.conv_shared(x)
        return x + 1

    def _false(self, x):
        x = self.conv_false(x)
        x = torch.sigmoid(x)
        x = self.conv_shared(x)
        return x - 1

    def forward(self, x):
        x = self.conv_pre(x)
        x = torch.cond(x.mean() > 0, self._true, self._false, (x,))
        x = self.conv_shared(x)
        return x


# ----------------------------------------------------------------------------- stateful models
# (buffers forward() mutates: each call starts from what the previous one left)


class RunningCounter(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        self.count += 1
        return x * self.count


class StreamingConv1d(nn.Module):
    """A causal Conv1d over a stream: the buffer keeps the last ``kernel - 1`` frames, each call
    brings ``frames`` new ones (``copy_`` into the buffer, or reassigning it)."""

    def __init__(self, channels: int = 4, out_channels: int = 6, kernel: int = 5, reassign: bool = False):
        super().__init__()
        self.conv = nn.Conv1d(channels, out_channels, kernel)
        self.keep = kernel - 1
        self.reassign = reassign
        self.register_buffer("cache", torch.zeros(1, channels, kernel - 1))

    def forward(self, x):
        window = torch.cat([self.cache, x], dim=2)
        if self.reassign:
            self.cache = window[:, :, -self.keep:]
        else:
            self.cache.copy_(window[:, :, -self.keep:])
        return torch.relu(self.conv(window))


class MovingAverage(nn.Module):
    """An exponential moving average of the batch mean and an int64 step counter."""

    def __init__(self, features: int = 6, momentum: float = 0.8):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        self.mean.mul_(self.momentum).add_(x.mean(0), alpha=1 - self.momentum)
        self.steps += 1
        return (x - self.mean) / self.steps


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


class LastStepLSTM(nn.Module):
    """A 2-layer LSTM (16 -> 32 features, batch first), then a linear layer (32 -> 5) on its last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True)
        self.fc = nn.Linear(32, 5)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class Fn(nn.Module):
    """``fn(*inputs)`` as a module, with an optional child holding weights."""

    def __init__(self, fn, child=None):
        super().__init__()
        self.fn = fn
        self.child = child

    def forward(self, *xs):
        return self.fn(self.child, *xs) if self.child is not None else self.fn(*xs)


# ----------------------------------------------------------------------------- control flow


class Halving(nn.Module):
    """x = x * 0.5 + offset while sum(x) < limit: the trip count depends on the data."""

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.ones(4))

    def forward(self, x):
        def cond_fn(i, v):
            return v.sum() < 15.0

        def body_fn(i, v):
            return i + 1, v * 0.5 + self.offset

        return torch_while_loop(cond_fn, body_fn, (torch.zeros((), dtype=torch.int64), x))


class DecayingSum(nn.Module):
    """scan over time: c = 0.8 * c + x_t @ W, y_t = tanh(c) (a carry and a stacked output)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 3, bias=False)

    def forward(self, xs):
        def combine(c, x):
            c = 0.8 * c + self.proj(x)
            return c, torch.tanh(c)

        return torch_scan(combine, torch.zeros(2, 3), xs)


class ConvScan(nn.Module):
    """A convolutional recurrence over frames: h = tanh(cx(x_t) + ch(h)); ys = 2 h."""

    def __init__(self):
        super().__init__()
        self.cx = nn.Conv2d(3, 8, 3, padding=1)
        self.ch = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, xs):
        def combine(h, x):
            h = torch.tanh(self.cx(x) + self.ch(h))
            return h, h * 2

        return torch_scan(combine, torch.zeros(1, 8, 6, 6), xs)
