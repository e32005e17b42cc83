"""Capture a PyTorch model as an ATen-level FX graph.

First choice: ``torch.export`` (non-strict), then ``run_decompositions`` with a table that
keeps the high-level ops whole (``KEEP_WHOLE``: the targets of the lowerings registered with
``keep_whole=True``). If export refuses the model (data-dependent
Python control flow and the like), fall back to tracing with the example's concrete values
(``make_fx`` over a functionalized call), which specialises such code to those values; a
warning names the spot export stopped at.

Both paths return a ``Captured``: the graph, the arrays behind parameter/buffer/constant
placeholders, the names of user inputs and flattened outputs, and the buffers forward()
mutates (``state.py``). The graph is a pure function: capture changes neither the model
nor the example inputs.
"""

from __future__ import annotations

import inspect
import logging
import os
import traceback
import warnings
from typing import Any, Optional, Sequence

import attrs
import torch
import torch.utils._pytree as pytree

from ..ir import Torch2KerasError
from . import ops  # noqa: F401  (registers the lowerings, and with them KEEP_WHOLE)
from .decompositions import decompose, decomposition_table
from .dynamic import name_symbols, parse_dynamic_shapes
from .registry import KEEP_WHOLE
from .source import user_frame
from .state import MutatedBuffer, export_mutations, read_back, trace_mutations

__all__ = ["Captured", "KEEP_WHOLE", "SpecializationWarning", "capture", "fallback_message", "flat_output_names",
           "offending_line", "returns_dict"]

log = logging.getLogger(__name__)


class SpecializationWarning(UserWarning):
    """torch.export refused the model, and tracing fixed Python control flow and data-dependent
    values to the example's. ``file``/``line``/``code``: the user's line export stopped at;
    ``data_dependent``: Python control flow on tensor data; ``reason``: torch's first line."""

    def __init__(self, message: str, file: str = "", line: int = 0, code: str = "", reason: str = "",
                 data_dependent: bool = False) -> None:
        super().__init__(message)
        self.file, self.line, self.code = file, line, code
        self.reason, self.data_dependent = reason, data_dependent

    def short(self) -> str:
        """One line naming the user's line, e.g. for the command line."""
        where = f"{os.path.basename(self.file)}:{self.line}" + (f" `{self.code}`" if self.code else "") \
            if self.file else "the model"
        if self.data_dependent:
            return (f"{where} branches on tensor data: only this example's branch was converted "
                    "(torch.cond keeps both; README 'Control flow')")
        return f"{where}: torch.export refused it ({self.reason}); converted by tracing, specialised to this example"


@attrs.define
class Captured:
    graph: torch.fx.Graph
    constants: dict[str, torch.Tensor]  # placeholder name -> tensor (parameters, buffers, constants)
    user_inputs: list[str]  # placeholder names of user inputs, in forward-signature order
    input_names: list[str]  # public names of those inputs
    user_outputs: list[torch.fx.Node | Any]  # fx nodes (or python constants) of the flattened outputs
    output_names: list[str]
    method: str  # "export" | "trace"
    outputs_are_dict: bool = False  # forward returned a dict: its (flattened) keys name the outputs
    warnings: list[str] = attrs.field(factory=list)
    mutated_buffers: list[MutatedBuffer] = attrs.field(factory=list)  # the model's state (state.py)
    dim_names: dict[str, str] = attrs.field(factory=dict)  # torch size symbol -> the user's dim name


def _path_name(path) -> str:
    parts = []
    for key in path:
        if isinstance(key, pytree.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, pytree.MappingKey):
            parts.append(str(key.key))
        elif isinstance(key, pytree.GetAttrKey):
            parts.append(str(key.name))
        else:
            parts.append(str(key))
    return "_".join(parts)


def flat_output_names(example_output: Any) -> list[str]:
    """Stable names of the flattened outputs: ``output`` for one tensor, else ``output_0``,
    ``output_1``, ... for sequences and the keys for dicts (nested levels joined by ``_``)."""
    leaves = pytree.tree_flatten_with_path(example_output)[0]
    if len(leaves) == 1 and not leaves[0][0]:
        return ["output"]
    names = []
    for path, _ in leaves:
        first = path[0] if path else None
        name = _path_name(path)
        if isinstance(first, pytree.SequenceKey) or not path:
            name = f"output_{name}" if name else "output"
        names.append(name)
    return names


def returns_dict(example_output: Any) -> bool:
    """Whether forward's output is a dict (at the top level): the converted model then returns
    one too, keyed by ``flat_output_names``."""
    return isinstance(example_output, dict)


