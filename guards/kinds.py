"""The guard kinds: one small class each, listed in ``GuardKind`` in the order their
checks run inside one generated guard (cheap and selective first).

To add a kind: a ``Guard`` subclass here with ``condition`` (the generated check),
``describe`` (its text), ``failure`` (expected vs actual for the report) and, if a dict
watch may stand in for it, ``watched_dicts``; then its place in ``GuardKind.ALL``.
"""
from __future__ import annotations

import math

import torch

from fx_graph.size_expr import SizeRelation, StrideOf, render
from guards.guard import Guard, const_equal, evaluate, fmt, short
from guards.held import Held
from guards.module_hooks import HOOK_TABLES, hooks_present
from guards.watch import is_immutable


class GlobalStateGuard(Guard):
    """Interpreter state read through a helper (grad mode, default dtype ...): the
    source is a call such as ``__grad_enabled()``."""

    def condition(self, em):
        return f"{self.source_expr} == {em.const(self.expected)}"

    def describe(self):
        return f"{self.source_name} == {self.expected!r}"

    def failure(self, value):
        return None if value == self.expected else f"expected {self.expected!r}, got {value!r}"


class AbsentGuard(Guard):
    """A builtin used by name: no global of that name may appear and shadow it."""

    def condition(self, em):
        return f"{self.expected!r} not in __G"

    def describe(self):
        return f"{self.source_name} is not defined (builtin {self.expected!r} used)"

    def first_failure(self, env, globals_dict):
        if self.expected in globals_dict:
            return f"global {self.expected!r} now defined, shadowing the builtin"
        return None


class IdentityGuard(Guard):
    """``expected`` is a ``Held``: the object, held weakly where it can die."""

    roots_the_watch = True

    @classmethod
    def hold(cls, expected, lifeline, label):
        return Held(expected, lifeline, label)

    def condition(self, em):
        return self.expected.test(em, em.bind(self.source_expr))

    def describe(self):
        return f"{self.source_name} is {self.expected!r}"

    def failure(self, value):
        e = self.expected.get()
        if e is None:
            return f"expected the same object, a {self.expected.type_name} that is gone now"
        return None if value is e else f"expected the same object {short(e)}, got {short(value)}"

    def watched_dicts(self, obj, expr):
        return []


class TypeGuard(Guard):
    """``expected`` is a ``Held`` class."""

    @classmethod
    def hold(cls, expected, lifeline, label):
        return Held(expected, lifeline, f"type({label})")

    def condition(self, em):
        return self.expected.test(em, f"__type({em.bind(self.source_expr)})")

    def describe(self):
        return f"type({self.source_name}) is {self.expected.name}"

    def failure(self, value):
        e = self.expected.get()
        if type(value) is e:
            return None
        return f"type: expected {self.expected.name}, got {type(value).__qualname__}"

    def watched_dicts(self, obj, expr):
        return [] if is_immutable(obj) else None


class ConstantGuard(Guard):
    def condition(self, em):
        v, e = em.bind(self.source_expr), self.expected
        if e is None or e is True or e is False:
            return f"{v} is {e}"
        if isinstance(e, float) and math.isnan(e):
            return f"__type({v}) is float and {v} != {v}"
        if isinstance(e, float) and e == 0.0:
            return f"__type({v}) is float and {v} == 0.0 and __copysign(1.0, {v}) == {math.copysign(1.0, e)}"
        return f"__type({v}) is {em.const(type(e))} and {v} == {em.const(e)}"

    def describe(self):
        return f"{self.source_name} == {self.expected!r}"

    def failure(self, value):
        return None if const_equal(value, self.expected) else f"expected {self.expected!r}, got {short(value)}"

    def watched_dicts(self, obj, expr):
        return [] if is_immutable(obj) else None


class LengthGuard(Guard):
    def condition(self, em):
        return f"__len({em.bind(self.source_expr)}) == {self.expected}"

    def describe(self):
        return f"len({self.source_name}) == {self.expected}"

    def failure(self, value):
        return None if len(value) == self.expected else f"len: expected {self.expected}, got {len(value)}"

    def watched_dicts(self, obj, expr):
        return [] if is_immutable(obj) else None


class DictKeysGuard(Guard):
    def condition(self, em):
        return f"__tuple({em.bind(self.source_expr)}) == {em.const(tuple(self.expected))}"

    def describe(self):
        return f"list({self.source_name}.keys()) == {list(self.expected)!r}"

    def failure(self, value):
        keys = tuple(value.keys())
        return None if keys == self.expected else f"keys: expected {list(self.expected)!r}, got {list(keys)!r}"

    def watched_dicts(self, obj, expr):
        return [(expr, obj)] if isinstance(obj, dict) else None


class NoHooksGuard(Guard):
    """An nn.Module called without its hook machinery: it must have no hooks."""

    def condition(self, em):
        v = em.bind(self.source_expr)
        return "not (" + " or ".join(f"{v}.{table}" for table in HOOK_TABLES) + ")"

    def describe(self):
        return f"{self.source_name} has no forward/backward hooks"

    def failure(self, value):
        present = hooks_present(value)
        return f"hooks were registered: {', '.join(present)}" if present else None

    def watched_dicts(self, obj, expr):
        if not isinstance(obj, torch.nn.Module):
            return None
        tables = [(f"{expr}.{t}", obj.__dict__.get(t)) for t in HOOK_TABLES]
        if not all(isinstance(d, dict) for _, d in tables):
            return None
        return [(f"{expr}.__dict__", obj.__dict__)] + tables


