"""Compile the guards of one cache entry into a single generated check.

The generated function is called as ``guard(__func, *frame_args)`` on every call of
the frame, so it must be cheap: it binds each distinct source once (a longer source
reuses the binding of its longest bound prefix), checks cheap kinds first and returns
at the first failure. Its source is kept so reports can show exactly what runs.
"""
from __future__ import annotations

import builtins
import contextlib
import dataclasses
import itertools
import linecache
import math
import re

from guards.guard import Guard, evaluate
from guards.kinds import GuardKind
from guards.sources import SOURCE_HELPERS
from guards.state import STATE_HELPERS
from guards.watch import pinning_dicts

# Helpers every guard function can call; bound once when the function is built so a
# user's global named ``type`` or ``len`` cannot change what a guard means.
HELPERS = {
    "__type": type,
    "__id": id,
    "__len": len,
    "__tuple": tuple,
    "__copysign": math.copysign,
    "__max": max,  # size relations (guards.size_expr)
    "__min": min,
    **STATE_HELPERS,
    **SOURCE_HELPERS,
}


_numbers = itertools.count()  # numbers the guard functions' file names
_SOURCES: set = set()  # their linecache entries


def forget_sources() -> None:
    """Drop the guard sources registered with linecache (capture.reset)."""
    for filename in _SOURCES:
        linecache.cache.pop(filename, None)
    _SOURCES.clear()


def guard_env(arg_names, func, args) -> dict:
    """The names a guard expression sees, bound to one call's values."""
    env = dict(HELPERS)
    env.update(zip(arg_names, args))
    env["__func"] = func
    env["__G"] = func.__globals__
    return env


@dataclasses.dataclass(eq=False)
class GuardFunction:
    """One entry's guards compiled to ``fn(func, *args)``. It holds no user object that
    can die (``guards.held``): ``lifeline`` is cut when one it names does; the frame's
    globals are read from ``func`` on each call."""

    fn: object
    source: str
    guards: list
    arg_names: tuple
    lifeline: object = None  # guards.held.Lifeline
    filename: str = ""  # the source's name in linecache

    def __call__(self, func, *args):
        return self.fn(func, *args)

    def forget_source(self) -> None:
        """Drop this guard's source from linecache (its entry is gone)."""
        linecache.cache.pop(self.filename, None)
        _SOURCES.discard(self.filename)

    def value_of(self, guard: Guard, func, args):
        """The value ``guard`` reads on this call (None if it cannot be read)."""
        try:
            return evaluate(guard.source_expr, guard_env(self.arg_names, func, args))
        except Exception:  # noqa: BLE001 - the value is gone: there is none to report
            return None

    def first_failure(self, func, args) -> tuple[Guard, str] | None:
        """Evaluate each guard alone; return the first failing one and why."""
        env = guard_env(self.arg_names, func, args)
        for guard in sorted(self.guards, key=_order):
            reason = guard.first_failure(env, func.__globals__)
            if reason is not None:
                return guard, reason
        return None

    def readable(self) -> list[str]:
        return [g.describe() for g in sorted(self.guards, key=_order)]


def _order(guard: Guard):
    return (guard.order, len(guard.source_expr), guard.source_expr)


def dedupe(guards: list[Guard]) -> list[Guard]:
    seen, out = set(), []
    for g in guards:
        key = g.dedupe_key()
        if key not in seen:
            seen.add(key)
            out.append(g)
    return out


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

    def bind_inline(self, expr: str) -> str:
        """``(name := expr)``, for use inside a condition after the checks that make
        ``expr`` readable (a tensor's ``.shape`` after its type check); later
        conditions read ``name``."""
        if expr in self.bound:
            return self.bound[expr]
        rewritten = self.rewrite(expr)
        name = f"__v{self._names}"
        self._names += 1
        self.bound[expr] = name
        return f"({name} := {rewritten})"

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


def _watched(guards: list[Guard], example: dict | None) -> tuple[list[Guard], list[str]]:
    """The guards one dict watch can stand in for, and the dict expressions it watches."""
    if example is None:
        return [], []
    roots = {g.source_expr for g in guards if g.kind is GuardKind.IDENTITY}
    covered, exprs = [], {}
    for guard in guards:
        dicts = pinning_dicts(guard, example, roots)
        if dicts:
            covered.append(guard)
            exprs.update(dicts)
    if len(covered) < 2:
        return [], []  # a watch costs a call: worth it only when it replaces several checks
    return covered, list(exprs)


def build_guard_function(guards: list[Guard], arg_names: tuple, name: str = "guard",
                         example: tuple | None = None, dict_watch: type | None = None,
                         lifeline=None) -> GuardFunction:
    """With ``example`` (the ``(func, args)`` being compiled) and ``dict_watch`` (a class
    like capture._C.DictWatch), checks on module trees go behind one dict watch.
    ``lifeline``: the one the guards' held objects are watched by (``GuardSet.lifeline``)."""
    guards = sorted(dedupe(guards), key=_order)
    env = guard_env(arg_names, *example) if example is not None and dict_watch else None
    covered, watched = _watched(guards, env)
    em = _Emitter()

    def emit(guard):
        em.check(guard.condition(em), guard.describe().replace("\n", " "))
    in_block = {id(g) for g in covered}
    outside = [g for g in guards if id(g) not in in_block]
    for guard in outside:  # identities first: the watch relies on its roots being the same objects
        if guard.order <= GuardKind.IDENTITY.order:
            emit(guard)
    if covered:
        watch = em.const(dict_watch())
        with em.block(f"if not {watch}():  # {len(covered)} checks on module state, "
                      f"skipped while {len(watched)} dicts are unchanged"):
            for guard in covered:
                emit(guard)
            dicts = "".join(em.rewrite(e) + ", " for e in watched)
            em.lines.append(f"{em.indent}{watch}.rearm(({dicts}))")
    joined = [g for g in outside if g.joined]
    for guard in outside:
        if guard.order > GuardKind.IDENTITY.order and not guard.joined:
            emit(guard)
    if joined:  # one check for all of them (the miss path still names the one that failed)
        em.lines += [f"{em.indent}# {g.describe()}" for g in joined]
        em.check(" and ".join(f"({g.condition(em)})" for g in joined), f"{len(joined)} size relations")
    params = ", ".join(("__func",) + tuple(arg_names))
    helper_names = list(HELPERS) + [f"__c{i}" for i in range(len(em.consts))]
    reads_globals = any(re.search(r"(?<!\w)__G(?!\w)", line) for line in em.lines)
    globals_read = ["    __G = __func.__globals__"] if reads_globals else []
    body = "\n".join(globals_read + em.lines + ["    return True"])
    source = (f"def __make_{name}({', '.join(helper_names)}):\n"
              + "\n".join("    " + line for line in f"def {name}({params}):\n{body}".splitlines())
              + f"\n    return {name}\n")
    namespace: dict = {"__builtins__": builtins}
    filename = f"<capture guard {name} #{next(_numbers)}>"
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # for tracebacks
    _SOURCES.add(filename)
    fn = namespace[f"__make_{name}"](*HELPERS.values(), *em.consts)
    return GuardFunction(fn, source, guards, tuple(arg_names), lifeline, filename)
