"""More physical-tensor op implementations for ``TorchOp`` (registered into ``kops.KOPS``).

Like ``kops``, this module must not import torch. Functions take tensors in their stored layout
and physical axis parameters. Special functions without a Keras op (lgamma, digamma,
polygamma) are computed from series that keep float32 accuracy, so that they also convert
to plain TFLite builtins.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from .kops import KOPS

__all__: list[str] = []

# ----------------------------------------------------------------------------- special functions

_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7)


def _dtype(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def _is_int(x) -> bool:
    return "int" in _dtype(x) or _dtype(x) == "bool"


def _frac(x):
    """x - floor(x): exact in floating point, so sin/tan(pi * frac) keep their accuracy."""
    return x - ops.floor(x)


def _lgamma_right(z):
    """log|Gamma(z)| for z >= 0.5 (Lanczos, g = 7)."""
    z = z - 1.0
    a = ops.ones_like(z) * _LANCZOS[0]
    for i in range(1, 9):
        a = a + _LANCZOS[i] / (z + float(i))
    t = z + 7.5
    return 0.5 * math.log(2 * math.pi) + (z + 0.5) * ops.log(t) - t + ops.log(a)


def _lgamma(x):
    reflect = x < 0.5
    y = ops.where(reflect, 1.0 - x, x)
    lg = _lgamma_right(y)
    s = ops.abs(ops.sin(math.pi * _frac(x)))
    out = ops.where(reflect, math.log(math.pi) - ops.log(s) - lg, lg)
    pole = ops.logical_and(x <= 0, ops.equal(x, ops.floor(x)))
    return ops.where(ops.logical_or(pole, ops.isinf(x)), ops.full_like(x, np.inf), out)


def _digamma_right(y):
    """digamma(y) for y >= 0.5: the recurrence up by 6, then the asymptotic series."""
    acc = ops.zeros_like(y)
    for i in range(6):
        acc = acc + 1.0 / (y + float(i))
    z = y + 6.0
    iz2 = 1.0 / (z * z)
    series = iz2 * (1.0 / 12 - iz2 * (1.0 / 120 - iz2 * (1.0 / 252 - iz2 * (1.0 / 240 - iz2 * (1.0 / 132)))))
    return ops.log(z) - 0.5 / z - series - acc


def _digamma(x):
    reflect = x < 0.5
    y = ops.where(reflect, 1.0 - x, x)
    psi = _digamma_right(y)
    angle = math.pi * _frac(x)
    cot = math.pi * ops.cos(angle) / ops.sin(angle)  # (TFLite has no TAN)
    out = ops.where(reflect, psi - cot, psi)
    pole = ops.logical_and(x < 0, ops.equal(x, ops.floor(x)))
    out = ops.where(pole, ops.full_like(x, np.nan), out)
    out = ops.where(ops.equal(x, 0.0), ops.full_like(x, -np.inf), out)
    return ops.where(ops.equal(x, np.inf), x, out)


_BERNOULLI = (1.0 / 6, -1.0 / 30, 1.0 / 42, -1.0 / 30, 5.0 / 66, -691.0 / 2730, 7.0 / 6)


def _polygamma(x, n):
    """psi^(n)(x) = (-1)^(n+1) n! zeta(n+1, x): the recurrence up by 20, then Euler-Maclaurin."""
    if n == 0:
        return _digamma(x)
    shift = 20
    s = ops.zeros_like(x)
    for k in range(shift):
        s = s + ops.power(x + float(k), -float(n + 1))
    z = x + float(shift)
    tail = ops.power(z, -float(n)) / n + 0.5 * ops.power(z, -float(n + 1))
    for j, b in enumerate(_BERNOULLI, 1):
        coef = b * math.factorial(n + 2 * j - 1) / (math.factorial(2 * j) * math.factorial(n))
        tail = tail + coef * ops.power(z, -float(n + 2 * j))
    sign = 1.0 if n % 2 == 1 else -1.0
    out = sign * math.factorial(n) * (s + tail)
    pole = ops.logical_and(x <= 0, ops.equal(x, ops.floor(x)))
    return ops.where(pole, ops.full_like(x, np.inf if n % 2 == 1 else -np.inf), out)


def _tf():
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError("this op needs the TensorFlow backend")
    import tensorflow as tf

    return tf


def _gammainc(a, x, upper: bool):
    """Regularized incomplete gamma P(a, x) (Q with ``upper``): the backend's own kernel (Keras
    has no op; TFLite has no builtin, so TFLite files keep it as a Flex op)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        tf = _tf()
        return (tf.math.igammac if upper else tf.math.igamma)(a, x)
    if backend == "jax":
        import jax.scipy.special as special

        return (special.gammaincc if upper else special.gammainc)(a, x)
    if backend == "torch":
        import torch

        return (torch.special.gammaincc if upper else torch.special.gammainc)(a, x)
    raise NotImplementedError(f"the incomplete gamma function has no kernel on the {backend} backend")


