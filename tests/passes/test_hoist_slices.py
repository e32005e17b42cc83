"""Slices hoisted above row-wise ops (passes/hoist_slices.py) and layer norms' affine folded into
the linear layer reading them (passes/fold_norm_affine.py): a small ViT classifies from the
class token, so its last block's norms and MLP run on one row; checked against PyTorch (direct
TFLite, Keras) and by counts on the IR."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch import nn

import torch2keras
from compat import import_torchvision, seeded_model
from torch2keras.frontend_torch import capture, lower
from torch2keras.passes import DeadCodeElimination, FoldConstants, FoldNormAffine, HoistSlices, PassManager

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backend_tflite"))
from direct_check import annotated_ir, check_direct, xnnpack_leftovers  # noqa: E402

LAYERS = 2


def small_vit():
    tv = import_torchvision()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    factory = lambda: tv.models.VisionTransformer(image_size=32, patch_size=8, num_layers=LAYERS, num_heads=4,  # noqa
                                                  hidden_dim=64, mlp_dim=128, num_classes=10)
    return seeded_model(factory, x), x[:1]


class TokenHead(nn.Module):
    """norm -> MLP -> residual -> norm, then one token (``x[:, 1]``) or a range of them."""

    def __init__(self, take):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(16), nn.LayerNorm(16)
        self.up, self.down = nn.Linear(16, 32), nn.Linear(32, 16)
        self.register_buffer("pos", torch.linspace(-1, 1, 7 * 16).reshape(7, 16))
        self.take = take

    def forward(self, x):
        x = x + self.pos
        x = x + self.down(torch.relu(self.up(self.ln1(x))))
        return self.take(self.ln2(x))


def _graph(model, x, *passes):
    graph = lower(capture(model.eval(), (x,), {}), "m")
    PassManager([DeadCodeElimination(), FoldConstants(), *passes]).run(graph)
    return graph


def _rows(graph, op):
    """The number of rows (all axes but the last) each ``op`` node computes, in graph order."""
    out = []
    for n in graph.topo_order():
        if n.op == op:
            shape = n.output.type.shape
            out.append(int(torch.tensor(shape[:-1]).prod()) if len(shape) > 1 else 1)
    return out


@pytest.mark.parametrize("take, rows", [(lambda y: y[:, 1], 2), (lambda y: y[:, 2:5], 6), (lambda y: y[:, ::3], 6)])
def test_slices_move_above_the_row_wise_ops(take, rows, tmp_path):
    torch.manual_seed(0)
    model, x = TokenHead(take).eval(), torch.randn(2, 7, 16)
    graph = _graph(model, x, HoistSlices())
    # every norm and linear computes only the kept rows; the slice reads the input (the pos constant is cut too)
    assert set(_rows(graph, "layer_norm")) == {rows} and set(_rows(graph, "linear")) == {rows}
    assert [n.inputs[0].producer.op for n in graph.topo_order() if n.op == "slice"] == ["input"]
    check_direct(model, (x,), tmp_path, "token_head")


def test_slice_of_the_normalized_axis_stays():
    model = TokenHead(lambda y: y[..., :4])
    graph = _graph(model, torch.randn(2, 7, 16), HoistSlices())
    assert set(_rows(graph, "layer_norm")) == {14}
    outcomes = graph.meta["rewrites"]["hoist_slices"]
    assert any("normalizes over the sliced axis" in o for o in outcomes.values()), outcomes


def test_a_result_read_whole_too_is_not_sliced():
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            y = self.fc(x)
            return y[:, 0], y.sum()

    graph = _graph(Both(), torch.randn(2, 5, 8), HoistSlices())
    assert _rows(graph, "linear") == [10]
    assert any("other than this slice" in o for o in graph.meta["rewrites"]["hoist_slices"].values())


def test_norm_affine_folds_into_the_linear_after_it(tmp_path):
    torch.manual_seed(0)
    model, x = TokenHead(lambda y: y[:, 1]).eval(), torch.randn(2, 7, 16)
    graph = _graph(model, x, HoistSlices(), FoldNormAffine())
    norms = [n for n in graph.topo_order() if n.op == "layer_norm"]
    # ln1 feeds the up projection: folded; ln2 is the output: it keeps its affine
    assert [len(n.inputs) for n in norms] == [1, 3]
    _, written = check_direct(model, (x,), tmp_path, "token_head_folded")
    assert xnnpack_leftovers(written.path) == []


def test_vit_last_block_runs_on_the_class_token(tmp_path):
    model, x = small_vit()
    graph = annotated_ir(model, (x,))
    tokens = (32 // 8) ** 2 + 1
    linears = _rows(graph, "linear")
    # per block: q/k/v projection, output projection, two MLP linears; then the head. The last block
    # projects every token to keys and values, the rest runs on the class token alone
    assert linears == [tokens] * 4 * (LAYERS - 1) + [tokens, 1, 1, 1, 1]
    attention = [n.output.type.shape for n in graph.topo_order() if n.op == "sdpa"]
    assert [s[-2] for s in attention] == [tokens] * (LAYERS - 1) + [1]
    norms = [n for n in graph.topo_order() if n.op == "layer_norm"]
    # every block's two norms feed a linear layer (their affine folded); the final norm feeds the head
    assert len(norms) == 2 * LAYERS + 1 and all(len(n.inputs) == 1 for n in norms)
    _, written = check_direct(model, (x,), tmp_path, "vit")
    assert xnnpack_leftovers(written.path) == []
    # the affine MUL and ADD of each norm are gone: 7 ops per norm
    assert written.op_counts["RSQRT"] == len(norms) and written.op_counts["SQUARED_DIFFERENCE"] == len(norms)
    result = torch2keras.compile(model, x)
    assert result.report.ok and result.report.max_abs_error < 1e-4


@pytest.mark.parametrize("causal", [False, True])
def test_attention_is_sliced_along_its_queries_unless_causal(causal, tmp_path):
    class Attend(nn.Module):
        def forward(self, q, k, v):
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
            return out.permute(0, 2, 1, 3).reshape(2, 6, 32)[:, 3]

    inputs = tuple(torch.randn(2, 4, 6, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    graph = lower(capture(Attend().eval(), inputs, {}), "m")
    PassManager([DeadCodeElimination(), FoldConstants(), HoistSlices()]).run(graph)
    queries = [n.output.type.shape[-2] for n in graph.topo_order() if n.op == "sdpa"]
    assert queries == [6 if causal else 1]
    check_direct(Attend().eval(), inputs, tmp_path, f"attend_{causal}")