class AliasGuard(Guard):
    """Whether two graph inputs are the same tensor; ``expected`` is
    ``(other source name, other source expression, same)``."""

    def condition(self, em):
        _, other_expr, same = self.expected
        return f"({em.bind(self.source_expr)} is {em.bind(other_expr)}) is {same}"

    def describe(self):
        other_name, _, same = self.expected
        return f"{self.source_name} {'is' if same else 'is not'} {other_name}"

    def first_failure(self, env, globals_dict):
        _, other_expr, same = self.expected
        try:
            value = evaluate(self.source_expr, env)
        except Exception as e:
            return f"could not read {self.source_name}: {type(e).__name__}: {e}"
        other = evaluate(other_expr, env)
        return None if (value is other) == same else f"aliasing changed: expected {self.describe()}"


class TensorGuard(Guard):
    """``expected`` is a ``TensorSpec``."""

    def condition(self, em):
        v, e = em.bind(self.source_expr), self.expected
        head = (f"__type({v}) is {em.const(e.tensor_type)} and {v}.dtype is {em.const(e.dtype)}"
                f" and {v}.device == {em.const(e.device)}")
        tail = f" and {v}.requires_grad is {e.requires_grad}"
        if not e.is_dynamic:
            return f"{head} and {v}.shape == {e.shape!r} and {v}.stride() == {e.stride!r}{tail}"
        # dynamic sizes: bind the shape once (size guards read it too), check the static
        # sizes one by one and strides against the sizes they follow
        shape_expr = f"{self.source_expr}.shape"
        inline = em.bind_inline(shape_expr)
        shape = em.rewrite(shape_expr)
        checks = [f"__len({inline}) == {len(e.shape)}"]
        checks += [f"{shape}[{d}] == {size}" for d, size in enumerate(e.shape) if size is not None]
        strides = [s.render(lambda d: f"{shape}[{d}]") if isinstance(s, StrideOf) else str(s) for s in e.stride]
        checks.append(f"{v}.stride() == ({', '.join(strides)}{',' if len(strides) == 1 else ''})")
        return f"{head} and " + " and ".join(checks) + tail

    def describe(self):
        s = self.expected
        return (f"{self.source_name}: {s.tensor_type.__name__} {str(s.dtype).replace('torch.', '')} "
                f"{s.device} shape={fmt(s.shape)} stride={fmt(s.stride)} requires_grad={s.requires_grad}")

    def failure(self, value):
        return self.expected.mismatch(value)


class ParameterGuard(Guard):
    """A module's parameter bound into the graph (``expected`` is a ``ParameterSpec``):
    its identity has its own guard; here the object is a constant."""

    def condition(self, em):
        e = self.expected
        p = em.const(e.param)
        grad = "" if e.requires_grad is None else f" and {p}.requires_grad is {e.requires_grad}"
        return f"{p}.dtype is {em.const(e.dtype)} and {p}.shape == {e.shape!r}{grad}"

    def describe(self):
        e = self.expected
        grad = "" if e.requires_grad is None else f" requires_grad={e.requires_grad}"
        return f"{self.source_name}: the same Parameter, {str(e.dtype).replace('torch.', '')} shape={fmt(e.shape)}{grad}"

    def failure(self, value):
        return self.expected.mismatch(value)


class SizeGuard(Guard):
    """A relation between symbolic sizes the trace relied on (``expected`` is a
    ``SizeRelation``: ``L['x'].size()[0] >= 2``, ``... == L['y'].size()[1]``). Runs after
    the tensor guards, which bind each dynamic tensor's shape."""

    joined = True

    def condition(self, em):
        rel = self.expected
        names = {s: f"{em.rewrite(r.tensor_expr + '.shape')}[{r.dim}]" for s, r in rel.reads}
        return render(rel.expr, names)

    def describe(self):
        return self.expected.text()

    def first_failure(self, env, globals_dict):
        rel: SizeRelation = self.expected
        sizes = {}
        for symbol, read in rel.reads:
            try:
                sizes[symbol] = int(evaluate(read.tensor_expr, env).shape[read.dim])
            except Exception as e:
                return f"could not read {read.name}: {type(e).__name__}: {e}"
        if rel.evaluate(sizes):
            return None
        got = ", ".join(f"{read.name} = {sizes[s]}" for s, read in rel.reads)
        return f"expected {rel.text()}, got {got}"

    def dedupe_key(self):
        return (type(self), self.expected.key())


class GuardKind:
    """Every guard kind by name; ``ALL`` is the order checks run in."""

    GLOBAL_STATE = GlobalStateGuard
    ABSENT = AbsentGuard
    IDENTITY = IdentityGuard
    TYPE = TypeGuard
    CONSTANT = ConstantGuard
    LENGTH = LengthGuard
    DICT_KEYS = DictKeysGuard
    NO_HOOKS = NoHooksGuard
    ALIAS = AliasGuard
    TENSOR = TensorGuard
    PARAMETER = ParameterGuard  # a module's parameter, bound into the graph: identity guarded apart
    SIZE = SizeGuard  # relations between dynamic sizes: after the tensor guards that bind the shapes
    ALL = (GlobalStateGuard, AbsentGuard, IdentityGuard, TypeGuard, ConstantGuard, LengthGuard, DictKeysGuard,
           NoHooksGuard, AliasGuard, TensorGuard, ParameterGuard, SizeGuard)


for _order, _kind in enumerate(GuardKind.ALL):
    _kind.order = _order
