"""The op kinds the generator draws from: each draws its operands and arguments and returns the
expression (a ``Candidate``); PyTorch then decides whether the draw is valid.

Families: elementwise math, activations, comparisons and integer ops, reductions, cumulative
ops, sort/topk, shape ops, indexing/gather, convolutions and transposed convolutions 1-3d,
pooling, norms, linear layers, attention, embeddings, recurrent layers, padding, interpolation.
Discontinuous ops (floor, comparisons, integer division, argmax, sort indices) only take values
both frameworks compute exactly (``Value.exact`` / ``Value.distinct``): a 1e-7 difference
upstream would otherwise flip their result and the fuzzer would report noise.
"""

from __future__ import annotations

from typing import Callable

from .draw import Candidate, Draw, NoFit, Value

__all__ = ["CATALOGUE", "FAMILIES"]

CATALOGUE: dict[str, Callable[[Draw], Candidate]] = {}
FAMILIES: dict[str, str] = {}  # kind -> family


def op(family: str, *names: str):
    def register(fn):
        for name in names or (fn.__name__.removeprefix("op_"),):
            CATALOGUE[name] = (lambda d, fn=fn, name=name: fn(d, name)) if names else (lambda d, fn=fn: fn(d))
            FAMILIES[name] = family
        return fn
    return register


def _second(d: Draw, a: Value, exact: bool = False) -> tuple[str, list[Value]]:
    """The second operand of a broadcasting binary op: another value, a constant or a scalar."""
    roll = d.r.random()
    if roll < 0.45:
        try:
            b = d.float(exact=exact, ok=lambda v: v is not a and _broadcasts(v.shape, a.shape))
            return "{1}", [b]
        except NoFit:
            pass
    if roll < 0.85 and a.rank > 0 and not exact:
        return d.const(d.broadcast_shape(a.shape)), []
    return repr(round(float(d.r.uniform(-2, 2)), 3) if not exact else float(d.int(1, 3))), []


def _broadcasts(s: tuple, t: tuple) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(s), reversed(t))) and len(s) <= len(t) + 1


# ----------------------------------------------------------------------------- elementwise
_UNARY = {
    "relu": ("torch.relu({0})", True), "relu6": ("F.relu6({0})", False), "leaky_relu": ("F.leaky_relu({0}, 0.1)", False),
    "elu": ("F.elu({0})", False), "selu": ("F.selu({0})", False), "celu": ("F.celu({0}, 0.7)", False),
    "gelu": ("F.gelu({0})", False), "gelu_tanh": ("F.gelu({0}, approximate='tanh')", False),
    "silu": ("F.silu({0})", False), "mish": ("F.mish({0})", False), "sigmoid": ("torch.sigmoid({0})", False),
    "tanh": ("torch.tanh({0})", False), "hardswish": ("F.hardswish({0})", False),
    "hardsigmoid": ("F.hardsigmoid({0})", False), "hardtanh": ("F.hardtanh({0}, -0.5, 1.5)", False),
    "softplus": ("F.softplus({0})", False), "softsign": ("F.softsign({0})", False),
    "logsigmoid": ("F.logsigmoid({0})", False), "tanhshrink": ("F.tanhshrink({0})", False),
    "softshrink": ("F.softshrink({0}, 0.3)", False), "abs": ("torch.abs({0})", True), "neg": ("-{0}", True),
    "exp": ("torch.exp({0}.clamp(-8.0, 8.0))", False), "expm1": ("torch.expm1({0}.clamp(-8.0, 8.0))", False),
    "log": ("torch.log({0}.abs() + 1.0)", False), "log1p": ("torch.log1p({0}.abs())", False),
    "log2": ("torch.log2({0}.abs() + 0.5)", False), "sqrt": ("torch.sqrt({0}.abs() + 0.01)", False),
    "rsqrt": ("torch.rsqrt({0}.abs() + 1.0)", False), "reciprocal": ("torch.reciprocal({0}.abs() + 1.0)", False),
    "square": ("torch.square({0})", False), "cube": ("torch.pow({0}, 3)", False), "sin": ("torch.sin({0})", False),
    "cos": ("torch.cos({0})", False), "atan": ("torch.atan({0})", False), "asinh": ("torch.asinh({0})", False),
    "acos": ("torch.acos(torch.tanh({0}) * 0.9)", False), "erf": ("torch.erf({0})", False),
    "erfc": ("torch.erfc({0})", False), "sinh": ("torch.sinh({0}.clamp(-5.0, 5.0))", False),
    "clamp": ("torch.clamp({0}, -0.7, 0.9)", False), "dropout": ("F.dropout({0}, 0.5, training=False)", True),
}
_DISCONTINUOUS = {"floor": "torch.floor({0} * 2.0)", "ceil": "torch.ceil({0} * 2.0)",
                  "round": "torch.round({0} * 2.0)", "trunc": "torch.trunc({0} * 2.0)", "sign": "torch.sign({0})",
                  "frac": "torch.frac({0} * 2.0)"}


