"""Compile the guards of one cache entry into a single generated check.

The generated function is called as ``guard(__func, *frame_args)`` on every call of
the frame, so it must be cheap: it binds each distinct source once (a longer source
reuses the binding of its longest bound prefix), checks cheap kinds first and returns
at the first failure. Its source is kept so reports can show exactly what runs.
"""
from __future__ import annotations

import builtins
import collections
import contextlib
import dataclasses
import functools
import math
import os
import sys

import torch

from guards.guard import Guard, GuardKind
from guards.watch import pinning_dicts


def global_module_hook_count() -> int:
    """Hooks registered for every nn.Module (torch.nn.modules.module's global tables)."""
    m = torch.nn.modules.module
    return (len(m._global_forward_hooks) + len(m._global_forward_pre_hooks) + len(m._global_backward_hooks)
            + len(m._global_backward_pre_hooks))


def dict_part(obj) -> dict:
    """A copy of what a dict (or dict subclass) instance holds, in its own order, read
    without calling any method the subclass overrides (``dict(obj)`` would call its
    ``keys``/``__getitem__``, which may be the very code being compiled)."""
    if isinstance(obj, collections.OrderedDict):
        return {k: dict.__getitem__(obj, k) for k in collections.OrderedDict.keys(obj)}
    return dict.copy(obj)


# Names that source expressions use (capture.sources), bound both in guard functions
# and in rewritten frames.
SOURCE_HELPERS = {
    "__capture_sys_modules": sys.modules,
    "__capture_getattr": object.__getattribute__,
    "__capture_dict": dict_part,
}

# Helpers every guard function can call; bound once when the function is built so a
# user's global named ``type`` or ``len`` cannot change what a guard means.
HELPERS = {
    "__type": type,
    "__len": len,
    "__tuple": tuple,
    "__grad_enabled": torch.is_grad_enabled,
    "__default_dtype": torch.get_default_dtype,
    "__autocast_cpu": functools.partial(torch.is_autocast_enabled, "cpu"),
    "__deterministic": torch.are_deterministic_algorithms_enabled,
    "__inference_mode": torch.is_inference_mode_enabled,
    "__is_autocast_enabled": torch.is_autocast_enabled,
    "__mha_fastpath": torch.backends.mha.get_fastpath_enabled,
    **SOURCE_HELPERS,
    "__environ": os.environ,
    "__autocast_cpu_dtype": functools.partial(torch.get_autocast_dtype, "cpu"),
    "__global_module_hooks": global_module_hook_count,
    "__copysign": math.copysign,
}



def guard_env(arg_names, globals_dict, func, args) -> dict:
    """The names a guard expression sees, bound to one call's values."""
    env = dict(HELPERS)
    env.update(zip(arg_names, args))
    env["__func"] = func
    env["__G"] = globals_dict
    return env


@dataclasses.dataclass
class GuardFunction:
    fn: object
    source: str
    guards: list
    arg_names: tuple
    globals_dict: dict

    def __call__(self, func, *args):
        return self.fn(func, *args)

    def first_failure(self, func, args) -> tuple[Guard, str] | None:
        """Evaluate each guard alone; return the first failing one and why."""
        env = guard_env(self.arg_names, self.globals_dict, func, args)
        for guard in sorted(self.guards, key=_order):
            if guard.kind == GuardKind.ABSENT:
                if guard.expected in self.globals_dict:
                    return guard, f"global {guard.expected!r} now defined, shadowing the builtin"
                continue
            try:
                value = eval(guard.source_expr, {"__builtins__": builtins}, env)
            except Exception as e:  # the value is gone: that is the failure
                return guard, f"could not read {guard.source_name}: {type(e).__name__}: {e}"
            if guard.kind == GuardKind.ALIAS:
                other = eval(guard.expected[1], {"__builtins__": builtins}, env)
                if (value is other) != guard.expected[2]:
                    return guard, f"aliasing changed: expected {guard.describe()}"
                continue
            reason = guard.failure(value)
            if reason is not None:
                return guard, reason
        return None

    def readable(self) -> list[str]:
        return [g.describe() for g in sorted(self.guards, key=_order)]


def _order(guard: Guard):
    return (guard.kind, len(guard.source_expr), guard.source_expr)


def dedupe(guards: list[Guard]) -> list[Guard]:
    seen, out = set(), []
    for g in guards:
        key = (g.kind, g.source_expr, _hashable(g.expected))
        if key not in seen:
            seen.add(key)
            out.append(g)
    return out


def _hashable(value):
    try:
        hash(value)
        return (type(value), value)
    except TypeError:
        return ("id", id(value))


class _Emitter:
    def __init__(self):
        self.lines: list[str] = []
        self.consts: list = []
        self.bound: dict[str, str] = {}  # source expr -> local name
        self.indent = "    "
        self._names = 0

    @contextlib.contextmanager
    def block(self, header: str):
        """Lines emitted inside run under ``header``; names bound there stay there."""
        self.lines.append(self.indent + header)
        self.indent += "    "
        saved = dict(self.bound)
        yield
        self.indent = self.indent[:-4]
        self.bound = saved

    def const(self, value) -> str:
        for i, c in enumerate(self.consts):
            if c is value:
                return f"__c{i}"
        self.consts.append(value)
        return f"__c{len(self.consts) - 1}"

    def bind(self, expr: str) -> str:
        """Local name holding ``expr``, binding it (via its longest bound prefix) if new."""
        if expr in self.bound:
            return self.bound[expr]
        if expr.isidentifier():
            return expr
        rewritten = self.rewrite(expr)
        name = f"__v{self._names}"
        self._names += 1
        self.bound[expr] = name
        self.lines.append(f"{self.indent}{name} = {rewritten}")
        return name

    def rewrite(self, expr: str) -> str:
        """``expr`` starting from its longest already-bound prefix."""
        if expr in self.bound:
            return self.bound[expr]
        for prefix in sorted(self.bound, key=len, reverse=True):
            if expr.startswith(prefix) and expr[len(prefix)] in ".[":
                return self.bound[prefix] + expr[len(prefix):]
        return expr

    def check(self, cond: str, comment: str):
        self.lines.append(f"{self.indent}if not ({cond}):  # {comment}")
        self.lines.append(f"{self.indent}    return False")


