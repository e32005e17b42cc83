"""What a generative ``.tflite`` file records about itself besides its signatures: one
``Model.metadata`` entry, ``torch2keras.generative``, holding JSON -- the cache kind
(``"arguments"``: the signatures take and return the cache; ``"state"``: variables inside the
file) and the cache layout (``max_context``, layers, key/value heads, head size), which a
runner of a ``cache="state"`` file cannot read from its signatures."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..tflite.file import read_metadata

if TYPE_CHECKING:
    from .layout import CacheLayout

__all__ = ["METADATA_NAME", "file_metadata", "read_file_metadata"]

METADATA_NAME = "torch2keras.generative"


def file_metadata(layout: "CacheLayout", cache: str) -> dict[str, bytes]:
    """The metadata entries of a file with cache ``layout`` kept as ``cache``."""
    record = {"cache": cache, "max_context": layout.max_context, "num_layers": layout.num_layers,
              "kv_heads": layout.kv_heads, "head_dim": layout.head_dim}
    return {METADATA_NAME: json.dumps(record, sort_keys=True).encode()}


def read_file_metadata(path: str) -> dict:
    """The record ``file_metadata`` wrote into ``path`` (empty for a file without one)."""
    data = read_metadata(path).get(METADATA_NAME)
    return json.loads(data.decode()) if data else {}
