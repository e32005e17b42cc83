"""Shape and data-movement ops: reshape, permute, relayout, expand, tile, slice, concat, pad,
flip and slice_scatter."""

from __future__ import annotations

import numpy as np

from ..symbolic import dim_add, dim_mul, is_symbolic
from ..types import TensorType
from .common import norm_axis, same, take_slice
from .schema import define

FAMILY = "shape"

# The most outputs of a SPLIT and inputs of a CONCATENATION LiteRT's XNNPACK delegate (its default
# CPU path) takes: passes that make slices and concatenations, and the TFLite writer, keep within
# them (an op beyond them runs on LiteRT's own kernel, and the delegated graph is cut around it).
XNNPACK_SPLIT_MAX_PIECES = 4
XNNPACK_CONCAT_MAX_INPUTS = 5


def concat_tree(parts: list, join):
    """``parts`` joined by ``join`` (concatenating a list of 2 to ``XNNPACK_CONCAT_MAX_INPUTS``
    of them, in order) into one: a single join, or a tree of them where there are more."""
    size = XNNPACK_CONCAT_MAX_INPUTS
    while len(parts) > 1:
        parts = [join(parts[k:k + size]) if len(parts) - k > 1 else parts[k] for k in range(0, len(parts), size)]
    return parts[0]


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


def slice_len(dim, start, end, step):
    """The length of ``dim[start:end:step]`` (a stand-in expression for a symbolic dim)."""
    if is_symbolic(dim):  # static bounds on a run-time size (torch names the result; this is a stand-in)
        return f"len({dim}[{start}:{end}:{step}])"
    return len(range(*slice(start, end, step).indices(dim)))


def _slice(types, a):
    t = types[0]
    ax = norm_axis(a["axis"], t.rank)
    shape = list(t.shape)
    shape[ax] = slice_len(shape[ax], a["start"], a["end"], a["step"])
    return [TensorType(shape, t.dtype)]


def _concat(types, a):
    ax = norm_axis(a["axis"], types[0].rank)
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


def _expand_ref(x, shape):
    lead = (1,) * (len(shape) - x.ndim) + x.shape
    return np.broadcast_to(x, [s if d == -1 else d for d, s in zip(shape, lead)])


_NUMPY_PAD = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


def _pad_ref(x, pads, mode, value):
    pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(x.ndim)]
    if mode == "constant":
        return np.pad(x, pairs, constant_values=value)
    return np.pad(x, pairs, mode=_NUMPY_PAD[mode])


def _slice_scatter(x, src, axis, start, end, step):
    out = np.array(x, copy=True)
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, end, step)
    out[tuple(index)] = src
    return out


define("relayout", FAMILY, ["x"], same, "relayout", {"perm": ("ints",)}, reference=lambda x, perm: x,
       tflite=("TRANSPOSE",),
       doc="Physical transpose by `perm` (numpy semantics on the stored array); logically the identity.")
define("reshape", FAMILY, ["x"], _reshape, "reshape", {"shape": ("ints",)}, dim_attrs=("shape",),
       reference=lambda x, shape: x.reshape(shape), tflite=("RESHAPE",))
define("permute", FAMILY, ["x"], _permute, "permute", {"perm": ("ints",)},
       reference=lambda x, perm: np.transpose(x, perm), tflite=("TRANSPOSE",))
define("expand", FAMILY, ["x"], _expand, "fixed", {"shape": ("ints",)}, dim_attrs=("shape",), reference=_expand_ref,
       tflite=("BROADCAST_TO",))
define("tile", FAMILY, ["x"], _tile, "fixed", {"reps": ("ints",)}, dim_attrs=("reps",),
       reference=lambda x, reps: np.tile(x, reps), tflite=("TILE",))
define("slice", FAMILY, ["x"], _slice, "axis",
       {"axis": ("int",), "start": ("int",), "end": ("int",), "step": ("int", 1)}, reference=take_slice,
       tflite=("STRIDED_SLICE", "SLICE"))
define("concat", FAMILY, ["*xs"], _concat, "axis", {"axis": ("int",)},
       reference=lambda *xs, axis: np.concatenate(xs, axis=axis), tflite=("CONCATENATION",))
define("pad", FAMILY, ["x"], _pad, "axis", {"pads": ("ints",), "mode": ("str", "constant"), "value": ("float", 0.0)},
       reference=_pad_ref, tflite=("PAD", "PADV2", "MIRROR_PAD"),
       doc="pads: (before, after) per logical axis, in axis order; mode constant | reflect | replicate")
define("flip", FAMILY, ["x"], same, "axis", {"axes": ("ints",)}, reference=lambda x, axes: np.flip(x, axis=axes),
       tflite=("REVERSE_V2",))
define("slice_scatter", FAMILY, ["x", "src"], lambda t, a: [t[0].replace(layout=None)], "axis",
       {"axis": ("int",), "start": ("int",), "end": ("int",), "step": ("int", 1)}, reference=_slice_scatter,
       doc="x with x[axis-slice] replaced by src")
