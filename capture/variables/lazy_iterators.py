"""``zip``, ``map``, ``filter`` and ``enumerate`` as the lazy iterators they are.

Each item is computed when the traced code asks for it (a ``for`` step, ``next()``,
or a consumer such as ``list()``/``sum()`` draining the rest), so a partly consumed
iterator, one consumed twice (the second time empty) and the order in which
``map``'s function runs are all as in eager. Underlying iterables are turned into
iterators when the lazy one is made, as Python does.
"""
from __future__ import annotations

from capture.exc import TracedRaise, Unsupported
from capture.variables.constant import ConstantVariable
from capture.variables.iterators import ListIteratorVariable
from capture.variables.lists import TupleVariable


class LazyIteratorVariable(ListIteratorVariable):
    """A zip/map/filter/enumerate object over iterators (``ListIteratorVariable``s)."""

    def __init__(self, kind: type, iterators: list, fn=None, start: int = 0, strict: bool = False):
        super().__init__([])
        self.kind = kind
        self.iterators = iterators
        self.fn = fn
        self.count = start
        self.strict = strict
        self.done = False

    def python_type(self):
        return self.kind

    def children(self):
        return tuple(self.iterators) + ((self.fn,) if self.fn is not None else ())

    def next_item(self, tx=None):
        if self.done:
            return None
        item = self._next(tx)
        if item is None:
            self.done = True
        return item

    def _next(self, tx):
        if self.kind is filter:
            while True:
                value = self.iterators[0].next_item(tx)
                if value is None:
                    return None
                keep = value if self.fn is None else self.fn.call(tx, [value], {})
                if keep.truth(tx):
                    return value
        row = []
        for i, it in enumerate(self.iterators):
            value = it.next_item(tx)
            if value is None:
                if self.strict:
                    self._check_lengths(tx, i)
                return None
            row.append(value)
        if self.kind is map:
            return self.fn.call(tx, row, {})
        if self.kind is enumerate:
            self.count += 1
            return TupleVariable([ConstantVariable(self.count - 1), row[0]])
        return TupleVariable(row)

    def _check_lengths(self, tx, exhausted: int):
        """zip(strict=True): Python's ValueError when the iterables' lengths differ."""
        if exhausted:
            plural = " " if exhausted == 1 else "s 1-"
            raise TracedRaise(ValueError(f"zip() argument {exhausted + 1} is shorter than "
                                         f"argument{plural}{exhausted}"))
        for i, other in enumerate(self.iterators[1:], start=1):
            if other.next_item(tx) is not None:
                plural = " " if i == 1 else "s 1-"
                raise TracedRaise(ValueError(f"zip() argument {i + 1} is longer than argument{plural}{i}"))

    def iter_items(self, tx):
        out = []
        while True:
            item = self.next_item(tx)
            if item is None:
                return out
            out.append(item)

    def reconstruct(self, cg):
        """The same lazy object over the rebuilt underlying iterators (what is left)."""
        kind = cg.object_ref(self.kind)  # not by name: the module may shadow zip/map
        if self.done:
            return f"{cg.object_ref(iter)}(())"
        inner = [cg.reconstruct(it) for it in self.iterators]
        if self.kind is enumerate:
            return f"{kind}({inner[0]}, {self.count})"
        if self.kind is zip:
            return f"{kind}({', '.join(inner)}{', strict=True' if self.strict else ''})"
        fn = "None" if self.fn is None else cg.reconstruct(self.fn)
        return f"{kind}({fn}, {', '.join(inner)})"

    def __repr__(self):
        return f"LazyIteratorVariable({self.kind.__name__})"
