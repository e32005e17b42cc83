"""Run PyTorch's own OpInfo samples through torch2keras and compare with PyTorch.

Shared by ``tests/ops/`` and ``benchmarks/op_coverage.py``. For one OpInfo entry and one
sample input, ``build_case`` wraps the call in a module whose tensors become model inputs (or
constants), ``run_case`` compiles it (``validate=False``), runs the Keras model (and optionally
the TFLite model) and compares every tensor output with PyTorch's:

* float outputs: the same NaN and infinity positions, and elsewhere
  ``|keras - torch| <= atol + rtol * max|torch|`` (atol = rtol = 1e-4 for float32);
* integer and bool outputs: exactly equal;
* shapes and dtypes: exactly torch's.

The outcome of a case is one of ``passed``, ``mismatch`` (with the max error), ``unsupported``
(the compiler refused on purpose: no lowering, or a lowering/emitter that says the case is not
supported, with the reason), ``crashed`` (any other error) or ``skipped`` (the sample is not a
model the compiler could be asked to convert: no tensor output, zero-size tensors, ...; always
with the reason).
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np
import torch
import torch.utils._pytree as pytree

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["Case", "Outcome", "SCOPE", "UNDEFINED_VALUES", "all_entries", "build_case", "compare", "entry_name",
           "in_scope", "recording_ops", "run_case", "run_sample", "sample_dtypes", "samples", "scope_reason"]

ATOL = 1e-4
RTOL = 1e-4
MAX_SAMPLES = 8  # samples per entry and dtype in sweeps (the slow tests and benchmarks/op_coverage.py)

# ----------------------------------------------------------------------------- scope
#
# In scope: every OpInfo entry of `torch.*` (the tensor math, comparison, reduction, scan,
# sorting, indexing, shape and creation ops) and of `torch.nn.functional` -- what models are
# made of, and what torch.export lowers onto the Core ATen opset.
#
# Out of scope, by namespace, because the ops compute things TF/Keras/TFLite models do not
# (or cannot statically) express:
SCOPE_NAMESPACES = {
    "linalg": "linear algebra (decompositions, solvers, norms of matrices): not a Keras/TFLite op family",
    "fft": "Fourier transforms produce complex tensors (no complex dtype in the IR)",
    "sparse": "sparse tensor layouts have no Keras/TFLite equivalent",
    "special": "special functions (Bessel, orthogonal polynomials, zeta, ...) have no Keras/TFLite kernels",
    "signal": "window-function generators (torch.signal.windows) take no tensor input",
    "masked": "torch.masked: prototype masked-tensor reductions, not part of the core opset",
    "torch": "private CUDA kernels (_scaled_mm fp8, flash/efficient attention forward)",
}
# ... and, among the `torch.*` entries, these families (each entry listed with its family):
_FAMILIES = {
    "linear algebra decompositions and solvers (torch.linalg's territory)": [
        "cholesky", "cholesky_inverse", "cholesky_solve", "geqrf", "logdet", "lu", "lu_solve", "lu_unpack",
        "matrix_exp", "ormqr", "pca_lowrank", "pinverse", "qr", "svd", "svd_lowrank", "triangular_solve",
        "norm.nuc",
    ],
    "complex numbers (no complex dtype in the IR, Keras or TFLite)": [
        "complex", "polar", "view_as_complex", "view_as_real", "cfloat", "cdouble", "chalf", "imag",
        "nn.functional.silu.complex",
    ],
    "Fourier transforms": ["stft", "istft"],
    "sparse layouts": ["to_sparse"],
    "random sampling: outputs are random draws, not a function of the inputs": [
        "bernoulli", "cauchy", "exponential", "geometric", "log_normal", "multinomial", "normal",
        "normal.in_place", "normal.number_mean", "rand_like", "randint", "randint_like", "randn",
        "randn_like", "uniform", "nn.functional.dropout", "nn.functional.dropout2d",
        "nn.functional.dropout3d", "nn.functional.alpha_dropout",
        "nn.functional.feature_alpha_dropout.with_train",
        "nn.functional.fractional_max_pool2d", "nn.functional.fractional_max_pool3d",
        "nn.functional.rrelu",
    ],
    "training only: backward kernels, and fused losses that compute their gradients in the forward call": [
        "_softmax_backward_data", "max_pool2d_with_indices_backward", "native_dropout_backward",
        "_batch_norm_with_update", "nn.functional.max_unpool1d.grad", "nn.functional.max_unpool2d.grad",
        "nn.functional.max_unpool3d.grad", "nn.functional.linear_cross_entropy.chunked",
        "nn.functional.linear_cross_entropy.chunked_none",
    ],
    "no tensor result (Python numbers, bools, shapes or hashes)": [
        "allclose", "equal", "item", "broadcast_shapes", "hash_tensor",
    ],
    "in-place metadata mutation (resizes the storage of the input)": ["resize_", "resize_as_"],
    "CUDA-only: no CPU sample inputs": ["nn.functional.batch_norm.without_cudnn"],
    "CUDA-only kernels (jiterator)": [
        "jiterator_2inputs_2outputs", "jiterator_4inputs_with_extra_args", "jiterator_binary",
        "jiterator_binary_return_by_ref", "jiterator_unary",
    ],
    "private ATen kernels exercised through their public ops": [
        "_chunk_cat", "_segment_reduce.lengths", "_segment_reduce.offsets", "_unsafe_masked_index",
        "_unsafe_masked_index_put_accumulate", "_upsample_bilinear2d_aa", "_native_batch_norm_legit",
        "bmm.triton_optimized",
    ],
    "dtype conversions to half/bfloat16 (float32 models only: TFLite's float16 is a quantisation)": [
        "half", "bfloat16",
    ],
}
SCOPE: dict[str, str] = {name: family for family, names in _FAMILIES.items() for name in names}


def entry_name(opinfo) -> str:
    return opinfo.name + (f".{opinfo.variant_test_name}" if opinfo.variant_test_name else "")


def scope_reason(opinfo) -> Optional[str]:
    """Why the entry is out of scope, or None when it is in scope."""
    name = entry_name(opinfo)
    head = opinfo.name.split(".")[0] if "." in opinfo.name and not opinfo.name.startswith("nn.") else ""
    if head in SCOPE_NAMESPACES:
        return f"torch.{head}: {SCOPE_NAMESPACES[head]}"
    return SCOPE.get(name)


def in_scope(opinfo) -> bool:
    return scope_reason(opinfo) is None


@functools.lru_cache(maxsize=1)
def all_entries() -> dict:
    """Every OpInfo entry by name (``name.variant``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.testing._internal.common_methods_invocations import op_db
    return {entry_name(o): o for o in op_db}


# ----------------------------------------------------------------------------- samples

# dtypes swept per entry: float32 always, integer and bool where the op takes them
SWEEP_DTYPES = (torch.float32, torch.int64, torch.int32, torch.bool)


def sample_dtypes(opinfo) -> list[torch.dtype]:
    supported = opinfo.supported_dtypes("cpu")
    return [d for d in SWEEP_DTYPES if d in supported]


def samples(opinfo, dtype: torch.dtype = torch.float32) -> Iterator:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield from opinfo.sample_inputs("cpu", dtype, requires_grad=False)


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    module: Optional[torch.nn.Module] = None
    inputs: list = field(default_factory=list)  # the module's input tensors (PyTorch layout)
    reference: list = field(default_factory=list)  # flattened outputs of the call (tensors or python values)
    skip: Optional[str] = None
    ties: Optional[tuple] = None  # (input, dim): index outputs may pick any of equal elements


@dataclass
class Outcome:
    status: str  # passed | mismatch | unsupported | crashed | skipped
    detail: str = ""
    max_error: Optional[float] = None
    tflite: Optional[str] = None  # the TFLite outcome's status when TFLite was checked
    result: Any = field(default=None, repr=False, compare=False)  # the compile result, when it compiled

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


# ops whose index outputs may point at any of several equal elements (torch documents the choice
# among ties as unspecified): such indices pass when they select the same values as torch's.
# entry -> position of `dim` among the positional arguments after the input
TIE_INDICES = {"sort": 0, "argsort": 0, "topk": 1, "kthvalue": 1, "median": 0, "nanmedian": 0, "mode": 0,
               "max.reduction_with_dim": 0, "min.reduction_with_dim": 0, "cummax": 0, "cummin": 0}

# outputs whose values are undefined (uninitialised memory): only shape and dtype are compared
UNDEFINED_VALUES = ("empty", "empty_like", "empty_permuted", "empty_strided", "new_empty", "new_empty_strided")


class OpCall(torch.nn.Module):
    """``op(*args, **kwargs)`` with the tensors of the call as inputs (or buffers)."""

    def __init__(self, op, spec, leaves: list, kinds: list):
        super().__init__()
        self.op = op
        self.spec = spec
        self.leaves = leaves  # python values, None where a tensor goes
        self.kinds = kinds  # per leaf: ("input", k) | ("buffer", name) | None

    def forward(self, *xs):
        flat = list(self.leaves)
        for i, kind in enumerate(self.kinds):
            if kind is None:
                continue
            if kind[0] == "input":
                flat[i] = xs[kind[1]]
            else:
                flat[i] = getattr(self, kind[1])
        args, kwargs = pytree.tree_unflatten(flat, self.spec)
        return self.op(*args, **kwargs)


def _is_tensor(x) -> bool:
    return isinstance(x, torch.Tensor)


def build_case(opinfo, sample, dtype: torch.dtype = torch.float32) -> Case:
    """The module calling ``opinfo.op`` on ``sample``, its inputs and PyTorch's result.

    Floating tensors and tensors of the swept dtype become model inputs; other tensors (index
    tensors and masks of a float sample) become constants of the model; a 0-d tensor is a 0-d
    model input. A call without such tensors (a factory: arange, full, ...) gets one unused input.
    """
    call_args = ((sample.input, *sample.args), dict(sample.kwargs))
    leaves, spec = pytree.tree_flatten(call_args)
    if any(_is_tensor(x) and x.numel() == 0 for x in leaves):
        return Case(skip="zero-size tensor among the arguments (Keras/TFLite tensors are not empty)")
    if any(_is_tensor(x) and (x.is_complex() or x.layout != torch.strided) for x in leaves):
        return Case(skip="complex or sparse tensor argument")
    kinds, inputs, buffers = [], [], {}
    plain = []
    for i, x in enumerate(leaves):
        if not _is_tensor(x):
            kinds.append(None)
            plain.append(x)
            continue
        x = x.detach().clone()
        if x.is_floating_point() or x.dtype == dtype:
            kinds.append(("input", len(inputs)))
            inputs.append(x.contiguous())
        else:
            name = f"const_{i}"
            buffers[name] = x
            kinds.append(("buffer", name))
        plain.append(None)
    module = OpCall(opinfo.op, spec, plain, kinds)
    for name, t in buffers.items():
        module.register_buffer(name, t)
    if not inputs:  # a factory (arange, full, ...): the model gets an unused input to exist at all
        inputs.append(torch.zeros(1))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(0)
            out = module(*[t.clone() for t in inputs])
            torch.manual_seed(1)
            again = module(*[t.clone() for t in inputs])
    except Exception as e:  # noqa: BLE001 - a sample torch itself rejects
        return Case(skip=f"PyTorch rejects the sample: {type(e).__name__}: {_first(e)}")
    name = entry_name(opinfo)
    if (not _same_result(out, again) and opinfo.name not in UNDEFINED_VALUES) or _applies_dropout(name, sample):
        return Case(skip="the call draws random numbers (dropout in training mode, ...): no deterministic result")
    ref = pytree.tree_flatten(out)[0]
    tensors = [r for r in ref if _is_tensor(r)]
    if not tensors:
        return Case(skip="the call returns no tensor")
    if any(r.numel() == 0 for r in tensors):
        return Case(skip="zero-size output tensor (Keras/TFLite tensors are not empty)")
    if any(r.is_complex() or r.layout != torch.strided for r in tensors):
        return Case(skip="complex or sparse output")
    if any(r.dtype in (torch.float16, torch.bfloat16) for r in tensors):
        return Case(skip="half-precision output (float32 models only)")
    ties = None
    if name in TIE_INDICES and _is_tensor(sample.input) and sample.input.dim() > 0:
        pos = TIE_INDICES[name]
        dim = sample.kwargs.get("dim", sample.args[pos] if len(sample.args) > pos else -1)
        if isinstance(dim, int):
            ties = (sample.input.detach().clone(), dim)
    return Case(module=module.eval(), inputs=inputs, reference=[r.detach().clone() if _is_tensor(r) else r
                                                                 for r in ref], ties=ties)


def _applies_dropout(name: str, sample) -> bool:
    """Samples whose op applies dropout under a fixed seed (OpInfo seeds these calls itself)."""
    if name == "nn.functional.scaled_dot_product_attention":
        return sample.kwargs.get("dropout_p", 0.0) > 0
    if name == "nn.functional.multi_head_attention_forward":
        p = sample.kwargs.get("dropout_p", sample.args[9] if len(sample.args) > 9 else 0.0)
        return sample.kwargs.get("training", True) and p > 0
    return False


def _same_result(a, b) -> bool:
    la, lb = pytree.tree_flatten(a)[0], pytree.tree_flatten(b)[0]
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb):
        if _is_tensor(x) and _is_tensor(y):
            if x.shape != y.shape or not torch.equal(torch.nan_to_num(x.detach()), torch.nan_to_num(y.detach())):
                return False
    return True


