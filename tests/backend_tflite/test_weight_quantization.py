"""Weight-only quantization of the direct writer (``backend_tflite/weight_quantization.py``):
int8 / int4 (per channel and blockwise) weights with float activations, checked against PyTorch
run with the SAME quantized weights dequantized (``WeightQuantization.quantize``), so that what
remains is LiteRT's per-call quantization of the activations; the file's tensor types, op
versions and size; layers kept float; the errors of unknown modes."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from causal_lms import Logits, tiny_llama
from dequantized_weights import dequantized
from torch2keras import BlockwiseInt4Warning, WeightQuantization, to_tflite
from torch2keras.backend_tflite.schema import fb
from torch2keras.backend_tflite.weight_quantization import quantize_weight
from torch2keras.tflite.file import blockwise_tensors
from torch2keras.tflite.runtime import interpreter, run_tflite

MODES = ["dynamic_int8", "dynamic_int4", "dynamic_int4_b32"]
# LiteRT quantizes each FULLY_CONNECTED input per call (8 bits): against the dequantized-weight
# model the file is off by a few steps of that quantization, a fraction of a percent of the
# outputs' range; wrong scales, a dropped block scale or a swapped nibble are tens of percent off
ACTIVATION_RTOL = 0.02


class TokenMLP(nn.Module):
    def __init__(self, vocab: int = 96, width: int = 128, hidden: int = 256):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.up = nn.Linear(width, hidden)
        self.down = nn.Linear(hidden, width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        return self.head(x + self.down(torch.nn.functional.silu(self.up(x))))


def _mlp() -> TokenMLP:
    torch.manual_seed(0)
    return TokenMLP().eval()


def _ids(vocab: int = 96, length: int = 12) -> torch.Tensor:
    return torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(3))


def _run(path: str, ids: torch.Tensor) -> np.ndarray:
    return next(iter(run_tflite(path, {"ids": ids.numpy()}).values()))


def _tensors(path: str) -> dict[str, tuple[str, object]]:
    """Tensor name -> (type name, quantization table) of the file's main subgraph."""
    with open(path, "rb") as f:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(f.read(), 0))
    types = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    return {t.name.decode(): (types[t.type], t.quantization) for t in model.subgraphs[0].tensors}


def _versions(path: str) -> dict[str, int]:
    with open(path, "rb") as f:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(f.read(), 0))
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    return {names[c.builtinCode]: c.version for c in model.operatorCodes}


# ---------------------------------------------------------------------------- the quantization function


def test_quantize_weight_rounds_each_row_to_its_scale():
    w = np.random.default_rng(0).standard_normal((6, 64)).astype(np.float32) * np.arange(1, 7)[:, None]
    w[2] = 0  # a row of zeros: scale 1, values 0
    for bits, top in ((8, 127), (4, 7)):
        q = quantize_weight(w, bits)
        assert q.values.dtype == np.int8 and q.scale.shape == (6,) and q.scale[2] == 1
        assert np.abs(q.values).max() == top
        np.testing.assert_allclose(q.scale[[0, 1, 3]], np.abs(w[[0, 1, 3]]).max(axis=1) / top, rtol=1e-6)
        assert np.all(np.abs(q.dequantized() - w) <= q.scale[:, None] / 2 + 1e-7)
    blocked = quantize_weight(w, 4, 32)
    assert blocked.scale.shape == (6, 2) and blocked.scale.dtype == np.float16
    assert np.all(np.abs(blocked.dequantized() - w).reshape(6, 2, 32)
                  <= blocked.scale.astype(np.float32)[:, :, None] / 2 + 1e-6)
    assert np.abs(blocked.dequantized() - w).mean() < np.abs(quantize_weight(w, 4).dequantized() - w).mean()


