"""The Keras emitters of the IR ops, one module per op family (the families of ``ir/ops/``);
importing this package registers them all into ``EMITTERS`` (``context.py``).

Built-in Keras layers carry weights wherever one exists (convolutions, ``Dense``, norms,
pooling, ``Embedding``); everything else is a ``TorchOp`` running a kernel of ``kops/``.
"""

from __future__ import annotations

from . import creation, elementwise, reduction, scans, shape, indexing, nn, norm, pool  # noqa: F401
from . import attention, recurrent, control, state, dynamic, custom, quantization  # noqa: F401
from .context import EMITTERS, EmitContext, ModelBuilder, emitter, keras_dtype

__all__ = ["EMITTERS", "EmitContext", "ModelBuilder", "emitter", "keras_dtype"]
