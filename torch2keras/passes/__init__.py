"""Graph -> Graph rewrites and the pass manager that runs them."""

from .cancel_transposes import CancelTransposes
from .canonicalize_reshapes import CanonicalizeReshapes
from .compose_transposes import ComposeTransposes
from .cse import CommonSubexpressionElimination
from .dce import DeadCodeElimination
from .drop_unread_state import DropUnreadState
from .fixpoint import Fixpoint
from .fold_batchnorm import FoldBatchNorm
from .fold_channel_permutation import FoldChannelPermutation
from .group_query_attention import GroupQueryAttention
from .fold_constants import FoldConstants
from .fold_norm_affine import FoldNormAffine
from .hoist_slices import HoistSlices
from .layout import AssignLayout
from .manager import PASSES, Pass, PassManager, PassRecord, get_pass, register_pass
from .unroll_gru import UnrollGRU
from .unroll_lstm import UnrollLSTM
from .update_slice_from_select import UpdateSliceFromSelect
from .pipeline import DEFAULT_PIPELINE, Cleanup, Simplify, SimplifyTransposes, default_pipeline

__all__ = ["AssignLayout", "CancelTransposes", "CanonicalizeReshapes", "Cleanup", "CommonSubexpressionElimination",
           "ComposeTransposes", "DEFAULT_PIPELINE", "DeadCodeElimination", "DropUnreadState", "Fixpoint", "FoldBatchNorm",
           "FoldChannelPermutation", "FoldConstants", "FoldNormAffine", "GroupQueryAttention", "HoistSlices", "PASSES", "Pass", "PassManager", "PassRecord", "Simplify",
           "SimplifyTransposes", "UnrollGRU", "UnrollLSTM", "UpdateSliceFromSelect", "default_pipeline", "get_pass", "register_pass"]