def test_int4_is_stored_two_values_a_byte_low_nibble_first():
    q = quantize_weight(np.array([[1.0, -7.0, 3.0, 7.0, -1.0]], np.float32), 4)
    assert q.values.tolist() == [[1, -7, 3, 7, -1]]
    assert q.stored().tolist() == [0x91, 0x73, 0x0F]  # (-7 & 15) << 4 | 1, 7 << 4 | 3, -1 & 15


def test_blocks_fall_back_to_one_scale_per_row_where_the_size_does_not_divide():
    mode = WeightQuantization("dynamic_int4_b64")
    assert (mode.bits, mode.block_size) == (4, 64)
    assert mode.quantize(np.ones((2, 128), np.float32)).block_size == 64
    assert mode.quantize(np.ones((2, 96), np.float32)).block_size == 0


# ---------------------------------------------------------------------------- files against PyTorch


@pytest.mark.parametrize("mode", MODES)
def test_token_mlp_matches_pytorch_with_the_dequantized_weights(tmp_path, mode):
    model, ids = _mlp(), _ids()
    weights = WeightQuantization(mode, min_elements=0)
    path = str(tmp_path / f"{mode}.tflite")
    result = to_tflite(model, (ids,), path, quantize=weights)
    assert result.max_abs_error is not None  # validated against the float model, within the mode's check_rtol
    with torch.no_grad():
        reference = dequantized(model, weights)(ids).numpy()
        float_reference = model(ids).numpy()
    got = _run(path, ids)
    err = np.abs(got - reference).max()
    assert err <= ACTIVATION_RTOL * np.abs(reference).max()
    if weights.bits == 4:  # the weights' rounding dominates: the dequantized model is far closer
        assert err < np.abs(got - float_reference).max() / 3
    tensors = _tensors(path)
    stored = "INT8" if weights.bits == 8 else "INT4"
    assert {name: tensors[name][0] for name in ("p_embed_weight", "p_up_weight", "p_down_weight", "p_head_weight")} \
        == dict.fromkeys(("p_embed_weight", "p_up_weight", "p_down_weight", "p_head_weight"), stored)
    assert tensors["p_up_bias"][0] == "FLOAT32"
    up = tensors["p_up_weight"][1]
    if weights.block_size:
        assert up.detailsType == fb.QuantizationDetails.BlockwiseQuantization and up.details.blockSize == 32
    else:
        assert up.quantizedDimension == 0 and len(up.scale) == 256 and not np.any(up.zeroPoint)
    assert result.op_counts["EMBEDDING_LOOKUP"] == 1 and "GATHER" not in result.op_counts
    versions = _versions(path)
    assert versions["EMBEDDING_LOOKUP"] == 4
    assert versions["FULLY_CONNECTED"] == (12 if weights.bits == 8 else 6)  # (6: the head has no bias)


@pytest.mark.parametrize("mode", ["weight_only_int8", "weight_only_int4"])
def test_weight_only_modes_compute_in_float_on_exactly_the_dequantized_weights(tmp_path, mode):
    """The same integers, read through a DEQUANTIZE: float products, PyTorch's with the
    dequantized weights to float rounding (the dynamic modes quantize the input per call)."""
    model, ids = _mlp(), _ids()
    weights = WeightQuantization(mode, min_elements=0)
    path = str(tmp_path / f"{mode}.tflite")
    result = to_tflite(model, (ids,), path, quantize=weights)
    with torch.no_grad():
        reference = dequantized(model, weights)(ids).numpy()
    assert np.abs(_run(path, ids) - reference).max() <= 1e-5 * np.abs(reference).max()
    assert result.op_counts["DEQUANTIZE"] == 3 and result.op_counts["FULLY_CONNECTED"] == 3  # one per linear layer
    tensors = _tensors(path)
    assert tensors["p_up_weight"][0] == ("INT8" if weights.bits == 8 else "INT4")
    assert tensors["p_up_weight/dequantize"][0] == "FLOAT32"
    dynamic = str(tmp_path / "dynamic.tflite")
    to_tflite(model, (ids,), dynamic, quantize=WeightQuantization(mode.replace("weight_only", "dynamic"), min_elements=0))
    assert abs(os.path.getsize(dynamic) - os.path.getsize(path)) < 0.02 * os.path.getsize(path)  # as small


