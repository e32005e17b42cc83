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
    """tests/models.py's ``LastStepLSTM``: a 2-layer LSTM (16 -> 32 features, batch first), then a
    linear layer (32 -> 5) on its last step."""
    import torch
    from models import LastStepLSTM

    torch.manual_seed(seed)
    return LastStepLSTM().eval()


def essentials(seed: int = 0):
    """tests/models.py's ``NobucoEssentials``: conv -> hardsigmoid -> 1 - x[:, ::2] * x[:, 1::2]."""
    import torch
    from models import NobucoEssentials

    torch.manual_seed(seed)
    return NobucoEssentials().eval()
