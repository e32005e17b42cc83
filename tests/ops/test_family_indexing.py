"""Indexing ops converted and compared with PyTorch in Keras and TFLite."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torch2keras
from support import assert_matches_torch
from torch2keras.ir import LoweringError


class GatherSmallerIndex(nn.Module):
    """torch.gather with an index smaller than the input on the other axes (it reads the input's
    leading part there), after a scatter and on its own."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("perm", torch.argsort(torch.rand(3, 3, 2, 7, generator=g), dim=3))
        self.register_buffer("index", torch.randint(0, 7, (2, 1, 2, 4), generator=g))
        self.register_buffer("rows", torch.randint(0, 3, (1, 2, 2, 5), generator=g))

    def forward(self, x):
        y = torch.scatter(x, 3, self.perm, x * 2.0)
        return torch.gather(y, 3, self.index), torch.gather(x, 0, self.rows)


def test_gather_with_an_index_smaller_than_the_input(tmp_path):
    model = GatherSmallerIndex().eval()
    x = torch.randn(3, 3, 2, 7, generator=torch.Generator().manual_seed(1))
    result = torch2keras.compile(model, x)
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    assert assert_matches_torch(result, model, [x], atol=0.0, tflite=path) == 0.0


class Diagonals(nn.Module):
    def forward(self, x):
        return torch.diagonal(x, 0, 2, 3), torch.diagonal(x, 1, 3, 1), torch.diagonal(x, -2, -1, -2)


def test_diagonal_with_a_dynamic_batch(tmp_path):
    """The diagonal's dims are static, the batch symbolic: the dims are merged and indexed."""
    model = Diagonals().eval()
    x = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(2))
    result = torch2keras.compile(model, x, dynamic_shapes={"x": {0: "batch"}})
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    other = torch.randn(5, 4, 6, 5, generator=torch.Generator().manual_seed(3))
    assert assert_matches_torch(result, model, [other], atol=0.0, tflite=path) == 0.0


def test_diagonal_of_a_dynamic_dim_is_a_clear_error():
    class Diagonal(nn.Module):
        def forward(self, x):
            return torch.diagonal(x, 0, 0, 1)

    with pytest.raises(LoweringError, match=r"diagonal of dims 0 and 1 .*static in dynamic_shapes.*test_family_indexing"):
        torch2keras.compile(Diagonal().eval(), torch.randn(3, 4), dynamic_shapes={"x": {0: "batch"}})


class ScatterIntoADynamicBatch(nn.Module):
    """Scatters into an input of a run-time batch with a constant index of 3 rows (which reads
    only src's first 3 rows and writes x's first 3), along another axis and along the batch."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("perm", torch.argsort(torch.rand(3, 4, 5, generator=g), dim=1))
        self.register_buffer("rows", torch.randint(0, 3, (2, 4, 5), generator=g))

    def forward(self, x):
        return (torch.scatter(x, 1, self.perm, x * 2.0), x.scatter_add(0, self.rows, x[:2] + 1.0),
                x.scatter_reduce(1, self.perm, x, "amax", include_self=False))


def test_scatter_into_a_dynamic_batch(tmp_path):
    model = ScatterIntoADynamicBatch().eval()
    g = torch.Generator().manual_seed(1)
    result = torch2keras.compile(model, torch.randn(3, 4, 5, generator=g), dynamic_shapes=[{0: "batch"}])
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    assert assert_matches_torch(result, model, [torch.randn(5, 4, 5, generator=g)], atol=1e-6, tflite=path) <= 1e-6


class ScatterChain(nn.Module):
    """Scatters into [batch, 1, 1] along the batch: TensorFlow's converter folded the src region's
    slice (run-time bounds held as weights) into an empty constant, which LiteRT then failed to
    broadcast."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("order", torch.argsort(torch.rand(2, 1, 1, generator=torch.Generator().manual_seed(0)),
                                                    dim=0))

    def forward(self, x):
        y = torch.scatter(x, 0, self.order, x * 2.0)
        return torch.scatter(y, 0, self.order, y * 2.0)


def test_scatter_chain_into_a_dynamic_batch_of_single_elements(tmp_path):
    model = ScatterChain().eval()
    g = torch.Generator().manual_seed(1)
    result = torch2keras.compile(model, torch.randn(2, 1, 1, generator=g), dynamic_shapes=[{0: "batch"}])
    path = result.export_tflite(str(tmp_path / "m.tflite"), backend="converter")
    assert assert_matches_torch(result, model, [torch.randn(4, 1, 1, generator=g)], atol=1e-6, tflite=path) <= 1e-6


class TakeAlongDim(nn.Module):
    """take_along_dim by sort positions, by broadcast negative indices, and flattened (dim=None)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("picks", torch.tensor([[[-1, 0, 2, -3, 1]]]))
        self.register_buffer("flat", torch.tensor([3, 34, 0]))

    def forward(self, x):
        return (torch.take_along_dim(x, torch.argsort(x, dim=0), dim=0), torch.take_along_dim(x, self.picks, dim=2),
                torch.take_along_dim(x[:1], self.flat))


def test_take_along_dim_of_a_dynamic_batch_compiled_at_batch_1(tmp_path):
    """torch's decomposition wraps the indices by dim's size as exported: 1 here, for every batch
    (the converted model gathered row 0 only at any batch size, and its report said ok)."""
    model = TakeAlongDim().eval()
    g = torch.Generator().manual_seed(2)
    result = torch2keras.compile(model, torch.randn(1, 7, 5, generator=g), dynamic_shapes=[{0: "batch"}])
    path = result.export_tflite(str(tmp_path / "m.tflite"))
    assert assert_matches_torch(result, model, [torch.randn(4, 7, 5, generator=g)], atol=0.0, tflite=path) == 0.0
