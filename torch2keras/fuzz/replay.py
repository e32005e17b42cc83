"""What a fuzzing reproducer runs: its random inputs and the check of the whole compiler on them
(compile, then Keras, TFLite and the reloaded ``.keras`` file against PyTorch on new inputs).

Reproducer scripts (``report.reproducer_source``) hold only their model and call these, so a fix
of the check reaches every saved reproducer."""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = ["batch_resized", "check_reproducer", "random_inputs", "reloaded_outputs"]

InputSpec = tuple  # (name, shape, dtype, high): an int64 input draws from [0, high)


def random_inputs(inputs: Sequence[InputSpec], seed: int, batch: Optional[int] = None) -> tuple[torch.Tensor, ...]:
    """Random inputs of the given shapes (PyTorch layout), seeded by ``seed``; ``batch`` replaces
    the size of axis 0 of every input."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _name, shape, dtype, high in inputs:
        shape = (batch, *shape[1:]) if batch is not None and len(shape) > 0 else tuple(shape)
        out.append(torch.randint(0, high, shape, generator=g) if dtype == "int64" else torch.randn(shape, generator=g))
    return tuple(out)


def batch_resized(resized: Sequence[torch.Tensor], same: Sequence[torch.Tensor],
                  dynamic: Sequence[bool]) -> tuple[torch.Tensor, ...]:
    """The inputs of a dynamic batch from ``resized``, the others from ``same`` (as the checker feeds them)."""
    return tuple(r if d else s for r, s, d in zip(resized, same, dynamic))


def check_reproducer(model: torch.nn.Module, example: tuple, check: tuple, tflite_backend: str = "auto",
                     **compile_kwargs) -> None:
    """Compile ``model`` on ``example`` (``compile_kwargs``: layouts, dynamic shapes), then assert that
    Keras, TFLite (written by ``export_tflite(backend=tflite_backend)``) and the reloaded ``.keras``
    file give PyTorch's outputs on ``check`` (shape, dtype, max abs error <= 1e-4 + 1e-4 * max|reference|)."""
    import torch2keras

    result = torch2keras.compile(model, example, on_mismatch="ignore", **compile_kwargs)
    assert result.report.ok, result.report.summary()
    assert result.report.first_mismatch is None, result.report.summary()
    with torch.no_grad():
        want = model(*check)
    want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
    arrays = [t.numpy() for t in check]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"keras": lambda: result.run_keras(arrays),
                "tflite": lambda: result.run_tflite(result.export_tflite(os.path.join(tmp, "m.tflite"),
                                                                          backend=tflite_backend), arrays),
                "reloaded": lambda: reloaded_outputs(result, result.save(os.path.join(tmp, "m.keras")), arrays)}
        for target, run in runs.items():
            for k, (got, ref) in enumerate(zip(run(), want)):
                assert got.shape == ref.shape and got.dtype == ref.dtype, (target, k, got.shape, got.dtype, ref.dtype)
                err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
                tol = 1e-4 + 1e-4 * (float(np.max(np.abs(ref))) if ref.size else 0.0)
                assert err <= tol, f"{target} output {k}: max |err| {err:.3g} > {tol:.3g}"


def reloaded_outputs(result, path: str, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The saved ``.keras`` file at ``path`` loaded anew and run on ``arrays`` (PyTorch layout in and out)."""
    import torch2keras

    outs = torch2keras.load_model(path)(result.keras_inputs(arrays), training=False)
    return result.torch_outputs([np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])])
