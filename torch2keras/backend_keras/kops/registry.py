"""The kernel registry: ``KOPS`` maps each kernel name a ``TorchOp`` layer persists to its function.

A kernel is ``fn(*tensors, **params)`` over ``keras.ops`` on tensors in their *stored* layout,
every axis and shape parameter already physical (the emitters translated them). The family
modules of this package fill ``KOPS`` through ``register``.

The names are a file-format contract (``docs/keras_format.md``): ``.keras`` files hold them
(``TorchOp.get_config()["fn"]``) and must keep loading. A kernel is renamed by adding the
former name to ``ALIASES`` (former name -> current name), never by dropping it; a change of a
kernel's parameters or meaning raises ``FORMAT_VERSION`` and translates the older configs where
``TorchOp`` is built from a config. A name, once persisted, never means another computation.
"""

from __future__ import annotations

from typing import Callable, Mapping

__all__ = ["ALIASES", "FORMAT_VERSION", "KOPS", "register", "resolve"]

# the format of TorchOp configs this code writes and the newest it reads; configs written before
# the format had a number carry no ``version`` and are format 1
FORMAT_VERSION = 1

# former kernel name -> its current name (none renamed yet)
ALIASES: dict[str, str] = {}

KOPS: dict[str, Callable] = {}


def register(table: Mapping[str, Callable]) -> None:
    """Add the kernels of ``table`` (name -> function); a name may be defined once."""
    for name, fn in table.items():
        if name in KOPS or name in ALIASES:
            raise ValueError(f"kernel {name!r} is already defined (or is the former name of one in ALIASES)")
        KOPS[name] = fn


def resolve(name: str, version: int = FORMAT_VERSION) -> str:
    """The current name of the kernel a config of format ``version`` calls ``name``."""
    if version > FORMAT_VERSION:
        raise ValueError(f"TorchOp of format {version}: this torch2keras reads formats up to {FORMAT_VERSION}; "
                         f"load the file with a newer torch2keras")
    current = ALIASES.get(name, name)
    if current not in KOPS:
        raise ValueError(f"unknown op {name!r}: no kernel of that name (the file needs a newer torch2keras, "
                         f"or a renamed kernel is missing from ALIASES)")
    return current
