"""The op registry: what the IR knows about one op, declared once, in the op's family module.

An ``OpSchema`` holds every facet of an op that the compiler reads:

  inputs, attrs, num_outputs, effect   arity and attributes (the verifier, printer and parser)
  infer                                 result types from input types and attributes
  layout                                the name of its layout rule (``ir/layout_rules.py``)
  reference                             a numpy implementation on logical arrays (constant
                                        folding, the IR interpreter); ``no_reference`` says why
                                        an op has none
  dim_attrs                             attributes that may hold symbolic dims (checked by the
                                        verifier, renamed with the dims)
  tflite                                the TFLite builtins the op is expected to become (maps a
                                        TFLite op back to the IR op it comes from)
  delegate_notes                        per delegate target ("all", "XNNPACK", "GPU", "EdgeTPU"),
                                        what to change when those TFLite ops stay on the CPU

Family modules (``ir/ops/<family>.py``) call ``define``; ``tests/test_registries.py`` checks
that every op has all of them (an emitter, a reference or a reason, known TFLite names, ...).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence

import attrs

from ..types import TensorType

__all__ = ["AttrSpec", "OpSchema", "REQUIRED", "SCHEMAS", "define", "families", "schema"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

InferFn = Callable[[Sequence[TensorType], dict], list[TensorType]]
ATTR_KINDS = ("int", "float", "bool", "str", "ints", "floats", "dtype", "array", "any", "graph")


@attrs.frozen
class AttrSpec:
    kind: str  # one of ATTR_KINDS; "graph" holds a region (a sub-graph)
    default: Any = REQUIRED

    def __attrs_post_init__(self) -> None:
        if self.kind not in ATTR_KINDS:
            raise ValueError(f"attribute kind {self.kind!r} is not one of {ATTR_KINDS}")


@attrs.frozen
class OpSchema:
    name: str
    family: str
    inputs: tuple[str, ...]  # names; a trailing '?' marks optional, a leading '*' variadic
    attrs: dict[str, AttrSpec]
    infer: Optional[InferFn]
    layout: str  # the layout rule's name (ir/layout_rules.py)
    num_outputs: Optional[int] = 1  # None: any number (given by the node's types)
    doc: str = ""
    effect: bool = False  # a side effect (a state update): kept even when nothing reads a result
    reference: Optional[Callable[..., Any]] = None  # fn(*arrays, **attrs) -> array | tuple of arrays
    no_reference: str = ""  # why there is no reference (required when reference is None)
    dim_attrs: tuple[str, ...] = ()
    tflite: tuple[str, ...] = ()
    delegate_notes: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)  # target -> {TFLite op: note}

    @property
    def min_inputs(self) -> int:
        return sum(1 for n in self.inputs if not n.endswith("?") and not n.startswith("*"))

    @property
    def max_inputs(self) -> float:
        return math.inf if any(n.startswith("*") for n in self.inputs) else len(self.inputs)

    def with_defaults(self, given: dict) -> dict:
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise ValueError(f"{self.name}: unknown attribute(s) {sorted(unknown)}")
        out = {}
        for key, spec in self.attrs.items():
            if key in given:
                out[key] = given[key]
            elif spec.default is REQUIRED:
                raise ValueError(f"{self.name}: missing attribute {key!r}")
            else:
                out[key] = spec.default
        return out


SCHEMAS: dict[str, OpSchema] = {}


def schema(op: str) -> OpSchema:
    try:
        return SCHEMAS[op]
    except KeyError:
        raise KeyError(f"unknown IR op {op!r}") from None


def define(name: str, family: str, inputs: Sequence[str], infer: Optional[InferFn], layout: str,
           attrs_: Optional[Mapping[str, Any]] = None, *, num_outputs: Optional[int] = 1, doc: str = "",
           effect: bool = False, reference: Optional[Callable[..., Any]] = None, no_reference: str = "",
           dim_attrs: Sequence[str] = (), tflite: Sequence[str] = (),
           delegate_notes: Optional[Mapping[str, Mapping[str, str]]] = None) -> OpSchema:
    """Declare IR op ``name`` with all its facets (see the module docstring); returns its schema."""
    if name in SCHEMAS:
        raise ValueError(f"IR op {name!r} is already defined (family {SCHEMAS[name].family!r})")
    specs = {k: (v if isinstance(v, AttrSpec) else AttrSpec(*v)) for k, v in (attrs_ or {}).items()}
    unknown = set(dim_attrs) - set(specs)
    if unknown:
        raise ValueError(f"{name}: dim_attrs {sorted(unknown)} are not attributes")
    SCHEMAS[name] = OpSchema(name=name, family=family, inputs=tuple(inputs), attrs=specs, infer=infer, layout=layout,
                             num_outputs=num_outputs, doc=doc, effect=effect, reference=reference,
                             no_reference=no_reference, dim_attrs=tuple(dim_attrs), tflite=tuple(tflite),
                             delegate_notes=dict(delegate_notes or {}))
    return SCHEMAS[name]


def families() -> dict[str, list[str]]:
    """Family name -> the ops it defines, in definition order."""
    out: dict[str, list[str]] = {}
    for s in SCHEMAS.values():
        out.setdefault(s.family, []).append(s.name)
    return out
