"""Base class of every value the symbolic interpreter tracks, and the few trackers
every kind uses (NULL, a method before it is called)."""
from __future__ import annotations

from capture.exc import Unsupported

# What ``VariableTracker.underlying()`` returns for a tracker that stands for no single
# real object that existed before the frame (a value built while tracing).
NO_OBJECT = object()


class VariableTracker:
    """A value on the symbolic stack or in symbolic locals.

    ``source`` says how to reach the real value from the frame (None for values made
    while tracing); guards and rebuilt outputs are derived from it.
    """

    source = None
    # True for kinds that stand for one object made in the frame, one tracker per object
    # (shared by every alias): the tracker's identity is the object's (``is``, hashing, id()).
    frame_object = False

    def python_type(self) -> type:
        raise Unsupported(f"type() of {self}")

    def is_python_constant(self) -> bool:
        return False

    def as_python_constant(self):
        raise Unsupported(f"{self} is not a Python constant")

    def children(self) -> tuple:
        """The trackers this one holds (items, attributes, a bound self ...): the one
        way to walk a value, e.g. to find the tensors a rewritten frame must rebuild."""
        return ()

    def underlying(self):
        """The real object this tracker stands for (a module, function, class, object
        that existed before the frame), else ``NO_OBJECT``: identity is decided on it."""
        return NO_OBJECT

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

    def base_method(self, tx, name: str, attr):
        """``super().<name>`` resolving to ``attr``, a method of a base class this kind
        answers itself (a builtin exception's or nn.Module's ``__init__`` ...), or None."""
        return None

    def enter_with(self, tx):
        """``with self:`` for a kind with its own protocol: (the exit to call, what
        ``as`` binds); None means the class's ``__enter__``/``__exit__``, inlined."""
        return None

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

    def underlying(self):
        return getattr(self, self._value_attr)

    def truth(self, tx):
        return True


class NullVariable(VariableTracker):
    """The NULL that PUSH_NULL / LOAD_GLOBAL / LOAD_METHOD put under a callable."""

    def __repr__(self):
        return "NULL"


class BoundMethodOf(VariableTracker):
    """``obj.name`` for a container or constant, before it is called."""

    def __init__(self, obj: VariableTracker, name: str):
        self.obj = obj
        self.name = name

    def children(self):
        return (self.obj,)

    def call(self, tx, args, kwargs):
        return self.obj.call_method(tx, self.name, args, kwargs)

    def reconstruct(self, cg):
        return f"{cg.reconstruct(self.obj)}.{self.name}"

    def __repr__(self):
        return f"BoundMethodOf({self.obj!r}.{self.name})"
