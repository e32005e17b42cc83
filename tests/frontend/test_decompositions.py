"""The Core ATen decomposition capture runs: exactly torch's table minus the ops kept whole, its
enumeration of composite ops memoised, and recomputed when an operator is registered."""

from __future__ import annotations

import collections.abc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402

from torch2keras.frontend_torch import KEEP_WHOLE  # noqa: E402
from torch2keras.frontend_torch import decompositions  # noqa: E402


def _torch_table() -> dict:
    table = torch.export.default_decompositions()
    for op in KEEP_WHOLE:
        table.pop(op, None)
    return dict(table.items())


class _Block(torch.nn.Module):
    def forward(self, x):
        return (torch.nn.functional.relu6(x @ x.T).softmax(-1) @ torch.nn.functional.layer_norm(x, (3,))).sum(0)


def test_table_is_torchs_minus_the_ops_kept_whole():
    ours = decompositions.decomposition_table()
    assert set(ours) == set(_torch_table())
    assert not set(ours) & set(KEEP_WHOLE)
    ours.clear()  # a copy: the memo is untouched
    assert decompositions.decomposition_table()


def test_decomposed_graph_is_torchs():
    x = torch.randn(4, 3)
    exported = torch.export.export(_Block(), (x,), strict=False)
    ours = decompositions.decompose(exported)
    theirs = exported.run_decompositions(_torch_table())
    assert str(ours.graph) == str(theirs.graph)
    assert "aten.layer_norm" in str(ours.graph) and "aten.relu6" not in str(ours.graph)
    assert torch.equal(ours.module()(x), _Block()(x))
    assert torch._ops.Callable is collections.abc.Callable  # restored after decomposing


def test_an_operator_registered_later_is_seen():
    decompositions.decomposition_table()  # the memo is filled
    library = torch.library.Library("t2k_decomp_probe", "DEF")  # noqa: TOR901
    library.define("twice(Tensor x) -> Tensor")
    library.impl("twice", lambda x: x * 2, "CompositeImplicitAutograd")
    probe = torch.ops.t2k_decomp_probe.twice.default
    assert probe in decompositions.decomposition_table()

    class Twice(torch.nn.Module):
        def forward(self, x):
            return torch.ops.t2k_decomp_probe.twice(x) + 1

    x = torch.randn(2, 3)
    graph = str(decompositions.decompose(torch.export.export(Twice(), (x,), strict=False)).graph)
    assert "t2k_decomp_probe" not in graph and "aten.mul" in graph
