"""Reproducer of a torch2keras fuzzing failure (seed 189, 6 op(s)).

misreported at compile: 
every output within tolerance, yet the report names a first mismatch: aten.slice_scatter.default max |err| 3.36e+15 > 3.36e+11
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class FuzzModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.m1 = nn.Embedding(5, 8)
        self.m2 = nn.Embedding(4, 1)

    def forward(self, x0, x1, x2):
        v1 = self.m1(x1)
        v2 = self.m2(x2)
        v3 = F.pad(v1, (2, 6), mode='circular')
        v4 = F.scaled_dot_product_attention(v3, v3, v3 * 0.5, is_causal=True)
        v5 = F.pad(x0, (1, 2, 1, 1, 2, 0), mode='constant', value=0.5)
        v6 = x0 <= 2.0
        return (v5, v4, v6)


INPUTS = [('x0', (2, 4, 7, 9), 'float32', 0), ('x1', (1, 6), 'int64', 5), ('x2', (1, 6), 'int64', 4)]


def make_model():
    torch.manual_seed(189)
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
    result = torch2keras.compile(model, make_inputs(189), input_layouts={'x0': 'channels_last'},
                                 output_layouts=['channels_last', None, None], dynamic_shapes=None,
                                 on_mismatch="ignore")
    assert result.report.ok, result.report.summary()
    assert result.report.first_mismatch is None, result.report.summary()
    inputs = make_inputs(1000192, batch=None)
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
