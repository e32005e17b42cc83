"""The next token from a logits vector: greedy (argmax) or sampled (temperature, top-k, seed)."""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["TokenSampler"]


class TokenSampler:
    """``do_sample=False``: argmax (the first of equal maxima, as torch's); else a draw from
    ``softmax(logits / temperature)`` restricted to the ``top_k`` largest, with a numpy
    generator seeded by ``seed``."""

    def __init__(self, do_sample: bool = False, temperature: float = 1.0, top_k: Optional[int] = None,
                 seed: Optional[int] = None) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (use do_sample=False for greedy)")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.do_sample, self.temperature, self.top_k = do_sample, temperature, top_k
        self.rng = np.random.default_rng(seed)

    def __call__(self, logits: np.ndarray) -> int:
        logits = np.asarray(logits, np.float64).reshape(-1)
        if not self.do_sample:
            return int(np.argmax(logits))
        scaled = logits / self.temperature
        if self.top_k is not None and self.top_k < scaled.size:
            kth = np.partition(scaled, -self.top_k)[-self.top_k]
            scaled = np.where(scaled >= kth, scaled, -np.inf)
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        return int(self.rng.choice(probs.size, p=probs))
