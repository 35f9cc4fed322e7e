"""How a guard holds the objects it names, so that a cache entry never keeps a user's
objects alive.

An identity or type guard names an object (a module, a function, a class ...). Held
strongly, that object could never be collected while the entry lives — and entries live
on the code object of the compiled function, whose cache the garbage collector does not
see, so a cycle through it (class -> method -> code -> entry -> class) would never be
freed either. So a ``Held`` keeps a weak reference where it can, and the guard compares
``id(value)`` with the object's id; the entry's ``Lifeline`` is cut the moment any such
object dies (the weak reference's callback runs before its memory can be reused for
another object), and capture drops the entry then. Objects that cannot die while the
process runs (modules, torch's and Python's own functions and classes) and objects that
cannot be weakly referenced (dtypes, dicts) are held strongly and compared with ``is``.
"""
from __future__ import annotations

import types
import weakref

# Libraries whose functions and classes live as long as the process: named strongly.
_LIBRARY_PREFIXES = ("builtins", "torch", "math", "operator", "functools", "itertools", "collections",
                     "typing", "enum", "abc", "numpy", "_operator", "_functools", "_collections")


def lives_forever(obj) -> bool:
    """Whether ``obj`` can be held strongly by a guard without keeping user data alive."""
    if isinstance(obj, types.ModuleType):
        return True
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        module = getattr(obj, "__module__", None) or ""
        return module.split(".")[0] in _LIBRARY_PREFIXES
    return False


class Lifeline:
    """Cut once, when the first of the objects it watches dies; then it runs each
    callback given to ``on_cut`` (at once, if it is already cut). ``cause`` says which
    object it was."""

    __slots__ = ("cut", "cause", "_callbacks", "_labels", "__weakref__")

    def __init__(self):
        self.cut = False
        self.cause = None
        self._callbacks: list = []
        self._labels: dict = {}  # id(weak reference) -> what it refers to, for ``cause``

    def watch(self, obj, label: str) -> weakref.ref:
        ref = weakref.ref(obj, self._died)
        self._labels[id(ref)] = f"{label} (a {type(obj).__name__})"
        return ref

    def on_cut(self, callback) -> None:
        if self.cut:
            callback()
        else:
            self._callbacks.append(callback)

    def _died(self, ref) -> None:
        if self.cut:
            return
        self.cut = True
        self.cause = self._labels.get(id(ref), "an object")
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


class Held:
    """An object named by a guard: a weak reference watched by a ``Lifeline`` (compared
    by id), or the object itself (compared with ``is``)."""

    __slots__ = ("obj_id", "type_name", "name", "_ref", "_strong")

    def __init__(self, obj, lifeline: Lifeline | None, label: str = "an object"):
        self.obj_id = id(obj)
        self.type_name = type(obj).__name__
        self.name = getattr(obj, "__qualname__", None) if isinstance(obj, type) else None
        self.name = self.name or self.type_name
        self._ref = self._strong = None
        if lifeline is not None and not lives_forever(obj):
            try:
                self._ref = lifeline.watch(obj, label)
            except TypeError:  # cannot be weakly referenced
                pass
        if self._ref is None:
            self._strong = obj

    @property
    def weak(self) -> bool:
        return self._ref is not None

    def get(self):
        """The object, or None once it died."""
        return self._strong if self._ref is None else self._ref()

    def test(self, em, expr: str) -> str:
        """The check that ``expr`` (bound by the emitter ``em``) is this object."""
        if self._ref is None:
            return f"{expr} is {em.const(self._strong)}"
        return f"__id({expr}) == {self.obj_id}"

    def __eq__(self, other):
        return isinstance(other, Held) and other.obj_id == self.obj_id and other.get() is self.get()

    def __hash__(self):
        return hash(self.obj_id)

    def __repr__(self):
        return f"<{self.type_name} at {self.obj_id:#x}>"