def _same_picks(ties, got: np.ndarray, ref: torch.Tensor) -> bool:
    """Whether indices ``got`` select the same values of the input as torch's ``ref``."""
    x, dim = ties
    mine = torch.from_numpy(np.asarray(got))
    if mine.shape != ref.shape or mine.dtype != ref.dtype:
        return False
    dim = dim % x.dim()
    if mine.dim() < x.dim():
        mine, ref = mine.unsqueeze(dim), ref.unsqueeze(dim)
    if ((mine < 0) | (mine >= x.shape[dim])).any():
        return False
    picked, wanted = torch.gather(x, dim, mine), torch.gather(x, dim, ref)
    return bool(((picked == wanted) | (picked.isnan() & wanted.isnan())).all())


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else ""


_UNSUPPORTED = re.compile(r"not supported|no lowering|data-dependent|unsupported|cannot be expressed", re.I)


def _classify(e: BaseException) -> Outcome:
    from torch2keras.ir import EmissionError, LoweringError, UnsupportedOpError

    if isinstance(e, UnsupportedOpError):
        ops = sorted({op for op, _ in e.ops})
        return Outcome("unsupported", "no lowering for " + ", ".join(ops))
    text = f"{type(e).__name__}: {_first(e)}"
    if isinstance(e, (LoweringError, EmissionError)) and _UNSUPPORTED.search(str(e)):
        return Outcome("unsupported", text)
    return Outcome("crashed", text)


