"""The Keras backend agrees with the IR's op registry: every op has an emitter, every kernel an
emitter names is in ``KOPS``, emitter and kernel modules are named after op families
(``registries._backend_problems``); and a half-defined op or a stray module shows up."""

from __future__ import annotations

import attrs
import pytest

from torch2keras import registries
from torch2keras.backend_keras.emitters import EMITTERS, EmitContext
from torch2keras.backend_keras.kops import KOPS
from torch2keras.ir.ops import SCHEMAS, families


def test_the_backend_has_no_problem():
    assert registries._backend_problems(SCHEMAS) == []


def test_every_family_has_an_emitter_module_and_every_module_is_a_family():
    emitter_modules = registries._family_modules("torch2keras.backend_keras.emitters")
    kernel_modules = registries._family_modules("torch2keras.backend_keras.kops")
    assert emitter_modules == set(families()) | {"context"}
    assert kernel_modules - {"registry"} <= set(families()) and "elementwise" in kernel_modules


def test_every_emitter_lives_in_the_module_of_its_ops_family():
    wrong = {op: fn.__module__ for op, fn in EMITTERS.items()
             if fn.__module__ != f"torch2keras.backend_keras.emitters.{SCHEMAS[op].family}"}
    assert wrong == {}


def test_an_op_without_emitter_is_reported(monkeypatch):
    monkeypatch.setitem(SCHEMAS, "telepathy", attrs.evolve(SCHEMAS["neg"], name="telepathy", family="custom"))
    assert registries._backend_problems(SCHEMAS) == ["IR op 'telepathy' has no Keras emitter"]


def test_a_family_without_emitter_module_is_reported(monkeypatch):
    monkeypatch.setitem(SCHEMAS, "neg", attrs.evolve(SCHEMAS["neg"], family="telepathy"))
    problems = registries._backend_problems(SCHEMAS)
    assert "backend_keras/emitters has no module for family 'telepathy'" in problems


def test_a_module_named_after_no_family_is_reported(monkeypatch):
    real = registries._family_modules

    def with_stray(package: str) -> set[str]:
        return real(package) | ({"kops_more"} if package.endswith(".kops") else set())

    monkeypatch.setattr(registries, "_family_modules", with_stray)
    [problem] = registries._backend_problems(SCHEMAS)
    assert problem.startswith("torch2keras.backend_keras.kops.kops_more is named after no op family (families: ")


def test_unknown_kernels_are_reported(monkeypatch):
    def emit_vanished(ctx: EmitContext, node, x):
        return ctx.op(node, "vanished_kernel", [x])

    def emit_by_op_name(ctx: EmitContext, node, x):
        return ctx.op(node, node.op, [x])

    monkeypatch.setitem(EMITTERS, "abs", emit_vanished)
    monkeypatch.setitem(EMITTERS, "neg", emit_by_op_name)
    monkeypatch.delitem(KOPS, "neg")
    problems = registries._backend_problems(SCHEMAS)
    assert f"{__name__} uses kernel 'vanished_kernel', which KOPS lacks" in problems
    assert f"{__name__}.emit_by_op_name runs IR op 'neg' as the kernel of that name, which KOPS lacks" in problems
    assert len([p for p in problems if "KOPS lacks" in p]) == 2
    # emitters registered from this test module also sit outside their ops' family modules
    assert len([p for p in problems if "is not in the module of the op's family" in p]) == 2
    assert len(problems) == 4


def test_runs_op_as_kernel_reads_the_emitters_source():
    assert registries.runs_op_as_kernel(EMITTERS["neg"]) and registries.runs_op_as_kernel(EMITTERS["softmax"])
    assert not registries.runs_op_as_kernel(EMITTERS["sdpa"]) and not registries.runs_op_as_kernel(EMITTERS["conv"])


def test_a_kernel_name_is_defined_once(monkeypatch):
    from torch2keras.backend_keras.kops import ALIASES, register

    with pytest.raises(ValueError, match="kernel 'add' is already defined"):
        register({"add": KOPS["sub"]})
    monkeypatch.setitem(ALIASES, "plus", "add")
    with pytest.raises(ValueError, match="kernel 'plus' is already defined .*ALIASES"):
        register({"plus": KOPS["add"]})
    assert KOPS["add"] is not KOPS["sub"] and "plus" not in KOPS
