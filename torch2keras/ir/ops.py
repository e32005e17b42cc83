"""The IR's op set, declared once: attributes, arity, type inference and layout class.

The verifier, the printer, the passes and the backend all read this table. Every op computes
the PyTorch-logical function of its inputs; how values are physically stored is the business
of their ``TensorType.layout`` (see ``passes/layout.py``).

Layout classes:
  source   -- produces a value from nothing (``input``, ``constant``)
  agnostic -- elementwise: runs in any layout, all tensor inputs broadcast to the output layout
  axis     -- has axis attributes that the backend maps through the input layout; the output
              layout follows the first input (``out_layout`` says how, when ranks differ)
  channel  -- channel-aware (conv, norms over channels, pooling, resize): runs channels-last
  fixed    -- needs every input in PyTorch's own order (identity layout)
  last_axis -- like axis, where the normalised trailing axes stay physically last (linear, layer_norm)
  reshape / permute -- free where the layouts make them plain physical reshapes (``ir/layouts.py``)
  relayout -- logical identity, physical transpose (``relayout``)
  custom   -- a user converter's call: its ``layout`` attribute says channels_last, torch or any
  region   -- control flow: operands and results stored in the layouts the layout pass picks, each
              region's inputs and outputs exactly as the operands and results they stand for
              (``regions.boundary_layouts``; scanned/stacked values keep axis 0 first)
  state    -- ``state_update``: its value is stored like the state it updates (``state.py``)

Effects. An op with ``effect=True`` (``state_update``) matters for what it does, not for its
results: passes never erase, merge or fold it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import attrs
import numpy as np

from .symbolic import dim_add, dim_floordiv, dim_mul, dim_sub, is_symbolic
from .types import TensorType, is_float

__all__ = ["AttrSpec", "OpSchema", "SCHEMAS", "schema", "broadcast_shapes", "REQUIRED"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

InferFn = Callable[[Sequence[TensorType], dict], list[TensorType]]


@attrs.frozen
class AttrSpec:
    kind: str  # int | float | bool | str | ints | floats | dtype | array | any | graph (a region)
    default: Any = REQUIRED


@attrs.frozen
class OpSchema:
    name: str
    inputs: tuple[str, ...]  # names; a trailing '?' marks optional, a leading '*' variadic
    attrs: dict[str, AttrSpec]
    infer: Optional[InferFn]
    layout: str
    num_outputs: Optional[int] = 1  # None: any number (given by the node's types)
    doc: str = ""
    effect: bool = False  # a side effect (a state update): kept even when nothing reads a result

    @property
    def min_inputs(self) -> int:
        return sum(1 for n in self.inputs if not n.endswith("?") and not n.startswith("*"))

    @property
    def max_inputs(self) -> float:
        return math.inf if any(n.startswith("*") for n in self.inputs) else len(self.inputs)

    def with_defaults(self, given: dict) -> dict:
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise ValueError(f"{self.name}: unknown attribute(s) {sorted(unknown)}")
        out = {}
        for key, spec in self.attrs.items():
            if key in given:
                out[key] = given[key]
            elif spec.default is REQUIRED:
                raise ValueError(f"{self.name}: missing attribute {key!r}")
            else:
                out[key] = spec.default
        return out


SCHEMAS: dict[str, OpSchema] = {}


def schema(op: str) -> OpSchema:
    try:
        return SCHEMAS[op]
    except KeyError:
        raise KeyError(f"unknown IR op {op!r}") from None


def _define(name, inputs, infer, layout, attrs_=None, num_outputs=1, doc="", effect=False):
    SCHEMAS[name] = OpSchema(
        name=name,
        inputs=tuple(inputs),
        attrs={k: (v if isinstance(v, AttrSpec) else AttrSpec(*v)) for k, v in (attrs_ or {}).items()},
        infer=infer,
        layout=layout,
        num_outputs=num_outputs,
        doc=doc,
        effect=effect,
    )


# ----------------------------------------------------------------------------- shape helpers


def broadcast_shapes(*shapes: Sequence) -> tuple:
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        dims = list(dict.fromkeys(d for d in dims if d != 1))
        static = [d for d in dims if not is_symbolic(d)]
        if len(static) > 1:
            raise ValueError(f"shapes {list(shapes)} do not broadcast")
        # a symbolic dim broadcast against another is assumed equal to it (torch checked that)
        out.append(static[0] if static else dims[0] if dims else 1)
    return tuple(out)


def _norm_axis(axis: int, rank: int) -> int:
    if not -max(rank, 1) <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % max(rank, 1)


def _same(types, a):
    return [types[0].replace(layout=None)]


def _with_dtype(dtype):
    def infer(types, a):
        return [TensorType(types[0].shape, dtype)]

    return infer


def _broadcast(types, a):
    return [TensorType(broadcast_shapes(*(t.shape for t in types)), types[0].dtype)]


def _compare(types, a):
    return [TensorType(broadcast_shapes(*(t.shape for t in types)), "bool")]


def _where(types, a):
    return [TensorType(broadcast_shapes(*(t.shape for t in types)), types[1].dtype)]


def _reduce(types, a):
    t = types[0]
    axes = {_norm_axis(x, t.rank) for x in (a["axes"] if a["axes"] is not None else range(t.rank))}
    shape = [1 if i in axes else d for i, d in enumerate(t.shape) if a["keepdim"] or i not in axes]
    dtype = "bool" if a.get("kind") in ("any", "all") else t.dtype
    if a.get("kind") in ("argmax", "argmin"):
        dtype = "i64"
    return [TensorType(shape, dtype)]


def _reshape(types, a):
    t = types[0]
    shape = list(a["shape"])
    if t.is_static and -1 in shape:
        known = int(np.prod([d for d in shape if d != -1 and not is_symbolic(d)]))
        if any(is_symbolic(d) for d in shape):
            raise ValueError(f"reshape {t.shape} -> {tuple(shape)}: -1 next to a symbolic dim")
        shape[shape.index(-1)] = t.numel // max(known, 1)
    elif -1 in shape:  # the input's symbolic dims not named in the result, times the static ratio
        rest = [d for d in t.shape if is_symbolic(d)]
        for d in shape:
            if is_symbolic(d) and d in rest:
                rest.remove(d)
        known = int(np.prod([d for d in shape if d != -1 and not is_symbolic(d)]))
        size = int(np.prod([d for d in t.shape if not is_symbolic(d)]))
        dim = size // max(known, 1)
        for d in rest:
            dim = dim_mul(dim, d)
        shape[shape.index(-1)] = dim
    if t.is_static and int(np.prod(shape)) != t.numel:
        raise ValueError(f"reshape {t.shape} -> {tuple(shape)} changes the element count")
    return [TensorType(shape, t.dtype)]


def _permute(types, a):
    t = types[0]
    return [TensorType([t.shape[p] for p in a["perm"]], t.dtype)]


def _expand(types, a):
    t = types[0]
    shape = list(a["shape"])
    off = len(shape) - t.rank
    for i, d in enumerate(t.shape):
        if shape[off + i] == -1:
            shape[off + i] = d
    return [TensorType(shape, t.dtype)]


def _tile(types, a):
    t = types[0]
    reps = list(a["reps"])
    shape = [1] * (len(reps) - t.rank) + list(t.shape)
    reps = [1] * (len(shape) - len(reps)) + reps
    return [TensorType([dim_mul(d, r) for d, r in zip(shape, reps)], t.dtype)]


def _slice_len(dim, start, end, step):
    if is_symbolic(dim):  # static bounds on a run-time size (torch names the result; this is a stand-in)
        return f"len({dim}[{start}:{end}:{step}])"
    return len(range(*slice(start, end, step).indices(dim)))


def _slice(types, a):
    t = types[0]
    ax = _norm_axis(a["axis"], t.rank)
    shape = list(t.shape)
    shape[ax] = _slice_len(shape[ax], a["start"], a["end"], a["step"])
    return [TensorType(shape, t.dtype)]


def _concat(types, a):
    ax = _norm_axis(a["axis"], types[0].rank)
    shape = list(types[0].shape)
    total = 0
    for t in types:
        total = dim_add(total, t.shape[ax])
    shape[ax] = total
    return [TensorType(shape, types[0].dtype)]


def _pad(types, a):
    t = types[0]
    pads = list(a["pads"])  # per logical axis: (before, after) pairs, axis order
    shape = [dim_add(d, pads[2 * i] + pads[2 * i + 1]) for i, d in enumerate(t.shape)]
    return [TensorType(shape, t.dtype)]


def _matmul(types, a):
    x, y = types
    xs, ys = list(x.shape), list(y.shape)
    if len(xs) == 1:
        xs = [1] + xs
    if len(ys) == 1:
        ys = ys + [1]
    if xs[-1] != ys[-2] and not (is_symbolic(xs[-1]) or is_symbolic(ys[-2])):
        raise ValueError(f"matmul {x.shape} @ {y.shape}: inner dims differ")
    batch = broadcast_shapes(xs[:-2], ys[:-2])
    shape = list(batch) + [xs[-2], ys[-1]]
    if len(x.shape) == 1:
        shape.pop(-2)
    if len(y.shape) == 1:
        shape.pop(-1)
    return [TensorType(shape, x.dtype)]


def _linear(types, a):
    x, w = types[0], types[1]
    return [TensorType(list(x.shape[:-1]) + [w.shape[0]], x.dtype)]


def _conv_out(size, k, s, p_lo, p_hi, d):
    return dim_add(dim_floordiv(dim_add(size, p_lo + p_hi - d * (k - 1) - 1), s), 1)


def _conv(types, a):
    x, w = types[0], types[1]
    n = x.rank - 2
    pads = a["padding"]
    spatial = []
    for i in range(n):
        k = w.shape[2 + i]
        if a["transposed"]:
            size = dim_add(dim_mul(dim_sub(x.shape[2 + i], 1), a["stride"][i]),
                           - pads[2 * i] - pads[2 * i + 1] + a["dilation"][i] * (k - 1) + a["output_padding"][i] + 1)
        else:
            size = _conv_out(x.shape[2 + i], k, a["stride"][i], pads[2 * i], pads[2 * i + 1], a["dilation"][i])
        spatial.append(size)
    out_ch = w.shape[1] * a["groups"] if a["transposed"] else w.shape[0]
    return [TensorType([x.shape[0], out_ch, *spatial], x.dtype)]


def _pool_out(size, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    if is_symbolic(size):
        if ceil_mode:
            return f"pool_ceil({size}, {k}, {s}, {p}, {d})"  # a stand-in: torch names the result
        return dim_add(dim_floordiv(dim_add(size, 2 * p - eff), s), 1)
    if ceil_mode:
        out = -(-(size + 2 * p - eff) // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out
    return (size + 2 * p - eff) // s + 1


def _pool(types, a):
    x = types[0]
    n = len(a["kernel"])
    dil = a.get("dilation") or [1] * n
    spatial = [
        _pool_out(x.shape[x.rank - n + i], a["kernel"][i], a["stride"][i], a["padding"][i], dil[i], a["ceil_mode"])
        for i in range(n)
    ]
    return [TensorType([*x.shape[: x.rank - n], *spatial], x.dtype)]


def _adaptive(types, a):
    x = types[0]
    n = len(a["output_size"])
    return [TensorType([*x.shape[: x.rank - n], *a["output_size"]], x.dtype)]


def _upsample(types, a):
    x = types[0]
    n = len(a["size"])
    return [TensorType([*x.shape[: x.rank - n], *a["size"]], x.dtype)]


def _depth_to_space(types, a):
    n, c, h, w = types[0].shape
    r = a["block"]
    return [TensorType([n, dim_floordiv(c, r * r), dim_mul(h, r), dim_mul(w, r)], types[0].dtype)]


def _space_to_depth(types, a):
    n, c, h, w = types[0].shape
    r = a["block"]
    return [TensorType([n, dim_mul(c, r * r), dim_floordiv(h, r), dim_floordiv(w, r)], types[0].dtype)]


def _sdpa(types, a):
    q, v = types[0], types[2]
    return [TensorType([*q.shape[:-1], v.shape[-1]], q.dtype)]


def _gather(types, a):
    x, idx = types
    return [TensorType(idx.shape, x.dtype)]


def _index_select(types, a):
    x, idx = types
    ax = _norm_axis(a["axis"], x.rank)
    shape = list(x.shape[:ax]) + list(idx.shape) + list(x.shape[ax + 1:])
    return [TensorType(shape, x.dtype)]


def _embedding(types, a):
    w, idx = types
    return [TensorType([*idx.shape, w.shape[1]], w.dtype)]


def _topk(types, a):
    x = types[0]
    ax = _norm_axis(a["axis"], x.rank)
    shape = list(x.shape)
    shape[ax] = a["k"]
    return [TensorType(shape, x.dtype), TensorType(shape, "i64")]


def _constant(types, a):
    v = a["value"]  # an array, or an ElidedArray (values left out of an IR text): shape and dtype suffice
    if not (hasattr(v, "shape") and hasattr(v, "dtype")):  # a Python number or list
        v = np.asarray(v)
    from .types import dtype_from_numpy

    return [TensorType(v.shape, a.get("dtype") or dtype_from_numpy(v.dtype))]


# ----------------------------------------------------------------------------- the table

_define("input", [], None, "source", {"name": ("str",)}, doc="A graph input.")
_define("constant", [], _constant, "source", {"value": ("array",), "dtype": ("dtype", None)},
        doc="A constant tensor (weights live here, sharing memory with the torch parameter).")
_define("relayout", ["x"], _same, "relayout", {"perm": ("ints",)},
        doc="Physical transpose by `perm` (numpy semantics on the stored array); logically the identity.")

UNARY = [
    "neg", "abs", "exp", "expm1", "log", "log1p", "log2", "sqrt", "rsqrt", "sin", "cos", "tan",
    "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "sigmoid", "relu",
    "silu", "hardswish", "hardsigmoid", "erf", "floor", "ceil", "round", "trunc", "reciprocal",
    "sign", "bitwise_not", "mish", "square", "identity",
]
for _op in UNARY:
    _define(_op, ["x"], _same, "agnostic")
_define("logical_not", ["x"], _with_dtype("bool"), "agnostic")
_define("isnan", ["x"], _with_dtype("bool"), "agnostic")
_define("isinf", ["x"], _with_dtype("bool"), "agnostic")
_define("gelu", ["x"], _same, "agnostic", {"approximate": ("str", "none")})
_define("clamp", ["x"], _same, "agnostic", {"min": ("float", None), "max": ("float", None)})
_define("leaky_relu", ["x"], _same, "agnostic", {"slope": ("float", 0.01)})
_define("elu", ["x"], _same, "agnostic", {"alpha": ("float", 1.0), "scale": ("float", 1.0), "input_scale": ("float", 1.0)})
_define("softplus", ["x"], _same, "agnostic", {"beta": ("float", 1.0), "threshold": ("float", 20.0)})
_define("cast", ["x"], lambda t, a: [TensorType(t[0].shape, a["dtype"])], "agnostic", {"dtype": ("dtype",)})

BINARY = ["add", "sub", "mul", "div", "floor_divide", "remainder", "fmod", "pow", "maximum",
          "minimum", "atan2", "bitwise_and", "bitwise_or", "bitwise_xor"]
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"]
for _op in BINARY:
    _define(_op, ["x", "y"], _broadcast, "agnostic")
for _op in COMPARE:
    _define(_op, ["x", "y"], _compare, "agnostic")
_define("where", ["cond", "x", "y"], _where, "agnostic")

_define("softmax", ["x"], _same, "axis", {"axis": ("int",)})
_define("log_softmax", ["x"], _same, "axis", {"axis": ("int",)})
_define("cumsum", ["x"], _same, "axis", {"axis": ("int",)})
_define("flip", ["x"], _same, "axis", {"axes": ("ints",)})
_define("reduce", ["x"], _reduce, "axis",
        {"kind": ("str",), "axes": ("ints", None), "keepdim": ("bool", False)},
        doc="kind: sum | mean | max | min | prod | any | all")
_define("argreduce", ["x"], _reduce, "axis",
        {"kind": ("str",), "axes": ("ints",), "keepdim": ("bool", False)}, doc="kind: argmax | argmin")
_define("var", ["x"], _reduce, "axis",
        {"axes": ("ints", None), "correction": ("float", 1.0), "keepdim": ("bool", False)})
_define("slice", ["x"], _slice, "axis", {"axis": ("int",), "start": ("int",), "end": ("int",), "step": ("int", 1)})
_define("concat", ["*xs"], _concat, "axis", {"axis": ("int",)})
_define("pad", ["x"], _pad, "axis", {"pads": ("ints",), "mode": ("str", "constant"), "value": ("float", 0.0)},
        doc="pads: (before, after) per logical axis, in axis order; mode constant | reflect | replicate")
_define("slice_scatter", ["x", "src"], lambda t, a: [t[0].replace(layout=None)], "axis",
        {"axis": ("int",), "start": ("int",), "end": ("int",), "step": ("int", 1)},
        doc="x with x[axis-slice] replaced by src")

_define("reshape", ["x"], _reshape, "reshape", {"shape": ("ints",)})
_define("permute", ["x"], _permute, "permute", {"perm": ("ints",)})
_define("expand", ["x"], _expand, "fixed", {"shape": ("ints",)})
_define("tile", ["x"], _tile, "fixed", {"reps": ("ints",)})
_define("matmul", ["x", "y"], _matmul, "fixed")
_define("linear", ["x", "w", "b?"], _linear, "last_axis", doc="x @ w.T + b, weight in torch's [out, in] form")
_define("gather", ["x", "index"], _gather, "axis", {"axis": ("int",)},
        doc="torch.gather: out[i][j] = x[index[i][j]][j] along `axis` (index has x's rank)")
_define("index_select", ["x", "index"], _index_select, "axis", {"axis": ("int",)},
        doc="x[..., index, ...] along `axis`; keeps the rank for a 1-D index (the layout pass treats other "
            "index ranks as needing PyTorch order)")
_define("embedding", ["w", "index"], _embedding, "fixed")
_define("layer_norm", ["x", "w?", "b?"], _same, "last_axis", {"num_axes": ("int",), "eps": ("float", 1e-5)},
        doc="normalizes over the last `num_axes` axes")
_define("sdpa", ["q", "k", "v", "mask?"], _sdpa, "fixed", {"scale": ("float", None), "is_causal": ("bool", False)},
        doc="softmax(q @ k^T * scale + mask) @ v over the last two axes")
_define("topk", ["x"], _topk, "fixed", {"k": ("int",), "axis": ("int", -1), "largest": ("bool", True)}, num_outputs=2)

def _rnn(types, a):
    x, h0 = types[0], types[1]
    dirs = 2 if a["bidirectional"] else 1
    out = TensorType([*x.shape[:2], dirs * a["hidden_size"]], x.dtype)
    state = TensorType(h0.shape, x.dtype)
    return [out, state] + ([state] if a["mode"] == "lstm" else [])


_RNN = {"mode": ("str",), "hidden_size": ("int",), "num_layers": ("int", 1), "bidirectional": ("bool", False),
        "has_biases": ("bool", True), "batch_first": ("bool", True)}
_RNN_DOC = ("; x is [batch, time, features] (batch_first) or [time, batch, features]; states [layers * directions, "
            "batch, hidden]; weights per layer and direction: w_ih, w_hh[, b_ih, b_hh] in torch's form")
_define("gru", ["x", "h0", "*weights"], _rnn, "fixed", _RNN, num_outputs=2,
        doc="torch's GRU (gates r, z, n)" + _RNN_DOC)
_define("lstm", ["x", "h0", "c0", "*weights"], _rnn, "fixed", _RNN, num_outputs=3,
        doc="torch's LSTM (gates i, f, g, o)" + _RNN_DOC)
_define("rnn", ["x", "h0", "*weights"], _rnn, "fixed", {**_RNN, "nonlinearity": ("str", "tanh")}, num_outputs=2,
        doc="torch's Elman RNN, h' = nonlinearity(x w_ih^T + b_ih + h w_hh^T + b_hh) (tanh or relu)" + _RNN_DOC)

_CONV_ATTRS = {
    "stride": ("ints",), "padding": ("ints",), "dilation": ("ints",), "groups": ("int", 1),
    "transposed": ("bool", False), "output_padding": ("ints", None),
}
_define("conv", ["x", "w", "b?"], _conv, "channel", _CONV_ATTRS,
        doc="N-d convolution; w in torch's layout; padding: (before, after) per spatial axis")
_define("batch_norm", ["x", "mean", "var", "w?", "b?"], _same, "channel", {"eps": ("float", 1e-5)})
_define("group_norm", ["x", "w?", "b?"], _same, "channel", {"groups": ("int",), "eps": ("float", 1e-5)})
_POOL = {"kernel": ("ints",), "stride": ("ints",), "padding": ("ints",), "ceil_mode": ("bool", False)}
_define("max_pool", ["x"], _pool, "channel", {**_POOL, "dilation": ("ints", None)})
_define("avg_pool", ["x"], _pool, "channel",
        {**_POOL, "count_include_pad": ("bool", True), "divisor_override": ("int", None)})
_define("adaptive_avg_pool", ["x"], _adaptive, "channel", {"output_size": ("ints",)})
_define("adaptive_max_pool", ["x"], _adaptive, "channel", {"output_size": ("ints",)})
_define("upsample", ["x"], _upsample, "channel",
        {"size": ("ints",), "mode": ("str", "nearest"), "align_corners": ("bool", False)},
        doc="mode: nearest | bilinear | bicubic; size: the output's spatial size")
_define("depth_to_space", ["x"], _depth_to_space, "channel", {"block": ("int",)},
        doc="TensorFlow's depth_to_space on NCHW-logical x: input channel (i * block + j) * C + c "
            "moves to output (c, h * block + i, w * block + j); pixel_shuffle is this after a channel permutation")
_define("space_to_depth", ["x"], _space_to_depth, "channel", {"block": ("int",)},
        doc="TensorFlow's space_to_depth (the inverse of depth_to_space)")


def is_float_type(t: TensorType) -> bool:
    return is_float(t.dtype)


# ----------------------------------------------------------------------------- more ops
# (coverage of the Core ATen opset; new ops are "fixed" unless purely elementwise)

MORE_UNARY = ["erfc", "erfinv", "exp2", "log10", "lgamma", "digamma", "i0"]
MORE_BINARY = ["copysign", "fmax", "fmin", "hypot", "nextafter", "igamma", "igammac", "gcd", "lcm",
               "bitwise_left_shift", "bitwise_right_shift"]
for _op in MORE_UNARY:
    _define(_op, ["x"], _same, "agnostic")
for _op in MORE_BINARY:
    _define(_op, ["x", "y"], _broadcast, "agnostic")
_define("signbit", ["x"], _with_dtype("bool"), "agnostic", doc="the sign bit (True for -0.0)")
_define("polygamma", ["x"], _same, "agnostic", {"n": ("int",)}, doc="the n-th derivative of digamma")


def _sort(types, a):
    x = types[0]
    _norm_axis(a["axis"], x.rank)
    return [x.replace(layout=None), TensorType(x.shape, "i64")]


def _cumulative_extreme(types, a):
    x = types[0]
    _norm_axis(a["axis"], x.rank)
    return [x.replace(layout=None), TensorType(x.shape, "i64")]


_define("sort", ["x"], _sort, "axis", {"axis": ("int",), "descending": ("bool", False)}, num_outputs=2,
        doc="sorted values and their indices along `axis` (ties keep their order)")
_define("cumulative", ["x"], _same, "axis", {"axis": ("int",), "kind": ("str",)},
        doc="inclusive scan along `axis`; kind: prod | logsumexp")
_define("cumulative_extreme", ["x"], _cumulative_extreme, "axis", {"axis": ("int",), "kind": ("str",)}, num_outputs=2,
        doc="running max/min along `axis` and the index where it was (the last one on ties, as torch)")
_define("scatter_flat", ["x", "index", "src"], lambda t, a: [t[0].replace(layout=None)], "fixed",
        {"reduce": ("str", "none"), "include_self": ("bool", True)},
        doc="x flattened, with element index[i] combined with src[i] (index and src of one shape; index "
            "counts in x's row-major order); reduce: none (the last write wins) | sum | prod | amax | amin | "
            "mean; include_self: whether x's own value takes part in the reduction")


def _grid_sample(types, a):
    x, grid = types
    return [TensorType([x.shape[0], x.shape[1], *grid.shape[1:-1]], x.dtype)]


_define("grid_sample", ["x", "grid"], _grid_sample, "fixed",
        {"mode": ("str", "bilinear"), "padding_mode": ("str", "zeros"), "align_corners": ("bool", False)},
        doc="torch's grid_sample on NC[D]HW x with an N[D]HW2/3 grid of (x, y[, z]) in [-1, 1]")

# ----------------------------------------------------------------------------- user converters
# (torch2keras/converters.py) -- result types are given by the lowering; as many results as the
# converted call returns (num_outputs=None). layout: "channels_last" | "torch" | "any".
_define("custom", ["*xs"], None, "custom",
        {"converter": ("str",), "layout": ("str", "torch"), "params": ("any", None)}, num_outputs=None,
        doc="a call converted by a user converter (torch2keras.converter); params: JSON-able call info")

# ----------------------------------------------------------------------------- control flow
# Ops owning regions: attributes of kind "graph" hold sub-graphs whose inputs are (some of) the
# node's operands; ``ir/regions.py`` states each op's region signatures and result types.
# Layout class "region": the layout pass stores operands and results as it sees fit (channels-last
# around branches of convs, say) and pins each region's inputs and outputs to the same layouts.


def _region_results(op):
    def infer(types, a):
        from .regions import result_types

        return result_types(op, types, a)

    return infer


_define("cond", ["pred", "*operands"], _region_results("cond"), "region",
        {"then_branch": ("graph",), "else_branch": ("graph",)}, num_outputs=None,
        doc="then_branch(*operands) if pred (a bool scalar) else else_branch(*operands)")
_define("while_loop", ["*operands"], _region_results("while_loop"), "region",
        {"cond_fn": ("graph",), "body_fn": ("graph",), "num_carried": ("int",)}, num_outputs=None,
        doc="carried = body_fn(*carried, *extra) while cond_fn(*carried, *extra); the first num_carried operands "
            "are carried, the rest passed unchanged to every iteration")
_define("scan", ["*operands"], _region_results("scan"), "region",
        {"combine_fn": ("graph",), "num_init": ("int",), "num_xs": ("int",)}, num_outputs=None,
        doc="carry, y[i] = combine_fn(*carry, *(x[i] for x in xs), *extra) over axis 0 of the xs; operands: "
            "num_init initial carries, num_xs scanned tensors, extra inputs; results: final carries, stacked ys")
_define("map", ["*operands"], _region_results("map"), "region",
        {"body_fn": ("graph",), "num_xs": ("int",)}, num_outputs=None,
        doc="y[i] = body_fn(*(x[i] for x in xs), *extra) over axis 0 of the first num_xs operands; results: the "
            "stacked ys")

# ----------------------------------------------------------------------------- state
# (buffers that forward() mutates; see ir/state.py) -- a call reads every state once, as it was
# when the call started, and writes its new value for the next call.
_define("state", [], _constant, "source", {"name": ("str",), "value": ("array",), "dtype": ("dtype", None)},
        doc="the value a state (a mutated buffer, by qualified name) holds when the call starts; "
            "`value` is its initial value")
_define("state_update", ["value"], lambda t, a: [], "state", {"name": ("str",)}, num_outputs=0, effect=True,
        doc="stores `value` (stored in the state's own layout) as state `name`'s value for the next call")
