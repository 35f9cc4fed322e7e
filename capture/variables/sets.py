"""Sets of constants."""
from __future__ import annotations

from capture.exc import TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable, is_literal
from capture.variables.keys import HashedKey, is_constant_key, key_expr, key_tracker, to_key
from guards import GuardKind


_ELEMENT_METHODS = {"add", "discard", "remove", "__contains__"}


class SetVariable(VariableTracker):
    """A set of constants and of objects hashed by identity (capture/variables/keys.py)."""

    def __init__(self, values: set, source=None):
        self.values = set(values)  # constants and IdentityKeys
        self.source = source

    @classmethod
    def from_items(cls, tx, items):
        return cls({to_key(tx, i) for i in items})

    def python_type(self):
        return set

    def children(self):
        return tuple(key_tracker(v) for v in self.values if not is_constant_key(v))

    def is_python_constant(self):
        return all(is_constant_key(v) for v in self.values)

    def as_python_constant(self):
        if not self.is_python_constant():
            raise Unsupported("a set of objects is not a constant")
        return set(self.values)

    def truth(self, tx):
        return bool(self.values)

    def _ordered(self):
        by_address = [v for v in self.values if not is_constant_key(v) and not isinstance(v, HashedKey)]
        if len(self.values) > 1 and by_address:
            raise Unsupported("the order of a set of objects (it follows their addresses)")
        return list(self.values)

    def iter_items(self, tx):
        return [key_tracker(v) for v in self._ordered()]

    def contains(self, tx, item):
        return to_key(tx, item) in self.values

    def var_getattr(self, tx, name):
        return BoundMethodOf(self, name)

    def _keys_of(self, tx, vt):
        if isinstance(vt, SetVariable):
            return set(vt.values)
        return {to_key(tx, i) for i in vt.iter_items(tx)}

    def call_method(self, tx, name, args, kwargs):
        if self.source is not None and name in ("add", "update", "discard", "remove", "clear", "pop"):
            raise Unsupported("mutating a set that existed before the compiled frame (side effect)")
        if kwargs:
            raise Unsupported(f"set.{name} with keyword arguments")
        if name == "pop" and not args:
            if not self.values:
                raise TracedRaise(KeyError("pop from an empty set"))
            item = self._ordered()[0]
            self.values.discard(item)
            return key_tracker(item)
        if name in _ELEMENT_METHODS:
            real_args = [to_key(tx, a) for a in args]
        else:
            real_args = [self._keys_of(tx, a) for a in args]
        try:
            result = getattr(self.values, name)(*real_args)
        except (KeyError, TypeError) as e:
            raise TracedRaise(e) from None
        if isinstance(result, (set, frozenset)):
            return SetVariable(result)
        return ConstantVariable(result)

    def reconstruct(self, cg):
        if self.source is not None:
            return cg.source_expr(self.source)
        if not self.values:
            return "set()"
        return "{" + ", ".join(key_expr(cg, v) for v in self.values) + "}"


@builder.wraps_result(builder.Order.LITERAL, lambda v: type(v) is set and all(is_literal(i) for i in v))
def _set_result(value):
    return SetVariable(value)


@builder.wraps(builder.Order.LITERAL, lambda v: type(v) is set and all(is_literal(i) for i in v))
def _wrap_set(tx, value, source):
    builder.guard(tx, source, GuardKind.CONSTANT, set(value))
    return SetVariable(value, source)
