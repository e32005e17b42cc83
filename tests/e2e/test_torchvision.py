"""torchvision's classifiers end to end, each converted and exported once per test session: the
TFLite file has no (CNNs) or few (ViT) transposes, Keras and TFLite outputs match PyTorch, and the
saved ``.keras`` file reloads in a new process (safe mode, no torch) with the same outputs."""

from __future__ import annotations

import attrs
import pytest
import torch

import torch2keras
from compat import import_torchvision, seeded_model
from support import assert_matches_torch, assert_reloads_like_torch, torch_outputs

ATOL = 1e-4
CL = "channels_last"
# name -> the layouts it is converted with (images stored NHWC, or PyTorch's NCHW as given by default;
# a classifier's logits have no channels)
MODELS = {"resnet18": dict(input_layouts=CL, output_layouts=CL),
          "mobilenet_v3_large": {},
          "convnext_tiny": dict(input_layouts=CL, output_layouts=CL),
          "vit_b_16": dict(input_layouts=CL)}


HEAVY = {"convnext_tiny", "vit_b_16"}  # 20-40 s each to convert: in the slow run (make test-slow)


def _params(names) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


@attrs.define
class Converted:
    model: torch.nn.Module
    x: torch.Tensor
    result: object
    tflite: str


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """name -> ``Converted``, built on first use (a module-scoped cache: one compile per model)."""
    cache: dict[str, Converted] = {}

    def get(name: str) -> Converted:
        if name not in cache:
            tv = import_torchvision()
            x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
            model = seeded_model(getattr(tv.models, name), x)
            result = torch2keras.compile(model, x, name=name, **MODELS[name])
            assert result.report.ok, result.report.summary()
            path = result.export_tflite(str(tmp_path_factory.mktemp(name) / f"{name}.tflite"))
            cache[name] = Converted(model, x, result, path)
        return cache[name]

    return get


@pytest.mark.parametrize("name", _params(["resnet18", "convnext_tiny"]))
def test_cnn_with_channels_last_images_has_no_transposes(converted, name):
    c = converted(name)
    assert c.result.report.transposes == 0
    assert c.result.report.tflite["transposes"] == 0


def test_cnn_with_nchw_images_has_one_transpose(converted):
    c = converted("mobilenet_v3_large")  # the input turned channels-last once; everything after stays so
    assert c.result.report.tflite["transposes"] == 1


@pytest.mark.slow
def test_convnext_own_permutes_cost_nothing(converted):
    c = converted("convnext_tiny")
    ep = torch.export.export(c.model, (c.x,), strict=False)
    permutes = sum(1 for n in ep.graph.nodes if n.op == "call_function" and "permute" in str(n.target))
    assert permutes > 0 and c.result.report.tflite["transposes"] == 0  # around its LayerNorms


@pytest.mark.slow
def test_vit_b_16_transposes_bounded(converted):
    c = converted("vit_b_16")
    # per encoder layer: q, k and v split into heads in one move, and the heads merged back
    assert c.result.report.tflite["transposes"] <= 2 * 12


@pytest.mark.parametrize("name", _params(MODELS))
def test_keras_and_tflite_match_pytorch(converted, name):
    c = converted(name)
    assert_matches_torch(c.result, c.model, (c.x,), ATOL, tflite=c.tflite)
    assert c.result.report.tflite["max_abs_error"] < ATOL


@pytest.mark.parametrize("names", [("resnet18", "mobilenet_v3_large"),
                                   pytest.param(("vit_b_16",), marks=pytest.mark.slow)])
def test_saved_keras_reloads_in_a_fresh_process(converted, names, tmp_path):
    # the models of one run share one fresh process (one TensorFlow import)
    cases = {}
    for name in names:
        c = converted(name)
        cases[name] = (c.result, (c.x,), torch_outputs(c.model, (c.x,)))
    assert_reloads_like_torch(cases, tmp_path, ATOL)