@op("activation/elementwise", *_UNARY)
def _unary(d: Draw, name: str) -> Candidate:
    expr, exact = _UNARY[name]
    a = d.float()
    return Candidate(expr, [a], exact=exact and a.exact, distinct=name == "neg" and a.distinct)


@op("rounding", *_DISCONTINUOUS)
def _rounding(d: Draw, name: str) -> Candidate:
    return Candidate(_DISCONTINUOUS[name], [d.float(exact=True)], exact=True)


_BINARY = {"add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / ({1}.abs() + 1.0)",
           "maximum": "torch.maximum({0}, torch.as_tensor({1}))", "minimum": "torch.minimum({0}, torch.as_tensor({1}))",
           "atan2": "torch.atan2({0}, torch.as_tensor({1}))", "pow": "torch.pow({0}.abs() + 0.5, {1})",
           "hypot": "torch.hypot({0}, torch.as_tensor({1}))", "rsub": "{1} - {0}"}


@op("binary", *_BINARY)
def _binary(d: Draw, name: str) -> Candidate:
    a = d.float()
    if name == "pow":  # a moderate power of a positive base
        return Candidate(f"torch.pow({{0}}.abs() + 0.5, {d.choice([0.5, 2.0, 3.0, -1.0, 1.5])})", [a])
    second, extra = _second(d, a, exact=False)
    exact = name in ("maximum", "minimum") and a.exact and all(v.exact for v in extra) and not second.startswith("self.")
    return Candidate(_BINARY[name].replace("{1}", second), [a, *extra], exact=exact)


@op("binary", "fmod", "remainder", "floor_divide_float")
def _float_division(d: Draw, name: str) -> Candidate:
    a = d.float(exact=True)
    k = d.choice([0.5, 1.0, 1.5, 2.0, -1.5])
    expr = {"fmod": f"torch.fmod({{0}}, {k})", "remainder": f"torch.remainder({{0}}, {k})",
            "floor_divide_float": f"torch.floor_divide({{0}}, {k})"}[name]
    return Candidate(expr, [a], exact=False)


@op("comparison", "gt", "lt", "ge", "le", "eq", "ne")
def _compare(d: Draw, name: str) -> Candidate:
    a = d.float(exact=True)
    second, extra = _second(d, a, exact=True)
    sym = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "eq": "==", "ne": "!="}[name]
    return Candidate(f"{{0}} {sym} {second}", [a, *extra], exact=True)


@op("logical", "logical_and", "logical_or", "logical_xor")
def _logical(d: Draw, name: str) -> Candidate:
    a = d.pick(lambda v: v.is_bool)
    b = d.pick(lambda v: v.is_bool and _broadcasts(v.shape, a.shape))
    return Candidate(f"torch.{name}({{0}}, {{1}})", [a, b], exact=True)


@op("logical")
def op_logical_not(d: Draw) -> Candidate:
    return Candidate("~{0}", [d.pick(lambda v: v.is_bool)], exact=True)


@op("logical")
def op_where(d: Draw) -> Candidate:
    c = d.pick(lambda v: v.is_bool)
    a = d.float(ok=lambda v: _broadcasts(c.shape, v.shape) or _broadcasts(v.shape, c.shape))
    other = d.choice(["0.0", "-1.0", "{0} * 0.5"])
    return Candidate(f"torch.where({{1}}, {{0}}, {other})", [a, c], exact=a.exact and "*" not in other)


@op("logical")
def op_masked_fill(d: Draw) -> Candidate:
    c = d.pick(lambda v: v.is_bool)
    a = d.float(ok=lambda v: _broadcasts(c.shape, v.shape))
    return Candidate("{0}.masked_fill({1}, -2.5)", [a, c], exact=a.exact)


# ----------------------------------------------------------------------------- integers
@op("integer")
def op_to_int(d: Draw) -> Candidate:
    return Candidate("torch.floor({0} * 4.0).long()", [d.float(exact=True)], exact=True)


@op("integer", "int_floordiv", "int_remainder", "int_bitwise_and", "int_bitwise_or", "int_bitwise_xor",
    "int_mul", "int_add", "int_to_float")
