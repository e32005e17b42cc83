"""Layout rules: for each layout class, the layouts an op may run in, and what is legal afterwards.

Every op schema names its rule (``OpSchema.layout``). A ``LayoutRule`` gives

  refine(node)         the rule that applies to this node (an ``axis`` op that changes the rank runs
                       in PyTorch's order; a user converter says which rule it wants)
  options(node, ctx)   one or two ``Options`` -- (required input layouts, result layouts) per label
                       0/1 -- from which the layout pass (``passes/layout``) picks by minimum cut;
                       ``ctx`` tells the candidate layouts of the node's inputs
  check(node, fail)    the legality the verifier checks once layouts are assigned

The rules live in the IR (framework-free) because the verifier checks them; the layout pass
only asks them. Layouts are tuples: ``layout[k]`` is the logical axis stored at physical
position ``k`` (``ir/types.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar, Optional, Protocol

from .layouts import permute_image, reshape_image, reshape_is_free
from .regions import stacked_layout
from .core import Node, Value
from .symbolic import nominal_numel
from .types import Layout, channels_last, full

__all__ = ["LAYOUT_RULES", "LayoutRule", "OptionContext", "Options", "cl", "ident", "rule_for"]

Fail = Callable[[str], None]


def cl(rank: int) -> Layout:
    """Channels-last layout of a rank-``rank`` value (axis 1 last)."""
    return full(channels_last(rank), rank)


def ident(rank: int) -> Layout:
    """PyTorch's own order."""
    return tuple(range(rank))


@dataclasses.dataclass
class Options:
    """Per label d in (0, 1): required layout of each input (None: no requirement), layouts of
    the results, and the inputs to bring to full rank first (a broadcast into a permuted layout)."""

    ins: tuple[list, list]
    outs: tuple[list, list]
    pad: frozenset = frozenset()

    @property
    def is_choice(self) -> bool:
        return self.ins[0] != self.ins[1] or self.outs[0] != self.outs[1]

    @classmethod
    def single(cls, ins: list, outs: list, pad: frozenset = frozenset()) -> "Options":
        return cls((ins, ins), (outs, outs), pad)

    @classmethod
    def pair(cls, ins: list[list], outs: list[list]) -> "Options":
        return cls((ins[0], ins[1]), (outs[0], outs[1]))


class OptionContext(Protocol):
    """What a rule asks of the layout pass while building options."""

    optimize: bool

    def candidates(self, v: "Value") -> tuple[Layout, Layout]:
        """The layouts ``v``'s producer may store it in under labels 0 and 1."""

    def with_alternative(self, cands: tuple[Layout, Layout], rank: int) -> tuple[Layout, Layout]:
        """``cands``, or (its one layout, channels-last or PyTorch order) when it offers one."""

    def requested_input_layout(self, node: "Node") -> Layout:
        """The layout asked for a graph input (``compile(input_layouts=...)``)."""


def _is_const(v: "Value") -> bool:
    return v.producer.op == "constant"


def _all_fixed(node: "Node") -> Options:
    return Options.single([ident(v.type.rank) for v in node.inputs], [ident(v.type.rank) for v in node.outputs])


class LayoutRule:
    """Base rule: no requirement, nothing to check. Subclasses set ``name``."""

    name: ClassVar[str] = ""

    def refine(self, node: "Node") -> "LayoutRule":
        return self

    def options(self, node: "Node", ctx: OptionContext) -> Options:
        raise ValueError(f"no layout options for {node.op} (rule {self.name!r})")

    def check(self, node: "Node", fail: Fail) -> None:
        return None


class SourceRule(LayoutRule):
    """Inputs are stored as requested; constants in PyTorch's order (stored pre-transposed by
    whoever needs them otherwise: a constant's conversion is free)."""

    name = "source"

    def options(self, node, ctx):
        if node.op == "input":
            return Options.single([], [ctx.requested_input_layout(node)])
        return Options.single([], [ident(node.output.type.rank)])


class StateRule(LayoutRule):
    """A state is one stored variable: read and written in one layout, PyTorch order or
    channels-last (its update shares its variable: the layout pass ties them)."""

    name = "state"

    def options(self, node, ctx):
        rank = node.output.type.rank
        if not ctx.optimize or rank < 3:
            return Options.single([], [ident(rank)])
        return Options(([], []), ([ident(rank)], [cl(rank)]))


