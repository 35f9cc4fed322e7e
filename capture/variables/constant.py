"""Immutable Python values known at trace time (numbers, strings, None, dtypes...)."""
from __future__ import annotations

import operator

import torch

from capture.exc import Unsupported
from capture.variables.base import VariableTracker

# Types whose values we treat as literals: immutable and cheap to guard by equality.
LITERAL_TYPES = (int, float, bool, str, bytes, complex, type(None), type(Ellipsis),
                 type(NotImplemented), slice, range, torch.dtype, torch.device,
                 torch.memory_format, torch.layout, frozenset)


def is_literal(value) -> bool:
    if type(value) in (tuple, torch.Size):
        return all(is_literal(v) for v in value)
    return isinstance(value, LITERAL_TYPES) and type(value) not in (torch.Size,)


class ConstantVariable(VariableTracker):
    def __init__(self, value, source=None):
        self.value = value
        self.source = source

    def python_type(self):
        return type(self.value)

    def is_python_constant(self):
        return True

    def as_python_constant(self):
        return self.value

    def truth(self, tx):
        return bool(self.value)

    def var_getattr(self, tx, name):
        try:
            attr = getattr(self.value, name)
        except AttributeError as e:
            from capture.exc import MissingAttribute
            raise MissingAttribute(str(e)) from None
        if callable(attr) and not isinstance(attr, LITERAL_TYPES):
            from capture.variables.builtin import BoundMethodOf
            return BoundMethodOf(self, name)
        return ConstantVariable(attr)

    def call_method(self, tx, name, args, kwargs):
        from capture.variables.iterators import ListIteratorVariable
        from capture.variables.lists import TupleVariable
        args = [TupleVariable(a.iter_items(tx)) if isinstance(a, ListIteratorVariable) else a for a in args]
        if all(a.is_python_constant() for a in args) and all(v.is_python_constant() for v in kwargs.values()):
            if isinstance(self.value, (str, int, float, complex, bytes, range, slice, frozenset)) \
                    or type(self.value) in (torch.dtype, torch.device):
                method = getattr(self.value, name)
                result = method(*[a.as_python_constant() for a in args],
                                **{k: v.as_python_constant() for k, v in kwargs.items()})
                from capture.variables.builder import wrap_constant_result
                return wrap_constant_result(result)
        if name in ("__eq__", "__ne__") and len(args) == 1:
            op = operator.eq if name == "__eq__" else operator.ne
            return ConstantVariable(op(self.value, args[0].as_python_constant()))
        raise Unsupported(f"method {name} of constant {type(self.value).__name__}")

    def iter_items(self, tx):
        if isinstance(self.value, (str, range, bytes, frozenset)):
            return [ConstantVariable(v) for v in self.value]
        raise Unsupported(f"iteration over {type(self.value).__name__}")

    def reconstruct(self, cg):
        return cg.constant_expr(self.value)

    def __repr__(self):
        return f"ConstantVariable({self.value!r})"