def _integer(d: Draw, name: str) -> Candidate:
    a = d.pick(lambda v: v.is_int)
    k = d.int(2, 5)
    expr = {"int_floordiv": f"{{0}} // {k}", "int_remainder": f"{{0}} % {k}", "int_bitwise_and": f"{{0}} & {k}",
            "int_bitwise_or": f"{{0}} | {k}", "int_bitwise_xor": f"{{0}} ^ {k}", "int_mul": f"{{0}} * {k}",
            "int_add": f"{{0}} + {k}", "int_to_float": "{0}.float()"}[name]
    return Candidate(expr, [a], exact=True, distinct=False)


# ----------------------------------------------------------------------------- reductions
@op("reduction", "sum", "mean", "amax", "amin", "prod", "var", "std", "logsumexp", "norm")
def _reduce(d: Draw, name: str) -> Candidate:
    a = d.float(ranks=range(1, 6), ok=lambda v: name != "prod" or v.tensor.numel() <= 64)
    dims = sorted({d.axis(a, negative=False) for _ in range(d.int(1, min(2, a.rank)))})
    dim = dims[0] if len(dims) == 1 and d.coin() else tuple(dims)
    keep = d.coin()
    expr = {"sum": f"torch.sum({{0}}, dim={dim}, keepdim={keep})", "mean": f"torch.mean({{0}}, dim={dim}, keepdim={keep})",
            "amax": f"torch.amax({{0}}, dim={dim}, keepdim={keep})", "amin": f"torch.amin({{0}}, dim={dim}, keepdim={keep})",
            "prod": f"torch.prod(torch.tanh({{0}}) + 1.0, dim={dims[0]}, keepdim={keep})",
            "var": f"torch.var({{0}}, dim={dim}, keepdim={keep}, correction={d.int(0, 1)})",
            "std": f"torch.std({{0}}, dim={dim}, keepdim={keep}, correction=0)",
            "logsumexp": f"torch.logsumexp({{0}}, dim={dim}, keepdim={keep})",
            "norm": f"torch.linalg.vector_norm({{0}}, dim={dim}, keepdim={keep})"}[name]
    return Candidate(expr, [a], exact=name in ("amax", "amin") and a.exact)


@op("reduction", "argmax", "argmin")
def _argreduce(d: Draw, name: str) -> Candidate:
    a = d.float(ranks=range(1, 6), distinct=True)
    return Candidate(f"torch.{name}({{0}}, dim={d.axis(a)}, keepdim={d.coin()})", [a], exact=True)


@op("reduction", "any", "all")
def _boolreduce(d: Draw, name: str) -> Candidate:
    a = d.pick(lambda v: v.is_bool and v.rank > 0)
    return Candidate(f"torch.{name}({{0}}, dim={d.axis(a)})", [a], exact=True)


@op("indexing")
def op_gather_argmax(d: Draw) -> Candidate:
    a = d.float(ranks=range(1, 6), distinct=True)
    dim = d.axis(a)
    return Candidate(f"torch.gather({{0}}, {dim}, torch.argmax({{0}}, {dim}, keepdim=True))", [a], exact=True)


# ----------------------------------------------------------------------------- cumulative, sort
@op("cumulative", "cumsum", "cumprod", "logcumsumexp", "cummax_values", "cummin_values", "cummax_indices")
def _cumulative(d: Draw, name: str) -> Candidate:
    a = d.float(ranks=range(1, 6), distinct=name == "cummax_indices")
    dim = d.axis(a)
    expr = {"cumsum": f"torch.cumsum({{0}}, {dim})", "cumprod": f"torch.cumprod(torch.tanh({{0}}) + 1.0, {dim})",
            "logcumsumexp": f"torch.logcumsumexp({{0}}, {dim})", "cummax_values": f"torch.cummax({{0}}, {dim})[0]",
            "cummin_values": f"torch.cummin({{0}}, {dim})[0]", "cummax_indices": f"torch.cummax({{0}}, {dim})[1]"}[name]
    exact = name.endswith("_indices") or (name.startswith("cumm") and a.exact)
    return Candidate(expr, [a], exact=exact)


