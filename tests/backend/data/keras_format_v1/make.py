"""Writes the format-1 ``.keras`` files that ``tests/test_keras_format.py`` loads.

The files were written once by torch2keras before the format had a version key (format 1); they
must keep loading and computing the same results (the names they persist, ``TorchOp``'s ``fn``
and the layer classes' registered names, are a contract: ``docs/keras_format.md``). Rerun only
to add a file, never to refresh the committed ones:

    PYTHONPATH=. python tests/backend/data/keras_format_v1/make.py tests/backend/data/keras_format_v1

Each ``NAME.keras`` comes with ``NAME.npz``: the model's feeds (``in_<input name>``), what
PyTorch returned (``torch_<k>``) and what the Keras model returned when it was written
(``keras_<k>``), every array in the model's own layout. ``kernel_names.txt`` lists every kernel
name a format-1 file may hold (all of ``KOPS`` then, used by these files or not).
"""

from __future__ import annotations

import copy
import os
import sys
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import torch2keras


class Kernels(nn.Module):
    """Static shapes: one branch per ``keras.ops`` kernel the Keras backend persists."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.2)
        self.query = nn.Linear(4, 4)

    def _unary(self, x: torch.Tensor, p: torch.Tensor, u: torch.Tensor) -> list[torch.Tensor]:
        return [
            -x, x.abs(), x.exp(), torch.expm1(x), p.log(), torch.log1p(p), torch.log2(p), p.sqrt(), p.rsqrt(),
            x.sin(), x.cos(), u.tan(), u.asin(), u.acos(), x.atan(), x.sinh(), x.cosh(), x.tanh(), torch.asinh(x),
            torch.acosh(p + 1.0), torch.atanh(u), torch.sigmoid(x * 3), F.silu(x), torch.erf(x), (x * 3).floor(),
            (x * 3).ceil(), (x * 3).round(), (x * 3).trunc(), p.reciprocal(), torch.sign(x), F.hardsigmoid(x * 4),
            F.hardswish(x * 4), F.mish(x), F.gelu(x), F.gelu(x, approximate="tanh"), x.clamp(-0.5, 0.7),
            x.clamp(min=-0.2), F.leaky_relu(x, 0.1), F.elu(x), F.softplus(x, beta=2.0), torch.special.erfc(x),
            torch.erfinv(u), torch.exp2(x), torch.log10(p), torch.special.i0(x), torch.lgamma(p),
            torch.digamma(p), torch.polygamma(1, p), torch.signbit(x).float(), torch.square(x), x ** 3,
        ]

    def _binary(self, x: torch.Tensor, y: torch.Tensor, p: torch.Tensor) -> list[torch.Tensor]:
        return [
            x + y, x + self.weight[:1, :, :1, :1], x - y, x * y, x / (p + 1.0), p ** y, torch.maximum(x, y),
            torch.minimum(x, y), torch.atan2(x, y), torch.copysign(x, y), torch.fmax(x, y), torch.fmin(x, y),
            torch.hypot(x, y), torch.nextafter(x, y), torch.special.gammainc(p, p * 2),
            torch.special.gammaincc(p, p * 2), torch.where(x > y, x, y), torch.floor_divide(x * 5, p),
            torch.remainder(x * 5, p), torch.fmod(x * 5, p),
            torch.stack([(x == y).float(), (x != y).float(), (x < y).float(), (x <= y).float(), (x > 0).float(),
                         (x >= 0).float(), ((x > 0) & (y > 0)).float(), ((x > 0) | (y > 0)).float(),
                         ((x > 0) ^ (y > 0)).float(), (~(x > 0)).float(), torch.isnan(x.log()).float(),
                         torch.isinf(1.0 / x.floor()).float()]),
        ]

    def _integer(self, k: torch.Tensor) -> list[torch.Tensor]:
        j = k.flip(-1) + 1
        return [k & j, k | j, k ^ j, ~k, torch.bitwise_left_shift(k, j % 3), torch.bitwise_right_shift(k, j % 3), torch.gcd(k, j), torch.lcm(k, j), k // j, k % j,
                torch.fmod(k - 5, j)]

    def _axis_and_shape(self, x: torch.Tensor, k: torch.Tensor) -> list[torch.Tensor]:
        flat = x.reshape(2, 3, 16)
        scattered = torch.zeros(2, 3, 16).scatter_add(2, k.reshape(2, 3, 16) % 16, flat)
        values, _ = flat.topk(3, dim=-1)
        ordered, _ = torch.sort(flat, dim=-1, descending=True)
        q = self.query(flat[..., :4])
        return [
            x.softmax(1), x.log_softmax(-1), x.cumsum(2), x.flip(1), x.flip((1, 3)), x.sum((2, 3)), x.mean(1),
            x.amax(-1), x.amin(-1), x.prod(-1), (x > 0).any(-1).float(), (x > -2).all(-1).float(),
            x.argmax(1).float(), x.argmin(-1).float(), x.var(-1), x[:, 1:3, ::2], x.permute(2, 0, 3, 1),
            torch.cat([x, x * 2], 1), F.pad(x, (1, 2, 0, 1), mode="reflect"), F.pad(x, (1, 1), value=0.5),
            x[:1].expand(3, 3, 4, 4), x.repeat(1, 2, 1, 1), flat @ flat.transpose(1, 2),
            torch.gather(flat, 2, k.reshape(2, 3, 16) % 16), torch.index_select(flat, 2, torch.tensor([0, 5, 7])),
            F.scaled_dot_product_attention(q, q, q, is_causal=True), values, ordered, torch.cumprod(flat, -1),
            torch.logcumsumexp(flat, -1), torch.cummax(flat, -1).values, scattered,
            torch.slice_scatter(flat, flat[..., :3] * 2, dim=2, start=4, end=10, step=2),
            F.pixel_shuffle(torch.cat([x, x], 1)[:, :4], 2), F.pixel_unshuffle(x, 2),
            F.interpolate(x, size=(6, 5), mode="bilinear"),
            F.grid_sample(x, torch.tanh(x[:, :2].permute(0, 2, 3, 1)), align_corners=False),
            F.conv2d(x, self.weight * x.mean(), padding=1), x.to(torch.int32).float(),
        ]

    def forward(self, x: torch.Tensor, y: torch.Tensor, k: torch.Tensor):
        p, u = torch.sigmoid(x) + 0.1, torch.tanh(x) * 0.9
        floats = self._unary(x, p, u) + self._binary(x, y, p) + self._axis_and_shape(x, k)
        ints = self._integer(k)
        return torch.cat([t.reshape(2, -1) for t in floats], 1), torch.cat([t.reshape(2, -1) for t in ints], 1), x


class Dynamic(nn.Module):
    """A run-time sequence length: the kernels on sizes known only at run time."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = x.shape[1]
        pos = torch.arange(n, dtype=torch.float32)
        halves = x.reshape(x.shape[0], n, 2, 2).sum(-1)
        wide = x[:, :, :1].expand(x.shape[0], n, 6)
        attn = F.scaled_dot_product_attention(x, x, x, is_causal=True)
        square = torch.arange(n * n, dtype=torch.float32).reshape(n, n) + x[0, :, :1]
        rows = x.sum(-1).reshape(-1).unsqueeze(0).expand(n, 2 * n)
        return halves + pos[None, :, None], wide.reshape(-1, 3) * 2, attn[:, : n // 2], square, rows


class Layers(nn.Module):
    """The layer classes: recurrent layers, a ``torch.cond`` and a constant output."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(8, 3)
        self.rnn = nn.RNN(3, 2, nonlinearity="relu")

    def forward(self, x: torch.Tensor):
        seq, (h, _) = self.lstm(x)
        seq, _ = self.gru(seq)
        seq, _ = self.rnn(seq)
        last = seq[:, -1]
        out = torch.cond(last.sum() > 0, lambda v: v * 2.0, lambda v: -v - 1.0, (last,))
        return out, h, torch.ones(2, 2)


class State(nn.Module):
    """A buffer ``forward`` updates: the model's state layer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("total", torch.zeros(1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.total.add_(x.sum(0, keepdim=True))
        return x * self.total


def _deflate(path: str) -> None:
    """Recompress the ``.keras`` zip (Keras stores its members uncompressed); the members stay as written."""
    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info, data in members:
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)