def test_file_sizes_against_float32(tmp_path):
    model, ids = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 256)).eval(), torch.randn(1, 4, 256)
    sizes = {}
    for mode in (None, *MODES):
        path = str(tmp_path / f"{mode}.tflite")
        to_tflite(model, (ids,), path, quantize=mode)
        sizes[mode] = os.path.getsize(path)
    ratios = {mode: sizes[mode] / sizes[None] for mode in MODES}
    assert 0.25 <= ratios["dynamic_int8"] <= 0.27
    assert 0.125 <= ratios["dynamic_int4"] <= 0.14
    assert ratios["dynamic_int4"] < ratios["dynamic_int4_b32"] <= 0.15  # + a float16 scale per 32 weights


def test_layers_kept_float_by_path_pattern_predicate_or_size(tmp_path):
    model, ids = _mlp(), _ids()
    by_path = WeightQuantization("dynamic_int8", keep_float=["head", "embed"], min_elements=0)
    path = str(tmp_path / "kept.tflite")
    result = to_tflite(model, (ids,), path, quantize=by_path)
    types = {name: t for name, (t, _) in _tensors(path).items() if name.endswith("_weight")}
    assert types == {"p_embed_weight": "FLOAT32", "p_up_weight": "INT8", "p_down_weight": "INT8",
                     "p_head_weight": "FLOAT32"}
    assert result.op_counts.get("GATHER") == 1 and "EMBEDDING_LOOKUP" not in result.op_counts
    with torch.no_grad():
        reference = dequantized(model, by_path)(ids).numpy()
    assert np.abs(_run(path, ids) - reference).max() <= ACTIVATION_RTOL * np.abs(reference).max()

    predicate = WeightQuantization("dynamic_int4", keep_float=lambda module: module.startswith("do"), min_elements=0)
    to_tflite(model, (ids,), path, quantize=predicate)
    assert _tensors(path)["p_down_weight"][0] == "FLOAT32" and _tensors(path)["p_up_weight"][0] == "INT4"
    # 96 x 128 = 12288 and 128 x 256 = 32768 elements: only the two larger weights are quantized
    to_tflite(model, (ids,), path, quantize=WeightQuantization("dynamic_int8", min_elements=20000))
    types = {name: t for name, (t, _) in _tensors(path).items() if name.endswith("_weight")}
    assert types == {"p_embed_weight": "FLOAT32", "p_up_weight": "INT8", "p_down_weight": "INT8",
                     "p_head_weight": "FLOAT32"}


