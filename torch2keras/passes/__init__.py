"""Graph -> Graph rewrites and the pass manager that runs them."""

from .cancel_transposes import CancelTransposes
from .canonicalize_reshapes import CanonicalizeReshapes
from .compose_transposes import ComposeTransposes
from .cse import CommonSubexpressionElimination
from .dce import DeadCodeElimination
from .fold_batchnorm import FoldBatchNorm
from .fold_channel_permutation import FoldChannelPermutation
from .fold_channel_shuffle import FoldChannelShuffle
from .fold_constants import FoldConstants
from .layout import AssignLayout
from .manager import PASSES, Pass, PassManager, get_pass, register_pass

__all__ = ["AssignLayout", "CancelTransposes", "CanonicalizeReshapes", "CommonSubexpressionElimination", "ComposeTransposes", "DEFAULT_PIPELINE", "DeadCodeElimination", "FoldBatchNorm", "FoldChannelPermutation",
           "FoldChannelShuffle", "FoldConstants", "PASSES", "Pass", "PassManager", "default_pipeline", "get_pass", "register_pass"]


def default_pipeline(input_layouts=None, output_layouts=None, optimize_layout: bool = True) -> list[Pass]:
    """The passes ``compile`` runs, in order. ``optimize_layout=False`` keeps every op but the
    channel-aware ones in PyTorch's order and leaves their transposes in place (a baseline)."""
    layout = AssignLayout(input_layouts=input_layouts, output_layouts=output_layouts, optimize=optimize_layout)
    if not optimize_layout:
        return [DeadCodeElimination(), FoldConstants(), FoldBatchNorm(), layout, FoldConstants(),
                DeadCodeElimination()]
    return [
        DeadCodeElimination(),
        FoldConstants(),
        FoldBatchNorm(),
        FoldChannelShuffle(),
        FoldChannelPermutation(),
        CanonicalizeReshapes(),
        layout,
        FoldConstants(),
        CancelTransposes(),
        DeadCodeElimination(),
        ComposeTransposes(),
        CommonSubexpressionElimination(),
        DeadCodeElimination(),
    ]


DEFAULT_PIPELINE = [p.name for p in default_pipeline()]
