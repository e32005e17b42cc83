"""``CompileResult``: the converted model, its IR and report, and every way to run or export it."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from .backend_keras import export as keras_export
from .backend_keras import state as keras_state
from .draw import draw_graph, to_view
from .ir import Graph
from .ir.types import invert
from .report import Report
from .tflite import export as tflite_export
from .tflite.quantize import calibration_feeds
from .tflite.runtime import run_tflite, tflite_runner

__all__ = ["CompileResult"]


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

    def run_keras(self, torch_inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        outs = self.keras_model(self.keras_inputs(torch_inputs), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return self.torch_outputs([np.asarray(o) for o in outs])

    def run_tflite(self, path: str, torch_inputs: Sequence[np.ndarray], delegates: bool = True) -> list[np.ndarray]:
        """Run a ``.tflite`` file written by ``export_tflite`` on inputs in PyTorch's layout;
        outputs in PyTorch's layout (quantized I/O is (de)quantized on the way). One call of a new
        interpreter: a stateful model starts from its initial state."""
        outs = run_tflite(path, self.keras_inputs(torch_inputs), delegates=delegates)
        return self.torch_outputs([outs[n] for n in self.output_names])

    def tflite_session(self, path: str) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
        """A function running the ``.tflite`` file on arrays in PyTorch layout, with one
        interpreter for all its calls: a stateful model's state carries over between them."""
        runner = tflite_runner(path)

        def run(torch_inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
            outs = runner(**self.keras_inputs(torch_inputs))
            return self.torch_outputs([np.asarray(outs[n]) for n in self.output_names])

        return run

    # -- state: buffers forward() mutates (docs/state.md)
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
        with keras_state.initial_state(self.keras_model):
            return keras_export.save_keras(self.keras_model, path)

    def export_saved_model(self, directory: str) -> str:
        with keras_state.initial_state(self.keras_model):
            return keras_export.export_saved_model(self.keras_model, directory, self.input_names, self.output_names)

    def export_tflite(self, path: str, validate: bool = True, quantize: Optional[str] = None,
                      calibration: Any = None, io_dtype: str = "int8", holdout: Any = None,
                      allow_flex: bool = False, int8_fallback: bool = False, delegates: bool = True,
                      progress: Optional[Callable[[str], None]] = None) -> str:
        """Write a ``.tflite`` file through the TensorFlow converter, builtin ops only (unless
        ``allow_flex``); record in the report its size, op counts, error vs PyTorch
        (``validate``) and the delegate-readiness analysis (``report.delegates``).

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
        """
        return tflite_export.export_tflite(self, path, validate=validate, quantize=quantize, calibration=calibration,
                             io_dtype=io_dtype, holdout=holdout, allow_flex=allow_flex, int8_fallback=int8_fallback,
                             delegates=delegates)

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