class _QKV(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(64, 64), nn.Linear(64, 32), nn.Linear(64, 32)

    def forward(self, x):
        return self.q(x).sum(-1, keepdim=True) * self.k(x) + self.v(x)


@pytest.mark.parametrize("mode", ["dynamic_int8", "dynamic_int4_b32", "weight_only_int4"])
def test_stacked_projections_are_quantized_as_the_layers_alone(tmp_path, mode):
    """q, k and v run as one FULLY_CONNECTED over one stacked integer filter whose scales are the
    layers' own (per row, or per block of a row); a layer the mode keeps float runs alone."""
    torch.manual_seed(0)
    model, x = _QKV().eval(), (torch.randn(1, 3, 64),)
    for keep, stacked in (((), ["q", "k", "v"]), (("q",), ["k", "v"])):
        weights = WeightQuantization(mode, keep_float=keep, min_elements=0)
        path = str(tmp_path / f"qkv_{len(keep)}.tflite")
        result = to_tflite(model, x, path, quantize=weights)
        with torch.no_grad():
            reference = dequantized(model, weights)(*x).numpy()
        rtol = 1e-5 if weights.float_activations else ACTIVATION_RTOL
        assert np.abs(_run_x(path, x[0]) - reference).max() <= rtol * np.abs(reference).max()
        tensors = _tensors(path)
        name = ";".join(f"p_{n}_weight" for n in stacked)
        assert tensors[name][0] == ("INT8" if weights.bits == 8 else "INT4")
        assert result.op_counts["FULLY_CONNECTED"] == 1 + len(keep)
        if keep:
            assert tensors["p_q_weight"][0] == "FLOAT32"


def _run_x(path: str, x: torch.Tensor) -> np.ndarray:
    return next(iter(run_tflite(path, {"x": x.numpy()}).values()))


@pytest.mark.parametrize("mode", ["dynamic_int8", "dynamic_int4_b32"])
def test_tiny_llama_logits_match_pytorch_with_the_dequantized_weights(tmp_path, mode):
    model = Logits(tiny_llama())
    ids = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(1))
    weights = WeightQuantization(mode, min_elements=0)
    path = str(tmp_path / "llama.tflite")
    result = to_tflite(model, (ids,), path, quantize=weights)
    with torch.no_grad():
        reference = dequantized(model, weights)(ids).numpy()
    got = next(iter(run_tflite(path, {"input_ids": ids.numpy()}).values()))
    assert np.abs(got - reference).max() <= ACTIVATION_RTOL * np.abs(reference).max()
    types = {name: t for name, (t, _) in _tensors(path).items() if name.endswith("_weight") and "norm" not in name}
    # per layer: q, k and v stacked, o, gate and up stacked, down; the embedding and the head
    assert len(types) == 2 * 4 + 2 and set(types.values()) == {"INT8" if weights.bits == 8 else "INT4"}
    assert sum(name.count(";") for name in types) == 2 * (2 + 1)
    assert result.op_counts["EMBEDDING_LOOKUP"] == 1 and result.op_counts["FULLY_CONNECTED"] == 2 * 4 + 1


# ---------------------------------------------------------------------------- blockwise int4 and LiteRT's kernels


def test_blockwise_int4_warns_when_written_and_refuses_the_reference_kernels(tmp_path):
    """LiteRT's reference kernels ignore block scales (measured below: far off); XNNPACK and the
    optimized builtin kernels (``delegates=False``) compute the file right. Writing blocks warns,
    naming XNNPACK; ``interpreter(..., reference_kernels=True)`` refuses such a file."""
    model, ids = _mlp(), _ids()
    blocks = WeightQuantization("dynamic_int4_b32", min_elements=0)
    path = str(tmp_path / "b32.tflite")
    with pytest.warns(BlockwiseInt4Warning, match=r"4 weights in int4 blocks .*XNNPACK"):
        to_tflite(model, (ids,), path, quantize=blocks)
    assert len(blockwise_tensors(path)) == 4  # embedding, up, down, head
    with torch.no_grad():
        reference = dequantized(model, blocks)(ids).numpy()
    bound = ACTIVATION_RTOL * np.abs(reference).max()
    for delegates in (True, False):
        got = next(iter(run_tflite(path, {"ids": ids.numpy()}, delegates=delegates).values()))
        assert np.abs(got - reference).max() <= bound, delegates
    with pytest.raises(ValueError, match=r"4 weights in int4 blocks .*reference kernels compute wrong.*XNNPACK"):
        interpreter(path, reference_kernels=True)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    unguarded = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    got = next(iter(unguarded.get_signature_runner()(ids=ids.numpy()).values()))
    assert np.abs(got - reference).max() > 10 * bound  # why the guard exists

    per_channel = str(tmp_path / "int4.tflite")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BlockwiseInt4Warning)
        to_tflite(model, (ids,), per_channel, quantize=WeightQuantization("dynamic_int4", min_elements=0))
        # blocks of 64 do not divide 96 inputs: one scale per row, no blocks, no warning
        to_tflite(nn.Linear(96, 8).eval(), (torch.randn(1, 96),), str(tmp_path / "rows.tflite"),
                  quantize=WeightQuantization("dynamic_int4_b64", min_elements=0))
    assert blockwise_tensors(per_channel) == []
    runner = interpreter(per_channel, reference_kernels=True).get_signature_runner()
    with torch.no_grad():
        reference = dequantized(model, WeightQuantization("dynamic_int4", min_elements=0))(ids).numpy()
    got = next(iter(runner(ids=ids.numpy()).values()))
    assert np.abs(got - reference).max() <= ACTIVATION_RTOL * np.abs(reference).max()


