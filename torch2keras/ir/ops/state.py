"""State: buffers that ``forward()`` mutates (see ``ir/state.py``).

A call reads every state once, as it was when the call started, and writes its new value for
the next call. The IR interpreter (``ir/interpret.py``) keeps the values between its calls.
"""

from __future__ import annotations

from .creation import constant_type
from .schema import define

FAMILY = "state"

_BETWEEN_CALLS = "its value lives between calls: the IR interpreter reads and writes it"

define("state", FAMILY, [], constant_type, "state", {"name": ("str",), "value": ("array",), "dtype": ("dtype", None)},
       no_reference=_BETWEEN_CALLS, tflite=("VAR_HANDLE", "READ_VARIABLE"),
       doc="the value a state (a mutated buffer, by qualified name) holds when the call starts; "
           "`value` is its initial value")
define("state_update", FAMILY, ["value"], lambda t, a: [], "state", {"name": ("str",)}, num_outputs=0, effect=True,
       no_reference=_BETWEEN_CALLS, tflite=("ASSIGN_VARIABLE",),
       doc="stores `value` (stored in the state's own layout) as state `name`'s value for the next call")
