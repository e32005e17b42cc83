"""Channel shuffles as index vectors: ShuffleNet's reshape-transpose-reshape of the channel axis
is ``index_select`` with the permutation ``shuffle_permutation(C, g)``; passes recognise it and
both backends write it as one small transpose (``shuffle_groups`` finds g back)."""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["shuffle_groups", "shuffle_permutation"]


def shuffle_permutation(channels: int, groups: int) -> np.ndarray:
    """The channel shuffle of ``channels`` channels in ``groups`` groups as an index_select index."""
    k = np.arange(channels)
    return (k % groups) * (channels // groups) + k // groups


def shuffle_groups(index: np.ndarray) -> Optional[int]:
    """The group count g > 1 if ``index`` is the channel shuffle of len(index) channels in g groups."""
    index = np.asarray(index)
    n = index.size
    if index.ndim != 1 or n < 4:
        return None
    for g in range(2, n):
        if n % g == 0 and index[1] == n // g and np.array_equal(index, shuffle_permutation(n, g)):
            return g
    return None