def _copysign(x, y):
    negative = ops.logical_or(y < 0, ops.logical_and(ops.equal(y, 0), 1.0 / y < 0))
    return ops.where(negative, -ops.abs(x), ops.abs(x))


def _nan_extreme(fn):
    def extreme(x, y):  # fmax/fmin: a NaN loses against a number
        out = fn(x, y)
        if _is_int(x):
            return out
        return ops.where(ops.isnan(x), y, ops.where(ops.isnan(y), x, out))

    return extreme


# ----------------------------------------------------------------------------- sorting and scans


def _sort(x, axis, descending):
    key = ops.cast(x, "int32") if _dtype(x) in ("bool", "uint8", "int8", "int16") else x
    if descending:
        key = -key
    index = ops.argsort(key, axis=axis)
    return ops.take_along_axis(x, index, axis=axis), ops.cast(index, "int64")


def _positions(x, axis):
    n = x.shape[axis]
    shape = [1] * len(x.shape)
    shape[axis] = n
    return ops.reshape(ops.arange(n, dtype="int32"), shape)


def _shifted(x, axis, k):
    """x moved k places towards higher indices along axis (the first k places repeat x[0])."""
    n = x.shape[axis]
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(0, n - k)
    head = [slice(None)] * len(x.shape)
    head[axis] = slice(0, k)
    return ops.concatenate([x[tuple(head)], x[tuple(index)]], axis=axis)


def _scan(values, axis, combine):
    """Inclusive scan (Hillis-Steele, log2(n) steps) of ``combine(earlier, later)`` over a tuple."""
    n = values[0].shape[axis]
    pos = _positions(values[0], axis)
    k = 1
    while k < n:
        earlier = tuple(_shifted(v, axis, k) for v in values)
        merged = combine(earlier, values)
        has = pos >= k
        values = tuple(ops.where(has, m, v) for m, v in zip(merged, values))
        k *= 2
    return values


def _logaddexp(a, b):
    m = ops.maximum(a, b)
    out = m + ops.log1p(ops.exp(-ops.abs(a - b)))
    return ops.where(ops.equal(m, -np.inf), m, ops.where(ops.isinf(m), m, out))


def _cumulative(x, axis, kind):
    if kind == "prod":
        return ops.cumprod(x, axis=axis)
    if kind == "logsumexp":
        return _scan((x,), axis, lambda e, l: (_logaddexp(e[0], l[0]),))[0]
    raise ValueError(kind)


def _cumulative_extreme(x, axis, kind):
    index = ops.broadcast_to(_positions(x, axis), x.shape)
    floating = not _is_int(x)

    def combine(earlier, later):
        (a, ia), (b, ib) = earlier, later
        take_later = b >= a if kind == "max" else b <= a
        if floating:
            take_later = ops.logical_or(ops.isnan(b), ops.logical_and(ops.logical_not(ops.isnan(a)), take_later))
        return ops.where(take_later, b, a), ops.where(take_later, ib, ia)

    values, index = _scan((x, index), axis, combine)
    return values, ops.cast(index, "int64")


# ----------------------------------------------------------------------------- scatter


