"""Iterators over values known at trace time (loops are unrolled over them)."""
from __future__ import annotations

import itertools

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import VariableTracker


class ListIteratorVariable(VariableTracker):
    def __init__(self, items: list, from_generator: bool = False, origin: type | None = None):
        self.items = items
        self.origin = origin  # type iterated (list/tuple rebuild the same iterator type)
        self.index = 0
        self.from_generator = from_generator  # a generator ran eagerly while tracing

    def python_type(self):
        return type(iter([]))

    def children(self):
        return tuple(self.items)

    def next_item(self):
        if self.index >= len(self.items):
            return None
        item = self.items[self.index]
        self.index += 1
        return item

    def iter_items(self, tx):
        rest = self.items[self.index:]
        self.index = len(self.items)
        return rest

    def truth(self, tx):
        return True

    def reconstruct(self, cg):
        if self.from_generator:
            raise Unsupported("a generator object escaping the compiled frame")
        rest = [cg.reconstruct(i) for i in self.items[self.index:]]
        if self.origin is list:
            return "iter([" + ", ".join(rest) + "])"
        if self.origin is tuple:
            return "iter((" + "".join(r + ", " for r in rest) + "))"
        raise Unsupported(f"an iterator over {getattr(self.origin, '__name__', 'a traced value')} escaping the frame")

    def __repr__(self):
        return f"ListIteratorVariable({len(self.items) - self.index} left)"


@builder.constructs(builder.Order.OBJECT, lambda cls: cls is itertools.repeat)
def _construct_repeat(tx, cls, args, kwargs):
    if len(args) == 2 and not kwargs and args[1].is_python_constant():
        return ListIteratorVariable([args[0]] * args[1].as_python_constant())  # torch's _ntuple
    raise Unsupported(f"constructing {cls.__module__}.{cls.__qualname__} inside a compiled function")
