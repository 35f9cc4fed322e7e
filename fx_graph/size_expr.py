"""Relations between symbolic sizes, as guards read and run them.

A traced frame with dynamic shapes relies on relations between its symbolic sizes
(``s0 >= 2``, ``s0 == s1``, ``s0 % 8 == 0``): sympy expressions over symbols, each
symbol standing for one input dimension; a stride that follows the sizes is a
``StrideOf``. ``render`` prints such an expression as
Python with each symbol replaced by how to read that dimension, so one printer serves
the generated guard (``__v0[0] >= 2``), the report (``L['x'].size()[0] >= 2``) and
the rewritten frame that rebuilds a size (``x.size(0) * 4``).
"""
from __future__ import annotations

import dataclasses

import sympy
from torch.utils._sympy import functions as F

_COMPARE = {sympy.Eq: "==", sympy.Ne: "!=", sympy.Lt: "<", sympy.Le: "<=", sympy.Gt: ">", sympy.Ge: ">="}


def render(expr, names: dict) -> str:
    """``expr`` as Python; ``names`` maps each free symbol to the text that reads it."""
    return _Printer(names).show(expr)


class _Printer:
    def __init__(self, names: dict):
        self.names = names

    def show(self, e) -> str:  # noqa: C901 (one branch per sympy node kind)
        if isinstance(e, sympy.Symbol):
            return self.names[e]
        if e is sympy.true or e is sympy.false:
            return str(bool(e))
        if isinstance(e, sympy.Integer):
            return str(int(e))
        if isinstance(e, sympy.Rational):
            return f"({int(e.p)} / {int(e.q)})"
        if isinstance(e, sympy.Float):
            return repr(float(e))
        for kind, op in _COMPARE.items():
            if isinstance(e, kind):
                return f"{self.show(e.lhs)} {op} {self.show(e.rhs)}"
        if isinstance(e, sympy.Add):
            return self._add(e)
        if isinstance(e, sympy.Mul):
            return self._mul(e)
        if isinstance(e, (sympy.Pow, F.PowByNatural)) and isinstance(e.args[1], sympy.Integer):
            return f"{self.atom(e.args[0])} ** {int(e.args[1])}"
        if isinstance(e, (F.FloatPow, sympy.Pow)):             # 1 / sqrt(head size): SDPA's scale
            return f"{self.atom(e.args[0])} ** {self.atom(e.args[1])}"
        if isinstance(e, F.FloorDiv):
            return f"{self.atom(e.args[0])} // {self.atom(e.args[1])}"
        if isinstance(e, F.CleanDiv):
            return f"{self.atom(e.args[0])} // {self.atom(e.args[1])}"
        if isinstance(e, F.CeilDiv):
            return f"-(-{self.atom(e.args[0])} // {self.atom(e.args[1])})"
        if isinstance(e, (F.Mod, F.PythonMod, sympy.Mod)):
            return f"{self.atom(e.args[0])} % {self.atom(e.args[1])}"
        if isinstance(e, F.ToFloat):
            return f"float({self.show(e.args[0])})"
        if isinstance(e, (F.FloatTrueDiv, F.IntTrueDiv)):
            return f"{self.atom(e.args[0])} / {self.atom(e.args[1])}"
        if isinstance(e, F.ModularIndexing):
            base, div, mod = e.args
            return f"({self.atom(base)} // {self.atom(div)}) % {self.atom(mod)}"
        if isinstance(e, (F.Max, sympy.Max)):
            return f"__max({', '.join(self.show(a) for a in e.args)})"
        if isinstance(e, (F.Min, sympy.Min)):
            return f"__min({', '.join(self.show(a) for a in e.args)})"
        if isinstance(e, sympy.And):
            return " and ".join(self.atom(a) for a in e.args)
        if isinstance(e, sympy.Or):
            return " or ".join(self.atom(a) for a in e.args)
        if isinstance(e, sympy.Not):
            return f"not {self.atom(e.args[0])}"
        raise NotImplementedError(f"size expression {e} ({type(e).__name__})")

    def atom(self, e) -> str:
        text = self.show(e)
        simple = isinstance(e, (sympy.Symbol, sympy.Integer)) and not (isinstance(e, sympy.Integer) and e < 0)
        return text if simple else f"({text})"

    def _add(self, e) -> str:
        terms = sorted(e.args, key=lambda t: (t.is_number, sympy.default_sort_key(t)))
        out = self.show(terms[0])
        for t in terms[1:]:
            if t.could_extract_minus_sign():
                out += f" - {self.atom(-t)}"
            else:
                out += f" + {self.atom(t)}"
        return out

    def _mul(self, e) -> str:
        coeff, rest = e.as_coeff_Mul()
        factors = [self.atom(f) for f in sympy.Mul.make_args(rest)]
        if coeff == -1:
            return "-" + " * ".join(factors)
        if coeff != 1:
            factors.insert(0, self.atom(coeff))
        return " * ".join(factors)


@dataclasses.dataclass(frozen=True)
class SizeRead:
    """Where one symbol is read: dimension ``dim`` of the tensor reached as
    ``tensor_name`` (readable) / ``tensor_expr`` (guard expression)."""

    tensor_name: str
    tensor_expr: str
    dim: int

    @property
    def name(self) -> str:
        return f"{self.tensor_name}.size()[{self.dim}]"


@dataclasses.dataclass(frozen=True, eq=False)
class SizeRelation:
    """A relation (sympy boolean) over symbols, each read as in ``reads``."""

    expr: object
    reads: tuple  # ((symbol, SizeRead), ...)

    def text(self) -> str:
        return render(self.expr, {s: r.name for s, r in self.reads})

    def evaluate(self, sizes: dict) -> bool:
        """The relation on concrete sizes (``sizes``: symbol -> int)."""
        return bool(self.expr.xreplace({s: sympy.Integer(v) for s, v in sizes.items()}))

    def key(self) -> tuple:
        return (str(self.expr), self.reads)


@dataclasses.dataclass(frozen=True)
class StrideOf:
    """A stride that follows the sizes: ``factor`` times the sizes of ``dims`` (a
    contiguous ``[s0, s1, 4]`` tensor has strides ``(4*s1, 4, 1)``)."""

    factor: int
    dims: tuple

    def value(self, sizes) -> int:
        out = self.factor
        for d in self.dims:
            out *= sizes[d]
        return out

    def render(self, size_of) -> str:
        """As Python, ``size_of(dim)`` reading one size."""
        parts = ([str(self.factor)] if self.factor != 1 or not self.dims else []) + [size_of(d) for d in self.dims]
        return "*".join(parts)

    def __str__(self):
        return self.render(lambda d: f"size[{d}]")
