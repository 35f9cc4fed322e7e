"""Immutable Python values known at trace time (numbers, strings, None, dtypes...),
and folding: running a function on such values while tracing."""
from __future__ import annotations

import enum
import operator
import types

import torch

from capture.exc import MissingAttribute, TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.iterators import ListIteratorVariable
from guards import GuardKind

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
            raise MissingAttribute(str(e)) from None
        if callable(attr) and not isinstance(attr, LITERAL_TYPES):
            return BoundMethodOf(self, name)
        return ConstantVariable(attr)

    def call_method(self, tx, name, args, kwargs):
        # an iterator argument (``", ".join(iter)``) counts as the tuple of its items
        args = [_Items(a.iter_items(tx)) if isinstance(a, ListIteratorVariable) else a for a in args]
        if all(a.is_python_constant() for a in args) and all(v.is_python_constant() for v in kwargs.values()):
            if isinstance(self.value, (str, int, float, complex, bytes, range, slice, frozenset)) \
                    or type(self.value) in (torch.dtype, torch.device):
                method = getattr(self.value, name)
                result = method(*[a.as_python_constant() for a in args],
                                **{k: v.as_python_constant() for k, v in kwargs.items()})
                return builder.wrap_constant_result(result)
        if name in ("__eq__", "__ne__") and len(args) == 1:
            op = operator.eq if name == "__eq__" else operator.ne
            return ConstantVariable(op(self.value, args[0].as_python_constant()))
        raise Unsupported(f"method {name} of constant {type(self.value).__name__}")

    def iter_items(self, tx):
        if isinstance(self.value, (str, range, bytes, frozenset)):
            return [ConstantVariable(v) for v in self.value]
        if isinstance(self.value, types.MappingProxyType):  # e.g. a Signature's parameters: its keys
            return [builder.wrap_constant_result(k) for k in self.value]
        raise Unsupported(f"iteration over {type(self.value).__name__}")

    def reconstruct(self, cg):
        return cg.constant_expr(self.value)

    def __repr__(self):
        return f"ConstantVariable({self.value!r})"


class _Items:
    """The items an iterator argument had, as one tuple argument of a constant's method."""

    def __init__(self, items: list):
        self.items = items

    def is_python_constant(self):
        return all(i.is_python_constant() for i in self.items)

    def as_python_constant(self):
        return tuple(i.as_python_constant() for i in self.items)


def fold(fn, args, kwargs=None):
    """Run ``fn`` on constant arguments at trace time."""
    consts = [a.as_python_constant() for a in args]
    kw = {k: v.as_python_constant() for k, v in (kwargs or {}).items()}
    try:
        result = fn(*consts, **kw)
    except Exception as e:  # Python raises it on these very values: so does the traced code
        raise TracedRaise(e) from None
    return builder.wrap_constant_result(result)


# ---- how real values become constants ----

_GUARDED_BY_IDENTITY = (torch.dtype, torch.memory_format, torch.layout)
_LITERAL_READ_TYPES = (int, float, bool, str, bytes, complex, type(None), range, slice, type(Ellipsis),
                       torch.dtype, torch.device, torch.memory_format, torch.layout, frozenset)


@builder.wraps(builder.Order.LITERAL, lambda v: type(v) in _LITERAL_READ_TYPES or isinstance(v, enum.Enum))
def _wrap_literal(tx, value, source):
    by_identity = type(value) in _GUARDED_BY_IDENTITY or isinstance(value, enum.Enum) or value is Ellipsis
    builder.guard(tx, source, GuardKind.IDENTITY if by_identity else GuardKind.CONSTANT, value)
    return ConstantVariable(value, source)


@builder.wraps(builder.Order.LITERAL, lambda v: type(v) in (torch.finfo, torch.iinfo))
def _wrap_type_info(tx, value, source):
    return ConstantVariable(value, source)


# tuples and Size are containers (capture.variables.lists), never folded whole
@builder.wraps_result(builder.Order.LITERAL, lambda v: type(v) not in (tuple, torch.Size) and (
        isinstance(v, (types.CodeType, enum.Enum, torch.finfo, torch.iinfo)) or is_literal(v)))
def _constant_result(value):
    return ConstantVariable(value)
