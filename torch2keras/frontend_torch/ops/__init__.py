"""Lowerings, one module per op family, named as the IR's families (``ir/ops/``); importing this
package registers them all.

A family module holds the lowerings of the torch ops whose IR ops are mainly of its family
(convolutions and products in ``nn``, norms in ``norm``, pooling and resizing in ``pool``, ...)
and the helpers only it uses; ``common.py`` holds the helpers several families share. The IR
families ``state`` and ``custom`` have no lowerings of torch ops (buffers become state nodes in
``lower.py``, user converters custom nodes in ``converters.py``).
"""

from . import creation, elementwise, reduction, scans, shape, indexing, nn, norm, pool  # noqa: F401
from . import attention, recurrent, control, dynamic, quantization  # noqa: F401