class ChannelRule(LayoutRule):
    """Channel-aware ops (conv, norms over channels, pooling, resize) run channels-last: the
    activation input and the results; other non-constant inputs in PyTorch's order (a user
    converter's tensors all channels-last)."""

    name = "channel"

    def options(self, node, ctx):
        ins = [cl(node.inputs[0].type.rank)] + [None if _is_const(v) else cl(v.type.rank) if node.op == "custom"
                                                else ident(v.type.rank) for v in node.inputs[1:]]
        return Options.single(ins, [cl(v.type.rank) for v in node.outputs])

    def check(self, node, fail):
        x = node.inputs[0]
        if x.type.perm != cl(x.type.rank):
            fail(f"channel-aware op reads {x.type}, not channels-last")
        if any(v.type.perm != cl(v.type.rank) for v in node.outputs):
            fail("channel-aware op's result is not channels-last")


class FixedRule(LayoutRule):
    """Everything in PyTorch's order (matmul, gather with index tensors, attention, RNNs, ...)."""

    name = "fixed"

    def options(self, node, ctx):
        return _all_fixed(node)

    def check(self, node, fail):
        for v in node.inputs:
            if not _is_const(v) and v.type.perm != ident(v.type.rank):
                fail(f"op needs PyTorch order but reads {v.type}")
        if any(v.type.perm != ident(v.type.rank) for v in node.outputs):
            fail("op in PyTorch order has a result in another layout")


class ShapeRule(LayoutRule):
    """Reads only its input's sizes (``dim``): any input layout will do."""

    name = "shape"

    def options(self, node, ctx):
        return Options.single([None] * len(node.inputs), [ident(v.type.rank) for v in node.outputs])


def _reference_input(node: Node, ctx) -> Optional[Value]:
    """The input an elementwise op's layouts follow: of its non-constant full-rank inputs, the
    largest (a broadcast's small operand is cheap to convert, its large one is not: a
    cache written by a select follows the cache, not the token's row), among equals the first
    with a choice of layouts."""
    rank = node.outputs[0].type.rank
    full_rank = [v for v in node.inputs if v.type.rank == rank and not _is_const(v)]
    if not full_rank:
        return None
    largest = max(nominal_numel(v.type) for v in full_rank)
    biggest = [v for v in full_rank if nominal_numel(v.type) == largest]
    return next((v for v in biggest if len(set(ctx.candidates(v))) == 2), biggest[0])


class AgnosticRule(LayoutRule):
    """Elementwise: the results and all full-rank inputs share one layout, one of the two
    candidates of the reference input (``_reference_input``: the largest non-constant
    full-rank input, among equals the first with a choice);
    single elements broadcast alike in every layout; lower-rank inputs are brought to full rank
    when the layout is not PyTorch's."""

    name = "agnostic"

    def options(self, node, ctx):
        rank = node.outputs[0].type.rank
        ref = _reference_input(node, ctx)
        cands = ctx.candidates(ref) if ref is not None else (ident(rank), ident(rank))
        if not ctx.optimize:
            cands = (ident(rank), ident(rank))
        cands = ctx.with_alternative(cands, rank) if ref is not None else cands
        ins, outs, pad = [], [], set()
        for c in cands:
            row = []
            for i, v in enumerate(node.inputs):
                if v.type.rank == rank:
                    row.append(c)
                elif v.type.is_static and v.type.numel == 1:
                    row.append(None)  # a single element broadcasts the same in every layout
                else:
                    row.append(ident(v.type.rank))
                    if c != ident(rank):
                        pad.add(i)
            ins.append(row)
            outs.append([c for _ in node.outputs])
        return Options((ins[0], ins[1]), (outs[0], outs[1]), frozenset(pad))

    def check(self, node, fail):
        out = node.outputs[0].type
        for v in node.inputs:
            single = v.type.is_static and v.type.numel == 1
            if v.type.rank == out.rank and not single and v.type.perm != out.perm:
                fail(f"elementwise op reads {v.type} but writes {out}")
            if v.type.rank < out.rank and not single and out.layout is not None:
                fail(f"elementwise op broadcasts a lower-rank {v.type} into a non-PyTorch layout")


