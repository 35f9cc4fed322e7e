"""Sets of constants."""
from __future__ import annotations

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable, is_literal
from guards import GuardKind


class SetVariable(VariableTracker):
    def __init__(self, values: set, source=None):
        self.values = set(values)
        self.source = source

    @classmethod
    def from_items(cls, tx, items):
        if not all(i.is_python_constant() for i in items):
            raise Unsupported("set of non-constant values")
        return cls({i.as_python_constant() for i in items})

    def python_type(self):
        return set

    def is_python_constant(self):
        return True

    def as_python_constant(self):
        return set(self.values)

    def truth(self, tx):
        return bool(self.values)

    def iter_items(self, tx):
        return [ConstantVariable(v) for v in self.values]

    def contains(self, tx, item):
        if not item.is_python_constant():
            raise Unsupported("'in' on a set with a non-constant")
        return item.as_python_constant() in self.values

    def var_getattr(self, tx, name):
        return BoundMethodOf(self, name)

    def call_method(self, tx, name, args, kwargs):
        if self.source is not None and name in ("add", "update", "discard", "remove", "clear", "pop"):
            raise Unsupported("mutating a set that existed before the compiled frame (side effect)")
        if not all(a.is_python_constant() for a in args):
            raise Unsupported(f"set.{name} with non-constant arguments")
        consts = [a.as_python_constant() for a in args]
        result = getattr(self.values, name)(*consts)
        if isinstance(result, set):
            return SetVariable(result)
        return ConstantVariable(result)

    def reconstruct(self, cg):
        if self.source is not None:
            return cg.source_expr(self.source)
        if not self.values:
            return "set()"
        return "{" + ", ".join(cg.constant_expr(v) for v in self.values) + "}"


@builder.wraps_result(builder.Order.LITERAL, lambda v: type(v) is set and all(is_literal(i) for i in v))
def _set_result(value):
    return SetVariable(value)


@builder.wraps(builder.Order.LITERAL, lambda v: type(v) is set and all(is_literal(i) for i in v))
def _wrap_set(tx, value, source):
    builder.guard(tx, source, GuardKind.CONSTANT, set(value))
    return SetVariable(value, source)