@op("sort", "sort_values", "sort_indices", "argsort", "topk_values", "topk_indices", "kthvalue", "msort")
def _sort(d: Draw, name: str) -> Candidate:
    a = d.float(ranks=range(1, 6), distinct=name in ("sort_indices", "argsort", "topk_indices"))
    dim = d.axis(a)
    k = d.int(1, a.shape[dim])
    desc = d.coin()
    expr = {"sort_values": f"torch.sort({{0}}, dim={dim}, descending={desc})[0]",
            "sort_indices": f"torch.sort({{0}}, dim={dim}, descending={desc})[1]",
            "argsort": f"torch.argsort({{0}}, dim={dim}, descending={desc})",
            "topk_values": f"torch.topk({{0}}, {k}, dim={dim}, largest={desc})[0]",
            "topk_indices": f"torch.topk({{0}}, {k}, dim={dim}, largest={desc})[1]",
            "kthvalue": f"torch.kthvalue({{0}}, {k}, dim={dim})[0]", "msort": "torch.msort({0})"}[name]
    return Candidate(expr, [a], exact=a.exact or "indices" in name or name == "argsort")


@op("softmax", "softmax", "log_softmax", "softmin", "normalize")
def _softmax(d: Draw, name: str) -> Candidate:
    a = d.float(ranks=range(1, 6))
    fn = {"softmax": "F.softmax", "log_softmax": "F.log_softmax", "softmin": "F.softmin"}.get(name)
    expr = f"{fn}({{0}}, dim={d.axis(a)})" if fn else f"F.normalize({{0}}, dim={d.axis(a)})"
    return Candidate(expr, [a])


# ----------------------------------------------------------------------------- shape
def _factorize(d: Draw, n: int) -> tuple:
    dims, rest = [], n
    for _ in range(d.int(1, 4)):
        divisors = [k for k in range(1, rest + 1) if rest % k == 0]
        k = d.choice(divisors)
        dims.append(k)
        rest //= k
    dims.append(rest)
    d.r.shuffle(dims)
    return tuple(dims)


@op("shape")
def op_reshape(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.tensor.numel() > 1)
    shape = list(_factorize(d, a.tensor.numel()))
    if d.coin(0.3):
        shape[d.int(0, len(shape) - 1)] = -1
    return Candidate(f"{{0}}.reshape({tuple(shape)!r})", [a], exact=a.exact, distinct=a.distinct)


@op("shape")
def op_permute(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 2)
    return Candidate(f"{{0}}.permute{tuple(int(p) for p in d.r.permutation(a.rank))!r}", [a], exact=a.exact,
                     distinct=a.distinct)


@op("shape")
def op_transpose(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 2)
    return Candidate(f"{{0}}.transpose({d.axis(a)}, {d.axis(a)})", [a], exact=a.exact, distinct=a.distinct)


@op("shape")
def op_flatten(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 2)
    start = d.int(0, a.rank - 2)
    return Candidate(f"torch.flatten({{0}}, {start}, {d.int(start + 1, a.rank - 1)})", [a], exact=a.exact,
                     distinct=a.distinct)


@op("shape")
def op_unsqueeze(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank <= 4)
    return Candidate(f"{{0}}.unsqueeze({d.int(0, a.rank)})", [a], exact=a.exact, distinct=a.distinct)


@op("shape")
def op_squeeze(d: Draw) -> Candidate:
    a = d.pick(lambda v: 1 in v.shape)
    return Candidate(f"{{0}}.squeeze({a.shape.index(1)})", [a], exact=a.exact, distinct=a.distinct)


@op("shape")
def op_flip(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 1)
    return Candidate(f"torch.flip({{0}}, ({d.axis(a)},))", [a], exact=a.exact, distinct=a.distinct)


@op("shape")
def op_roll(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 1)
    return Candidate(f"torch.roll({{0}}, {d.int(-3, 3)}, {d.axis(a)})", [a], exact=a.exact, distinct=a.distinct)


@op("shape")
def op_repeat(d: Draw) -> Candidate:
    a = d.pick(lambda v: 1 <= v.rank <= 4 and v.tensor.numel() <= 512)
    return Candidate(f"{{0}}.repeat{tuple(d.int(1, 2) for _ in range(a.rank))!r}", [a], exact=a.exact)


@op("shape")
def op_expand(d: Draw) -> Candidate:
    a = d.pick(lambda v: 1 in v.shape)
    shape = tuple(d.int(2, 4) if s == 1 else -1 for s in a.shape)
    return Candidate(f"{{0}}.expand{shape!r}", [a], exact=a.exact)


@op("shape")
def op_slice(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 1 and max(v.shape) >= 2)
    dim = max(range(a.rank), key=lambda k: (a.shape[k] >= 2, d.r.random()))
    start, step = d.int(0, a.shape[dim] - 1), d.int(1, 3)
    index = ", ".join([":"] * dim + [f"{start}::{step}"])
    return Candidate(f"{{0}}[{index}]", [a], exact=a.exact, distinct=a.distinct)