def _write(directory: str, name: str, model: nn.Module, inputs: tuple, **options) -> None:
    with torch.no_grad():  # the first call, on a copy: a stateful model's state is its initial one
        ref = copy.deepcopy(model)(*inputs)
    ref = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
    result = torch2keras.compile(model, inputs, on_mismatch="raise", **options)
    path = result.save(os.path.join(directory, f"{name}.keras"))  # before calling it: state is saved too
    _deflate(path)
    feeds = result.keras_inputs([t.numpy() for t in inputs])
    out = result.keras_model(feeds, training=False)
    out = [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
    arrays = {f"in_{k}": v for k, v in feeds.items()}
    arrays.update({f"torch_{i}": r for i, r in enumerate(ref)})
    arrays.update({f"keras_{i}": o for i, o in enumerate(out)})
    np.savez_compressed(os.path.join(directory, f"{name}.npz"), **arrays)


def main(directory: str) -> None:
    from torch2keras.backend_keras.kops import KOPS

    with open(os.path.join(directory, "kernel_names.txt"), "w") as f:  # every name format 1 may hold
        f.write("\n".join(sorted(KOPS)) + "\n")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    _write(directory, "kernels", Kernels().eval(), (x, torch.randn(2, 3, 4, 4), torch.randint(1, 40, (2, 3, 4, 4))))
    _write(directory, "dynamic", Dynamic().eval(), (torch.randn(2, 6, 4),), dynamic_shapes={"x": {1: "seq"}})
    _write(directory, "layers", Layers().eval(), (torch.randn(2, 5, 3),))
    _write(directory, "state", State().eval(), (torch.randn(2, 3),))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
