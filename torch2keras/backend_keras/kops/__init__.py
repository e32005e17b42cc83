"""The ``keras.ops`` kernels ``TorchOp`` layers run, one module per op family; importing this
package registers them all into ``KOPS`` (``registry.py``).

Each kernel takes tensors in their stored layout and physical axis parameters. The package
imports neither torch nor anything of the compiler: a saved model needs only it and the layer
classes (``layers.py``) to load. Kernel names are persisted in ``.keras`` files: see
``registry.py`` and ``docs/keras_format.md`` before renaming one.
"""

from __future__ import annotations

from . import attention, dynamic, elementwise, indexing, nn, pool, quantization, reduction, scans, shape  # noqa: F401
from .registry import ALIASES, FORMAT_VERSION, KOPS, register, resolve

__all__ = ["ALIASES", "FORMAT_VERSION", "KOPS", "register", "resolve"]
