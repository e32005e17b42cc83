"""uint8 activations of a quantized model as int8 ones: the same real values, integers 128 lower.

Quantizers for x86 servers (torchao's ``X86InductorQuantizer``, onnxruntime-style configs)
quantize activations as uint8 with a zero point in [0, 255]; TFLite's int8 kernels read and
write int8. For every integer ``q`` in [0, 255] and zero point ``z``::

    quantize_u8(x)  = clamp(round(x / s) + z, qmin, qmax)
    quantize_i8(x)  = clamp(round(x / s) + (z - 128), qmin - 128, qmax - 128) = quantize_u8(x) - 128
    dequantize      = (q - z) * s = ((q - 128) - (z - 128)) * s

so a uint8 ``quantize`` whose integers only ``dequantize`` nodes read is an int8 ``quantize``
with its zero point and bounds shifted by -128, its readers shifted alike: exact, no value
changes. uint8 integers a graph output returns (``integer_io``) or another op reads stay as
they are (the layers reading them stay float; ``annotate_quantized`` says why).
"""

from __future__ import annotations

import dataclasses

from ..ir import Graph, Node
from .manager import Pass, register_pass

__all__ = ["SignedActivations", "UINT8_SHIFT"]

UINT8_SHIFT = 128


def _shifted(attrs: dict) -> dict:
    return {**attrs, "zero_point": [int(z) - UINT8_SHIFT for z in attrs["zero_point"]],
            "qmin": int(attrs["qmin"]) - UINT8_SHIFT, "qmax": int(attrs["qmax"]) - UINT8_SHIFT}


def _movable(graph: Graph, q: Node) -> bool:
    """A per-tensor uint8 quantize whose integers only per-tensor dequantizes read."""
    if q.attrs["axis"] is not None or q.output.type.dtype != "u8" or graph.is_output(q.output):
        return False
    readers = graph.users(q.output)
    return bool(readers) and all(r.op == "dequantize" and r.attrs["axis"] is None for r in readers)


@register_pass
@dataclasses.dataclass(frozen=True)
class SignedActivations(Pass):
    """Invariant afterwards: no per-tensor uint8 ``quantize`` is read only by per-tensor
    ``dequantize`` nodes: each such pair is int8 with zero points and bounds 128 lower (the same
    real values; the module docstring)."""

    name = "signed_activations"

    def run(self, graph: Graph) -> bool:
        changed = False
        for q in list(graph.nodes_by_op("quantize")):
            if not _movable(graph, q):
                continue
            signed = graph.add_node("quantize", list(q.inputs), attrs={**_shifted(q.attrs), "dtype": "i8"},
                                    types=[q.output.type.replace(dtype="i8")], loc=q.loc, name=q.output.name_hint)
            for d in graph.users(q.output):
                shifted = graph.add_node("dequantize", [signed.output], attrs=_shifted(d.attrs), types=[d.output.type],
                                         loc=d.loc, name=d.output.name_hint)
                graph.replace_all_uses(d.output, shifted.output)
                graph.erase(d)
            graph.erase(q)
            changed = True
        return changed