class AxisRule(LayoutRule):
    """Ops with logical axis attributes the backend maps through the layout: the first input's
    candidates, other same-rank inputs alike, the results in the same layout. An op whose result
    has another rank (an index_select with a non-vector index, ...) runs in PyTorch's order."""

    name = "axis"

    def refine(self, node):
        if node.inputs and node.outputs and node.outputs[0].type.rank != node.inputs[0].type.rank:
            return RULES["fixed"]
        return self

    def options(self, node, ctx):
        x = node.inputs[0]
        cands = ctx.with_alternative(ctx.candidates(x), x.type.rank)
        ins, outs = [], []
        for c in cands:
            c = self.input_layout(node, c)
            ins.append([c] + [self.secondary(v, c, x) for v in node.inputs[1:]])
            outs.append([self.result_layout(node, c, v) for v in node.outputs])
        return Options.pair(ins, outs)

    def input_layout(self, node: "Node", candidate: Layout) -> Layout:
        return candidate

    def secondary(self, v: "Value", layout: Layout, x: "Value") -> Optional[Layout]:
        """Inputs after the first: a same-rank tensor stored alike (concat, ...); others as given."""
        if v.type.rank == x.type.rank:
            return layout
        return None if _is_const(v) else ident(v.type.rank)

    def result_layout(self, node: "Node", layout: Layout, out: "Value") -> Layout:
        return layout

    def check(self, node, fail):
        x = node.inputs[0]
        for v in node.inputs[1:]:
            if v.type.rank == x.type.rank and v.type.perm != x.type.perm:
                fail(f"input {v.type} is stored unlike the first input {x.type}")


class ReductionRule(AxisRule):
    """Reductions: like ``axis``, the result keeps the input's layout with the reduced axes
    dropped (``keepdim`` keeps the rank and the layout)."""

    name = "reduction"

    def refine(self, node):
        return self

    def result_layout(self, node, layout, out):
        x = node.inputs[0]
        if out.type.rank == x.type.rank:
            return layout
        axes = node.attrs.get("axes")
        removed = set(range(x.type.rank)) if axes is None else {a % x.type.rank for a in axes}
        return reduced_layout(layout, removed)


class LastAxisRule(AxisRule):
    """Like ``axis``, valid only where the normalised trailing axes stay physically last
    (linear, layer_norm); weights are parameters in PyTorch's order."""

    name = "last_axis"

    def options(self, node, ctx):
        return super().options(node, ctx) if ctx.optimize else _all_fixed(node)

    def input_layout(self, node, candidate):
        return candidate if self._trailing_ok(node, candidate) else ident(len(candidate))

    def secondary(self, v, layout, x):
        return None if _is_const(v) else ident(v.type.rank)

    @staticmethod
    def _trailing_ok(node: "Node", layout: Layout) -> bool:
        k = node.attrs.get("num_axes", 1)
        r = len(layout)
        return tuple(layout[r - k:]) == tuple(range(r - k, r))

    def check(self, node, fail):
        x = node.inputs[0]
        if not self._trailing_ok(node, x.type.perm):
            fail(f"{node.op} reads {x.type}: its trailing axes are not physically last")
        if node.outputs[0].type.perm != x.type.perm:
            fail(f"{node.op} changes the layout")


class ReshapeRule(LayoutRule):
    """A reshape keeps a candidate layout where its image through the reshape makes it a plain
    physical reshape; otherwise PyTorch order in and out."""

    name = "reshape"

    def options(self, node, ctx):
        if not ctx.optimize:
            return _all_fixed(node)
        x, y = node.inputs[0], node.output
        ins, outs = [], []
        for c in ctx.with_alternative(ctx.candidates(x), x.type.rank):
            image = reshape_image(x.type.shape, c, y.type.shape)
            ins.append([c] if image is not None else [ident(x.type.rank)])
            outs.append([image] if image is not None else [ident(y.type.rank)])
        return Options.pair(ins, outs)

    def check(self, node, fail):
        x, y = node.inputs[0].type, node.output.type
        if not reshape_is_free(x.shape, x.perm, y.shape, y.perm):
            fail(f"reshape {x} -> {y} is not a plain physical reshape")


