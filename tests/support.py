"""Comparisons with PyTorch that the tests share: PyTorch's reference outputs, the max abs error,
the check that a converted model (Keras, and a .tflite file when given) matches PyTorch, and the
check that its saved ``.keras`` file, reloaded in a fresh process, still does."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree

__all__ = ["arrays", "assert_matches_torch", "assert_reloads_like_torch", "clone", "max_abs_error", "torch_outputs"]


def clone(x: Any) -> Any:
    """``x`` with every tensor cloned (a model's in-place ops must not change the test's inputs)."""
    return pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, x)


def arrays(x: Any) -> list[np.ndarray]:
    """The tensors of a (nested) structure, flattened in pytree order, as numpy arrays."""
    return [t.detach().cpu().numpy() for t in pytree.tree_flatten(x)[0] if isinstance(t, torch.Tensor)]


def torch_outputs(model: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """PyTorch's outputs of ``model(*inputs)`` (no grad, on clones of the inputs), flattened."""
    with torch.no_grad():
        return arrays(model(*clone(tuple(inputs))))


def max_abs_error(a: Any, b: Any) -> float:
    """max |a - b| in float64 (0 for empty arrays); shapes must agree."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"shape {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def assert_matches_torch(result, model: torch.nn.Module, inputs: Sequence[torch.Tensor], atol: float,
                         tflite: Optional[str] = None) -> float:
    """The converted model's outputs (Keras, and the ``tflite`` file if given) within ``atol`` of
    PyTorch's, on ``inputs``; PyTorch's outputs must not be degenerate (all ~0). Returns the worst
    error seen."""
    want = torch_outputs(model, inputs)
    assert any(np.abs(w).max() > 1e-3 for w in want if w.size and w.dtype.kind == "f"), "degenerate reference"
    feed = [t.detach().cpu().numpy() for t in inputs]
    runs = {"Keras": result.run_keras(feed)}
    if tflite is not None:
        runs["TFLite"] = result.run_tflite(tflite, feed)
    worst = 0.0
    for backend, got in runs.items():
        assert len(got) == len(want), f"{backend}: {len(got)} outputs, PyTorch {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            err = max_abs_error(g, w)
            assert err <= atol, f"{backend} output {i} differs from PyTorch by {err:.3g} (tolerance {atol:g})"
            worst = max(worst, err)
    return worst


def assert_reloads_like_torch(cases: dict[str, tuple[Any, Sequence[torch.Tensor], Sequence[np.ndarray]]], tmp_path,
                              atol: float) -> None:
    """``{name: (compile result, inputs, PyTorch's outputs)}``: each result saved as ``.keras``, all
    loaded (safe mode, without torch) and run in one fresh process; every output within ``atol``."""
    from fresh_process import run_saved

    jobs = {name: (result.save(str(tmp_path / f"{name}.keras")),
                   [result.keras_inputs([t.numpy() for t in inputs])])
            for name, (result, inputs, _) in cases.items()}
    outs = run_saved(jobs, tmp_path)
    for name, (result, _, ref) in cases.items():
        got = result.torch_outputs(outs[name][0])
        for i, (o, r) in enumerate(zip(got, ref, strict=True)):
            assert max_abs_error(o, r) < atol, f"{name}: reloaded output {i} differs from PyTorch"
