"""Model builders shared by the demo, the benchmarks and the tests: random, seeded weights.

torchvision's compiled ops do not load against a CPU-only torch; ``import_torchvision`` makes
its pure-Python models importable (see tests/compat.py, which this re-exports).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from compat import import_torchvision, seeded_model  # noqa: E402

__all__ = ["essentials", "import_torchvision", "lstm2_linear", "seeded_model", "torchvision_model"]


def torchvision_model(name: str, example, seed: int = 0):
    tv = import_torchvision()
    return seeded_model(getattr(tv.models, name), example, seed=seed)


def lstm2_linear(seed: int = 0):
    """A 2-layer LSTM (16 -> 32 features, batch first), then a linear layer (32 -> 5) on its last step."""
    import torch
    from torch import nn

    class LSTM2Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True)
            self.fc = nn.Linear(32, 5)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    torch.manual_seed(seed)
    return LSTM2Linear().eval()


def essentials(seed: int = 0):
    """tests/models.py's ``NobucoEssentials``: conv -> hardsigmoid -> 1 - x[:, ::2] * x[:, 1::2]."""
    import torch
    from models import NobucoEssentials

    torch.manual_seed(seed)
    return NobucoEssentials().eval()
