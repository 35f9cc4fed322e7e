"""Iterators over values known at trace time (loops are unrolled over them)."""
from __future__ import annotations

from capture.exc import Unsupported
from capture.variables.base import VariableTracker


class ListIteratorVariable(VariableTracker):
    def __init__(self, items: list):
        self.items = items
        self.index = 0

    def python_type(self):
        return type(iter([]))

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
        rest = [cg.reconstruct(i) for i in self.items[self.index:]]
        return "iter((" + "".join(r + ", " for r in rest) + "))"

    def __repr__(self):
        return f"ListIteratorVariable({len(self.items) - self.index} left)"
