"""Closure cells: those made by the traced code, and real ones read from a closure."""
from __future__ import annotations

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import VariableTracker


class CellBox(VariableTracker):
    """A cell; what LOAD_CLOSURE pushes and MAKE_FUNCTION closes over.

    Cells made while tracing hold a tracker and may be reassigned freely. Cells
    that existed before the frame (``real_cell``) are read lazily through their
    source (which guards them) and may not be reassigned: that would be a side
    effect on state the caller can see.
    """

    def __init__(self, value=None, real_cell=None, source=None):
        self.value = value
        self.real_cell = real_cell
        self.source = source

    @classmethod
    def new(cls, value):
        return cls(value=value)

    def children(self):
        return () if self.value is None else (self.value,)

    def load(self, tx):
        if self.value is None and self.real_cell is not None:
            try:
                contents = self.real_cell.cell_contents
            except ValueError:
                raise Unsupported("closure variable read before assignment") from None
            self.value = builder.wrap(tx, contents, self.source)
        if self.value is None:
            raise Unsupported("closure variable read before assignment")
        return self.value

    def store(self, tx, value):
        if self.real_cell is not None:
            if self.source is None:
                raise Unsupported("assigning a closure variable of an enclosing function")
            tx.output.side_effects.store_cell(self, value)  # replayed onto the real cell
        self.value = value

    def __repr__(self):
        return f"CellBox({self.value!r})"
