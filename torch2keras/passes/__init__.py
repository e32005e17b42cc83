"""Graph -> Graph rewrites and the pass manager that runs them."""

from .cancel_transposes import CancelTransposes
from .compose_transposes import ComposeTransposes
from .dce import DeadCodeElimination
from .fold_batchnorm import FoldBatchNorm
from .fold_channel_permutation import FoldChannelPermutation
from .fold_constants import FoldConstants
from .layout import AssignLayout
from .manager import PASSES, Pass, PassManager, get_pass, register_pass

__all__ = ["AssignLayout", "CancelTransposes", "ComposeTransposes", "DEFAULT_PIPELINE", "DeadCodeElimination", "FoldBatchNorm", "FoldChannelPermutation",
           "FoldConstants", "PASSES", "Pass", "PassManager", "default_pipeline", "get_pass", "register_pass"]


def default_pipeline(input_layouts=None, output_layouts=None) -> list[Pass]:
    """The passes ``compile`` runs, in order."""
    return [
        DeadCodeElimination(),
        FoldConstants(),
        FoldBatchNorm(),
        FoldChannelPermutation(),
        AssignLayout(input_layouts=input_layouts, output_layouts=output_layouts),
        FoldConstants(),
        CancelTransposes(),
        DeadCodeElimination(),
        ComposeTransposes(),
        DeadCodeElimination(),
    ]


DEFAULT_PIPELINE = [p.name for p in default_pipeline()]