def _scatter_flat(x, index, src, reduce, include_self):
    shape = tuple(x.shape)
    n = int(np.prod(shape)) if shape else 1
    xf = ops.reshape(x, (n,))
    src = ops.broadcast_to(src, tuple(index.shape)) if tuple(src.shape) != tuple(index.shape) else src
    ids = ops.reshape(ops.cast(index, "int32"), (-1,))
    u = ops.reshape(ops.cast(src, x.dtype), (-1,))
    m = ids.shape[0]
    kind = _dtype(x)
    work = "int32" if kind == "bool" else kind
    xw, uw = ops.cast(xf, work), ops.cast(u, work)
    count = ops.segment_sum(ops.ones((m,), "int32"), ids, num_segments=n)
    touched = count > 0
    if reduce == "none":
        last = ops.segment_max(ops.arange(m, dtype="int32"), ids, num_segments=n)
        out = ops.where(touched, ops.take(uw, ops.maximum(last, 0)), xw)
    elif reduce == "sum":
        s = ops.segment_sum(uw, ids, num_segments=n)
        out = xw + s if include_self else ops.where(touched, s, xw)
    elif reduce == "prod":
        s = ops.segment_prod(uw, ids, num_segments=n)
        out = xw * s if include_self else ops.where(touched, s, xw)
    elif reduce in ("amax", "amin"):
        seg, pick = (ops.segment_max, ops.maximum) if reduce == "amax" else (ops.segment_min, ops.minimum)
        s = seg(uw, ids, num_segments=n)
        out = ops.where(touched, pick(xw, s) if include_self else s, xw)
    elif reduce == "mean":
        s = ops.segment_sum(uw, ids, num_segments=n)
        c = count + (1 if include_self else 0)
        total = s + xw if include_self else s
        c = ops.cast(ops.maximum(c, 1), work)
        mean = ops.floor_divide(total, c) if _is_int(xw) else total / c
        out = ops.where(touched, mean, xw)
    else:
        raise ValueError(f"unknown scatter reduction {reduce!r}")
    return ops.reshape(ops.cast(out, kind), shape)


# ----------------------------------------------------------------------------- grid_sample


def _reflect(c, twice_low, twice_high):
    if twice_low == twice_high:
        return ops.zeros_like(c)
    low = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    c = ops.abs(c - low)
    extra = c - ops.floor(c / span) * span
    flips = ops.floor(c / span)
    even = ops.equal(flips - 2.0 * ops.floor(flips / 2.0), 0.0)
    return ops.where(even, extra + low, span - extra + low)


def _pad_coord(c, size, padding_mode, align_corners):
    if padding_mode == "border":
        return ops.clip(c, 0.0, float(size - 1))
    if padding_mode == "reflection":
        c = _reflect(c, 0, 2 * (size - 1)) if align_corners else _reflect(c, -1, 2 * size - 1)
        return ops.clip(c, 0.0, float(size - 1))
    return c


