"""Dynamic shapes: models converted with symbolic dims run at other sizes in Keras and TFLite,
and match PyTorch there; static models stay exactly static."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch2keras
from torch2keras.ir import LoweringError
from models import transformer_encoder

ATOL = 1e-4
CL = "channels_last"


class DynamicCNN(nn.Module):
    """conv -> bn -> relu -> max pool -> strided conv -> upsample, cropped to the pooled size
    (``y.shape``), a skip connection, global pooling flattened with ``view(b, -1)``, a head,
    and a ``reshape(b, c, -1)`` of the feature map."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.pool(F.relu(self.bn(self.conv1(x))))
        z = F.interpolate(self.conv2(y), scale_factor=2, mode="nearest")
        y = y + z[:, :, : y.shape[2], : y.shape[3]]
        g = F.adaptive_avg_pool2d(y, 1).view(b, -1)
        return self.head(g) * (h // 2), y.reshape(b, y.size(1), -1)


class DynamicShape(nn.Module):
    """nobuco's README example (there with ``nobuco.shape``): crop by a third of the size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, kernel_size=(1, 1))

    def forward(self, x):
        x = self.conv(x)
        b, c, h, w = x.shape
        x = x[:, :, h // 3:, w // 3:]
        return x


class ShapeArithmetic(nn.Module):
    """Size-taking ops: positions up to ``x.size(1)`` (slice of a table, ``arange``), a token
    broadcast to the batch and concatenated, ``zeros`` of a run-time shape, a scale by
    ``1 / h``, a reshape with two run-time sizes and the last element along a dynamic axis."""

    def __init__(self):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, 64, 8))
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.emb = nn.Embedding(64, 8)
        self.proj = nn.Linear(8, 8)

    def forward(self, x):  # x: [b, 8, h, w]
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        n = t.size(1)
        t = t + self.pos[:, :n] + self.emb(torch.arange(n))
        t = torch.cat([self.cls.expand(b, -1, -1), t], dim=1)
        t = self.proj(t) * (1.0 / h)
        z = torch.zeros(b, 1, c) + t[:, :1]
        pooled = x.view(b, c, h // 2, 2, w // 2, 2).mean((3, 5))
        return t, z, pooled, t[:, -1]


def _seeded(cls) -> nn.Module:
    torch.manual_seed(0)
    model = cls().eval()
    for m in model.modules():  # non-trivial batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _check(result, model, shapes, tflite_path=None):
    """Keras (and TFLite) outputs vs PyTorch at each input shape; returns the worst error."""
    worst = 0.0
    for k, shape in enumerate(shapes):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(k))
        with torch.no_grad():
            refs = model(x)
        refs = [r.numpy() for r in (refs if isinstance(refs, tuple) else (refs,))]
        runs = [result.run_keras([x.numpy()])]
        if tflite_path is not None:
            runs.append(result.run_tflite(tflite_path, [x.numpy()]))
        for outs in runs:
            for out, ref in zip(outs, refs):
                assert out.shape == ref.shape, (shape, out.shape, ref.shape)
                assert np.abs(ref).max() > 1e-2  # not a degenerate reference
                worst = max(worst, float(np.abs(out - ref).max()))
    return worst


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    model = _seeded(DynamicCNN)
    result = torch2keras.compile(model, torch.randn(1, 3, 32, 32), input_layouts=CL,
                                 dynamic_shapes={"x": {0: "batch", 2: "height", 3: "width"}})
    path = str(tmp_path_factory.mktemp("cnn") / "cnn.tflite")
    result.export_tflite(path)
    return model, result, path


def test_cnn_dynamic_batch_height_width_matches_pytorch(cnn):
    model, result, path = cnn
    assert result.report.ok, result.report.summary()
    shapes = [(1, 3, 32, 32), (3, 3, 48, 40), (2, 3, 17, 23)]  # odd sizes: floor divisions and crops
    assert _check(result, model, shapes, path) < ATOL


def test_cnn_keras_and_tflite_signatures_are_dynamic(cnn):
    _, result, path = cnn
    assert [tuple(t.shape) for t in result.keras_model.inputs] == [(None, None, None, 3)]  # channels-last
    signature = result.report.tflite["signature"]
    assert signature["x"] == [-1, -1, -1, 3]
    assert signature["output_0"] == [-1, 4] and signature["output_1"] == [-1, 8, -1]


def test_ir_dump_shows_symbolic_dims(cnn):
    _, result, _ = cnn
    text = str(result.ir)
    assert "%x : f32[batch,3,height,width]{0,2,3,1} = input()" in text
    assert "= dim(%x) {axis=2}" in text  # h // 2 is computed from the input's run-time height
    assert "f32[batch,4]" in text and "(height//2)" in text
    assert not any(isinstance(d, str) and d.startswith("s") and d[1:].isdigit()
                   for v in result.ir.inputs for d in v.type.shape)  # torch's symbols were renamed


def test_transformer_encoder_dynamic_sequence_length(tmp_path):
    torch.manual_seed(0)
    model = transformer_encoder().eval()
    result = torch2keras.compile(model, torch.randn(2, 10, 32), dynamic_shapes={"src": {1: "seq"}})
    assert result.report.ok, result.report.summary()
    assert result.ir.inputs[0].type.shape == (2, "seq", 32)
    path = result.export_tflite(str(tmp_path / "encoder.tflite"))
    assert result.report.tflite["signature"]["src"] == [2, -1, 32]
    assert _check(result, model, [(2, 10, 32), (2, 3, 32), (2, 17, 32)], path) < ATOL
    assert result.report.tflite["transposes"] <= 3 * 2  # as for static shapes (tests/test_layout.py)


def test_nobuco_dynamic_shape_without_nobuco_shape(tmp_path):
    model = _seeded(DynamicShape)
    result = torch2keras.compile(model, torch.randn(1, 3, 128, 128), input_layouts=CL, output_layouts=CL,
                                 dynamic_shapes={"x": (1, 3, None, None)})
    assert result.report.ok, result.report.summary()
    path = result.export_tflite(str(tmp_path / "dynamic_shape.tflite"))
    assert result.report.tflite["transposes"] == 0
    assert result.report.tflite["signature"]["x"] == [1, -1, -1, 3]
    assert _check(result, model, [(1, 3, 128, 128), (1, 3, 64, 96), (1, 3, 31, 17)], path) < ATOL
    loaded = torch2keras.load_model(result.save(str(tmp_path / "dynamic_shape.keras")))  # safe_mode, no torch
    x = torch.randn(1, 3, 50, 70)
    out = np.asarray(loaded(result.keras_inputs([x.numpy()])))
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(result.torch_outputs([out])[0] - ref).max() < ATOL


def test_size_taking_ops(tmp_path):
    model = _seeded(ShapeArithmetic)
    from torch.export import Dim

    result = torch2keras.compile(model, torch.randn(2, 8, 4, 6), input_layouts=CL,
                                 dynamic_shapes=[(Dim.AUTO, None, Dim("height", min=2), Dim("width", min=2))])
    assert result.report.ok, result.report.summary()
    ops = result.ir.op_counts()
    assert ops.get("dynamic_reshape") == 1 and ops.get("dynamic_expand") == 2 and ops.get("arange") == 1
    path = result.export_tflite(str(tmp_path / "shapes.tflite"))
    assert _check(result, model, [(2, 8, 4, 6), (1, 8, 6, 2), (3, 8, 2, 8)], path) < ATOL


class RunTimeRepeats(nn.Module):
    """Repeats by a run-time count: instance norm of a dynamic batch (its weights repeated per
    sample), and a table repeated batch times along one axis and twice along another."""

    def __init__(self):
        super().__init__()
        self.norm = nn.InstanceNorm1d(4, affine=True)
        self.table = nn.Parameter(torch.randn(3, 5))

    def forward(self, x):  # x: [b, 4, 5]
        b = x.shape[0]
        return self.norm(x), self.table.repeat(b, 2) * x.sum(), self.table.repeat(2, b, 1).sum(0) + 1.0


def test_repeat_by_a_run_time_count(tmp_path):
    torch.manual_seed(0)
    model = RunTimeRepeats().eval()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.uniform_(-0.5, 0.5)
    result = torch2keras.compile(model, torch.randn(2, 4, 5), dynamic_shapes=[{0: "batch"}])
    assert result.report.ok, result.report.summary()
    assert result.ir.op_counts().get("dynamic_expand") == 4 and not result.ir.nodes_by_op("tile")
    path = result.export_tflite(str(tmp_path / "repeat.tflite"))
    assert _check(result, model, [(2, 4, 5), (3, 4, 5), (1, 4, 5)], path) < ATOL


class SplitTheBatch(nn.Module):
    """A dynamic batch cut in two halves (torch's sizes: ceil(b / 2) and the rest)."""

    def forward(self, x):
        first, second = x.chunk(2, dim=0)
        return second * 2.0, first.sum(0)


def test_split_along_a_run_time_axis(tmp_path):
    model = SplitTheBatch().eval()
    result = torch2keras.compile(model, torch.randn(3, 4, 5), dynamic_shapes=[{0: "batch"}])
    assert result.report.ok, result.report.summary()
    assert result.ir.op_counts().get("dynamic_slice") == 2
    path = result.export_tflite(str(tmp_path / "split.tflite"))
    assert _check(result, model, [(3, 4, 5), (4, 4, 5), (7, 4, 5)], path) < ATOL


def test_split_of_a_run_time_axis_exported_at_size_1_is_a_clear_error():
    """At an example size of 1, torch.export writes torch.split(x, 1) as one piece of the whole
    axis, with no guard: at another size that piece would be wrong, so it is refused."""
    class SplitRows(nn.Module):
        def forward(self, x):
            return torch.split(x, 1, dim=0)[-1]

    with pytest.raises(LoweringError, match=r"example size is 1 .*size 2 or more"):
        torch2keras.compile(SplitRows(), torch.randn(1, 3), dynamic_shapes=[{0: "batch"}])


def test_size_queries_are_captured_and_lowered():
    """``x.shape`` / ``size()`` of a dynamic dim stay in the captured graph as ``aten.sym_size``
    (with Python operators on the result) and lower to ``dim`` and integer ops on it."""
    from torch2keras.frontend_torch import capture, lower

    model = _seeded(DynamicShape)
    captured = capture(model, (torch.randn(1, 3, 12, 12),), dynamic_shapes={"x": {2: "h", 3: "w"}})
    targets = [str(n.target) for n in captured.graph.nodes if n.op == "call_function"]
    assert targets.count("aten.sym_size.int") == 2 and "<built-in function floordiv>" in targets
    graph = lower(captured)
    dims = graph.nodes_by_op("dim")
    assert sorted(n.attrs["axis"] for n in dims) == [2, 3] and all(n.inputs[0] is graph.inputs[0] for n in dims)
    assert len(graph.nodes_by_op("floor_divide")) == 2 and len(graph.nodes_by_op("dynamic_slice")) == 2


def test_static_model_stays_static(tmp_path):
    """Without dynamic_shapes nothing about sizes is computed at run time, and the TFLite
    file has fixed shapes everywhere (so that XNNPACK applies)."""
    model = _seeded(DynamicCNN)
    result = torch2keras.compile(model, torch.randn(1, 3, 32, 32), input_layouts=CL)
    assert all(v.type.is_static for n in result.ir for v in n.outputs)
    assert not result.ir.nodes_by_op("dim", "dynamic_slice", "dynamic_reshape", "dynamic_expand", "resize_scale")
    result.export_tflite(str(tmp_path / "static.tflite"))
    tfl = result.report.tflite
    assert all(-1 not in shape for shape in tfl["signature"].values()), tfl["signature"]
    assert tfl["op_counts"] == STATIC_CNN_OPS, tfl["op_counts"]
    assert tfl["max_abs_error"] < ATOL


# the static DynamicCNN's TFLite ops, as before dynamic shapes existed
STATIC_CNN_OPS = {"ADD": 1, "CONV_2D": 2, "FULLY_CONNECTED": 1, "MAX_POOL_2D": 1, "MEAN": 1, "PAD": 1, "RESHAPE": 4,
                  "TILE": 2, "TRANSPOSE": 1}


def test_specialised_dim_is_reported():
    class AddsFixedTable(nn.Module):
        def forward(self, x):
            return x + torch.ones(3, 4)  # broadcasting fixes x's first dim to 3

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = torch2keras.compile(AddsFixedTable(), torch.randn(3, 4), dynamic_shapes={"x": {0: "batch"}})
    messages = [str(w.message) for w in caught]
    assert any("x.shape[0] ('batch') was specialised by torch.export to 3" in m for m in messages), messages
    assert result.ir.inputs[0].type.shape == (3, 4)
    assert any("specialised" in w for w in result.report.warnings)


def test_unknown_input_in_dynamic_shapes_is_an_error():
    with pytest.raises(ValueError, match=r"unknown input\(s\) \['image'\]; the model's inputs are \['x'\]"):
        torch2keras.compile(DynamicShape(), torch.randn(1, 3, 8, 8), dynamic_shapes={"image": {2: "h"}})


def test_export_refusal_with_dynamic_shapes_is_an_error():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # Python control flow on tensor data: no torch.export

    with pytest.raises(torch2keras.Torch2KerasError, match=r"could not capture the model with dynamic shapes \(\w+"):
        torch2keras.compile(DataDependent(), torch.randn(2, 3), dynamic_shapes={"x": {0: "batch"}})


def test_bad_dynamic_specs_are_errors():
    model, x = DynamicShape(), torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"axis 4 is not an axis of the input"):
        torch2keras.compile(model, x, dynamic_shapes={"x": {4: "w"}})
    with pytest.raises(ValueError, match=r"dynamic_shapes\['x'\]\[1\] = 4 but the example's size is 3"):
        torch2keras.compile(model, x, dynamic_shapes={"x": (1, 4, None, None)})
    with pytest.raises(ValueError, match=r"the dim name 'my h' is not an identifier"):
        torch2keras.compile(model, x, dynamic_shapes={"x": {2: "my h"}})


def test_cli_dynamic_option(tmp_path, capsys):
    import os

    from torch2keras.cli import main

    source = tmp_path / "net.py"
    source.write_text("import torch\nfrom torch import nn\n\n"
                      "def build():\n    torch.manual_seed(0)\n"
                      "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))\n")
    out = tmp_path / "net.tflite"
    code = main(["convert", f"{source}:build", "--input-shape", "1,3,16,16", "--channels-last",
                 "--dynamic", "0=batch,2=height,3=width", "-o", str(out)])
    assert code == 0 and os.path.exists(out)
    from torch2keras.tflite.runtime import tflite_signature_shapes

    assert tflite_signature_shapes(str(out))["input"] == [-1, -1, -1, 3]


def test_shared_and_independent_dim_names():
    class Add(nn.Module):
        def forward(self, x, y):
            return x + y  # torch finds the two batch dims equal

    class Cat(nn.Module):
        def forward(self, x, y):
            return torch.cat([x, y], dim=0)  # independent lengths

    x, y = torch.randn(2, 4), torch.randn(3, 4)
    spec = {"x": {0: "batch"}, "y": {0: "batch"}}
    result = torch2keras.compile(Add(), (x, x.clone()), dynamic_shapes=spec, validate="outputs")
    assert [v.type.shape for v in result.ir.inputs] == [("batch", 4), ("batch", 4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = torch2keras.compile(Cat(), (x, y), dynamic_shapes=spec, validate="outputs")
    assert [v.type.shape for v in result.ir.inputs] == [("batch", 4), ("batch_2", 4)]
    assert any("is named 'batch_2'" in str(w.message) for w in caught)
    assert result.ir.outputs[0].type.shape in [("batch + batch_2", 4), ("batch_2 + batch", 4)]  # (torch's order)
    out = result.run_keras([np.ones((5, 4), np.float32), np.zeros((1, 4), np.float32)])[0]
    assert out.shape == (6, 4) and out[:5].min() == 1 and out[5:].max() == 0


def test_reshape_groups_pair_symbolic_dims_by_name():
    from torch2keras.ir.layouts import reshape_groups, reshape_image

    assert reshape_groups(("b", 16, 8, 8), ("b", 1024)) == [([0], [0]), ([1, 2, 3], [1])]
    assert reshape_groups(("L", "b", 48), ("L", "b", 3, 16)) == [([0], [0]), ([1], [1]), ([2], [2, 3])]
    assert reshape_groups(("L", 2, 16), ("2*L", 16)) is None  # a product of a symbol: no known factors
    # a channels-last [b, C, 1, 1] flattens to [b, C] for free
    assert reshape_image(("b", 8, 1, 1), (0, 2, 3, 1), ("b", 8)) == (0, 1)


def test_verifier_accepts_symbolic_spellings_not_wrong_sizes():
    from torch2keras.ir import Graph, TensorType, VerificationError

    g = Graph("g")
    x = g.add_input("x", TensorType(("b", 3, "h", "w")))
    w = g.add_constant(np.zeros((4, 3, 3, 3), np.float32), "w")
    conv = dict(stride=[2, 2], padding=[1, 1, 1, 1], dilation=[1, 1])
    y = g.add_node("conv", [x, w], conv, types=[TensorType(("b", 4, "((h - 1)//2) + 1", "((w - 1)//2) + 1"))]).output
    g.set_outputs(["y"], [y])
    g.verify()  # torch's spelling of the spatial sizes differs from the inferred one: fine
    bad = g.add_node("conv", [x, w], conv, types=[TensorType(("b", 5, "h2", "w2"))]).output
    g.set_outputs(["y"], [bad])
    with pytest.raises(VerificationError, match="disagrees with inferred"):
        g.verify()



class DiagonalOfConv3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(7, 7, 4, groups=7)

    def forward(self, x):
        return torch.lerp(torch.diagonal(self.conv(x), 0, 3, 4), x[:, :, :1, :1, 0], 0.4)


def test_diagonal_of_size_1_axes_on_a_run_time_batch(tmp_path):
    """A diagonal over two size-1 axes of a run-time-batch tensor reaches the graph as
    ``prims.copy_strided`` (a copy into other strides): the same values, lowered as its input."""
    model = DiagonalOfConv3d().eval()
    result = torch2keras.compile(model, torch.randn(2, 7, 4, 4, 4), dynamic_shapes=[{0: "batch"}],
                                 input_layouts=CL)
    assert result.report.ok, result.report.summary()
    path = result.export_tflite(str(tmp_path / "diagonal.tflite"))
    for batch in (2, 3):
        x = torch.randn(batch, 7, 4, 4, 4, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = model(x).numpy()
        for out in (result.run_keras([x.numpy()])[0], result.run_tflite(path, [x.numpy()])[0]):
            assert out.shape == ref.shape and np.abs(ref).max() > 1e-2
            assert np.abs(out - ref).max() < ATOL
