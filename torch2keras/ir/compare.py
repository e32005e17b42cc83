"""How a computed array compares with its reference: the one rule every check of converted
outputs against PyTorch applies (``validate``, ``to_tflite``'s check, the direct writer's
check at another batch size).

NaN where the reference has NaN, and the same infinity where it has one, agree; a NaN or an
infinity anywhere else is an infinite error; booleans count the elements that differ.
"""

from __future__ import annotations

import numpy as np

__all__ = ["output_errors"]


def output_errors(out: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """(max abs error, max relative error, max |ref|) in float64; NaNs agree with NaNs."""
    if ref.size == 0:
        return 0.0, 0.0, 0.0
    if ref.dtype == np.bool_ or out.dtype == np.bool_:
        wrong = float(np.sum(out.astype(bool) != ref.astype(bool)))
        return wrong, wrong / ref.size, 1.0
    o, r = out.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(o - r)
    both_nan = np.isnan(o) & np.isnan(r)
    same_inf = np.isinf(o) & (o == r)
    diff = np.where(both_nan | same_inf, 0.0, diff)
    err = float(np.max(diff)) if not np.isnan(diff).any() else float("inf")
    finite = r[np.isfinite(r)]
    ref_max = float(np.max(np.abs(finite))) if finite.size else 0.0
    return err, err / max(ref_max, 1e-30), ref_max
