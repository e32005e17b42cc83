"""The default pass pipeline and the named fixpoint groups it is built from."""

from __future__ import annotations

import dataclasses

from .cancel_transposes import CancelTransposes
from .canonicalize_reshapes import CanonicalizeReshapes
from .compose_transposes import ComposeTransposes
from .cse import CommonSubexpressionElimination
from .dce import DeadCodeElimination
from .fixpoint import Fixpoint
from .fold_batchnorm import FoldBatchNorm
from .fold_channel_permutation import FoldChannelPermutation
from .group_query_attention import GroupQueryAttention
from .update_slice_from_select import UpdateSliceFromSelect
from .fold_constants import FoldConstants
from .fold_norm_affine import FoldNormAffine
from .hoist_slices import HoistSlices
from .layout import AssignLayout
from .manager import Pass, register_pass

__all__ = ["Cleanup", "DEFAULT_PIPELINE", "Simplify", "SimplifyTransposes", "default_pipeline"]


@register_pass
@dataclasses.dataclass(frozen=True)
class Simplify(Fixpoint):
    """Dead code elimination and constant folding to their common fixpoint: afterwards no node
    is dead and none computes a constant the evaluator could fold."""

    passes: tuple = (DeadCodeElimination(), FoldConstants())
    name: str = dataclasses.field(default="simplify", kw_only=True)


@register_pass
@dataclasses.dataclass(frozen=True)
class SimplifyTransposes(Fixpoint):
    """After layout assignment: constants (relayouts of weights) folded, transpose pairs
    cancelled or composed, and the dead swept, to a common fixpoint: afterwards no node computes
    a constant the evaluator could fold, no relayout reads a relayout, none is the identity, and
    no node is dead."""

    passes: tuple = (FoldConstants(), CancelTransposes(), DeadCodeElimination())
    name: str = dataclasses.field(default="simplify_transposes", kw_only=True)


@register_pass
@dataclasses.dataclass(frozen=True)
class Cleanup(Fixpoint):
    """Common subexpressions merged and the dead swept, to a common fixpoint: afterwards no
    two nodes compute the same thing and no node is dead."""

    passes: tuple = (CommonSubexpressionElimination(), DeadCodeElimination())
    name: str = dataclasses.field(default="cleanup", kw_only=True)


def default_pipeline(input_layouts=None, output_layouts=None, optimize_layout: bool = True) -> list[Pass]:
    """The passes ``compile`` runs, in order. ``optimize_layout=False`` keeps every op but the
    channel-aware ones in PyTorch's order and leaves their transposes in place (a baseline)."""
    layout = AssignLayout(input_layouts=input_layouts, output_layouts=output_layouts, optimize=optimize_layout)
    if not optimize_layout:
        return [Simplify(), FoldBatchNorm(), layout, Simplify()]
    return [
        Simplify(),
        FoldBatchNorm(),
        FoldChannelPermutation(),
        GroupQueryAttention(),
        UpdateSliceFromSelect(),
        HoistSlices(),
        FoldNormAffine(),
        CanonicalizeReshapes(),
        layout,
        SimplifyTransposes(),
        ComposeTransposes(),
        Cleanup(),
    ]


DEFAULT_PIPELINE = [p.name for p in default_pipeline()]