def _cubic_weights(t, a=-0.75):
    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _grid_sample(x, grid, mode, padding_mode, align_corners):
    n, c = x.shape[0], x.shape[1]
    spatial = tuple(x.shape[2:])
    nd = len(spatial)
    out_spatial = tuple(grid.shape[1:-1])
    p = int(np.prod(out_spatial))
    g = ops.reshape(grid, (n, p, nd))
    flat = ops.reshape(x, (n, c, int(np.prod(spatial))))
    strides = [int(np.prod(spatial[d + 1:])) for d in range(nd)]

    def unnormalize(d):
        size = spatial[d]
        coord = g[:, :, nd - 1 - d]  # the grid's last axis is (x, y[, z]) = (W, H[, D])
        if align_corners:
            return (coord + 1.0) / 2.0 * (size - 1)
        return ((coord + 1.0) * size - 1.0) / 2.0

    def fetch(index):  # integer-valued float coordinates per axis, each [n, p] -> values [n, c, p]
        valid = None
        linear = None
        for d, i in enumerate(index):
            ok = ops.logical_and(i >= 0, i <= spatial[d] - 1)
            valid = ok if valid is None else ops.logical_and(valid, ok)
            i = ops.cast(ops.clip(i, 0, spatial[d] - 1), "int32") * strides[d]
            linear = i if linear is None else linear + i
        idx = ops.broadcast_to(ops.expand_dims(linear, 1), (n, c, p))
        vals = ops.take_along_axis(flat, idx, axis=2)
        return ops.where(ops.expand_dims(valid, 1), vals, ops.zeros_like(vals))

    if mode == "bicubic":
        if nd != 2:
            raise ValueError("bicubic grid sampling is 2-D only")
        coords = [unnormalize(d) for d in range(nd)]
        base = [ops.floor(cd) for cd in coords]
        weights = [_cubic_weights(cd - b) for cd, b in zip(coords, base)]
        out = None
        for i in range(4):
            for j in range(4):
                yy = _pad_coord(base[0] + (i - 1), spatial[0], padding_mode, align_corners)
                xx = _pad_coord(base[1] + (j - 1), spatial[1], padding_mode, align_corners)
                term = fetch([yy, xx]) * ops.expand_dims(weights[0][i] * weights[1][j], 1)
                out = term if out is None else out + term
    else:
        coords = [_pad_coord(unnormalize(d), spatial[d], padding_mode, align_corners) for d in range(nd)]
        if mode == "nearest":
            out = fetch([ops.round(cd) for cd in coords])
        else:  # bilinear (trilinear for 3-D)
            lows = [ops.floor(cd) for cd in coords]
            fracs = [cd - lo for cd, lo in zip(coords, lows)]
            out = None
            for corner in range(2 ** nd):
                bits = [(corner >> (nd - 1 - d)) & 1 for d in range(nd)]
                w = None
                for d, bit in enumerate(bits):
                    wd = fracs[d] if bit else 1.0 - fracs[d]
                    w = wd if w is None else w * wd
                term = fetch([lo + b for lo, b in zip(lows, bits)]) * ops.expand_dims(w, 1)
                out = term if out is None else out + term
    return ops.reshape(out, (n, c, *out_spatial))


# ----------------------------------------------------------------------------- convolution (weights as tensors)


