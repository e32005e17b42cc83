"""Which recurrent layers a direct TFLite file unrolls: the passes behind the ``lstm`` option of
``to_tflite`` and of ``compile(...).export_tflite(backend="direct")``, so both write one model
the same way.

``to_tflite`` runs ``direct_unroll_passes(lstm)`` inside its pipeline (right after batch-norm
folding, as ``compile``'s ``extra_passes``). ``export_tflite`` writes a model compiled already,
its IR past layout assignment (and the Keras model built from it): it runs them on a copy of the
compiled IR, then ``AFTER_UNROLL`` -- the default pipeline's passes that tidy what the unrolling
wrote (dead and constant nodes, slices, reshape chains, common subexpressions) -- so the file
holds the same ops as ``to_tflite``'s. The compiled IR and the Keras model stay as they were.
"""

from __future__ import annotations

from .canonicalize_reshapes import CanonicalizeReshapes
from .hoist_slices import HoistSlices
from .manager import Pass
from .pipeline import Cleanup, Simplify
from .unroll_lstm import UnrollLSTM

__all__ = ["AFTER_UNROLL", "AUTO_UNROLL_BYTES", "LSTM_FORMS", "check_lstm_form", "direct_unroll_passes"]

LSTM_FORMS = ("auto", "unroll", "fused")  # the lstm= option: see direct_unroll_passes
AUTO_UNROLL_BYTES = 1_500_000  # lstm="auto": unrolled up to this many bytes of weights read over all steps

AFTER_UNROLL: tuple[Pass, ...] = (Simplify(), HoistSlices(), CanonicalizeReshapes(), Cleanup())


def check_lstm_form(lstm: str) -> None:
    if lstm not in LSTM_FORMS:
        raise ValueError(f"lstm must be one of {LSTM_FORMS}, got {lstm!r}")


def direct_unroll_passes(lstm: str) -> tuple[Pass, ...]:
    """The unrolling passes for ``lstm``: ``"fused"`` none (one UNIDIRECTIONAL_SEQUENCE_LSTM per
    layer and direction); ``"unroll"`` every LSTM up to ``UnrollLSTM.max_steps`` steps;
    ``"auto"`` those reading at most ``AUTO_UNROLL_BYTES`` of weights over their steps."""
    check_lstm_form(lstm)
    return {"unroll": (UnrollLSTM(),), "auto": (UnrollLSTM(max_weight_bytes=AUTO_UNROLL_BYTES),),
            "fused": ()}[lstm]