def compare(got: np.ndarray, ref: torch.Tensor, values: bool = True) -> tuple[bool, float, str]:
    """(ok, max error, what differs) of one output against PyTorch's."""
    want = ref.detach().cpu()
    if want.dtype == torch.bfloat16:
        want = want.float()
    want = want.numpy()
    got = np.asarray(got)
    if got.shape != want.shape:
        return False, math.inf, f"shape {got.shape} != torch's {want.shape}"
    if got.dtype != want.dtype:
        return False, math.inf, f"dtype {got.dtype} != torch's {want.dtype}"
    if not values or want.size == 0:
        return True, 0.0, ""
    if want.dtype.kind in "biu":
        bad = int(np.sum(got != want))
        err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if bad else 0.0
        return bad == 0, err, f"{bad} of {want.size} elements differ" if bad else ""
    g, w = got.astype(np.float64), want.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(w)):
        return False, math.inf, "NaN positions differ"
    finite = np.isfinite(w)
    if not np.array_equal(g[~finite & ~np.isnan(w)], w[~finite & ~np.isnan(w)]):
        return False, math.inf, "infinities differ"
    if not np.all(np.isfinite(g[finite])):
        return False, math.inf, "non-finite values where torch's are finite"
    if not finite.any():
        return True, 0.0, ""
    err = float(np.max(np.abs(g[finite] - w[finite])))
    scale = float(np.max(np.abs(w[finite])))
    tol = ATOL + RTOL * scale
    return err <= tol, err, "" if err <= tol else f"max |err| {err:.3g} > {tol:.3g}"


