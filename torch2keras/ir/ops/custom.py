"""Calls converted by a user converter (``torch2keras.converter``).

Result types are given by the lowering: as many results as the converted call returns
(``num_outputs=None``). Its ``layout`` attribute says what the converter's Keras code expects:
``channels_last``, ``torch`` or ``any`` (layout rule ``custom``).
"""

from __future__ import annotations

from .schema import define

FAMILY = "custom"

define("custom", FAMILY, ["*xs"], None, "custom",
       {"converter": ("str",), "layout": ("str", "torch"), "params": ("any", None)}, num_outputs=None,
       no_reference="the user's Keras code: only the backend runs it",
       doc="a call converted by a user converter (torch2keras.converter); params: JSON-able call info")
