"""Which recurrent layers a direct TFLite file unrolls: the passes behind the ``lstm`` option of
``to_tflite`` and of ``compile(...).export_tflite(backend="direct")``, so both write one model
the same way, and the limits measured for each layer type.

Every recurrent layer is decided by one rule (``unrolling.unroll_refusal``: at most ``max_steps``
steps and ``max_weight_bytes`` of weights read over them); the limits are where the unrolled
file measured faster on XNNPACK (2 threads) than the form left whole:

* LSTM (``UnrollLSTM``, the weights read: every layer's w_ih and w_hh): against the fused
  UNIDIRECTIONAL_SEQUENCE_LSTM, 64 steps and ``AUTO_UNROLL_BYTES`` (2 layers of 32 units over 10
  steps, 0.57 MB: 0.59x; 64 units over 10 steps, 2.1 MB: 1.6x; docs/recurrent.md). ``lstm``
  chooses: ``"auto"`` these limits, ``"unroll"`` up to 64 steps whatever the size, ``"fused"``
  none;
* GRU (``UnrollGRU``, the weights read: every layer's w_hh): against a WHILE loop (TFLite has no
  fused GRU), ``GRU_MAX_STEPS`` and ``GRU_MAX_BYTES`` (2 layers of 64 units over 20 steps, 2.0
  MB: 0.81x; over 32 steps, 3.1 MB: 1.0x; 32 units over 64 steps: 1.24x; 128 units over 50
  steps: 1.64x), whatever ``lstm`` says.

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
from .unroll_gru import UnrollGRU
from .unroll_lstm import UnrollLSTM

__all__ = ["AFTER_UNROLL", "AUTO_UNROLL_BYTES", "GRU_MAX_BYTES", "GRU_MAX_STEPS", "LSTM_FORMS", "RECURRENT_OPS",
           "check_lstm_form", "direct_unroll_passes"]

LSTM_FORMS = ("auto", "unroll", "fused")  # the lstm= option: see direct_unroll_passes
AUTO_UNROLL_BYTES = 1_500_000  # lstm="auto": unrolled up to this many bytes of weights read over all steps
GRU_MAX_STEPS = 32
GRU_MAX_BYTES = 2_000_000  # the recurrent weights (float32) of every layer times the steps
RECURRENT_OPS = ("lstm", "gru")  # the IR ops the passes unroll

AFTER_UNROLL: tuple[Pass, ...] = (Simplify(), HoistSlices(), CanonicalizeReshapes(), Cleanup())


def check_lstm_form(lstm: str) -> None:
    if lstm not in LSTM_FORMS:
        raise ValueError(f"lstm must be one of {LSTM_FORMS}, got {lstm!r}")


def direct_unroll_passes(lstm: str) -> tuple[Pass, ...]:
    """The unrolling passes of a direct file: LSTMs as ``lstm`` says -- ``"fused"`` none (one
    UNIDIRECTIONAL_SEQUENCE_LSTM per layer and direction), ``"unroll"`` every one up to
    ``UnrollLSTM.max_steps`` steps, ``"auto"`` those reading at most ``AUTO_UNROLL_BYTES`` of
    weights over their steps -- and GRUs within ``GRU_MAX_STEPS`` and ``GRU_MAX_BYTES`` (the
    direct writer writes the others as a WHILE loop)."""
    check_lstm_form(lstm)
    lstms = {"unroll": (UnrollLSTM(),), "auto": (UnrollLSTM(max_weight_bytes=AUTO_UNROLL_BYTES),), "fused": ()}[lstm]
    return (*lstms, UnrollGRU(max_steps=GRU_MAX_STEPS, max_weight_bytes=GRU_MAX_BYTES))