def _check_outputs(case: Case, outs: list, values: bool) -> Outcome:
    if len(outs) != len(case.reference):
        return Outcome("crashed", f"{len(outs)} outputs, torch has {len(case.reference)}")
    worst = 0.0
    for i, (got, ref) in enumerate(zip(outs, case.reference)):
        if not _is_tensor(ref):
            continue
        ok, err, what = compare(got, ref, values)
        if not ok and case.ties is not None and ref.dtype == torch.int64 and _same_picks(case.ties, got, ref):
            ok, err = True, 0.0
        if not ok:
            return Outcome("mismatch", f"output {i}: {what}", err)
        worst = max(worst, err)
    return Outcome("passed", max_error=worst)


def run_case(case: Case, undefined_values: bool = False, tflite: bool = False, result: Any = None) -> Outcome:
    """Compile the case's module (unless ``result``, an earlier compile of this very case, is
    given), run Keras (and TFLite) and compare with PyTorch."""
    if case.skip:
        return Outcome("skipped", case.skip)
    import torch2keras

    feed = [t.numpy() for t in case.inputs]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if result is None:
                result = torch2keras.compile(case.module, tuple(t.clone() for t in case.inputs), validate=False)
            outs = result.run_keras(feed)
    except Exception as e:  # noqa: BLE001 - classified and reported
        return _classify(e)
    outcome = _check_outputs(case, outs, not undefined_values)
    outcome.result = result
    if tflite and outcome.status == "passed":
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = result.export_tflite(os.path.join(tmp, "op.tflite"), validate=False)
                lite = _check_outputs(case, result.run_tflite(path, feed), not undefined_values)
            except Exception as e:  # noqa: BLE001
                lite = Outcome("crashed", f"TFLite: {type(e).__name__}: {_first(e)}")
        outcome.tflite = lite.status
        if lite.status != "passed":
            return Outcome(lite.status, f"TFLite: {lite.detail}", lite.max_error, lite.status)
    return outcome


def run_sample(opinfo, sample, dtype: torch.dtype = torch.float32, tflite: bool = False) -> Outcome:
    case = build_case(opinfo, sample, dtype)
    return run_case(case, undefined_values=opinfo.name in UNDEFINED_VALUES, tflite=tflite)


class recording_ops:
    """``with recording_ops() as ops:`` collects the names of the ATen ops of every graph
    torch2keras lowers inside the block (which Core ATen ops a sample exercised)."""

    def __enter__(self) -> set:
        import torch2keras.api as api

        self._api, self._lower, self.ops = api, api.lower, set()
        ops = self.ops

        def lower(captured, *args, **kwargs):
            for node in captured.graph.nodes:
                if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
                    ops.add(str(node.target))
            return self._lower(captured, *args, **kwargs)

        api.lower = lower
        return ops

    def __exit__(self, *exc) -> None:
        self._api.lower = self._lower
