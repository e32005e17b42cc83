"""tests/backend_tflite: the direct TFLite backend (torch2keras/backend_tflite)."""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for path in (HERE, TESTS, os.path.join(TESTS, "ops")):  # helpers here, models/compat above, the OpInfo harness
    if path not in sys.path:
        sys.path.insert(0, path)
