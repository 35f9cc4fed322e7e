"""Iterators over values known at trace time (loops are unrolled over them)."""
from __future__ import annotations


from capture.exc import Unsupported
from capture.variables.base import VariableTracker


class ListIteratorVariable(VariableTracker):
    def __init__(self, items: list, origin: type | None = None):
        self.items = items
        self.origin = origin  # type iterated (list/tuple rebuild the same iterator type)
        self.index = 0

    def python_type(self):
        return reversed if self.origin is reversed else type(iter([]))

    def children(self):
        return tuple(self.items)

    def next_item(self, tx=None):
        if self.index >= len(self.items):
            return None
        item = self.items[self.index]
        self.index += 1
        return item

    def stop_iteration(self, tx):
        """What ``next()`` raises at the end."""
        return StopIteration()

    def iter_items(self, tx):
        rest = self.items[self.index:]
        self.index = len(self.items)
        return rest

    def truth(self, tx):
        return True

    def reconstruct(self, cg):
        rest = [cg.reconstruct(i) for i in self.items[self.index:]]
        if self.origin is list:
            return "iter([" + ", ".join(rest) + "])"
        if self.origin is tuple:
            return "iter((" + "".join(r + ", " for r in rest) + "))"
        if self.origin is None and cg.handing_over:
            # the rest of a loop over a ModuleList, dict, ... continued by a resume function:
            # the same items in order (a returned iterator would keep its own type: refused)
            return "iter([" + ", ".join(rest) + "])"
        raise Unsupported(f"an iterator over {getattr(self.origin, '__name__', 'a traced value')} escaping the frame")

    def __repr__(self):
        return f"ListIteratorVariable({len(self.items) - self.index} left)"
