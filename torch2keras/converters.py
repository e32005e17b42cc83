"""User converters: ``@torch2keras.converter(target, layout=...)`` emits Keras for ``target``.

``target`` is one of

* an aten op overload (``torch.ops.aten.hardsigmoid.default``): every call of it in the
  captured graph is converted by ``fn(*args, **kwargs)`` (the aten call's arguments);
* a Python function: ``fn(*args, **kwargs)`` (the function's own arguments);
* an ``nn.Module`` subclass: ``fn(module, *args, **kwargs)`` (the instance first: its weights
  are ``module.weight`` etc.).

Tensor arguments arrive as Keras tensors, everything else as the Python values of the call;
``fn`` returns a Keras tensor or a (nested) sequence of them, one per tensor the torch call
returns. ``layout`` is how the tensors are stored when ``fn`` sees them and how it returns
them: ``"torch"`` (PyTorch's order), ``"channels_last"`` (tensors of rank >= 3 with the channel
axis last, e.g. NHWC; lower ranks in PyTorch's order) or ``"any"`` (elementwise: inputs of the
result's rank come in, and results go out, in whatever layout the layout pass chose).

How: while ``compile`` captures the model (``intercepted``), registered modules' ``forward``
and registered functions (looked up as module-level globals of the model's code) are replaced
by a call of one opaque custom op, ``torch.ops.torch2keras.opaque(tensors, key)``, whose real
and fake implementations run the original code. Its lowering (and the one registered for an
aten target) emits one IR node ``custom`` carrying the converter's name, its layout and JSON-able
call info; the Keras backend (``backend_keras/emit_custom.py``) transposes inputs to the
declared layout, calls ``fn`` and transposes the results to the layouts the IR assigned.

Invariant: each ``custom`` node's ``params["call"]`` names an entry of
``graph.meta["custom_calls"]``, a ``Call`` holding the converter and the call's non-tensor
arguments; a registered aten converter shadows the built-in lowering until ``unregister``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import weakref
from typing import Any, Callable, Iterator, Optional

import attrs
import torch
import torch.utils._pytree as pytree

from .frontend_torch.capture import KEEP_WHOLE
from .frontend_torch.registry import LOWERINGS, LoweringContext, lowering, tensor_type
from .ir import LoweringError, Value

__all__ = ["CONVERTERS", "Call", "Converter", "converter", "find_converter", "intercepted", "unregister"]

log = logging.getLogger(__name__)

LAYOUTS = ("torch", "channels_last", "any")


@attrs.frozen
class Converter:
    """A registered converter: ``kind`` is "op", "function" or "module"."""

    name: str
    target: Any
    fn: Callable
    layout: str
    kind: str

    @property
    def short(self) -> str:
        """The target's own name: ``hardsigmoid`` for ``aten.hardsigmoid.default``."""
        parts = self.name.split(".")
        return parts[-2] if self.kind == "op" and len(parts) > 1 else parts[-1]


CONVERTERS: dict[str, Converter] = {}  # by name
_SHADOWED: dict[Any, Callable] = {}  # aten op -> the built-in lowering its converter replaced
_counter = itertools.count()