def _dilate_zeros(x, axis, factor):
    """Insert factor - 1 zeros between the elements of x along axis."""
    if factor == 1:
        return x
    parts = [ops.expand_dims(x, axis + 1)] + [ops.expand_dims(ops.zeros_like(x), axis + 1)] * (factor - 1)
    y = ops.concatenate(parts, axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = shape[axis] * factor
    y = ops.reshape(y, shape)
    index = [slice(None)] * len(shape)
    index[axis] = slice(0, (x.shape[axis] - 1) * factor + 1)
    return y[tuple(index)]


def _pad_or_crop(x, pads):
    """pads: (before, after) per axis; negative values crop."""
    grow = [[max(lo, 0), max(hi, 0)] for lo, hi in pads]
    if any(p for pair in grow for p in pair):
        x = ops.pad(x, grow)
    index = tuple(slice(max(-lo, 0), x.shape[i] - max(-hi, 0)) for i, (lo, hi) in enumerate(pads))
    return x[index]


def _integer_conv(x, kernel, strides, dilation):
    """Convolution of integer tensors (no integer conv kernels in TF): gather the patches, then
    an integer matmul -- exact, with torch's wrap-around on overflow."""
    n = len(x.shape) - 2
    spatial, k = tuple(x.shape[1:-1]), tuple(kernel.shape[:n])
    c, o = x.shape[-1], kernel.shape[-1]
    out = [(spatial[d] - dilation[d] * (k[d] - 1) - 1) // strides[d] + 1 for d in range(n)]
    ids = np.zeros((1, 1), np.int64)
    for d in range(n):
        pos = np.arange(out[d])[:, None] * strides[d] + np.arange(k[d])[None, :] * dilation[d]
        ids = (ids[:, None, :, None] * spatial[d] + pos[None, :, None, :]).reshape(ids.shape[0] * out[d], -1)
    flat = ops.reshape(x, (x.shape[0], int(np.prod(spatial)), c))
    patches = ops.take(flat, ops.convert_to_tensor(ids.astype(np.int32)), axis=1)  # [N, P, K, C]
    patches = ops.reshape(patches, (x.shape[0], ids.shape[0], ids.shape[1] * c))
    y = ops.matmul(patches, ops.reshape(kernel, (ids.shape[1] * c, o)))
    return ops.reshape(y, (x.shape[0], *out, o))


def _conv_one(x, kernel, strides, dilation):
    if _is_int(x):
        return _integer_conv(x, kernel, strides, dilation)
    if any(s > 1 for s in strides) and any(d > 1 for d in dilation):  # TF takes one or the other:
        y = ops.conv(x, kernel, strides=1, padding="valid", dilation_rate=dilation)  # subsample after
        return y[(slice(None), *(slice(None, None, s) for s in strides), slice(None))]
    return ops.conv(x, kernel, strides=strides, padding="valid", dilation_rate=dilation)


def _conv_groups(x, kernel, groups, strides, dilation):
    if groups == 1:
        return _conv_one(x, kernel, strides, dilation)
    xs = ops.split(x, groups, axis=-1)
    ks = ops.split(kernel, groups, axis=-1)
    return ops.concatenate([_conv_one(a, k, strides, dilation) for a, k in zip(xs, ks)], axis=-1)


def _conv_dynamic(x, w, b=None, *, stride, padding, dilation, groups, transposed, output_padding):
    """N-d convolution of channels-last x with a torch-layout weight tensor (the weights are computed
    by the model, so no Keras layer can hold them). Transposed convolution is a convolution of the
    zero-dilated input with the flipped kernel."""
    n = len(x.shape) - 2
    spatial_w = list(range(2, 2 + n))
    if not transposed:
        kernel = ops.transpose(w, (*spatial_w, 1, 0))  # [O, I/g, *k] -> [*k, I/g, O]
        x = _pad_or_crop(x, [(0, 0)] + [(padding[2 * i], padding[2 * i + 1]) for i in range(n)] + [(0, 0)])
        y = _conv_groups(x, kernel, groups, tuple(stride), tuple(dilation))
    else:
        cin = w.shape[0]
        cout_g = w.shape[1]
        k = w.shape[2:]
        # [I, O/g, *k] -> per group [O/g, I/g, *k] stacked as [O, I/g, *k], spatially flipped
        wg = ops.reshape(w, (groups, cin // groups, cout_g, *k))
        wg = ops.transpose(wg, (0, 2, 1, *range(3, 3 + n)))
        wg = ops.reshape(wg, (groups * cout_g, cin // groups, *k))
        wg = ops.flip(wg, axis=tuple(spatial_w)) if n > 1 else ops.flip(wg, axis=2)
        kernel = ops.transpose(wg, (*spatial_w, 1, 0))
        for i in range(n):
            x = _dilate_zeros(x, 1 + i, stride[i])
        pads = [(0, 0)]
        for i in range(n):
            edge = dilation[i] * (k[i] - 1)
            pads.append((edge - padding[2 * i], edge - padding[2 * i + 1] + output_padding[i]))
        x = _pad_or_crop(x, pads + [(0, 0)])
        y = _conv_groups(x, kernel, groups, (1,) * n, tuple(dilation))
    if b is not None:
        y = y + b
    return y


KOPS.update({
    "erfc": ops.erfc, "erfinv": ops.erfinv, "exp2": ops.exp2, "log10": ops.log10, "i0": ops.i0,
    "lgamma": _lgamma, "digamma": _digamma, "polygamma": _polygamma, "signbit": ops.signbit,
    "copysign": _copysign, "fmax": _nan_extreme(ops.maximum), "fmin": _nan_extreme(ops.minimum),
    "hypot": ops.hypot, "nextafter": ops.nextafter, "gcd": ops.gcd, "lcm": ops.lcm,
    "igamma": lambda x, y: _gammainc(x, y, upper=False), "igammac": lambda x, y: _gammainc(x, y, upper=True),
    "bitwise_left_shift": ops.left_shift, "bitwise_right_shift": ops.right_shift,
    "sort": _sort, "cumulative": _cumulative, "cumulative_extreme": _cumulative_extreme,
    "scatter_flat": _scatter_flat, "grid_sample": _grid_sample, "conv_dynamic": _conv_dynamic,
})
