"""More physical-tensor op implementations for ``TorchOp`` (registered into ``kops.KOPS``).

Like ``kops``, this module must not import torch.
"""

from __future__ import annotations

from .kops import KOPS  # noqa: F401
