"""In-place ops, writes into slices and views, ``copy_`` into slices: Keras and TFLite give
PyTorch's results (the nobuco README's "In-place operations" cases among them, including the
in-place op on a slice view that nobuco gets wrong). References run on clones of the inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.utils._pytree as pytree
from torch import nn

import torch2keras
from support import max_abs_error

ATOL = 1e-4


class NobucoA(nn.Module):  # nobuco: works
    def forward(self, x):
        x[:, 1:2, 16:25, 8::2] *= 2
        torch.relu_(x)
        return x


class NobucoB(nn.Module):  # nobuco: wrong (the in-place op on a slice view does not reach x)
    def forward(self, x):
        torch.relu_(x[:, 1:2, 16:25, 8::2])
        return x


class NobucoC(nn.Module):
    def forward(self, x):
        x[:, 1:2, 16:25, 8::2] = torch.relu_(x[:, 1:2, 16:25, 8::2])
        return x


class BatchImages(nn.Module):
    """torchvision's GeneralizedRCNNTransform.batch_images: copy_ into slices of a new tensor."""

    def forward(self, images):
        max_size = [max(s) for s in zip(*[list(img.shape) for img in images])]
        max_size[1] = int(math.ceil(max_size[1] / 32.0) * 32)
        max_size[2] = int(math.ceil(max_size[2] / 32.0) * 32)
        batched = images[0].new_full([len(images)] + max_size, 0)
        for i in range(batched.shape[0]):
            img = images[i]
            batched[i, : img.shape[0], : img.shape[1], : img.shape[2]].copy_(img)
        return batched


class OnTransposeView(nn.Module):
    def forward(self, x):
        x.transpose(1, 2)[:, 3].mul_(-3)
        return x


class OnReshapedView(nn.Module):
    def forward(self, x):
        x.view(1, 3, -1)[:, :, 10:50].neg_()
        return x


class OnSelectChain(nn.Module):  # chained in-place ops on a select view
    def forward(self, x):
        x.select(1, 2).add_(1.5).mul_(2)
        return x


class OnNarrow(nn.Module):
    def forward(self, x):
        x.narrow(3, 4, 5).clamp_(min=0)
        return x


class OnDiagonal(nn.Module):
    def forward(self, x):
        x[0, 0].diagonal().fill_(7)
        x[0, 1].diagonal(offset=2).sub_(3)
        return x


class OnPermutedUnflatten(nn.Module):
    def forward(self, x):
        v = x.unflatten(1, (2, 3)).permute(0, 2, 1, 3)
        v[:, 1].clamp_(max=0.1)
        v.abs_()
        return x


class AddChain(nn.Module):  # x.add_().mul_()... on an intermediate, which is read again later
    def forward(self, x):
        y = x * 1
        y.add_(1).mul_(3).sub_(x).div_(2)
        return y + x


class MaskedFill(nn.Module):
    def forward(self, x):
        x.masked_fill_(x < 0, -0.5)
        return x


class MaskAssign(nn.Module):  # x[mask] = 0 (index_put with a boolean mask)
    def forward(self, x):
        x[x > 0.5] = 0
        return x


class IndexAssign(nn.Module):  # x[:, idx] = y
    def forward(self, x, y):
        x[:, torch.tensor([2, 0])] = y
        return x


class IndexPutAccumulate(nn.Module):
    def forward(self, x):
        x.index_put_((torch.tensor([0]), torch.tensor([1]), torch.tensor([3, 5, 3])), torch.tensor(9.0),
                     accumulate=True)
        return x


class ViewSeesLaterMutation(nn.Module):  # views taken before an in-place op see its effect
    def forward(self, x):
        y = x + 0
        v = y[:, 0]
        flat = y.view(-1)
        y.mul_(2)
        flat[3:7].zero_()
        return v, y


class SliceFromSlice(nn.Module):  # writes whose source overlaps the destination's tensor
    def forward(self, x):
        x[:, ::2] = x[:, 1::2]
        x[0] = x[1].clone()
        return x


def _randn(*shape):
    return lambda: (torch.randn(*shape),)


