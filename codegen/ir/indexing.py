"""Symbolic integer index expressions for kernel loads and stores.

An index is an affine sum ``c0 + c1*a1 + c2*a2 + ...`` over *atoms*: a loop variable
``Var(name, size)`` (values ``0 .. size-1``), ``FloorDiv(e, d)`` or ``Mod(e, d)`` with a
positive integer ``d``. Views become index arithmetic: a permute swaps variables, an
expand drops one, a slice scales and shifts, a reshape flattens and unflattens with
``//`` and ``%``. The constructors simplify with the variables' ranges so that, for
instance, reading a contiguous ``[B*T, C]`` view of a contiguous ``[B, T, C]`` buffer
comes out as ``C*i0 + i1`` rather than a tower of divisions:

* ``(q*d + r) // d = q + r // d`` and ``(q*d + r) % d = r % d`` for integer ``q``;
* ``(g*q + r) // d = q // (d/g)`` and ``(g*q + r) % d = g*(q % (d/g)) + r`` when ``g``
  divides ``d`` and ``0 <= r < g``;
* ``e // d = 0`` and ``e % d = e`` when ``0 <= e < d``;
* ``c*a*(e // a) + c*(e % a) = c*e`` and ``c*a*((e // a) % b) + c*(e % a) = c*(e % (a*b))``.

Sizes may be symbolic (``codegen.ir.sizes``): a variable's size, a coefficient, a
divisor or the constant can be a sympy expression over the trace's size symbols. A
simplification then applies only where its condition is *provable* for every size;
otherwise the ``//`` or ``%`` stays (correct, just less simple).

Division and modulo follow Python (floor) semantics; emitted code only uses them on
non-negative operands, where Triton's C semantics agree (``to_source`` checks this).

A fourth atom, ``Gathered(value, size)``, stands for an index read from memory (gather,
embedding, advanced indexing): ``value`` is a loop-IR expression the kernel computes
(already wrapped into ``0 .. size-1`` for in-range indices), printed as the name the
kernel gave it. Its range is what the simplifier assumes; loads through it are masked
to that range, so an out-of-range index reads 0 instead of faulting.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import sympy
from torch.utils._sympy import functions as F

from codegen.ir import sizes
from codegen.ir.sizes import le, lt


class Atom:
    __slots__ = ()


class Var(Atom):
    """A loop variable taking the values ``0 .. size-1``."""
    __slots__ = ("name", "size")

    def __init__(self, name: str, size):
        self.name, self.size = name, sizes.of(size)

    def _key(self):
        return ("var", self.name, sizes.sort_key(self.size))

    def bounds(self):
        return 0, self.size - 1

    def __eq__(self, other):
        return isinstance(other, Var) and self.name == other.name and self.size == other.size

    def __hash__(self):
        return hash(("var", self.name, self.size))

    def __repr__(self):
        return self.name


class FloorDiv(Atom):
    __slots__ = ("expr", "divisor", "_hash")

    def __init__(self, expr: "Index", divisor: int):
        self.expr, self.divisor = expr, divisor
        self._hash = hash(("div", expr, divisor))

    def _key(self):
        return ("div", self.expr.sort_key(), sizes.sort_key(self.divisor))

    def bounds(self):
        lo, hi = self.expr.bounds()
        return _floor(lo, self.divisor), _floor(hi, self.divisor)

    def __eq__(self, other):
        return isinstance(other, FloorDiv) and self.divisor == other.divisor and self.expr == other.expr

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"({self.expr} // {self.divisor})"


class Mod(Atom):
    __slots__ = ("expr", "divisor", "_hash")

    def __init__(self, expr: "Index", divisor: int):
        self.expr, self.divisor = expr, divisor
        self._hash = hash(("mod", expr, divisor))

    def _key(self):
        return ("mod", self.expr.sort_key(), sizes.sort_key(self.divisor))

    def bounds(self):
        lo, hi = self.expr.bounds()
        if le(0, lo) and le(hi, self.divisor - 1):
            return 0, hi
        return 0, self.divisor - 1

    def __eq__(self, other):
        return isinstance(other, Mod) and self.divisor == other.divisor and self.expr == other.expr

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"({self.expr} % {self.divisor})"


class Gathered(Atom):
    """An index value loaded at run time: ``value`` (a loop-IR ``Expr``) in ``0 .. size-1``.

    ``deps`` are the loop variables the value depends on (through the loads computing it),
    so masks and loop levels treat it like those variables."""
    __slots__ = ("value", "size", "deps", "_hash", "_sort")

    def __init__(self, value, size, deps):
        self.value, self.size, self.deps = value, sizes.of(size), frozenset(deps)
        self._hash = hash(("gathered", value, self.size))
        self._sort = None

    def _key(self):
        if self._sort is None:                  # deterministic: the expression's structure
            self._sort = ("gathered", repr(self.value), sizes.sort_key(self.size))
        return self._sort

    def bounds(self):
        return 0, self.size - 1

    def __eq__(self, other):
        return isinstance(other, Gathered) and self.size == other.size and self.value == other.value

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"[{self.value!r}]"


class Index:
    """``const + sum(coef * atom)``; immutable, hashable, with structural equality."""
    __slots__ = ("terms", "const", "_hash")

    def __init__(self, terms: Mapping[Atom, int] | None = None, const: int = 0):
        items = {a: sizes.of(c) for a, c in (terms or {}).items() if c != 0}
        self.terms = dict(sorted(items.items(), key=lambda kv: kv[0]._key()))
        self.const = sizes.of(const)
        self._hash = hash((tuple(self.terms.items()), self.const))

    # ---------------------------------------------------------------- construction
    @staticmethod
    def of(value) -> "Index":
        if isinstance(value, Index):
            return value
        if isinstance(value, Atom):
            return Index({value: 1})
        if isinstance(value, (int, sympy.Expr)):
            return Index({}, value)
        raise TypeError(f"not an index: {value!r}")

    def __add__(self, other):
        other = Index.of(other)
        terms = dict(self.terms)
        for atom, coef in other.terms.items():
            terms[atom] = terms.get(atom, 0) + coef
        return _combine(Index(terms, self.const + other.const))

    __radd__ = __add__

    def __sub__(self, other):
        return self + Index.of(other) * -1

    def __mul__(self, k):
        if not isinstance(k, (int, sympy.Expr)):
            raise TypeError("indices are only scaled by integer sizes")
        return Index({a: c * k for a, c in self.terms.items()}, self.const * k)

    __rmul__ = __mul__

    def __floordiv__(self, d):
        return floordiv(self, d)

    def __mod__(self, d):
        return mod(self, d)

    # ---------------------------------------------------------------- queries
    def is_constant(self) -> bool:
        return not self.terms

    def symbols(self) -> set:
        """The size symbols the printed index reads (coefficients, divisors, constant)."""
        found = sizes.symbols(self.const)
        for atom, coef in self.terms.items():
            found |= sizes.symbols(coef)
            if isinstance(atom, (FloorDiv, Mod)):
                found |= sizes.symbols(atom.divisor) | atom.expr.symbols()
        return found

    def bounds(self) -> tuple[int, int]:
        lo = hi = self.const
        for atom, coef in self.terms.items():
            a_lo, a_hi = atom.bounds()
            if sizes.sign(coef) > 0:
                lo, hi = lo + coef * a_lo, hi + coef * a_hi
            else:
                lo, hi = lo + coef * a_hi, hi + coef * a_lo
        return sizes.of(lo), sizes.of(hi)

    def variables(self) -> set:
        found = set()
        for atom in self.terms:
            if isinstance(atom, Var):
                found.add(atom)
            elif isinstance(atom, Gathered):
                found |= atom.deps
            else:
                found |= atom.expr.variables()
        return found

    def gathered(self) -> list:
        """The ``Gathered`` atoms anywhere in this index (inside ``//`` and ``%`` too)."""
        found = []
        for atom in self.terms:
            if isinstance(atom, Gathered):
                found.append(atom)
            elif not isinstance(atom, Var):
                found += [g for g in atom.expr.gathered() if g not in found]
        return found

    def affine_coefficients(self) -> dict | None:
        """{Var: coef} if every atom is a plain variable, else None."""
        if all(isinstance(a, Var) for a in self.terms):
            return dict(self.terms)
        return None

    def sort_key(self):
        return (tuple((a._key(), sizes.sort_key(c)) for a, c in self.terms.items()), sizes.sort_key(self.const))

    def evaluate(self, env: Mapping[str, int]) -> int:
        total = self.const
        for atom, coef in self.terms.items():
            total += coef * _eval_atom(atom, env)
        return total

    def substitute(self, mapping: Mapping[Var, "Index"]) -> "Index":
        out = Index({}, self.const)
        for atom, coef in self.terms.items():
            out = out + _subs_atom(atom, mapping) * coef
        return out

    def __eq__(self, other):
        if isinstance(other, int):
            return not self.terms and self.const == other
        return isinstance(other, Index) and self._hash == other._hash and \
            self.const == other.const and self.terms == other.terms

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return to_source(self, check=False)


def _eval_atom(atom, env):
    if isinstance(atom, Var):
        return env[atom.name]
    if isinstance(atom, Gathered):
        return env[atom]
    value = atom.expr.evaluate(env)
    return value // atom.divisor if isinstance(atom, FloorDiv) else value % atom.divisor


def _subs_atom(atom, mapping):
    if isinstance(atom, (Var, Gathered)):
        return Index.of(mapping.get(atom, atom))
    inner = atom.expr.substitute(mapping)
    return floordiv(inner, atom.divisor) if isinstance(atom, FloorDiv) else mod(inner, atom.divisor)


def const(value: int) -> Index:
    return Index({}, value)


def var(name: str, size) -> Index:
    return Index({Var(name, size): 1})


def _floor(a, d):
    """``a // d`` for bounds (sympy's floor where symbolic)."""
    if isinstance(a, int) and isinstance(d, int):
        return a // d
    return sizes.of(F.FloorDiv(sympy.sympify(a), sympy.sympify(d)))


# --------------------------------------------------------------------------- simplification


def _split(expr: Index, d):
    """(quotient part q, remainder r) with ``expr = d*q + r``, coefficients taken whole."""
    q_terms, r_terms = {}, {}
    for atom, coef in expr.terms.items():
        if sizes.divides(d, coef):
            q_terms[atom] = sizes.quotient(coef, d)
        else:
            r_terms[atom] = coef
    c = expr.const
    if isinstance(c, int) and isinstance(d, int):
        q_const, r_const = divmod(c, d)
    elif sizes.divides(d, c):
        q_const, r_const = sizes.quotient(c, d), 0
    else:
        q_const, r_const = 0, c
    return Index(q_terms, q_const), Index(r_terms, r_const)


def _small_split(expr: Index, d):
    """Yield (g, big/g, small) with g | d, expr = big + small, 0 <= small < g, big divisible by g."""
    found = {sizes.gcd(coef, d) for coef in expr.terms.values()} - {1, d}
    candidates = sorted(found, key=lambda g: (not sizes.is_static(g), g if sizes.is_static(g) else 0, str(g)),
                        reverse=True)
    for g in candidates:
        big = {a: sizes.quotient(c, g) for a, c in expr.terms.items() if sizes.divides(g, c)}
        small = Index({a: c for a, c in expr.terms.items() if not sizes.divides(g, c)}, expr.const)
        lo, hi = small.bounds()
        if big and le(0, lo) and lt(hi, g):
            yield g, Index(big), small


def _check_divisor(d, what):
    if sizes.is_static(d) and d <= 0:
        raise ValueError(f"index {what} by a non-positive constant")


def floordiv(expr, d) -> Index:
    expr, d = Index.of(expr), sizes.of(d)
    _check_divisor(d, "division")
    if d == 1:
        return expr
    lo, hi = expr.bounds()
    if sizes.is_static(lo) and sizes.is_static(hi) and sizes.is_static(d):
        if lo >= 0 and lo // d == hi // d:
            return const(lo // d)
    elif le(0, lo) and lt(hi, d):
        return const(0)
    q, r = _split(expr, d)
    if not q.is_constant() or q.const != 0:
        if not r.is_constant():
            return q + floordiv(r, d)
        if sizes.is_static(r.const) and sizes.is_static(d):
            return q + r.const // d
        if le(0, r.const) and lt(r.const, d):
            return q
        return Index({FloorDiv(expr, d): 1})
    for g, big, small in _small_split(expr, d):
        return floordiv(big, sizes.quotient(d, g))
    if len(expr.terms) == 1 and expr.const == 0:
        (atom, coef), = expr.terms.items()
        if coef == 1 and isinstance(atom, FloorDiv):
            return floordiv(atom.expr, atom.divisor * d)
        if coef == 1 and isinstance(atom, Mod) and sizes.divides(d, atom.divisor):
            return mod(floordiv(atom.expr, d), sizes.quotient(atom.divisor, d))
    return Index({FloorDiv(expr, d): 1})


def mod(expr, d) -> Index:
    expr, d = Index.of(expr), sizes.of(d)
    _check_divisor(d, "modulo")
    if d == 1:
        return const(0)
    lo, hi = expr.bounds()
    if le(0, lo) and lt(hi, d):
        return expr
    _, r = _split(expr, d)
    if r != expr:
        return mod(r, d)
    for g, big, small in _small_split(expr, d):
        return mod(big, sizes.quotient(d, g)) * g + small
    if len(expr.terms) == 1 and expr.const == 0:
        (atom, coef), = expr.terms.items()
        if coef == 1 and isinstance(atom, Mod) and sizes.divides(d, atom.divisor):
            return mod(atom.expr, d)
    return Index({Mod(expr, d): 1})


def _combine(expr: Index) -> Index:
    """Fold ``c*a*(e // a) + c*(e % a)`` into ``c*e`` (and the ``% b`` variant), repeatedly."""
    changed = True
    while changed:
        changed = False
        for atom, coef in list(expr.terms.items()):
            if not isinstance(atom, Mod) or atom not in expr.terms:
                continue
            e, a = atom.expr, atom.divisor
            whole = FloorDiv(e, a)
            partner = None
            if expr.terms.get(whole) == coef * a:
                partner, replacement = whole, e * coef
            else:
                for other, oc in expr.terms.items():
                    if isinstance(other, Mod) and oc == coef * a and other.expr == Index({whole: 1}):
                        partner, replacement = other, mod(e, a * other.divisor) * coef
                        break
            if partner is None:
                continue
            terms = dict(expr.terms)
            del terms[atom], terms[partner]
            rest = Index(terms, expr.const)
            merged = {a2: c2 for a2, c2 in rest.terms.items()}
            for a2, c2 in replacement.terms.items():
                merged[a2] = merged.get(a2, 0) + c2
            expr = Index(merged, rest.const + replacement.const)
            changed = True
            break
    return expr


# --------------------------------------------------------------------------- views


def contiguous_strides(shape: Iterable[int]) -> list:
    strides, acc = [], 1
    for size in reversed(list(shape)):
        strides.append(acc)
        size = sizes.of(size)
        acc *= max(size, 1) if sizes.is_static(size) else size
    return strides[::-1]


def flatten(index: list[Index], shape: list[int]) -> Index:
    """Row-major linear position of ``index`` in ``shape``."""
    total = const(0)
    for idx, stride in zip(index, contiguous_strides(shape)):
        total = total + idx * stride
    return total


def unflatten(linear: Index, shape: list[int]) -> list[Index]:
    """Per-dimension indices of a row-major linear position in ``shape``."""
    out = []
    for size, stride in zip(shape, contiguous_strides(shape)):
        out.append(const(0) if sizes.is_static(size) and size <= 1 else mod(floordiv(linear, stride), size))
    return out


def strided_offset(index: list[Index], strides: list[int], offset: int = 0) -> Index:
    total = const(offset)
    for idx, stride in zip(index, strides):
        total = total + idx * sizes.of(stride)
    return total


# --------------------------------------------------------------------------- printing


def to_source(expr: Index, names: Mapping[str, str] | None = None, check: bool = True) -> str:
    """Python/Triton source; ``names`` renames variables. ``check`` insists that every
    ``//`` and ``%`` has a non-negative left operand (C and Python semantics agree)."""
    names = names or {}
    parts = []
    for atom, coef in expr.terms.items():
        text = _atom_source(atom, names, check)
        if coef == 1:
            parts.append(text)
        elif coef == -1:
            parts.append(f"-{text}")
        else:
            parts.append(f"{_factor(coef)}*{text}")
    if expr.const != 0 or not parts:
        parts.append(sizes.source(expr.const))
    source = " + ".join(parts)
    return source.replace("+ -", "- ")


def _atom_source(atom, names, check) -> str:
    if isinstance(atom, Var):
        return names.get(atom.name, atom.name)
    if isinstance(atom, Gathered):
        return names[atom] if atom in names else repr(atom)
    if check and not le(0, atom.expr.bounds()[0]):
        raise ValueError(f"index {atom!r} divides a possibly negative value")
    inner = to_source(atom.expr, names, check)
    op = "//" if isinstance(atom, FloorDiv) else "%"
    if len(atom.expr.terms) + (1 if atom.expr.const != 0 else 0) > 1:
        inner = f"({inner})"
    return f"({inner} {op} {_factor(atom.divisor)})"


def _factor(size) -> str:
    """A coefficient or divisor as a factor: a symbolic one in parentheses unless a symbol."""
    text = sizes.source(size)
    return text if sizes.is_static(size) or isinstance(size, sympy.Symbol) else f"({text})"
