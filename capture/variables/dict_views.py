"""``dict.keys()``, ``.values()`` and ``.items()``: live views of a traced dict.

A view reads the dict each time it is used, so ``len(keys)`` after ``d[k] = v`` sees
the new key, as in eager. Set operations on key (and item) views give sets, computed
from constant keys (and, for items, constant values).
"""
from __future__ import annotations

import operator

from capture.exc import MissingAttribute, Unsupported
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.keys import key_tracker
from capture.variables.lists import TupleVariable
from capture.variables.sets import SetVariable

_VIEW_TYPES = {"keys": type({}.keys()), "values": type({}.values()), "items": type({}.items())}
SET_OPERATORS = {operator.and_, operator.or_, operator.sub, operator.xor}


class DictViewVariable(VariableTracker):
    def __init__(self, dict_vt, kind: str):
        self.dict_vt = dict_vt
        self.kind = kind  # keys | values | items

    def python_type(self):
        return _VIEW_TYPES[self.kind]

    def children(self):
        return (self.dict_vt,)

    def iter_items(self, tx):
        items = self.dict_vt.items
        if self.kind == "keys":
            return [key_tracker(k) for k in items]
        if self.kind == "values":
            return list(items.values())
        return [TupleVariable([key_tracker(k), v]) for k, v in items.items()]

    def truth(self, tx):
        return bool(self.dict_vt.items)

    def contains(self, tx, item):
        if self.kind == "keys":
            return self.dict_vt.contains(tx, item)
        return ConstantVariable(item.as_python_constant()) in self.python_constants(tx)

    def python_constants(self, tx):
        """The view's items as Python values (constants only), for set operations."""
        values = []
        for vt in self.iter_items(tx):
            if not vt.is_python_constant():
                raise Unsupported(f"set operation on dict.{self.kind}() holding non-constant values")
            values.append(vt.as_python_constant())
        return values

    def set_operation(self, tx, fn, other, reflected=False):
        if self.kind == "values":
            raise Unsupported("set operation on dict.values() (TypeError in Python)")
        mine = set(self.python_constants(tx))
        if isinstance(other, DictViewVariable):
            theirs = set(other.python_constants(tx))
        elif other.is_python_constant():
            theirs = set(other.as_python_constant())
        else:
            raise Unsupported(f"set operation between dict.{self.kind}() and {other}")
        return SetVariable(fn(theirs, mine) if reflected else fn(mine, theirs))

    def var_getattr(self, tx, name):
        if name not in ("__len__", "__contains__", "__iter__", "isdisjoint", "mapping"):
            raise MissingAttribute(f"dict_{self.kind} has no attribute {name!r}")
        return BoundMethodOf(self, name)

    def call_method(self, tx, name, args, kwargs):
        if name == "__len__":
            return ConstantVariable(len(self.dict_vt.items))
        if name == "__contains__":
            return ConstantVariable(self.contains(tx, args[0]))
        if name == "isdisjoint":
            return ConstantVariable(not self.set_operation(tx, operator.and_, args[0]).values)
        raise Unsupported(f"method {name} of dict_{self.kind}")

    def reconstruct(self, cg):
        return f"{cg.reconstruct(self.dict_vt)}.{self.kind}()"

    def __repr__(self):
        return f"DictViewVariable({self.kind})"