CASES = {
    "nobuco_a": (NobucoA, _randn(1, 3, 32, 32)),
    "nobuco_b_relu_on_slice_view": (NobucoB, _randn(1, 3, 32, 32)),
    "nobuco_c": (NobucoC, _randn(1, 3, 32, 32)),
    "batch_images_copy_into_slices": (BatchImages, lambda: ([torch.randn(3, 40, 50), torch.randn(3, 60, 33)],)),
    "transpose_view": (OnTransposeView, _randn(1, 3, 8, 6)),
    "reshaped_view": (OnReshapedView, _randn(1, 3, 8, 8)),
    "select_chain": (OnSelectChain, _randn(1, 3, 8, 8)),
    "narrow": (OnNarrow, _randn(1, 3, 8, 12)),
    "diagonal": (OnDiagonal, _randn(1, 3, 6, 6)),
    "permuted_unflatten_view": (OnPermutedUnflatten, _randn(1, 6, 5)),
    "add_chain": (AddChain, _randn(1, 3, 8, 8)),
    "masked_fill": (MaskedFill, _randn(1, 3, 8, 8)),
    "mask_assign": (MaskAssign, _randn(1, 3, 8, 8)),
    "index_assign": (IndexAssign, lambda: (torch.randn(2, 3, 4), torch.randn(2, 2, 4))),
    "index_put_accumulate": (IndexPutAccumulate, _randn(1, 3, 8, 8)),
    "view_sees_later_mutation": (ViewSeesLaterMutation, _randn(2, 3, 4)),
    "slice_from_slice": (SliceFromSlice, _randn(2, 6, 3)),
}


def _clone(inputs):
    return pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, inputs)


def _reference(model, inputs) -> list[np.ndarray]:
    with torch.no_grad():
        return [o.numpy() for o in pytree.tree_flatten(model(*_clone(inputs)))[0]]


def _flat(inputs) -> list[np.ndarray]:
    return [t.numpy() for t in pytree.tree_flatten(inputs)[0]]



@pytest.mark.parametrize("case", list(CASES))
def test_inplace_matches_pytorch_in_keras_and_tflite(tmp_path, case):
    torch.manual_seed(0)
    cls, make_inputs = CASES[case]
    model, inputs = cls().eval(), make_inputs()
    untouched = _clone(inputs)
    ref = _reference(model, inputs)
    first = _flat(inputs)[0]
    if ref[-1].shape == first.shape:  # the in-place ops changed something visible
        assert max_abs_error(ref[-1], first) > 0.1
    result = torch2keras.compile(model, inputs)
    for a, b in zip(_flat(inputs), _flat(untouched)):  # compile ran forward() on clones
        np.testing.assert_array_equal(a, b)
    assert result.report.capture_method == "export"
    assert result.report.ok, result.report.summary()
    keras_out = result.run_keras(_flat(inputs))
    path = result.export_tflite(str(tmp_path / f"{case}.tflite"))
    tflite_out = result.run_tflite(path, _flat(inputs))
    assert len(keras_out) == len(tflite_out) == len(ref)
    for k, t, r in zip(keras_out, tflite_out, ref):
        assert k.shape == r.shape
        assert max_abs_error(k, r) < ATOL, f"Keras differs from PyTorch by {max_abs_error(k, r)}"
        assert max_abs_error(t, r) < ATOL, f"TFLite differs from PyTorch by {max_abs_error(t, r)}"


class _Traced(nn.Module):
    """Wraps a model in data-dependent control flow that torch.export refuses."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *xs):
        if xs[0].sum() > -1e9:
            return self.inner(*xs)
        return xs[0]


@pytest.mark.parametrize("case", ["nobuco_b_relu_on_slice_view", "transpose_view", "mask_assign", "index_assign",
                                  "view_sees_later_mutation"])
def test_inplace_through_the_tracing_fallback(case):
    """The fallback functionalizes the trace: its write-backs into the inputs are dropped."""
    torch.manual_seed(0)
    cls, make_inputs = CASES[case]
    model, inputs = _Traced(cls()).eval(), make_inputs()
    ref = _reference(model, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = torch2keras.compile(model, inputs)
    assert result.report.capture_method == "trace"
    assert not result.ir.nodes_by_op("state")
    for k, r in zip(result.run_keras(_flat(inputs)), ref):
        assert max_abs_error(k, r) < ATOL
