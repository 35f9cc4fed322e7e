"""Sizes in the loop IR: an ``int`` where static, a sympy expression where symbolic.

A graph traced with dynamic shapes has fake tensors whose sizes are ``torch.SymInt``s of
the trace's ``ShapeEnv`` (``fx_graph.symbolic``). The code generator keeps them as sympy
expressions over the same symbols (``s0``, ``768*s0``; positive integers, as the
ShapeEnv declares them): buffer shapes and strides, loop extents, index coefficients
and divisors. A static size stays a Python ``int``, so static graphs take the same
paths as before.

Questions about sizes come in two kinds:

* ``provable(cond)``: may an index be simplified, may a check be dropped? Only what
  holds for every size the entry serves counts (sympy's assumptions, then the ShapeEnv's
  ranges, e.g. ``s0 >= 2``); anything else is "no", which is always safe.
* ``decide(cond)``: a choice the generated code depends on (a kernel variant). Proved
  where possible, else answered for this call's sizes and recorded in the ShapeEnv, so
  the front end guards it (its guards are taken after the backend compiled the graph).

Heuristics that only tune speed (block sizes, thread counts) read ``hint(size)``, this
call's value, without a guard. Heuristics that decide *which* kernels a graph has (the
matmul template or the library GEMM) read ``least(size)``, the smallest size the entry
serves, so the kernels do not depend on which call compiled the graph. Generated code prints sizes with ``source``: a symbol is
a variable of the wrapper and a runtime argument of each kernel that reads it.
"""
from __future__ import annotations

import contextlib
import math
import re

import sympy
import torch
from torch.utils._sympy import functions as F


class SymbolicSizeError(Exception):
    """A use of a symbolic size the code generator does not handle (yet); the caller
    turns it into ``Unlowerable`` with this message."""


_ENV: list = []          # the ShapeEnv of the graph being compiled (a stack; empty: static)


@contextlib.contextmanager
def shape_env(env):
    """Answer ``provable``/``decide``/``hint`` with ``env`` while compiling one graph."""
    _ENV.append(env)
    try:
        yield
    finally:
        _ENV.pop()


def current_env():
    return _ENV[-1] if _ENV else None


def known_symbols() -> list:
    """Every size symbol of the graph being compiled (none for a static graph)."""
    env = current_env()
    return list(env.backed_var_to_val) if env is not None else []


def of(value):
    """A size as the IR holds it: ``int`` if static, else a sympy expression."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, torch.SymInt):
        node = value.node
        expr = node.shape_env.simplify(node.expr) if node.shape_env is not None else node.expr
        return of(expr)
    if isinstance(value, (torch.SymFloat, torch.SymBool)):
        raise SymbolicSizeError(f"a symbolic {type(value).__name__} ({value}) is not generated yet")
    if isinstance(value, sympy.Expr):
        if value.is_Integer:
            return int(value)
        return value
    return int(value)


def is_static(value) -> bool:
    return isinstance(value, int)


def sort_key(value) -> tuple:
    """A key that orders static and symbolic sizes together (deterministically)."""
    return (0, value, "") if isinstance(value, int) else (1, 0, str(value))


def symbols(value) -> set:
    """The symbols a size (or an iterable of sizes) depends on."""
    if isinstance(value, (tuple, list)):
        found = set()
        for item in value:
            found |= symbols(item)
        return found
    return set(value.free_symbols) if isinstance(value, sympy.Basic) else set()


def provable(cond) -> bool:
    """Whether ``cond`` (a bool, or a sympy relation over sizes) holds for every size."""
    if isinstance(cond, bool):
        return cond
    if cond is sympy.true:
        return True
    if cond is sympy.false or not isinstance(cond, sympy.Basic):
        return False
    env = current_env()
    if env is None:
        return False
    try:
        found = env._maybe_evaluate_static(cond)
    except Exception:  # noqa: BLE001 - the prover gave up (value ranges it cannot build): not proven
        return False
    return found is sympy.true


def le(a, b) -> bool:
    """``a <= b`` for every size."""
    if isinstance(a, int) and isinstance(b, int):
        return a <= b
    return provable(sympy.Le(a, b))


def lt(a, b) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a < b
    return provable(sympy.Lt(a, b))


def equal(a, b) -> bool:
    """``a == b`` for every size."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return sympy.expand(a - b) == 0 or provable(sympy.Eq(a, b))


def divides(d, n) -> bool:
    """``d`` divides ``n`` for every size."""
    if isinstance(d, int) and isinstance(n, int):
        return n % d == 0
    if d == 0:
        return False
    return bool(sympy.cancel(n / d).is_integer)


def quotient(n, d):
    """``n / d`` where ``divides(d, n)``."""
    if isinstance(d, int) and isinstance(n, int):
        return n // d
    return of(sympy.cancel(n / d))