@op("shape")
def op_select(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 2)
    dim = d.axis(a, negative=False)
    return Candidate(f"{{0}}.select({dim}, {d.int(-a.shape[dim], a.shape[dim] - 1)})", [a], exact=a.exact,
                     distinct=a.distinct)


@op("shape", "cat", "stack")
def _join(d: Draw, name: str) -> Candidate:
    a = d.pick(lambda v: v.rank >= 1 and not v.is_bool)
    dim = d.axis(a, negative=False)
    if name == "cat":
        b = d.pick(lambda v: v.tensor.dtype == a.tensor.dtype and v.rank == a.rank
                   and all(x == y for k, (x, y) in enumerate(zip(v.shape, a.shape)) if k != dim))
    else:
        b = d.pick(lambda v: v.tensor.dtype == a.tensor.dtype and v.shape == a.shape)
        dim = d.int(0, a.rank)
    return Candidate(f"torch.{name}([{{0}}, {{1}}], dim={dim})", [a, b], exact=a.exact and b.exact)


@op("shape", "chunk", "split", "unbind")
def _pieces(d: Draw, name: str) -> Candidate:
    a = d.pick(lambda v: v.rank >= 1 and max(v.shape) >= 2)
    dim = max(range(a.rank), key=lambda k: (a.shape[k] >= 2, d.r.random()))
    n = d.int(2, max(2, a.shape[dim]))
    expr = {"chunk": f"torch.chunk({{0}}, {n}, dim={dim})[{d.int(0, 1)}]",
            "split": f"torch.split({{0}}, {d.int(1, a.shape[dim] - 1)}, dim={dim})[-1]",
            "unbind": f"torch.unbind({{0}}, dim={dim})[{d.int(0, a.shape[dim] - 1)}]"}[name]
    return Candidate(expr, [a], exact=a.exact, distinct=a.distinct)