def _target_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _kind(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return "op"
    if isinstance(target, type) and issubclass(target, torch.nn.Module):
        return "module"
    if callable(target):
        return "function"
    raise TypeError(f"cannot register a converter for {target!r}: expected an aten op overload, "
                    "a Python function or an nn.Module subclass")


def converter(target: Any, *, layout: str = "torch") -> Callable[[Callable], Callable]:
    """Register the decorated function as the Keras converter of ``target`` (see the module
    docstring). Registering again for the same target replaces the previous converter."""
    if isinstance(target, torch._ops.OpOverloadPacket):
        raise TypeError(f"{target} is an op packet: register a specific overload, e.g. {target}.default")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    kind = _kind(target)

    def register(fn: Callable) -> Callable:
        name = _target_name(target)
        if name in CONVERTERS:
            log.info("replacing the converter of %s", name)
            unregister(target)
        CONVERTERS[name] = Converter(name, target, fn, layout, kind)
        if kind == "op":
            if target in LOWERINGS:
                _SHADOWED[target] = LOWERINGS[target]
            LOWERINGS[target] = _op_lowering(CONVERTERS[name])
        return fn

    return register


def unregister(target: Any) -> None:
    """Forget the converter of ``target`` (an aten op gets its built-in lowering back)."""
    conv = CONVERTERS.pop(_target_name(target), None)
    if conv is None:
        return
    if conv.kind == "op":
        LOWERINGS.pop(target, None)
        if target in _SHADOWED:
            LOWERINGS[target] = _SHADOWED.pop(target)


def find_converter(target: Any) -> Optional[Converter]:
    """The converter registered for ``target`` (a module class also matches via its bases)."""
    if isinstance(target, type):
        for cls in target.__mro__:
            found = CONVERTERS.get(_target_name(cls))
            if found is not None and found.kind == "module" and found.target is cls:
                return found
        return None
    try:
        found = CONVERTERS.get(_target_name(target))
    except Exception:  # noqa: BLE001 - odd objects simply have none
        return None
    return found if found is not None and (found.target is target or found.target == target) else None


# ----------------------------------------------------------------------------- one call


class _Slot:
    """Where the i-th tensor argument goes when a call's arguments are rebuilt."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"%{self.index}"


@attrs.define(eq=False)
class Call:
    """One converted call: the converter, the module (kind "module"), the call's arguments with
    tensors replaced by slots, and (for functions and modules) the original code to run in torch."""

    key: str
    converter: Converter
    leaves: list  # flattened (args, kwargs), tensors as _Slot
    spec: Any  # the pytree spec of (args, kwargs)
    module: Optional[torch.nn.Module] = None
    original: Optional[Callable] = None
    out_spec: Any = None

    @classmethod
    def make(cls, conv: Converter, args: tuple, kwargs: dict, is_tensor, module=None, original=None
             ) -> tuple["Call", list]:
        leaves, spec = pytree.tree_flatten((tuple(args), dict(kwargs)))
        tensors, slotted = [], []
        for leaf in leaves:
            if is_tensor(leaf):
                slotted.append(_Slot(len(tensors)))
                tensors.append(leaf)
            else:
                slotted.append(leaf)
        key = f"{conv.short}#{next(_counter)}"
        return cls(key, conv, slotted, spec, module, original), tensors

    def arguments(self, tensors: list) -> tuple[tuple, dict]:
        leaves = [tensors[x.index] if isinstance(x, _Slot) else x for x in self.leaves]
        args, kwargs = pytree.tree_unflatten(leaves, self.spec)
        return args, kwargs

    def run_torch(self, tensors: list) -> list[torch.Tensor]:
        """The original code on ``tensors``: the flat tensor results (fresh, not aliasing)."""
        args, kwargs = self.arguments(list(tensors))
        out = self.original(*args, **kwargs)
        leaves, self.out_spec = pytree.tree_flatten(out)
        if not all(isinstance(t, torch.Tensor) for t in leaves):
            raise LoweringError(f"{self.converter.name} returned non-tensor results; a converted call "
                                "must return tensors only")
        return [t.clone() for t in leaves]

    def convert(self, keras_tensors: list) -> list:
        """The user's converter on Keras tensors: the flat list of Keras results."""
        args, kwargs = self.arguments(list(keras_tensors))
        fn = self.converter.fn
        out = fn(self.module, *args, **kwargs) if self.converter.kind == "module" else fn(*args, **kwargs)
        return _flatten_keras(out)

    def describe(self) -> dict:
        """JSON-able summary of the call (the IR node's ``params``)."""
        args, kwargs = pytree.tree_unflatten(self.leaves, self.spec)
        info = {"call": self.key, "args": _jsonable(list(args))}
        if kwargs:
            info["kwargs"] = _jsonable(kwargs)
        return info


def _flatten_keras(out: Any) -> list:
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flatten_keras(o)]
    if isinstance(out, dict):
        return [t for k in out for t in _flatten_keras(out[k])]
    return [out]


def _jsonable(x: Any) -> Any:
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, _Slot):
        return repr(x)
    text = str(x)
    return text if len(text) <= 60 else text[:57] + "..."


_LIVE: "weakref.WeakValueDictionary[str, Call]" = weakref.WeakValueDictionary()


# ----------------------------------------------------------------------------- the opaque op


@torch.library.custom_op("torch2keras::opaque", mutates_args=())
def _opaque(xs: list[torch.Tensor], key: str) -> list[torch.Tensor]:
    return _live(key).run_torch(xs)


@_opaque.register_fake
def _opaque_fake(xs, key):
    return _live(key).run_torch(xs)


def _live(key: str) -> Call:
    try:
        return _LIVE[key]
    except KeyError:
        raise LoweringError(f"converted call {key!r} is gone: torch2keras.opaque runs only while its "
                            "compile() (or the CompileResult) is alive") from None


OPAQUE = torch.ops.torch2keras.opaque.default


def _emit_custom(ctx: LoweringContext, call: Call, inputs: list[Value], vals: list,
                 name: Optional[str] = None) -> list[Optional[Value]]:
    """One ``custom`` node for ``call``: a result per tensor in ``vals`` (None elsewhere)."""
    tensor_vals = [v for v in vals if isinstance(v, torch.Tensor)]
    layout = call.converter.layout
    if layout == "any" and len({v.dim() for v in tensor_vals}) > 1:
        layout = "torch"  # "any" means elementwise: results of several ranks cannot share one layout
    ctx.graph.meta.setdefault("custom_calls", {})[call.key] = call
    node = ctx.graph.add_node("custom", inputs, {"converter": call.converter.name, "layout": layout,
                                                 "params": call.describe()},
                              types=[tensor_type(v) for v in tensor_vals], loc=ctx.loc, name=name or ctx.name)
    outs = iter(node.outputs)
    return [next(outs) if isinstance(v, torch.Tensor) else None for v in vals]


