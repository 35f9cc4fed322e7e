"""``operator.itemgetter``, ``attrgetter`` and ``methodcaller`` made while tracing.

Calling one does what it does in Python, on the traced object: items through
``operator.getitem``, dotted attribute paths through ``getattr``, the method through
an attribute read and a call -- each step traced like the code it stands for.
"""
from __future__ import annotations

import operator

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.lists import TupleVariable

GETTERS = (operator.itemgetter, operator.attrgetter, operator.methodcaller)


class OperatorGetterVariable(VariableTracker):
    def __init__(self, kind: type, args: list, kwargs: dict):
        self.kind = kind
        self.args = args
        self.kwargs = kwargs

    def python_type(self):
        return self.kind

    def children(self):
        return tuple(self.args) + tuple(self.kwargs.values())

    def truth(self, tx):
        return True

    def call(self, tx, args, kwargs):
        if len(args) != 1 or kwargs:
            raise Unsupported(f"operator.{self.kind.__name__} object called with {len(args)} arguments")
        obj = args[0]
        if self.kind is operator.methodcaller:
            method = tx.call_builtin(getattr, obj, self.args[0])
            return method.call(tx, list(self.args[1:]), dict(self.kwargs))
        results = [self._one(tx, obj, key) for key in self.args]
        return results[0] if len(results) == 1 else TupleVariable(results)

    def _one(self, tx, obj, key):
        if self.kind is operator.itemgetter:
            return tx.call_builtin(operator.getitem, obj, key)
        for part in key.as_python_constant().split("."):
            obj = tx.call_builtin(getattr, obj, ConstantVariable(part))
        return obj

    def reconstruct(self, cg):
        args = ", ".join([cg.reconstruct(a) for a in self.args] +
                         [f"{k}={cg.reconstruct(v)}" for k, v in self.kwargs.items()])
        return f"{cg.object_ref(self.kind)}({args})"

    def __repr__(self):
        return f"OperatorGetterVariable({self.kind.__name__})"


@builder.constructs(builder.Order.OBJECT - 1, lambda cls: cls in GETTERS)
def _construct_getter(tx, cls, args, kwargs):
    if not args or (cls is not operator.methodcaller and kwargs):
        raise Unsupported(f"operator.{cls.__name__} with these arguments")
    if cls is not operator.itemgetter and not args[0].is_python_constant():
        raise Unsupported(f"operator.{cls.__name__} of a non-constant name")
    return OperatorGetterVariable(cls, list(args), dict(kwargs))
