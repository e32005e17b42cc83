"""Reproducer of a torch2keras fuzzing failure (seed 336, 1 op(s)).

typed_error at compile: EmissionError
emitting linear failed: ValueError: Input 0 with name 'None' of layer 'linear' is incompatible with the layer: expected min_ndim=2, found ndim=1. Full shape received: (3,)
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.m2 = nn.Linear(3, 8, bias=True)

    def forward(self, x0):
        v2 = self.m2(x0)
        return v2


INPUTS = [('x0', (3,), 'float32', 0)]


def make_model():
    torch.manual_seed(336)
    return FuzzModel().eval()


def make_inputs(seed, batch=None):
    """Random inputs (PyTorch layout); ``batch`` replaces the size of axis 0 of every input."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for name, shape, dtype, high in INPUTS:
        shape = (batch, *shape[1:]) if batch is not None and len(shape) > 0 else shape
        if dtype == "int64":
            out.append(torch.randint(0, high, shape, generator=g))
        else:
            out.append(torch.randn(shape, generator=g))
    return tuple(out)


def check_all():
    """Compile, then compare Keras, TFLite and the reloaded .keras file with PyTorch on new inputs."""
    import os
    import tempfile

    import numpy as np

    import torch2keras

    model = make_model()
    result = torch2keras.compile(model, make_inputs(336), input_layouts=None,
                                 output_layouts=None, dynamic_shapes=None,
                                 on_mismatch="ignore")
    assert result.report.ok, result.report.summary()
    assert result.report.first_mismatch is None, result.report.summary()
    inputs = make_inputs(1000339, batch=None)
    with torch.no_grad():
        want = model(*inputs)
    want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
    arrays = [t.numpy() for t in inputs]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"keras": lambda: result.run_keras(arrays),
                "tflite": lambda: result.run_tflite(result.export_tflite(os.path.join(tmp, "m.tflite")), arrays),
                "reloaded": lambda: reloaded(result, os.path.join(tmp, "m.keras"), arrays)}
        for target, run in runs.items():
            for k, (got, ref) in enumerate(zip(run(), want)):
                assert got.shape == ref.shape and got.dtype == ref.dtype, (target, k, got.shape, got.dtype, ref.dtype)
                err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
                tol = 1e-4 + 1e-4 * (float(np.max(np.abs(ref))) if ref.size else 0.0)
                assert err <= tol, f"{target} output {k}: max |err| {err:.3g} > {tol:.3g}"


def reloaded(result, path, arrays):
    import numpy as np

    import torch2keras

    result.save(path)
    outs = torch2keras.load_model(path)(result.keras_inputs(arrays), training=False)
    return result.torch_outputs([np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])])


if __name__ == "__main__":
    check_all()
