"""Small models, one emitter feature each, written by the direct TFLite backend and run in LiteRT:
every output within 1e-4 (scaled) of PyTorch. Covers the conv, pooling, resize, normalisation,
attention, elementwise, reduction, indexing and recurrent emitters and their variants (padding
that TFLite's SAME expresses and padding it does not, ceil_mode, count_include_pad, transposed
and grouped convolutions, causal and masked attention, ...)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from direct_check import annotated_ir, check_direct, reference, run_file
from models import Fn
from torch2keras.backend_tflite import write_tflite


def _image(c=4, h=9, w=10, n=1):
    return torch.randn(n, c, h, w)


def _conv_then(layer, c=4):
    """conv -> layer: the layer sees channels-last values (not foldable into the conv)."""
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.Tanh(), layer)


CASES = {
    # convolutions
    "conv_same": lambda: (nn.Conv2d(4, 6, 3, padding=1), (_image(),)),
    "conv_stride2_pad": lambda: (nn.Conv2d(4, 6, 3, stride=2, padding=1), (_image(h=10),)),
    "conv_dilated": lambda: (nn.Conv2d(4, 6, 3, padding=2, dilation=2), (_image(),)),
    "conv_grouped": lambda: (nn.Conv2d(4, 6, 3, padding=1, groups=2), (_image(),)),
    "conv_depthwise_multiplier": lambda: (nn.Conv2d(4, 8, 3, padding=1, groups=4), (_image(),)),
    "conv_depthwise_stride2": lambda: (nn.Conv2d(4, 4, 5, stride=2, padding=2, groups=4), (_image(h=12),)),
    "conv_asymmetric": lambda: (nn.Conv2d(4, 5, (3, 1), padding=(2, 0)), (_image(),)),
    "conv_no_bias_relu6": lambda: (nn.Sequential(nn.Conv2d(4, 5, 1, bias=False), nn.ReLU6()), (_image(),)),
    "conv1d": lambda: (nn.Conv1d(4, 6, 3, padding=1, stride=2), (torch.randn(2, 4, 11),)),
    "conv_transpose_same": lambda: (nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1), (_image(h=5, w=6),)),
    "conv_transpose_cropped": lambda: (nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
                                       (_image(h=5, w=6),)),
    "conv_transpose_1d": lambda: (nn.ConvTranspose1d(4, 3, 3, stride=2), (torch.randn(1, 4, 7),)),
    "conv_transpose_dilated": lambda: (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, dilation=2),
                                       (_image(h=5, w=6),)),
    "conv_transpose_grouped_dilated": lambda: (nn.ConvTranspose2d(6, 6, 3, groups=3, dilation=(2, 1), padding=2),
                                               (_image(6, h=7, w=6),)),
    "conv_transpose_1d_depthwise": lambda: (nn.ConvTranspose1d(4, 4, 4, groups=4, stride=2, padding=1),
                                            (torch.randn(2, 4, 9),)),
    "conv_3d": lambda: (nn.Conv3d(3, 4, (2, 3, 3), stride=(1, 2, 1), padding=(1, 0, 2)), (torch.randn(2, 3, 5, 7, 6),)),
    "conv_3d_dilated_grouped": lambda: (nn.Sequential(nn.Conv3d(4, 6, 3, padding=2, dilation=2, groups=2), nn.ReLU()),
                                        (torch.randn(1, 4, 5, 6, 7),)),
    "conv_transpose_3d": lambda: (nn.ConvTranspose3d(3, 4, (2, 3, 2), stride=(2, 1, 3), padding=(1, 1, 0),
                                                     output_padding=(1, 0, 2)), (torch.randn(2, 3, 3, 4, 5),)),
    "conv_transpose_3d_dilated_grouped": lambda: (nn.ConvTranspose3d(4, 6, 2, stride=2, dilation=(2, 1, 3), groups=2,
                                                                     bias=False), (torch.randn(1, 4, 3, 4, 2),)),
    # pooling and resizing
    "max_pool_padded": lambda: (nn.MaxPool2d(3, 2, 1), (_image(h=10),)),
    "max_pool_ceil": lambda: (nn.MaxPool2d(3, 2, ceil_mode=True), (_image(h=10),)),
    "max_pool_after_relu": lambda: (_conv_then(nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, 2, 1))), (_image(3, 10),)),
    "avg_pool_count_pad": lambda: (nn.AvgPool2d(3, 2, 1), (_image(h=10),)),
    "avg_pool_no_count_pad": lambda: (nn.AvgPool2d(3, 2, 1, count_include_pad=False), (_image(h=10),)),
    "avg_pool_same_geometry": lambda: (nn.AvgPool2d(3, 1, 1, count_include_pad=False), (_image(),)),
    "avg_pool_ceil": lambda: (nn.AvgPool2d(2, 2, ceil_mode=True), (_image(h=9, w=9),)),
    "avg_pool_divisor": lambda: (nn.AvgPool2d(2, 2, divisor_override=3), (_image(h=8),)),
    "avg_pool_1d": lambda: (nn.AvgPool1d(3, 2, 1), (torch.randn(2, 4, 9),)),
    "max_pool_3d": lambda: (nn.MaxPool3d((2, 3, 3), (1, 2, 2), (1, 1, 0)), (torch.randn(2, 3, 7, 9, 8),)),
    "max_pool_3d_ceil": lambda: (nn.MaxPool3d(3, 2, 1, ceil_mode=True), (torch.randn(1, 3, 7, 9, 8),)),
    "avg_pool_3d": lambda: (nn.AvgPool3d((2, 3, 3), (2, 2, 1), 1), (torch.randn(2, 3, 7, 9, 8),)),
    "avg_pool_3d_ceil_no_count_pad": lambda: (nn.AvgPool3d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                                              (torch.randn(1, 3, 7, 9, 8),)),
    "adaptive_avg_2x2": lambda: (nn.AdaptiveAvgPool2d((2, 2)), (_image(h=8, w=8),)),
    "adaptive_max_1": lambda: (nn.AdaptiveMaxPool2d(1), (_image(),)),
    "upsample_nearest": lambda: (nn.Upsample(scale_factor=2, mode="nearest"), (_image(h=5, w=6),)),
    "upsample_bilinear": lambda: (nn.Upsample(scale_factor=2, mode="bilinear"), (_image(h=5, w=6),)),
    "upsample_bilinear_corners": lambda: (nn.Upsample(size=(7, 9), mode="bilinear", align_corners=True),
                                          (_image(h=5, w=6),)),
    "pixel_shuffle": lambda: (nn.Sequential(nn.Conv2d(4, 8, 1), nn.PixelShuffle(2)), (_image(),)),
    # normalisations
    "layer_norm": lambda: (nn.LayerNorm(10), (torch.randn(2, 7, 10),)),
    "layer_norm_2_axes_no_affine": lambda: (nn.LayerNorm((7, 10), elementwise_affine=False), (torch.randn(2, 7, 10),)),
    "group_norm": lambda: (_conv_then(nn.GroupNorm(2, 4)), (_image(3),)),
    "group_norm_rows": lambda: (nn.Sequential(nn.Linear(6, 8), nn.GroupNorm(4, 8)), (torch.randn(3, 6),)),
    "batch_norm_alone": lambda: (_conv_then(nn.BatchNorm2d(4).eval()), (_image(3),)),
    # attention and matrix products
    "sdpa": lambda: (Fn(F.scaled_dot_product_attention), tuple(torch.randn(2, 3, 5, 8) for _ in range(3))),
    "sdpa_causal": lambda: (Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
                            tuple(torch.randn(2, 3, 5, 8) for _ in range(3))),
    "sdpa_float_mask": lambda: (Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
                                (*[torch.randn(1, 2, 4, 8) for _ in range(3)], torch.randn(4, 4))),
    "multihead_attention": lambda: (Fn(lambda m, x: m(x, x, x, need_weights=False)[0],
                                       nn.MultiheadAttention(16, 4, batch_first=True)), (torch.randn(2, 6, 16),)),
    "matmul_batched": lambda: (Fn(torch.matmul), (torch.randn(2, 3, 4, 5), torch.randn(2, 3, 5, 6))),
    "matmul_vector": lambda: (Fn(torch.matmul), (torch.randn(3, 4, 5), torch.randn(5))),
    "matmul_constant": lambda: (Fn(lambda m, x: x @ m.weight, nn.Linear(6, 4)), (torch.randn(3, 4),)),
    "linear_vector": lambda: (nn.Linear(5, 3), (torch.randn(5),)),
    "linear_no_bias_rows": lambda: (nn.Sequential(nn.Linear(5, 3, bias=False), nn.Flatten(0)), (torch.randn(2, 5),)),
    "linear_hardsigmoid": lambda: (nn.Sequential(nn.Linear(5, 3), nn.Hardsigmoid()), (torch.randn(2, 5),)),
    # elementwise
    "unary_math": lambda: (Fn(lambda x: torch.cat([x.exp(), x.abs().log1p(), x.expm1(), x.abs().sqrt(),
                                                   (x.abs() + 1).rsqrt(), x.sin(), x.cos(), x.tanh(), x.sigmoid(),
                                                   x.neg(), x.floor(), x.ceil(), x.sign(), x.square(),
                                                   (x.abs() + 1).log2(), (x * 3).round()], 1)), (_image(),)),
    "activations": lambda: (Fn(lambda x: torch.cat([F.silu(x), F.gelu(x), F.gelu(x, approximate="tanh"),
                                                    F.leaky_relu(x, 0.2), F.elu(x), F.hardswish(x),
                                                    F.hardsigmoid(x), F.relu6(x * 4), x.clamp(-0.5, 0.3),
                                                    x.clamp(min=0.1), F.hardtanh(x)], 1)), (_image(),)),
    "composed_math": lambda: (Fn(lambda x: torch.cat([F.softplus(x * 4), F.softplus(x, beta=2, threshold=1),
                                                      F.mish(x), (x * 3).trunc(), torch.exp2(x), torch.tan(x * 0.5),
                                                      torch.sinh(x), torch.cosh(x), torch.atan(x * 2),
                                                      torch.asin(x.tanh() * 0.9), torch.acos(x.tanh() * 0.9)], 1)),
                              (_image(),)),
    "special_functions": lambda: (Fn(lambda x: torch.cat([torch.erf(x), torch.erfc(x), torch.asinh(x * 3),
                                                          torch.asinh(x * 1e11), torch.erf(x * 0.3), torch.erfc(x * 3),
                                                          F.selu(x), F.celu(x, 0.7), F.elu(x, 0.5)], 1)),
                                  (_image(),)),
    "composed_binary": lambda: (Fn(lambda a, b: torch.cat([torch.fmod(a * 3, b.abs() + 0.5), torch.hypot(a, b),
                                                           torch.logical_xor(a > 0, b > 0).float()], 1)),
                                (_image(), _image())),
    "binary_math": lambda: (Fn(lambda a, b: torch.cat([a + b, a - b, a * b, a / (b.abs() + 1), torch.maximum(a, b),
                                                       torch.minimum(a, b), a.abs() ** b, torch.floor_divide(a, 0.7),
                                                       torch.remainder(a, 0.7), 1 / (a.abs() + 1)], 1)),
                            (_image(), _image())),
    "fmax_fmin_broadcast": lambda: (Fn(lambda a, b, c: torch.cat([torch.fmax(a, b), torch.fmin(a, b), torch.fmax(b, c),
                                                                  torch.fmin(a, torch.tensor(0.25)), torch.fmax(a, c)], 0)),
                                    (torch.randn(3, 2, 7), torch.randn(1, 2, 7), torch.randn(7))),
    "fmax_fmin_ints": lambda: (Fn(lambda a, b: (torch.fmax((a * 4).int(), (b * 4).int()),
                                                torch.fmin((a * 4).int(), (b * 4).int()))),
                               (torch.randn(3, 5), torch.randn(1, 5))),
    # ATAN2's kernel does not broadcast (operands of one rank: wrong numbers, not an error)
    "atan2_broadcast": lambda: (Fn(lambda a, b, c: torch.cat([torch.atan2(a, b), torch.atan2(b, a), torch.atan2(a, c),
                                                              torch.atan2(a, torch.tensor(0.5))], 1)),
                                (torch.randn(3, 2, 7), torch.randn(1, 2, 7), torch.randn(7))),
    "bitwise_bools": lambda: (Fn(lambda a, b: torch.cat([((a > 0) & (b > 0)).float(), ((a > 0) | (b < 0)).float(),
                                                         ((a > 0) ^ (b > 0)).float(),
                                                         ((a * 4).int() ^ (b * 4).int()).float()], 1)),
                              (_image(), _image())),
    "compare_where": lambda: (Fn(lambda a, b: torch.where(a > b, a, b * 2) + (a <= 0).float() - (a == b).float()
                                 + ((a > 0) & (b < 0)).float() + (~(a < b)).float()), (_image(), _image())),
    "broadcast_channels_last": lambda: (_conv_then(Fn(lambda x: x * torch.linspace(0.5, 2, 4).reshape(4, 1, 1)
                                                      + x.mean(dim=(2, 3), keepdim=True))), (_image(3),)),
    # reductions and scans
    "reductions": lambda: (Fn(lambda x: torch.cat([x.sum(1), x.mean(1), x.amax(1), x.amin(1), x.prod(1)], 1)),
                           (torch.randn(2, 3, 5),)),
    "reductions_channels_last": lambda: (_conv_then(Fn(lambda x: x.sum(dim=(1, 3)) + x.amax(dim=(1, 3)))), (_image(3),)),
    "var": lambda: (Fn(lambda x: torch.cat([x.var(1), x.var(2, correction=0)], 1)), (torch.randn(2, 5, 5),)),
    "argmax": lambda: (Fn(lambda x: x.argmax(1).float() + x.argmin(2, keepdim=True).float().sum(2)),
                       (torch.randn(2, 5, 5),)),
    "softmax_channels": lambda: (_conv_then(nn.Softmax(dim=1)), (_image(3),)),
    "log_softmax": lambda: (nn.LogSoftmax(-1), (torch.randn(3, 7),)),
    "cumsum": lambda: (Fn(lambda x: x.cumsum(1)), (torch.randn(2, 6),)),
    "topk": lambda: (Fn(lambda x: torch.topk(x, 3).values + torch.topk(x, 3, largest=False).values),
                     (torch.randn(2, 9),)),
    "sort": lambda: (Fn(lambda x: (*torch.sort(x, 1), *torch.sort(x, -1, descending=True), x.argsort(0),
                                   torch.kthvalue(x, 2, dim=2).values)), (torch.randn(3, 7, 5),)),
    "sort_ties_ints": lambda: (Fn(lambda x: (*torch.sort((x * 2).round(), 1), *torch.sort((x * 2).int(), -1,
                                                                                          descending=True))),
                               (torch.randn(3, 7, 5),)),
    "cumulative": lambda: (Fn(lambda x: (torch.cumprod(x, 1), torch.logcumsumexp(x, 2), torch.cumprod(x, 0))),
                           (torch.randn(2, 7, 5),)),
    "cumulative_extreme_ties": lambda: (Fn(lambda x: (*torch.cummax((x * 2).round(), 1), *torch.cummin(x, 2),
                                                      *torch.cummax((x * 2).int(), 2))), (torch.randn(2, 9, 5),)),
    # data movement
    "slices": lambda: (Fn(lambda x: x[:, 1:3] * x[:, 2:4] + x[:, ::2, 1::3].sum()), (_image(),)),
    "chunk": lambda: (_conv_then(Fn(lambda x: torch.cat(x.chunk(2, dim=1)[::-1], 1))), (_image(3),)),
    "flip_pad": lambda: (Fn(lambda x: F.pad(x.flip(-1), (1, 2, 0, 1), value=0.5) + 1), (_image(),)),
    "pad_reflect": lambda: (Fn(lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect")), (_image(),)),
    "expand_tile": lambda: (Fn(lambda x: x.expand(3, 4, 5) + x.repeat(3, 1, 1)), (torch.randn(1, 4, 5),)),
    "permute_reshape": lambda: (Fn(lambda x: x.permute(0, 2, 1, 3).reshape(2, 5, -1).transpose(1, 2)),
                                (torch.randn(2, 3, 5, 4),)),
    "slice_assign": lambda: (Fn(lambda x: (lambda y: (y.__setitem__((slice(None), slice(1, 3)), x[:, 1:3].tanh()), y)[1])(
        x * 1)), (torch.randn(2, 5),)),
    "index_select": lambda: (Fn(lambda x: x.index_select(1, torch.tensor([2, 0, 1, 2]))), (torch.randn(2, 3, 4),)),
    "gather": lambda: (Fn(lambda x: (torch.gather(x, 1, torch.tensor([[[2, 0], [1, 1]], [[0, 2], [2, 2]]])),
                                     torch.gather(x, 2, x.argmax(2, keepdim=True).expand(2, 3, 2)),
                                     torch.gather(x > 0, 0, torch.tensor([[[1, 0]]])))), (torch.randn(2, 3, 4),)),
    "gather_channels_last": lambda: (_conv_then(Fn(lambda x: torch.gather(x, 1, x.argsort(1)[:, :2]))), (_image(3),)),
    "embedding": lambda: (Fn(lambda m, i: m(i).sum(1), nn.Embedding(10, 4)), (torch.tensor([[1, 3, 9], [0, 0, 2]]),)),
    # scatters (scatter_flat): a cache written at run-time positions, sums at repeated ids
    "index_copy_at_position": lambda: (Fn(lambda cache, new, start: cache.index_copy(2, torch.arange(3) + start, new)),
                                       (torch.randn(1, 2, 8, 4), torch.randn(1, 2, 3, 4), torch.tensor(4))),
    "scatter_add_repeated": lambda: (Fn(lambda x, src: x.scatter_add(1, torch.tensor([[0, 2, 0, 4], [1, 1, 1, 3]]), src)),
                                     (torch.randn(2, 5), torch.randn(2, 4))),
    "index_put_computed": lambda: (Fn(lambda x, v: x.index_put((x[:, 0].argmax(0, keepdim=True),), v)),
                                   (torch.randn(4, 3), torch.randn(3))),
    # recurrent
    "rnn_bidirectional_h_n": lambda: (Fn(lambda m, x: m(x), nn.RNN(6, 5, num_layers=2, bidirectional=True,
                                                                  batch_first=True)), (torch.randn(2, 4, 6),)),
    "rnn_relu_given_state": lambda: (Fn(lambda m, x, h: m(x, h)[0], nn.RNN(6, 5, nonlinearity="relu")),
                                     (torch.randn(4, 2, 6), torch.randn(1, 2, 5))),
    "gru_bidirectional_h_n": lambda: (Fn(lambda m, x: m(x), nn.GRU(6, 5, num_layers=2, bidirectional=True,
                                                                  batch_first=True)), (torch.randn(2, 4, 6),)),
    "gru_given_state_no_bias": lambda: (Fn(lambda m, x, h: m(x, h)[0], nn.GRU(6, 5, bias=False)),
                                        (torch.randn(4, 2, 6), torch.randn(1, 2, 5))),
    "lstm_bidirectional_h_n": lambda: (Fn(lambda m, x: (lambda o: (o[0], o[1][0]))(m(x)),
                                          nn.LSTM(6, 5, num_layers=2, bidirectional=True)), (torch.randn(4, 2, 6),)),
    "lstm_given_states": lambda: (Fn(lambda m, x, h, c: m(x, (h, c))[0], nn.LSTM(6, 5, batch_first=True)),
                                  (torch.randn(2, 4, 6), torch.randn(1, 2, 5), torch.randn(1, 2, 5))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op(name, tmp_path):
    torch.manual_seed(0)
    model, inputs = CASES[name]()
    check_direct(model.eval(), inputs, tmp_path, name)


@pytest.mark.parametrize("delegates", [True, False])
def test_fmax_fmin_nan_and_infinities(delegates, tmp_path):
    """fmax / fmin ignore a NaN operand (NaN only where both are), broadcast, keep +-inf: equal to
    PyTorch's, NaN for NaN."""
    values = [np.nan, -np.inf, np.inf, 0.0, -1.5, 2.0]
    a = torch.tensor(values).reshape(6, 1).expand(6, 6).contiguous()
    b = torch.tensor(values).reshape(1, 6)
    model = Fn(lambda x, y: (torch.fmax(x, y), torch.fmin(x, y), torch.fmax(y, x), torch.fmin(x, torch.tensor(np.nan)),
                             torch.fmax(x, torch.tensor(1.0)))).eval()
    graph = annotated_ir(model, (a, b))
    written = write_tflite(graph, str(tmp_path / "fmax_nan.tflite"))
    outs = run_file(graph, written.path, [a.numpy(), b.numpy()], delegates=delegates)
    for k, (got, want) in enumerate(zip(outs, reference(model, (a, b)))):
        assert got.shape == want.shape and np.array_equal(got, want, equal_nan=True), (k, got, want)
    assert "CUSTOM" not in written.op_counts and written.op_counts.get("SELECT_V2", 0) >= 2
