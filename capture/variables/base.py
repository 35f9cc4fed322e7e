"""Base class of every value the symbolic interpreter tracks."""
from __future__ import annotations

from capture.exc import Unsupported


class VariableTracker:
    """A value on the symbolic stack or in symbolic locals.

    ``source`` says how to reach the real value from the frame (None for values made
    while tracing); guards and rebuilt outputs are derived from it.
    """

    source = None

    def python_type(self) -> type:
        raise Unsupported(f"type() of {self}")

    def is_python_constant(self) -> bool:
        return False

    def as_python_constant(self):
        raise Unsupported(f"{self} is not a Python constant")

    # --- protocol the opcode handlers call; each kind overrides what it supports ---
    def var_getattr(self, tx, name: str) -> "VariableTracker":
        raise Unsupported(f"attribute {name!r} of {self}")

    def call(self, tx, args: list, kwargs: dict) -> "VariableTracker":
        raise Unsupported(f"call of {self}")

    def call_method(self, tx, name: str, args: list, kwargs: dict) -> "VariableTracker":
        return self.var_getattr(tx, name).call(tx, args, kwargs)

    def truth(self, tx) -> bool:
        raise Unsupported(f"truth value of {self}")

    def iter_items(self, tx) -> list:
        raise Unsupported(f"iteration over {self}")

    def reconstruct(self, cg) -> str:
        """Python expression that rebuilds this value in the rewritten frame."""
        if self.source is not None:
            return cg.source_expr(self.source)
        raise Unsupported(f"cannot return or keep {self} after the graph")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class KnownObjectMixin:
    """For trackers that stand for one real, guarded Python object (a function, class,
    module): it is its own constant value, and always true."""

    _value_attr = "fn"

    def python_type(self):
        return type(getattr(self, self._value_attr))

    def is_python_constant(self):
        return True

    def as_python_constant(self):
        return getattr(self, self._value_attr)

    def truth(self, tx):
        return True


class NullVariable(VariableTracker):
    """The NULL that PUSH_NULL / LOAD_GLOBAL / LOAD_METHOD put under a callable."""

    def __repr__(self):
        return "NULL"
