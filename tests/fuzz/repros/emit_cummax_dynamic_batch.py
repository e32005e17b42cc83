"""Reproducer of a torch2keras fuzzing failure (seed 310, 3 op(s)).

typed_error at compile: EmissionError
emitting cumulative_extreme failed: ValueError: Exception encountered when calling TorchOp.call().
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, x0, x1):
        v1 = torch.logcumsumexp(x1, 0)
        v2 = torch.cummax(x0, -3)[1]
        v3 = v2.permute(0, 2, 1, 3)
        return v3


INPUTS = [('x0', (2, 6, 4, 7), 'float32', 0), ('x1', (2,), 'float32', 0)]


def make_model():
    torch.manual_seed(310)
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
    result = torch2keras.compile(model, make_inputs(310), input_layouts=None,
                                 output_layouts=None, dynamic_shapes={'x0': {0: 'batch'}, 'x1': None},
                                 on_mismatch="ignore")
    assert result.report.ok, result.report.summary()
    assert result.report.first_mismatch is None, result.report.summary()
    full, same = make_inputs(1000313, batch=3), make_inputs(1000313)
    inputs = tuple(f if dynamic else s for f, s, dynamic in zip(full, same, [True, False]))
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
