"""The direct backend's op emitters, one module per IR op family (``ir/ops/<family>.py``);
importing this package registers every emitter in ``context.EMITTERS``. Helpers several
families use are in ``common``."""

from . import (attention, control, dynamic, elementwise, indexing, nn, norm, pool, quantization, recurrent,  # noqa: F401
               reduction, scans, shape, state)

__all__: list[str] = []
