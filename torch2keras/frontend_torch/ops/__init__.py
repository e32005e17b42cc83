"""Lowerings, one module per op family; importing this package registers them all."""

from . import creation, elementwise, nn, reduction, rnn, shape  # noqa: F401
from . import indexing, math_extra, nn_extra, scans  # noqa: F401  (the rest of the Core ATen opset)
from . import control_flow  # noqa: F401  (torch.cond, while_loop, scan, map: IR regions)
from . import symbolic  # noqa: F401  (size arithmetic of dynamic shapes)