# ---------------------------------------------------------------------------- the modes' errors


def test_unknown_modes_name_the_modes():
    model, ids = _mlp(), _ids()
    with pytest.raises(ValueError, match=r'quantize="int8" is full integer quantization.*quantize="dynamic_int8"'):
        to_tflite(model, (ids,), "unused.tflite", quantize="int8")
    with pytest.raises(ValueError, match=r"unknown quantize='int3'.*'dynamic_int4_b32'"):
        to_tflite(model, (ids,), "unused.tflite", quantize="int3")
    with pytest.raises(ValueError, match=r"unknown weight quantization mode 'dynamic_int4_b48'.*dynamic_int4_b128"):
        WeightQuantization("dynamic_int4_b48")


# ---------------------------------------------------------------------------- the reference encoding


def _weights(path: str) -> dict[str, tuple[str, bytes, np.ndarray, int]]:
    """Integer tensor name -> (type, stored bytes, scales, block size) of the main subgraph."""
    with open(path, "rb") as f:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(f.read(), 0))
    graph, found = model.subgraphs[0], {}
    for t in graph.tensors:
        if t.type not in (fb.TensorType.INT8, fb.TensorType.INT4):
            continue
        q, data = t.quantization, bytes(model.buffers[t.buffer].data)
        if q.details is not None:
            scales = graph.tensors[q.details.scales]
            found[t.name.decode()] = ("blocks", data, np.frombuffer(bytes(model.buffers[scales.buffer].data),
                                                                    np.float16).astype(np.float32), q.details.blockSize)
        else:
            found[t.name.decode()] = ("rows", data, np.asarray(q.scale, np.float32), 0)
    return found


@pytest.mark.parametrize("mode,recipe_name", [("dynamic_int8", "dynamic_wi8_afp32"), ("dynamic_int4", "dynamic_wi4_afp32"),
                                              ("dynamic_int4_b32", "dynamic_wi4b32_afp32")])
def test_same_encoding_as_ai_edge_quantizer(tmp_path, mode, recipe_name):
    """ai-edge-quantizer's recipe applied to our float32 file stores the same integers and
    scales as our quantized file (blockwise: its float16 scales round differently, by at most
    a few float16 steps, moving a few values by one)."""
    aeq = pytest.importorskip("ai_edge_quantizer")
    model, x = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32)).eval(), torch.randn(1, 64)
    to_tflite(model, (x,), str(tmp_path / "float.tflite"))
    to_tflite(model, (x,), str(tmp_path / "ours.tflite"), quantize=mode)
    quantizer = aeq.quantizer.Quantizer(str(tmp_path / "float.tflite"))
    quantizer.load_quantization_recipe(getattr(aeq.recipe, recipe_name)())
    quantizer.quantize().export_model(str(tmp_path / "reference.tflite"))
    ours, reference = _weights(str(tmp_path / "ours.tflite")), _weights(str(tmp_path / "reference.tflite"))
    assert sorted(ours) == sorted(reference) == ["p_0_weight", "p_2_weight"]
    for name, (kind, data, scales, block) in reference.items():
        assert ours[name][0] == kind and ours[name][3] == block and len(ours[name][1]) == len(data)
        if kind == "rows":
            assert ours[name][1] == data and np.array_equal(ours[name][2], scales)
        else:
            np.testing.assert_allclose(ours[name][2], scales, rtol=4e-3)
            differing = np.frombuffer(ours[name][1], np.uint8) != np.frombuffer(data, np.uint8)
            assert differing.mean() < 0.05
