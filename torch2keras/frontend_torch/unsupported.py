"""The Core ATen ops torch2keras deliberately does not lower, each with the reason.

Everything ``torch.export`` captures decomposes into the closed Core ATen opset (the ATen
overloads tagged ``torch.Tag.core``). Every op of that set is either lowered (see
``frontend_torch/ops/``) or listed here: ops that have no meaning in an inference model in
TF/Keras/TFLite (size queries of dynamic shapes are lowered: ``ops/dynamic.py``).
``torch2keras supported --unsupported`` prints this list.
"""

from __future__ import annotations

import torch

__all__ = ["UNSUPPORTED", "core_aten_ops", "unsupported_reason"]

aten = torch.ops.aten

_TRAINING = "a backward (gradient) kernel: training only, never part of an inference graph"
_RANDOM = "random sampling: an inference model must be a deterministic function of its inputs"
_SYMBOLIC = ("a symbolic stride/layout query: only dynamic or data-dependent shapes leave one in the graph, and "
             "Keras/TFLite tensors have no strides")
_DATA_SHAPE = "its output shape depends on the input values; Keras/TFLite models here have static shapes"

UNSUPPORTED: dict = {
    aten._adaptive_avg_pool2d_backward.default: _TRAINING,
    aten.avg_pool2d_backward.default: _TRAINING,
    aten.convolution_backward.default: _TRAINING,
    aten.embedding_dense_backward.default: _TRAINING,
    aten.max_pool2d_with_indices_backward.default: _TRAINING,
    aten.native_group_norm_backward.default: _TRAINING,
    aten.native_layer_norm_backward.default: _TRAINING,
    aten.rand.default: _RANDOM,
    aten.randn.default: _RANDOM,
    aten.randperm.default: _RANDOM,
    aten.nonzero.default: _DATA_SHAPE,
    aten._local_scalar_dense.default:
        "reads a tensor value into a Python number (data-dependent control flow): specialised at capture",
    aten.resize_.default: "resizes a tensor's storage in place: nothing to compute in a functional graph of "
                          "static shapes",
    aten.sym_numel.default: "a symbolic size query that torch.export writes as the product of sym_size calls "
                            "(lowered): it never stays in a captured graph",
    aten.sym_stride.int: _SYMBOLIC,
    aten.sym_storage_offset.default: _SYMBOLIC,
    aten._fft_r2c.default: "Fourier transform with a complex result: no complex dtype in Keras/TFLite",
    aten._fft_c2r.default: "Fourier transform of a complex input: no complex dtype in Keras/TFLite",
    aten.atan2.out: "an out= overload: functional graphs from torch.export never contain it (atan2.default is lowered)",
}

for _name in ("sym_is_contiguous",):  # (newer torch versions)
    if hasattr(aten, _name):
        UNSUPPORTED[getattr(aten, _name).default] = _SYMBOLIC


def unsupported_reason(op) -> str | None:
    return UNSUPPORTED.get(op)


def core_aten_ops() -> list:
    """Every ATen overload tagged ``torch.Tag.core``, sorted by name."""
    found = []
    for name in dir(aten):
        try:
            packet = getattr(aten, name)
        except (AttributeError, RuntimeError):
            continue
        if not isinstance(packet, torch._ops.OpOverloadPacket):
            continue
        for overload in packet.overloads():
            op = getattr(packet, overload)
            if torch.Tag.core in op.tags:
                found.append(op)
    return sorted(found, key=str)