def gcd(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return math.gcd(a, b)
    return of(sympy.gcd(a, b))


def sign(value) -> int:
    """1 or -1 (0 for 0); a symbolic value must have a known sign."""
    if isinstance(value, int):
        return (value > 0) - (value < 0)
    if value.is_positive:
        return 1
    if value.is_negative:
        return -1
    if provable(sympy.Gt(value, 0)):
        return 1
    if provable(sympy.Lt(value, 0)):
        return -1
    raise SymbolicSizeError(f"the sign of {value} depends on the sizes")


def hint(value) -> int:
    """This call's value of a size (for heuristics that need no guard)."""
    if isinstance(value, int):
        return value
    env = current_env()
    if env is None:
        raise SymbolicSizeError(f"no sizes to evaluate {value} with")
    return int(sympy.sympify(value).xreplace(env.backed_var_to_val))


def least(value) -> int:
    """The smallest value a size takes over every size the entry serves (the ShapeEnv's
    ranges, e.g. ``s0*s1 >= 4`` from ``s0, s1 >= 2``): for choices that decide which
    kernels a graph has, which must not depend on the call that happened to compile it."""
    if isinstance(value, int):
        return value
    env = current_env()
    if env is None:
        raise SymbolicSizeError(f"no sizes to bound {value} with")
    lower = env.bound_sympy(sympy.sympify(value)).lower
    if not lower.is_finite:
        raise SymbolicSizeError(f"{value} has no lower bound")
    return int(lower)


def decide(cond) -> bool:
    """``cond`` proved, or answered for this call's sizes and guarded (module docstring)."""
    if isinstance(cond, bool):
        return cond
    if provable(cond):
        return True
    if provable(sympy.Not(cond)):
        return False
    env = current_env()
    if env is None:
        raise SymbolicSizeError(f"no sizes to decide {cond} with")
    return bool(env.evaluate_expr(cond))


# --------------------------------------------------------------------------- printing


def symbols_read(text: str) -> list:
    """The size symbols a piece of generated code names, in name order (its size parameters;
    emitters keep temporaries from taking their names)."""
    names = set(re.findall(r"\b[A-Za-z_]\w*\b", text))
    return sorted((s for s in known_symbols() if s.name in names), key=lambda s: s.name)


def blocks(numel, block: int):
    """Programs for ``numel`` elements in blocks of ``block``: a number, or wrapper source."""
    if isinstance(numel, int):
        return max(1, -(-numel // block))
    return f"_cdiv({source(numel)}, {block})"


def source(value, lang: str = "python") -> str:
    """A size as Python/Triton (``lang="python"``) or C (``"c"``) source over the symbols."""
    if isinstance(value, int):
        return str(value)
    return _show(value, lang)


def tuple_source(values) -> str:
    """A shape or stride tuple as Python source (as ``repr`` prints a tuple of ints)."""
    items = [source(v) for v in values]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _atom(e, lang) -> str:
    text = _show(e, lang)
    return text if isinstance(e, (sympy.Symbol, sympy.Integer)) and not text.startswith("-") else f"({text})"


def _show(e, lang) -> str:  # noqa: C901 (one branch per sympy node kind)
    if isinstance(e, sympy.Symbol):
        return e.name
    if isinstance(e, sympy.Integer):
        return str(int(e))
    if isinstance(e, sympy.Add):
        parts = [_show(a, lang) for a in sorted(e.args, key=sympy.default_sort_key)]
        return " + ".join(parts).replace("+ -", "- ")
    if isinstance(e, sympy.Mul):
        return "*".join(_atom(a, lang) for a in e.args)
    if isinstance(e, (sympy.Pow, F.PowByNatural)) and isinstance(e.args[1], sympy.Integer) and e.args[1] > 0:
        return "*".join([_atom(e.args[0], lang)] * int(e.args[1]))
    if isinstance(e, F.FloorDiv):         # sizes are non-negative: C's / and Python's // agree
        return f"{_atom(e.args[0], lang)} {'/' if lang == 'c' else '//'} {_atom(e.args[1], lang)}"
    if isinstance(e, (F.Mod, F.PythonMod, sympy.Mod)):
        return f"{_atom(e.args[0], lang)} % {_atom(e.args[1], lang)}"
    if isinstance(e, (sympy.Min, sympy.Max, F.Min, F.Max)):         # a diagonal's length: min(rows, cols)
        pick = "min" if isinstance(e, (sympy.Min, F.Min)) else "max"
        if lang == "c":
            first, rest = _show(e.args[0], lang), _show(type(e)(*e.args[1:]), lang)
            return f"(({first}) {'<' if pick == 'min' else '>'} ({rest}) ? ({first}) : ({rest}))"
        return f"{pick}({', '.join(_show(a, lang) for a in e.args)})"
    raise SymbolicSizeError(f"size expression {e} ({type(e).__name__}) is not generated yet")