def _lower_opaque(ctx: LoweringContext, xs, key):
    call = _live(key)
    vals = list(ctx.meta_val) if isinstance(ctx.meta_val, (list, tuple)) else [ctx.meta_val]
    return tuple(_emit_custom(ctx, call, list(xs), vals, name=call.converter.short.lower()))


lowering(OPAQUE, emits=("custom",))(_lower_opaque)


def _op_lowering(conv: Converter) -> Callable:
    def lower_with_converter(ctx: LoweringContext, *args, **kwargs):
        call, inputs = Call.make(conv, args, kwargs, lambda x: isinstance(x, Value))
        _LIVE[call.key] = call  # kept alive by graph.meta["custom_calls"]
        val = ctx.meta_val
        if isinstance(val, (list, tuple)):
            return tuple(_emit_custom(ctx, call, inputs, list(val)))
        return _emit_custom(ctx, call, inputs, [val])[0]

    lower_with_converter.emits = ("custom",)
    lower_with_converter.__name__ = f"lower_with_{conv.fn.__name__}"
    lower_with_converter.__doc__ = f"Lowers {conv.name} to a ``custom`` node converted by {conv.fn.__qualname__}."
    return lower_with_converter


# ----------------------------------------------------------------------------- capture


class Session:
    """What ``intercepted`` yields: keeps the calls made during capture alive."""

    def __init__(self) -> None:
        self.calls: list[Call] = []


def _wrapper(conv: Converter, original: Callable, module: Optional[torch.nn.Module], session: Session) -> Callable:
    def opaque_call(*args, **kwargs):
        call, tensors = Call.make(conv, args, kwargs, lambda x: isinstance(x, torch.Tensor), module, original)
        if not tensors:  # nothing to trace through: run it as is
            return original(*args, **kwargs)
        _LIVE[call.key] = call
        session.calls.append(call)
        outs = _opaque(tensors, call.key)
        return pytree.tree_unflatten(list(outs), call.out_spec)

    opaque_call.__wrapped__ = original
    return opaque_call


def _module_globals(model: torch.nn.Module, fn: Callable) -> list[dict]:
    """The global namespaces where the model's code may look ``fn`` up by name."""
    spaces = {id(fn.__globals__): fn.__globals__} if hasattr(fn, "__globals__") else {}
    for m in model.modules():
        for cls in type(m).__mro__:
            mod = sys.modules.get(cls.__module__)
            if mod is not None and not cls.__module__.startswith("torch."):
                spaces.setdefault(id(mod.__dict__), mod.__dict__)
    return list(spaces.values())


@contextlib.contextmanager
def intercepted(model: torch.nn.Module) -> Iterator[Session]:
    """While active, registered modules and functions in ``model`` run as one opaque op each, and
    aten ops with a converter are kept whole by capture's decompositions."""
    session = Session()
    undo: list[Callable[[], None]] = []
    try:
        _patch_modules(model, session, undo)
        _patch_functions(model, session, undo)
        ops = [c.target for c in CONVERTERS.values() if c.kind == "op" and c.target not in KEEP_WHOLE]
        KEEP_WHOLE.extend(ops)
        undo.append(lambda: [KEEP_WHOLE.remove(op) for op in ops])
        yield session
    finally:
        for fn in reversed(undo):
            fn()


def _patch_modules(model: torch.nn.Module, session: Session, undo: list) -> None:
    wrapped: list[str] = []  # module paths already opaque: their submodules run inside them

    def inside(path: str) -> bool:
        return any(w == "" or path == w or path.startswith(w + ".") for w in wrapped)

    for path, m in model.named_modules():
        conv = find_converter(type(m))
        if conv is None or inside(path):
            continue
        wrapped.append(path)
        had = "forward" in m.__dict__
        previous = m.__dict__.get("forward")
        m.forward = _wrapper(conv, previous or type(m).forward.__get__(m), m, session)

        def restore(m=m, had=had, previous=previous):
            if had:
                m.forward = previous
            else:
                del m.forward

        undo.append(restore)


def _patch_functions(model: torch.nn.Module, session: Session, undo: list) -> None:
    for conv in list(CONVERTERS.values()):
        if conv.kind != "function":
            continue
        wrapper = _wrapper(conv, conv.target, None, session)
        for space in _module_globals(model, conv.target):
            for name, value in list(space.items()):
                if value is conv.target:
                    space[name] = wrapper
                    undo.append(lambda space=space, name=name, value=value: space.__setitem__(name, value))
