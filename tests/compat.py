"""Test-only helpers shared by the test suite (not part of the package).

Why ``import_torchvision`` exists
---------------------------------
The project pins a CPU-only torch build. The torchvision wheel that goes with
it ships compiled C++ ops (``torchvision/_C.so``) which may fail to load
against that torch. torchvision tolerates the missing extension, but at import
time it still registers Python "fake" (meta) kernels for ``torchvision::nms``
and ``torchvision::qnms``. Registering a fake kernel requires the operator
schema to exist, and the schema normally comes from the compiled library, so
``import torchvision`` dies with ``RuntimeError: operator torchvision::nms does
not exist``.

The tests only need torchvision's pure-Python model definitions, never its
custom ops. So when the plain import fails we declare the two schemas
ourselves through ``torch.library``, drop whatever half-imported
``torchvision`` modules are left in ``sys.modules``, and import again.

``seeded_model`` builds a model deterministically and gives it non-trivial
weights and BatchNorm statistics, so that numerical comparisons between the
torch model and the converted model actually exercise every parameter
(freshly initialised models have zero biases, unit BN variances, and
zero-initialised residual branches that hide conversion mistakes).
"""

from __future__ import annotations

import sys

import torch

# The Library object owns the schema registrations; if it is garbage
# collected the operators disappear again, so keep it in a module global.
_TORCHVISION_SCHEMA_LIB = None


def _declare_torchvision_schemas() -> None:
    global _TORCHVISION_SCHEMA_LIB
    if _TORCHVISION_SCHEMA_LIB is not None:
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_SCHEMA_LIB = lib


def _forget_torchvision_modules() -> None:
    for name in list(sys.modules):
        if name == "torchvision" or name.startswith("torchvision."):
            del sys.modules[name]


def import_torchvision():
    """Import and return ``torchvision``, working around missing compiled ops."""
    try:
        import torchvision
    except Exception:
        _forget_torchvision_modules()
        _declare_torchvision_schemas()
        import torchvision
    return torchvision


_BN_TYPES = (torch.nn.modules.batchnorm._BatchNorm,)


@torch.no_grad()
def seeded_model(factory, example_input, seed: int = 0) -> torch.nn.Module:
    """Build ``factory()`` deterministically with non-degenerate weights.

    - seeds torch with ``seed`` before construction;
    - re-draws every all-zero floating-point parameter from N(0, 0.02**2);
    - fills BatchNorm running_mean / running_var from two forward passes of
      ``example_input`` (a tensor, or a tuple/list of positional inputs)
      using a cumulative average (momentum=None), other modules staying in
      eval mode;
    - returns the model in eval mode.
    """
    torch.manual_seed(seed)
    model = factory()
    model.eval()

    for param in model.parameters():
        if param.is_floating_point() and param.numel() > 0 and not param.any():
            param.normal_(0.0, 0.02)

    bn_modules = [m for m in model.modules() if isinstance(m, _BN_TYPES)]
    if bn_modules:
        saved = []
        for bn in bn_modules:
            if not bn.track_running_stats:
                continue
            saved.append((bn, bn.momentum))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average
            bn.train()
        args = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
        for _ in range(2):
            model(*args)
        for bn, momentum in saved:
            bn.momentum = momentum
        model.eval()

    return model