def _condition(em: _Emitter, guard: Guard) -> str:
    k, e = guard.kind, guard.expected
    if k == GuardKind.GLOBAL_STATE:
        return f"{guard.source_expr} == {em.const(e)}"
    if k == GuardKind.PARAMETER:  # identity has its own guard; the object is a constant here
        p = em.const(e.param)
        grad = "" if e.requires_grad is None else f" and {p}.requires_grad is {e.requires_grad}"
        return f"{p}.dtype is {em.const(e.dtype)} and {p}.shape == {e.shape!r}{grad}"
    if k == GuardKind.ABSENT:
        return f"{e!r} not in __G"
    v = em.bind(guard.source_expr)
    if k == GuardKind.IDENTITY:
        return f"{v} is {em.const(e)}"
    if k == GuardKind.TYPE:
        return f"__type({v}) is {em.const(e)}"
    if k == GuardKind.CONSTANT:
        if e is None or e is True or e is False:
            return f"{v} is {e}"
        if isinstance(e, float) and math.isnan(e):
            return f"__type({v}) is float and {v} != {v}"
        if isinstance(e, float) and e == 0.0:
            return f"__type({v}) is float and {v} == 0.0 and __copysign(1.0, {v}) == {math.copysign(1.0, e)}"
        return f"__type({v}) is {em.const(type(e))} and {v} == {em.const(e)}"
    if k == GuardKind.LENGTH:
        return f"__len({v}) == {e}"
    if k == GuardKind.DICT_KEYS:
        return f"__tuple({v}) == {em.const(tuple(e))}"
    if k == GuardKind.ALIAS:
        other = em.bind(e[1])
        return f"({v} is {other}) is {e[2]}"
    if k == GuardKind.NO_HOOKS:
        return (f"not ({v}._forward_hooks or {v}._forward_pre_hooks or {v}._backward_hooks"
                f" or {v}._backward_pre_hooks)")
    if k == GuardKind.TENSOR:
        return (f"__type({v}) is {em.const(e.tensor_type)} and {v}.dtype is {em.const(e.dtype)}"
                f" and {v}.device == {em.const(e.device)} and {v}.shape == {e.shape!r}"
                f" and {v}.stride() == {e.stride!r} and {v}.requires_grad is {e.requires_grad}")
    raise ValueError(f"unknown guard kind {k}")


def _watched(guards: list[Guard], example: dict | None) -> tuple[list[Guard], list[str]]:
    """The guards one dict watch can stand in for, and the dict expressions it watches."""
    if example is None:
        return [], []
    roots = {g.source_expr for g in guards if g.kind == GuardKind.IDENTITY}
    covered, exprs = [], {}
    for guard in guards:
        dicts = pinning_dicts(guard, example, roots)
        if dicts:
            covered.append(guard)
            exprs.update(dicts)
    if len(covered) < 2:
        return [], []  # a watch costs a call: worth it only when it replaces several checks
    return covered, list(exprs)


def build_guard_function(guards: list[Guard], arg_names: tuple, globals_dict: dict,
                         name: str = "guard", example: tuple | None = None,
                         dict_watch: type | None = None) -> GuardFunction:
    """With ``example`` (the ``(func, args)`` being compiled) and ``dict_watch`` (a class
    like capture._C.DictWatch), checks on module trees go behind one dict watch."""
    guards = sorted(dedupe(guards), key=_order)
    env = guard_env(arg_names, globals_dict, *example) if example is not None and dict_watch else None
    covered, watched = _watched(guards, env)
    em = _Emitter()

    def emit(guard):
        em.check(_condition(em, guard), guard.describe().replace("\n", " "))
    in_block = {id(g) for g in covered}
    outside = [g for g in guards if id(g) not in in_block]
    for guard in outside:  # identities first: the watch relies on its roots being the same objects
        if guard.kind <= GuardKind.IDENTITY:
            emit(guard)
    if covered:
        watch = em.const(dict_watch())
        with em.block(f"if not {watch}():  # {len(covered)} checks on module state, "
                      f"skipped while {len(watched)} dicts are unchanged"):
            for guard in covered:
                emit(guard)
            dicts = "".join(em.rewrite(e) + ", " for e in watched)
            em.lines.append(f"{em.indent}{watch}.rearm(({dicts}))")
    for guard in outside:
        if guard.kind > GuardKind.IDENTITY:
            emit(guard)
    params = ", ".join(("__func",) + tuple(arg_names))
    helper_names = list(HELPERS) + ["__G"] + [f"__c{i}" for i in range(len(em.consts))]
    body = "\n".join(em.lines + ["    return True"])
    source = (f"def __make_{name}({', '.join(helper_names)}):\n"
              + "\n".join("    " + line for line in f"def {name}({params}):\n{body}".splitlines())
              + f"\n    return {name}\n")
    namespace: dict = {"__builtins__": builtins}
    exec(compile(source, f"<capture guard {name}>", "exec"), namespace)
    fn = namespace[f"__make_{name}"](*HELPERS.values(), globals_dict, *em.consts)
    return GuardFunction(fn, source, guards, tuple(arg_names), globals_dict)
