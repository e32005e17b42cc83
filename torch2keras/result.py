"""``CompileResult``: the converted model, its IR and report, and every way to run or export it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from . import io_checks
from .backend_keras import export as keras_export
from .backend_keras import state as keras_state
from .draw import draw_graph, to_view
from .ir import Graph
from .ir.layouts import count_transposes
from .ir.types import invert
from .report import Report
from .tflite import export as tflite_export
from .tflite.quantize import calibration_feeds
from .tflite.runtime import run_tflite, tflite_runner, tflite_signature_shapes

if TYPE_CHECKING:
    from .frontend_torch.capture import Captured

__all__ = ["CompileResult", "layout_summary", "make_result"]


class CompileResult:
    """What ``compile`` returns: the Keras model, the IR, the report and the exporters.

    ``example_inputs`` are the inputs given to ``compile`` (PyTorch layout) and ``reference`` the
    PyTorch outputs on them (None when validation was off); ``layer_nodes`` maps each Keras layer
    name to the IR node it was emitted for.
    """

    def __init__(self, keras_model, ir: Graph, report: Report, input_names: list[str], output_names: list[str],
                 example_inputs: list[np.ndarray], reference_outputs: Optional[list[np.ndarray]],
                 layer_nodes: Optional[dict] = None):
        self.keras_model = keras_model
        self.ir = ir
        self.report = report
        self.input_names = input_names
        self.output_names = output_names
        self.example_inputs = example_inputs
        self.reference = reference_outputs
        self.layer_nodes = dict(layer_nodes or {})

    # -- layouts at the model boundary
    def keras_inputs(self, torch_inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Arrays in PyTorch layout -> the Keras/TFLite model's inputs (in their stored layout)."""
        out = {}
        for name, v, x in zip(self.input_names, self.ir.inputs, torch_inputs):
            x = np.asarray(x)
            out[name] = np.transpose(x, v.type.layout) if v.type.layout else x
        return out

    def torch_outputs(self, outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The Keras/TFLite model's outputs -> arrays in PyTorch layout."""
        res = []
        for v, y in zip(self.ir.outputs, outputs):
            y = np.asarray(y)
            res.append(np.transpose(y, invert(v.type.layout)) if v.type.layout else y)
        return res

    def _check_feed(self, torch_inputs: Sequence[np.ndarray], what: str) -> None:
        io_checks.check_run_inputs(self.input_names, [v.type.shape for v in self.ir.inputs], torch_inputs, what)

    def run_keras(self, torch_inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._check_feed(torch_inputs, "run_keras")
        outs = self.keras_model(self.keras_inputs(torch_inputs), training=False)
        return self.torch_outputs([np.asarray(o) for o in keras_export.outputs_in_order(outs, self.output_names)])

    def run_tflite(self, path: str, torch_inputs: Sequence[np.ndarray], delegates: bool = True) -> list[np.ndarray]:
        """Run a ``.tflite`` file written by ``export_tflite`` on inputs in PyTorch's layout;
        outputs in PyTorch's layout (quantized I/O is (de)quantized on the way). One call of a new
        interpreter: a stateful model starts from its initial state."""
        self._check_feed(torch_inputs, "run_tflite")
        feed = self.keras_inputs(torch_inputs)
        io_checks.check_tflite_feed(path, tflite_signature_shapes(path), feed)
        outs = run_tflite(path, feed, delegates=delegates)
        return self.torch_outputs([outs[n] for n in self.output_names])

    def tflite_session(self, path: str) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
        """A function running the ``.tflite`` file on arrays in PyTorch layout, with one
        interpreter for all its calls: a stateful model's state carries over between them."""
        runner = tflite_runner(path)
        signature = tflite_signature_shapes(path)

        def run(torch_inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
            self._check_feed(torch_inputs, "tflite_session")
            feed = self.keras_inputs(torch_inputs)
            io_checks.check_tflite_feed(path, signature, feed)
            outs = runner(**feed)
            return self.torch_outputs([np.asarray(outs[n]) for n in self.output_names])

        return run

    # -- state: buffers forward() mutates (docs/state_and_control_flow.md)
    @property
    def state_names(self) -> list[str]:
        """Qualified names of the buffers the model updates on every call (empty: stateless)."""
        return [layer_name for layer in keras_state.state_layers(self.keras_model) for layer_name in layer.names]

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The Keras model's current state, by buffer name, in PyTorch's layout."""
        return keras_state.get_state(self.keras_model)

    def reset_state(self) -> None:
        """Put the Keras model's state back to the buffers' values when ``compile`` was called."""
        keras_state.reset_state(self.keras_model)

    # -- exporters (a stateful model is written with its initial state, whatever calls came before)
    def save(self, path: str) -> str:
        """Write a ``.keras`` file (or legacy HDF5 ``.h5``); ``torch2keras.load_model`` loads either,
        without torch (``.keras`` with ``safe_mode=True``)."""
        io_checks.check_suffix(path, (".keras", ".h5"), "save", " (a .tflite file is written by export_tflite)")
        io_checks.check_writable(path)
        with keras_state.initial_state(self.keras_model):
            return keras_export.save_keras(self.keras_model, path)

    def export_saved_model(self, directory: str) -> str:
        io_checks.check_writable(os.path.join(directory, "saved_model.pb"))
        with keras_state.initial_state(self.keras_model):
            return keras_export.export_saved_model(self.keras_model, directory, self.input_names, self.output_names)

    def export_tflite(self, path: str, validate: bool = True, quantize: Optional[str] = None,
                      calibration: Any = None, io_dtype: str = "int8", holdout: Any = None,
                      allow_flex: bool = False, int8_fallback: bool = False, delegates: bool = True,
                      progress: Optional[Callable[[str], None]] = None, backend: str = "converter",
                      keep_float: Optional[Sequence[str]] = None, target_agreement: Optional[float] = None,
                      lstm: str = "auto") -> str:
        """Write a ``.tflite`` file (by default through the TensorFlow converter), builtin ops only
        (unless ``allow_flex``); record in the report its size, op counts, error vs PyTorch
        (``validate``) and the delegate-readiness analysis (``report.delegates``).

        backend: ``"converter"``, ``"direct"`` (the IR written op by op by ``backend_tflite``:
        no TensorFlow, float32 or ``"fp16"``; an op it cannot write raises an ``ExportError``
        naming it) or ``"auto"`` (direct, the converter where direct refuses the model).

        quantize: None (float32), ``"fp16"`` (float16 weights), ``"dynamic_int8"`` (int8
        weights, dynamic-range kernels) or ``"int8"`` (full integer, needs ``calibration``).
        calibration: representative inputs for ``"int8"`` -- an iterable (or a callable returning
        one) of samples, each a tuple of arrays in PyTorch's layout or a dict {input name: array}
        in the exported layout (``torch2keras.tflite.quantize``); ~100 samples is typical.
        io_dtype: the int8 file's input/output type, ``"int8"``, ``"uint8"`` or ``"float32"``.
        holdout: held-out inputs (same forms) for the per-layer int8 check
        (``report.quantization``); default: the example inputs given to ``compile``.
        allow_flex: keep TensorFlow ops without a TFLite builtin as Flex ops (with a warning
        naming them); otherwise such ops are an ``ExportError`` naming them and their source.
        int8_fallback: let ops without an int8 kernel stay float in an ``"int8"`` file.
        progress: called with the name of each stage as it starts (converter, checks).
        keep_float: with ``"int8"``, layers computed in float32 (Keras layer names as the
        per-layer check lists them, torch module paths or globs, TFLite tensor names).
        target_agreement: with ``"int8"``, keep the layers whose int8 error jumps first in float32
        until top-1 agreement with the float file is shown to reach it (e.g. 0.99) on unseen
        inputs drawn like ``holdout``: the one-sided 95% Wilson lower bound of the agreement
        counted on ``holdout`` reaches the target (all agreeing, 0.99 needs >= 268 held-out
        rows -- fewer is a ValueError -- and 300 rows show it only when all agree); in (0, 1).
        The trade is in ``report.quantization_selection`` (``torch2keras.tflite.selective``).
        lstm: how the direct backend writes an ``nn.LSTM``, as ``to_tflite``'s option (the same
        file): ``"auto"`` (default) unrolled where that is the faster file on XNNPACK as measured,
        fused otherwise; ``"unroll"``; ``"fused"`` (docs/recurrent.md). The LSTMs are unrolled in a
        copy of the IR written to the file; the Keras model, and so the converter's file, keeps
        the form ``compile`` gave it (``extra_passes=["unroll_lstm"]`` unrolls it there).
        """
        io_checks.check_suffix(path, (".tflite",), "export_tflite", " (a .keras file is written by CompileResult.save)")
        io_checks.check_writable(path)
        return tflite_export.export_tflite(self, path, validate=validate, quantize=quantize, calibration=calibration,
                                           io_dtype=io_dtype, holdout=holdout, allow_flex=allow_flex,
                                           int8_fallback=int8_fallback, delegates=delegates, progress=progress,
                                           backend=backend, keep_float=keep_float,
                                           target_agreement=target_agreement, lstm=lstm)

    def check_quantization(self, path: str, holdout: Any = None) -> Any:
        """The per-layer check of an int8 ``.tflite`` file written by ``export_tflite``, on
        ``holdout`` inputs (default: the example inputs); also stored in ``report.quantization``."""
        return tflite_export.check_quantization(self, path, holdout)

    @property
    def output_nodes(self) -> dict:
        """Output name -> the IR node computing it."""
        return {n: v.producer for n, v in zip(self.output_names, self.ir.outputs)}

    def feeds(self, samples: Any) -> Callable:
        """Calibration or held-out samples (``torch2keras.tflite.quantize``'s forms) as a callable
        giving the exported model's feeds; ``None``: the example inputs given to ``compile``."""
        if samples is None:
            samples = [tuple(self.example_inputs)]
        return calibration_feeds(samples, self.input_names, [tuple(x.shape) for x in self.example_inputs],
                                 self.keras_inputs, [tuple(t.shape) for t in self.keras_model.inputs])

    # -- inspection
    def draw(self, path: str, **options) -> str:
        """Write the IR as a picture: ``.svg`` or a self-contained ``.html`` page (see ``draw.py``),
        with layouts, inserted transposes and each value coloured by its error vs PyTorch."""
        return draw_graph(self.ir, path, checks=self.report.nodes, title=self.report.model, **options)

    def _repr_html_(self) -> str:
        """The report and the graph's interactive view, errors vs PyTorch coloured (notebooks)."""
        from .view.page import view_iframe

        return self.report._repr_html_() + view_iframe(to_view(self.ir, self.report.nodes, title=self.report.model))

    def __repr__(self) -> str:
        return f"<CompileResult {self.report.model}: {len(self.keras_model.layers)} layers, max |err| " \
               f"{self.report.max_abs_error}>"


def make_result(graph: Graph, keras_model, emit_ctx, captured: "Captured", name: str, timings: dict,
                example: list[np.ndarray], reference: Optional[list[np.ndarray]], atol: float,
                rtol: float, passes: Sequence = ()) -> CompileResult:
    """The result object with its report's structural part (counts, layout statistics, what each
    pass did (``passes``: the pass manager's records), warnings, the tolerance its checks use)."""
    report = Report(model=name, capture_method=captured.method, ir_op_counts=graph.op_counts(),
                    transposes=count_transposes(graph), keras_layers=len(keras_model.layers),
                    timings=timings, warnings=list(captured.warnings), layout=layout_summary(graph), atol=atol,
                    rtol=rtol, passes=list(passes))
    return CompileResult(keras_model, graph, report, graph.input_names, graph.output_names, example, reference,
                         emit_ctx.layer_nodes)


def layout_summary(graph: Graph) -> Optional[dict]:
    """The layout pass's solve statistics summed over the graph and its regions."""
    stats = [g.meta["layout_stats"] for g in graph.nested_graphs() if "layout_stats" in g.meta]
    if not stats:
        return None
    return {"method": stats[-1].method, "variables": sum(s.variables for s in stats),
            "demands": sum(s.demands for s in stats), "approximated": sum(s.approximated for s in stats),
            "seconds": sum(s.seconds for s in stats), "graphs": len(stats)}