def _input_names(model: torch.nn.Module, args: Sequence, kwargs: dict) -> list[str]:
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for i, a in enumerate(args):
        base = positional[i].name if i < len(positional) else f"input_{i}"
        leaves = pytree.tree_flatten_with_path(a)[0]
        for path, _ in leaves:
            names.append(base + ("_" + _path_name(path) if path else ""))
    for key, a in kwargs.items():
        for path, _ in pytree.tree_flatten_with_path(a)[0]:
            names.append(key + ("_" + _path_name(path) if path else ""))
    return names


def capture(model: torch.nn.Module, args: Sequence, kwargs: Optional[dict] = None, *,
            fallback: bool = True, dynamic_shapes: Any = None) -> Captured:
    """Capture ``model(*args, **kwargs)``; ``dynamic_shapes`` (see ``dynamic.py``) makes the
    named dims symbolic (export only: tracing would fix every size)."""
    kwargs = dict(kwargs or {})
    args = tuple(args)
    if dynamic_shapes is not None:
        spec = parse_dynamic_shapes(dynamic_shapes, model, args, kwargs)
        if spec.is_dynamic:
            return _capture_dynamic(model, args, kwargs, spec)
    try:
        return _capture_export(model, args, kwargs)
    except Exception as err:  # noqa: BLE001 - any refusal sends us to the fallback
        if not fallback:
            raise
        warning = specialization_warning(err)
        warnings.warn(warning, stacklevel=3)
        captured = _capture_trace(model, args, kwargs)
        captured.warnings.append(str(warning))
        return captured


def offending_line(err: Exception) -> tuple[str, int, str]:
    """The user's (file, line, code) where export stopped: torch's message quotes the call that
    raised; else the innermost frame of the traceback outside torch and this package."""
    file, line, code = user_frame(str(err))
    if file and not _is_library(file):
        return file, line, code
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if not _is_library(frame.filename):
            return frame.filename, frame.lineno or 0, (frame.line or "").strip()
    return "", 0, ""


def _is_library(file: str) -> bool:
    path = os.path.abspath(file)
    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return file.startswith("<") or path.startswith(os.path.dirname(torch.__file__)) or path.startswith(own)


def _data_dependent(err: Exception) -> bool:
    text = f"{type(err).__name__}: {err}"
    return "GuardOnDataDependent" in text or "data-dependent" in text or "data dependent" in text


def specialization_warning(err: Exception) -> SpecializationWarning:
    """The tracing fallback's warning for export's refusal ``err`` (see ``fallback_message``)."""
    reason = next((t.strip() for t in str(err).splitlines() if t.strip()), "")
    file, line, code = offending_line(err)
    return SpecializationWarning(fallback_message(err), file, line, code, f"{type(err).__name__}: {reason}",
                                 _data_dependent(err))


def fallback_message(err: Exception) -> str:
    """The warning of the tracing fallback: why export refused, the user's line, and for Python
    control flow on tensor data, the rewrite that keeps it dynamic."""
    reason = _first_line(err)
    file, line, code = offending_line(err)
    where = f" at {file}:{line}" + (f" ({code})" if code else "") if file else ""
    message = (f"torch.export could not capture the model{where}: {type(err).__name__}: {reason}. "
               "Falling back to tracing with the example inputs' concrete values: Python control "
               "flow and data-dependent values at that spot are specialised to this example.")
    if _data_dependent(err):
        message += (" A Python `if` on tensor data keeps only the branch this example takes; to convert both, "
                    "write it as `x = torch.cond(pred, true_fn, false_fn, (x,))` (see README, 'Control flow').")
    return message


def _first_line(err: Exception) -> str:
    return next((t.strip() for t in str(err).splitlines() if t.strip()), "")


def _capture_dynamic(model, args, kwargs, spec) -> Captured:
    from torch.fx.experimental import _config as shape_config

    try:
        with shape_config.patch(backed_size_oblivious=True):  # no 0/1 specialisation of example sizes
            captured = _capture_export(model, args, kwargs, dynamic_shapes=spec.torch_spec)
    except Exception as err:  # noqa: BLE001 - reported with torch's reason
        raise Torch2KerasError(
            f"torch.export could not capture the model with dynamic shapes ({type(err).__name__}: "
            f"{_first_line(err)}). Dynamic shapes need torch.export: the tracing fallback fixes every size."
        ) from err
    placeholders = {n.name: n for n in captured.graph.nodes if n.op == "placeholder"}
    fakes = {public: placeholders[p].meta.get("val") for p, public in zip(captured.user_inputs, captured.input_names)}
    captured.dim_names, notes = name_symbols(spec, fakes)
    for note in notes:
        warnings.warn(note, stacklevel=4)
    captured.warnings.extend(notes)
    return captured


