"""Helpers of the direct TFLite backend's tests: the IR after the default passes (no Keras), the
file written and run in LiteRT (2 threads, default delegates), errors against PyTorch, and the
converter path's op counts for comparison."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree

from torch2keras.backend_tflite import write_tflite
from torch2keras.frontend_torch import capture, lower
from torch2keras.ir import Graph
from torch2keras.ir.types import invert
from torch2keras.passes import PassManager, default_pipeline

TOL = 1e-4  # scaled by max(1, max |reference|)


def annotated_ir(model: torch.nn.Module, inputs: Sequence[torch.Tensor], input_layouts=None,
                 output_layouts=None) -> Graph:
    """The graph ``compile`` would emit: captured, lowered, through the default pass pipeline."""
    captured = capture(model.eval(), tuple(t.clone() for t in inputs), {})
    graph = lower(captured, type(model).__name__)
    PassManager(default_pipeline(input_layouts, output_layouts)).run(graph)
    return graph


def reference(model: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*[t.clone() for t in inputs])
    return [t.numpy() for t in pytree.tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def run_file(graph: Graph, path: str, inputs: Sequence[Any], delegates: bool = True, invocations: int = 1
             ) -> list[np.ndarray]:
    """The file's outputs (PyTorch layout) on ``inputs`` (PyTorch layout), after ``invocations``
    calls of one interpreter (a state kept between calls shows up on the second)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if delegates else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    runner = Interpreter(model_path=str(path), num_threads=2, **kwargs).get_signature_runner("serving_default")
    feed = {}
    for name, v, x in zip(graph.input_names, graph.inputs, inputs):
        x = np.asarray(x)
        feed[name] = np.transpose(x, v.type.layout) if v.type.layout else x
    for _ in range(invocations):
        outs = runner(**feed)
    result = []
    for name, v in zip(graph.output_names, graph.outputs):
        y = np.asarray(outs[name])
        result.append(np.transpose(y, invert(v.type.layout)) if v.type.layout else y)
    return result


def scaled_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max(1, max |ref|)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise AssertionError(f"shape {got.shape} != PyTorch's {ref.shape}")
    if not ref.size:
        return 0.0
    return float(np.max(np.abs(got - ref))) / max(1.0, float(np.max(np.abs(ref))))


def check_direct(model: torch.nn.Module, inputs: Sequence[torch.Tensor], tmp_path, name: str,
                 tol: float = TOL, invocations: int = 2, **layouts) -> tuple[Graph, Any]:
    """Write the model directly, run it in LiteRT and assert every output within ``tol`` of
    PyTorch's (on the last of ``invocations`` calls); returns the graph and the write result."""
    ref = reference(model, inputs)
    graph = annotated_ir(model, inputs, **layouts)
    written = write_tflite(graph, os.path.join(str(tmp_path), f"{name}.tflite"))
    outs = run_file(graph, written.path, [t.numpy() for t in inputs], invocations=invocations)
    assert len(outs) == len(ref)
    for k, (o, r) in enumerate(zip(outs, ref)):
        err = scaled_error(o, r)
        assert err < tol, f"{name}: output {k} differs from PyTorch by {err:.3g} (scaled)"
    return graph, written


def converter_counts(model: torch.nn.Module, inputs: Sequence[torch.Tensor], tmp_path, name: str,
                     **layouts) -> dict[str, int]:
    """Op counts of the converter path's file (compile -> Keras -> TensorFlow's converter)."""
    import torch2keras
    from torch2keras.tflite.file import read_tflite

    result = torch2keras.compile(model.eval(), tuple(t.clone() for t in inputs), validate=False,
                                 input_layouts=layouts.get("input_layouts"),
                                 output_layouts=layouts.get("output_layouts"))
    path = result.export_tflite(os.path.join(str(tmp_path), f"{name}_converter.tflite"), validate=False,
                                delegates=False)
    return read_tflite(path).op_counts()


def assert_not_more_ops(direct: dict[str, int], converter: dict[str, int], name: str) -> None:
    """The direct file has at most as many ops, and at most as many TRANSPOSEs, as the converter's."""
    assert sum(direct.values()) <= sum(converter.values()), \
        f"{name}: {sum(direct.values())} ops {direct} > the converter's {sum(converter.values())} {converter}"
    assert direct.get("TRANSPOSE", 0) <= converter.get("TRANSPOSE", 0), \
        f"{name}: {direct.get('TRANSPOSE', 0)} TRANSPOSE > the converter's {converter.get('TRANSPOSE', 0)}"


def xnnpack_leftovers(path: str) -> list[str]:
    """The ops of the file LiteRT's default XNNPACK delegate does not take (by name)."""
    from torch2keras.tflite.file import read_tflite
    from torch2keras.tflite.runtime import xnnpack_delegated_ops

    taken, why = xnnpack_delegated_ops(path)
    if taken is None:
        raise AssertionError(f"{path} does not load with the default delegates: {why}")
    main = read_tflite(path).main_ops()
    return sorted({op.name for k, op in enumerate(main) if k not in taken})