@op("shape", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle")
def _pixel(d: Draw, name: str) -> Candidate:
    if name == "pixel_shuffle":
        r = d.int(2, 3)
        a = d.float(ranks=(4,), ok=lambda v: v.shape[1] % (r * r) == 0)
        return Candidate(f"F.pixel_shuffle({{0}}, {r})", [a], exact=a.exact, distinct=a.distinct)
    if name == "pixel_unshuffle":
        a = d.float(ranks=(4,), ok=lambda v: v.shape[2] % 2 == 0 and v.shape[3] % 2 == 0)
        return Candidate("F.pixel_unshuffle({0}, 2)", [a], exact=a.exact, distinct=a.distinct)
    a = d.float(ranks=(3, 4, 5), ok=lambda v: v.shape[1] % 2 == 0)
    return Candidate(d.module("nn.ChannelShuffle(2)") + "({0})", [a], exact=a.exact, distinct=a.distinct)


@op("shape")
def op_channels_last_copy(d: Draw) -> Candidate:
    a = d.float(ranks=(4,))
    return Candidate("{0}.contiguous(memory_format=torch.channels_last) * 1.0", [a], exact=a.exact,
                     distinct=a.distinct)


# ----------------------------------------------------------------------------- indexing
@op("indexing")
def op_index_select(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 1)
    dim = d.axis(a, negative=False)
    n = d.int(1, 6)
    idx = d.const((n,), f"torch.randint(0, {a.shape[dim]}, ({n},))")
    return Candidate(f"torch.index_select({{0}}, {dim}, {idx})", [a], exact=a.exact)


@op("indexing")
def op_gather(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 1 and not v.is_bool)
    dim = d.axis(a, negative=False)
    shape = tuple(d.int(1, s) for s in a.shape)
    idx = d.const(shape, f"torch.randint(0, {a.shape[dim]}, {shape!r})")
    return Candidate(f"torch.gather({{0}}, {dim}, {idx})", [a], exact=a.exact)


@op("indexing")
def op_advanced_index(d: Draw) -> Candidate:
    a = d.pick(lambda v: v.rank >= 1)
    dim = d.axis(a, negative=False)
    shape = tuple(d.int(1, 4) for _ in range(d.int(1, 2)))
    idx = d.const(shape, f"torch.randint({-a.shape[dim]}, {a.shape[dim]}, {shape!r})")
    index = ", ".join([":"] * dim + [idx])
    return Candidate(f"{{0}}[{index}]", [a], exact=a.exact)


@op("indexing")
def op_take_along_dim(d: Draw) -> Candidate:
    a = d.float(ranks=range(1, 6), distinct=True)
    dim = d.axis(a)
    return Candidate(f"torch.take_along_dim({{0}}, torch.argsort({{0}}, dim={dim}), dim={dim})", [a], exact=True)


@op("indexing")
def op_scatter(d: Draw) -> Candidate:
    a = d.float(ranks=range(1, 5))
    dim = d.axis(a, negative=False)
    perm = d.const(a.shape, f"torch.argsort(torch.rand({a.shape!r}), dim={dim})")
    return Candidate(f"torch.scatter({{0}}, {dim}, {perm}, {{0}} * 2.0)", [a], exact=False)


@op("indexing", "tril", "triu")
def _triangle(d: Draw, name: str) -> Candidate:
    a = d.float(ranks=range(2, 6))
    return Candidate(f"torch.{name}({{0}}, {d.int(-1, 1)})", [a], exact=a.exact)


@op("indexing")
def op_diagonal(d: Draw) -> Candidate:
    a = d.float(ranks=range(2, 6))
    return Candidate(f"torch.diagonal({{0}}, 0, {a.rank - 2}, {a.rank - 1})", [a], exact=a.exact)


# ----------------------------------------------------------------------------- conv / pool
def _spatial(v: Value, nd: int) -> tuple:
    return v.shape[2:] if v.rank == nd + 2 else ()


@op("conv", "conv1d", "conv2d", "conv3d")
def _conv(d: Draw, name: str) -> Candidate:
    nd = int(name[-2])
    a = d.float(ranks=(nd + 2,), ok=lambda v: v.shape[1] <= 16 and min(_spatial(v, nd)) >= 1)
    cin = a.shape[1]
    groups = d.choice([g for g in (1, 2, 3, 4, cin) if cin % g == 0]) if d.coin(0.4) else 1
    cout = groups * d.int(1, max(1, 8 // groups))
    k, dil = d.int(1, 4), d.choice([1, 1, 1, 2, 3])
    stride = d.choice([1, 1, 2, 3])
    pad = d.choice(["'same'", "'valid'", str(d.int(0, 2))]) if stride == 1 else str(d.int(0, 2))
    mode = d.choice(["'zeros'"] * 5 + ["'reflect'", "'replicate'", "'circular'"])
    ctor = (f"nn.Conv{nd}d({cin}, {cout}, {k}, stride={stride}, padding={pad}, dilation={dil}, groups={groups}, "
            f"bias={d.coin(0.8)}, padding_mode={mode})")
    return Candidate(d.module(ctor) + "({0})", [a])


@op("conv", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv_transpose(d: Draw, name: str) -> Candidate:
    nd = int(name[-2])
    a = d.float(ranks=(nd + 2,), ok=lambda v: v.shape[1] <= 16)
    cin = a.shape[1]
    groups = d.choice([g for g in (1, 2, cin) if cin % g == 0]) if d.coin(0.3) else 1
    cout = groups * d.int(1, max(1, 8 // groups))
    k, dil, stride = d.int(1, 4), d.choice([1, 1, 2]), d.choice([1, 2, 2, 3])
    out_pad = d.int(0, max(stride, dil) - 1) if d.coin(0.4) else 0
    pad = d.int(0, dil * (k - 1) + 1) if d.coin(0.8) else d.int(0, 3)
    ctor = (f"nn.ConvTranspose{nd}d({cin}, {cout}, {k}, stride={stride}, padding={pad}, output_padding={out_pad}, "
            f"groups={groups}, dilation={dil}, bias={d.coin(0.8)})")
    return Candidate(d.module(ctor) + "({0})", [a])


@op("pool", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d")
def _pool(d: Draw, name: str) -> Candidate:
    nd = int(name[-2])
    a = d.float(ranks=(nd + 2,), ok=lambda v: min(_spatial(v, nd)) >= 2)
    k = d.int(1, min(4, min(_spatial(a, nd))))
    stride = d.choice([None, 1, 2, k])
    pad = d.int(0, k // 2)
    ceil = d.coin(0.3)
    if name.startswith("max"):
        dil = d.choice([1, 1, 2])
        ctor = f"nn.MaxPool{nd}d({k}, stride={stride}, padding={pad}, dilation={dil}, ceil_mode={ceil})"
        return Candidate(d.module(ctor) + "({0})", [a], exact=a.exact)
    ctor = f"nn.AvgPool{nd}d({k}, stride={stride}, padding={pad}, ceil_mode={ceil}, count_include_pad={d.coin()})"
    return Candidate(d.module(ctor) + "({0})", [a])


@op("pool", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d")
def _adaptive(d: Draw, name: str) -> Candidate:
    nd = int(name[-2])
    a = d.float(ranks=(nd + 2,))
    size = tuple(d.choice([1, 2, s, max(1, s // 2)]) for s in _spatial(a, nd))
    kind = "Avg" if "avg" in name else "Max"
    return Candidate(d.module(f"nn.Adaptive{kind}Pool{nd}d({size!r})") + "({0})", [a],
                     exact=kind == "Max" and a.exact)


# ----------------------------------------------------------------------------- norms, linear, attention
_RANDOM_AFFINE = ("nn.init.normal_({m}.weight, 1.0, 0.3)", "nn.init.normal_({m}.bias, 0.0, 0.3)")


@op("norm", "batch_norm1d", "batch_norm2d", "batch_norm3d")
def _batch_norm(d: Draw, name: str) -> Candidate:
    nd = int(name[-2])
    a = d.float(ranks=(2, 3) if nd == 1 else (nd + 2,))
    stats = ("{m}.running_mean.normal_(0.0, 0.5)", "{m}.running_var.uniform_(0.5, 2.0)")
    return Candidate(d.module(f"nn.BatchNorm{nd}d({a.shape[1]})", *stats, *_RANDOM_AFFINE) + "({0})", [a])


@op("norm")
def op_layer_norm(d: Draw) -> Candidate:
    a = d.float(ranks=range(1, 6))
    shape = a.shape[a.rank - d.int(1, min(3, a.rank)):]
    affine = d.coin(0.7)
    return Candidate(d.module(f"nn.LayerNorm({shape!r}, elementwise_affine={affine})",
                              *(_RANDOM_AFFINE if affine else ())) + "({0})", [a])


@op("norm")
def op_group_norm(d: Draw) -> Candidate:
    a = d.float(ranks=range(2, 6))
    c = a.shape[1]
    g = d.choice([k for k in range(1, c + 1) if c % k == 0])
    affine = d.coin(0.7)
    return Candidate(d.module(f"nn.GroupNorm({g}, {c}, affine={affine})", *(_RANDOM_AFFINE if affine else ()))
                     + "({0})", [a])


@op("norm", "instance_norm1d", "instance_norm2d", "instance_norm3d")
def _instance_norm(d: Draw, name: str) -> Candidate:
    nd = int(name[-2])
    a = d.float(ranks=(nd + 2,) if nd > 1 else (2, 3), ok=lambda v: v.shape[-1] >= 2)
    affine = d.coin(0.6)
    c = a.shape[1] if a.rank == nd + 2 else a.shape[0]
    ctor = f"nn.InstanceNorm{nd}d({c}, affine={affine})"
    return Candidate(d.module(ctor, *(_RANDOM_AFFINE if affine else ())) + "({0})", [a])


@op("norm")
def op_local_response_norm(d: Draw) -> Candidate:
    a = d.float(ranks=(3, 4, 5))
    return Candidate(d.module(f"nn.LocalResponseNorm({d.int(1, 4)})") + "({0})", [a])


@op("linear")
def op_linear(d: Draw) -> Candidate:
    a = d.float(ranks=range(1, 5), ok=lambda v: v.shape[-1] <= 64)
    return Candidate(d.module(f"nn.Linear({a.shape[-1]}, {d.int(1, 12)}, bias={d.coin(0.8)})") + "({0})", [a])


@op("linear")
def op_matmul(d: Draw) -> Candidate:
    a = d.float(ranks=range(2, 5))
    if d.coin():
        b = d.float(ok=lambda v: v.shape == a.shape)
        return Candidate("torch.matmul({0}, {1}.transpose(-1, -2))", [a, b])
    w = d.const((a.shape[-1], d.int(1, 8)))
    return Candidate(f"torch.matmul({{0}}, {w})", [a])


@op("linear")
def op_prelu(d: Draw) -> Candidate:
    a = d.float(ranks=range(2, 6))
    return Candidate(d.module(f"nn.PReLU({d.choice([1, a.shape[1]])}, init=0.2)") + "({0})", [a])


@op("attention")
def op_multihead_attention(d: Draw) -> Candidate:
    a = d.float(ranks=(3,), ok=lambda v: v.shape[2] <= 32)
    e = a.shape[2]
    heads = d.choice([h for h in (1, 2, 4) if e % h == 0])
    m = d.module(f"nn.MultiheadAttention({e}, {heads}, batch_first=True, bias={d.coin(0.8)})")
    return Candidate(f"{m}({{0}}, {{0}}, {{0}}, need_weights=False)[0]", [a])


@op("attention")
def op_scaled_dot_product_attention(d: Draw) -> Candidate:
    a = d.float(ranks=(3, 4))
    b = d.float(ok=lambda v: v.shape == a.shape)
    return Candidate(f"F.scaled_dot_product_attention({{0}}, {{1}}, {{1}} * 0.5, is_causal={d.coin(0.3)})", [a, b])


@op("embedding")
def op_embedding(d: Draw) -> Candidate:
    n, dim = d.int(3, 20), d.int(1, 8)
    try:
        idx = d.pick(lambda v: v.is_int and v.rank <= 3 and int(v.tensor.min()) >= 0 and int(v.tensor.max()) < 3)
    except NoFit:
        idx = d.new_input((d.int(1, 3), d.int(1, 6)), "int64", high=n)
    return Candidate(d.module(f"nn.Embedding({n}, {dim})") + "({0})", [idx])


@op("rnn", "gru", "lstm", "rnn_tanh")
def _rnn(d: Draw, name: str) -> Candidate:
    a = d.float(ranks=(3,), ok=lambda v: v.shape[2] <= 16)
    cls = {"gru": "nn.GRU", "lstm": "nn.LSTM", "rnn_tanh": "nn.RNN"}[name]
    ctor = f"{cls}({a.shape[2]}, {d.int(1, 8)}, num_layers={d.int(1, 2)}, batch_first=True, bidirectional={d.coin(0.3)})"
    return Candidate(d.module(ctor) + "({0})[0]", [a])


# ----------------------------------------------------------------------------- padding, resizing
@op("pad")
def op_pad(d: Draw) -> Candidate:
    mode = d.choice(["constant", "constant", "reflect", "replicate", "circular"])
    a = d.float(ranks=(2, 3, 4, 5) if mode == "constant" else (3, 4, 5))
    n = d.int(1, min(3, a.rank - (0 if mode == "constant" else 2)))
    pads = []
    for k in range(n):
        size = a.shape[a.rank - 1 - k]
        limit = size - 1 if mode == "reflect" else (size if mode == "circular" else 3)
        pads += [d.int(0, max(0, limit)), d.int(0, max(0, limit))]
    value = ", value=0.5" if mode == "constant" and d.coin() else ""
    return Candidate(f"F.pad({{0}}, {tuple(pads)!r}, mode={mode!r}{value})", [a], exact=a.exact)


@op("resize")
def op_interpolate(d: Draw) -> Candidate:
    a = d.float(ranks=(3, 4, 5))
    modes = {3: ["nearest", "linear"], 4: ["nearest", "bilinear", "bicubic", "nearest-exact"],
             5: ["nearest", "trilinear"]}[a.rank]
    mode = d.choice(modes)
    size = f"size={tuple(d.int(1, 2 * s + 1) for s in a.shape[2:])!r}" if d.coin() else \
        f"scale_factor={d.choice([2.0, 0.5, 3.0, 1.5])}"
    corners = f", align_corners={d.coin()}" if mode in ("linear", "bilinear", "bicubic", "trilinear") else ""
    return Candidate(f"F.interpolate({{0}}, {size}, mode={mode!r}{corners})", [a], exact=mode.startswith("nearest")
                     and a.exact)


@op("resize")
def op_unfold(d: Draw) -> Candidate:
    a = d.float(ranks=(4,), ok=lambda v: min(v.shape[2:]) >= 2)
    k = d.int(1, min(3, min(a.shape[2:])))
    return Candidate(f"F.unfold({{0}}, {k}, stride={d.int(1, 2)}, padding={d.int(0, k // 2)})", [a], exact=a.exact)


@op("similarity", "cosine_similarity", "pairwise_distance")
def _similarity(d: Draw, name: str) -> Candidate:
    a = d.float(ranks=range(2, 5))
    b = d.float(ok=lambda v: v.shape == a.shape)
    if name == "cosine_similarity":
        return Candidate(f"F.cosine_similarity({{0}}, {{1}}, dim={d.axis(a)})", [a, b])
    return Candidate("F.pairwise_distance({0}, {1})", [a, b])


@op("elementwise")
def op_lerp(d: Draw) -> Candidate:
    a = d.float()
    b = d.float(ok=lambda v: v.shape == a.shape)
    return Candidate(f"torch.lerp({{0}}, {{1}}, {round(float(d.r.uniform(0, 1)), 2)})", [a, b])


@op("elementwise")
def op_addcmul(d: Draw) -> Candidate:
    a = d.float()
    b = d.float(ok=lambda v: _broadcasts(v.shape, a.shape))
    return Candidate("torch.addcmul({0}, {1}, {1}, value=0.5)", [a, b])
