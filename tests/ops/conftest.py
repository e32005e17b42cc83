"""tests/ops: PyTorch's OpInfo samples through torch2keras (see harness.py and suite.py)."""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (HERE, os.path.dirname(HERE)):  # harness.py here, compat.py one level up
    if path not in sys.path:
        sys.path.insert(0, path)