def _capture_export(model, args, kwargs, dynamic_shapes=None) -> Captured:
    with warnings.catch_warnings():
        # nn.RNN/LSTM/GRU re-assign their flat weight list in forward(): harmless for us (the
        # weights are parameters), but torch.export warns about it on every capture
        warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights.* were assigned during export")
        ep = torch.export.export(model, args, kwargs, strict=False, dynamic_shapes=dynamic_shapes)
    ep = decompose(ep)
    sig = ep.graph_signature
    from torch.export.graph_signature import InputKind, OutputKind

    constants: dict[str, torch.Tensor] = {}
    user_inputs = []
    for spec in sig.input_specs:
        name = spec.arg.name
        if spec.kind == InputKind.USER_INPUT:
            if isinstance(spec.arg, torch.export.graph_signature.TensorArgument):
                user_inputs.append(name)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            tensor = ep.state_dict.get(spec.target)
            if tensor is None:
                tensor = ep.constants[spec.target]
            constants[name] = tensor
        elif spec.kind == InputKind.CONSTANT_TENSOR:
            constants[name] = ep.constants[spec.target]
        else:
            raise NotImplementedError(f"unsupported export input kind {spec.kind}")
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    outs = list(out_node.args[0])
    user_outputs = [o for o, spec in zip(outs, sig.output_specs) if spec.kind == OutputKind.USER_OUTPUT]
    out_spec = ep.call_spec.out_spec  # the output structure, without running (and mutating) the model
    example = pytree.tree_unflatten([0] * out_spec.num_leaves, out_spec)
    return Captured(
        graph=ep.graph, constants=constants, user_inputs=user_inputs,
        input_names=_input_names(model, args, kwargs)[: len(user_inputs)],
        user_outputs=user_outputs, output_names=flat_output_names(example), method="export",
        outputs_are_dict=returns_dict(example), mutated_buffers=export_mutations(ep, outs))


def _capture_trace(model, args, kwargs) -> Captured:
    from torch.fx.experimental.proxy_tensor import make_fx

    named = dict(model.named_parameters(remove_duplicate=False))
    named.update(dict(model.named_buffers(remove_duplicate=False)))
    flat_inputs, in_spec = pytree.tree_flatten((args, kwargs))
    tensor_pos = [i for i, a in enumerate(flat_inputs) if isinstance(a, torch.Tensor)]
    keys = list(named)
    out_spec_box: list = []

    def fn(*tensors):
        params = dict(zip(keys, tensors[: len(keys)]))
        flat = list(flat_inputs)
        for pos, t in zip(tensor_pos, tensors[len(keys):]):
            flat[pos] = t
        a, kw = pytree.tree_unflatten(flat, in_spec)
        with read_back(model, keys) as after:  # each parameter/buffer at the end of forward()
            out = torch.func.functional_call(model, params, a, kw)
        leaves, spec = pytree.tree_flatten(out)
        out_spec_box.append(out)
        return tuple(leaves) + tuple(after)

    functional = torch.func.functionalize(fn, remove="mutations_and_views")
    buffers = set(dict(model.named_buffers(remove_duplicate=False)))
    real_inputs = [named[k].detach().clone() if k in buffers else named[k].detach() for k in keys] + \
        [flat_inputs[i].clone() for i in tensor_pos]
    with torch.no_grad():
        gm = make_fx(functional, decomposition_table=decomposition_table(), tracing_mode="real",
                     record_module_stack=True, record_stack_traces=True,
                     _error_on_data_dependent_ops=False)(*real_inputs)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    num_user = len(out_node.args[0]) - len(keys)
    mutated = trace_mutations(gm.graph, placeholders[: len(keys)], keys, out_node.args[0][num_user:],
                              set(keys) - buffers)
    for node in list(gm.graph.nodes):  # values read out for Python control flow: specialised away
        if node.target is torch.ops.aten._local_scalar_dense.default and not node.users:
            gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    constants = {p.name: named[k].detach() for p, k in zip(placeholders, keys)}
    for n in gm.graph.nodes:  # tensors closed over by the model become get_attr nodes
        if n.op == "get_attr" and isinstance(getattr(gm, n.target), torch.Tensor):  # (not control-flow sub-graphs)
            constants[n.name] = getattr(gm, n.target)
    user_inputs = [p.name for p in placeholders[len(keys):]]
    return Captured(
        graph=gm.graph, constants=constants, user_inputs=user_inputs,
        input_names=_input_names(model, args, kwargs)[: len(user_inputs)],
        user_outputs=list(out_node.args[0][:num_user]), output_names=flat_output_names(out_spec_box[-1]),
        method="trace", outputs_are_dict=returns_dict(out_spec_box[-1]), mutated_buffers=mutated)