class PermuteRule(LayoutRule):
    """Always free: the result's layout is the image of the input's (a transpose, if one is
    needed, moves to whichever consumer needs another layout)."""

    name = "permute"

    def options(self, node, ctx):
        if not ctx.optimize:
            return _all_fixed(node)
        x = node.inputs[0]
        cands = ctx.with_alternative(ctx.candidates(x), x.type.rank)
        perm = node.attrs["perm"]
        return Options.pair([[cands[0]], [cands[1]]], [[permute_image(cands[0], perm)],
                                                        [permute_image(cands[1], perm)]])


class RelayoutRule(LayoutRule):
    """A physical transpose the layout pass inserted: it is the result, never an input, of
    layout assignment (its layouts are checked by the verifier's relayout check)."""

    name = "relayout"


class RegionRule(LayoutRule):
    """Control flow: per rank, every data operand and result channels-last, or every one in
    PyTorch's order (scanned inputs and stacked results: rows as the rest, axis 0 first); label 0
    is the option its first data operand with a choice is stored in. Region boundaries are
    checked by the verifier against their node."""

    name = "region"

    def options(self, node, ctx):
        if not ctx.optimize:
            return _all_fixed(node)
        by_flag = {f: region_layouts(node, f) for f in (False, True)}
        flags = (False, True)
        for i, v in enumerate(node.inputs):
            if not _is_const(v) and by_flag[False][0][i] != by_flag[True][0][i]:
                if ctx.candidates(v)[0] == by_flag[True][0][i]:
                    flags = (True, False)
                break
        (ins0, outs0), (ins1, outs1) = by_flag[flags[0]], by_flag[flags[1]]
        return Options((ins0, ins1), (outs0, outs1))


class CustomRule(LayoutRule):
    """A user converter's call: its ``layout`` attribute names the rule (channels_last ->
    channel, torch -> fixed, any -> agnostic)."""

    name = "custom"

    def refine(self, node):
        return RULES[{"channels_last": "channel", "torch": "fixed", "any": "agnostic"}[node.attrs["layout"]]]


def region_layouts(node: "Node", channels_last_: bool) -> tuple[list, list]:
    """Operand and result layouts of a control-flow node with its data channels-last or not."""
    def lay(rank: int) -> Layout:
        return cl(rank) if channels_last_ else ident(rank)

    def stacked(rank: int) -> Layout:  # scanned/stacked along axis 0: rows as lay, axis 0 first
        return stacked_layout(lay(rank - 1))

    ranks = [v.type.rank for v in node.inputs]
    out_ranks = [v.type.rank for v in node.outputs]
    a = node.attrs
    if node.op == "cond":
        return [ident(ranks[0])] + [lay(r) for r in ranks[1:]], [lay(r) for r in out_ranks]
    if node.op == "while_loop":
        return [lay(r) for r in ranks], [lay(r) for r in out_ranks]
    if node.op == "scan":
        n_init, n_xs = a["num_init"], a["num_xs"]
        ins = [lay(r) if not n_init <= i < n_init + n_xs else stacked(r) for i, r in enumerate(ranks)]
        return ins, [lay(r) if k < n_init else stacked(r) for k, r in enumerate(out_ranks)]
    if node.op == "map":
        return ([stacked(r) if i < a["num_xs"] else lay(r) for i, r in enumerate(ranks)],
                [stacked(r) for r in out_ranks])
    raise ValueError(f"no layout rule for control-flow op {node.op!r}")


def reduced_layout(layout: Layout, removed: set[int]) -> Layout:
    """The layout left after dropping logical axes ``removed`` (renumbered)."""
    kept = [a for a in layout if a not in removed]
    order = sorted(kept)
    return tuple(order.index(a) for a in kept)


RULES: dict[str, LayoutRule] = {rule.name: rule for rule in (
    SourceRule(), StateRule(), ChannelRule(), FixedRule(), ShapeRule(), AgnosticRule(), AxisRule(), ReductionRule(),
    LastAxisRule(), ReshapeRule(), PermuteRule(), RelayoutRule(), RegionRule(), CustomRule())}
LAYOUT_RULES = RULES


def rule_for(node: "Node") -> LayoutRule:
    """The rule that applies to ``node``: its schema's, refined by the node."""
    try:
        rule = RULES[node.schema.layout]
    except KeyError:
        raise ValueError(f"{node.op}: unknown layout rule {node.schema.layout!r}") from None
    return rule.refine(node)
