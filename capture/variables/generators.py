"""Generator objects made by traced code, run lazily as Python runs them.

Calling a generator function while tracing makes a ``GeneratorVariable`` holding the
translator of its body, not yet started. Each ``next()`` (a ``for`` step, ``send``,
a consumer draining it) resumes that translator until its next ``YIELD_VALUE`` (the
translator's ``run`` returns a ``Yielded``) or its end, so the generator's code runs
interleaved with its consumer's, as in eager: partial consumption, ``send``,
``throw`` (the exception is raised at the suspended ``yield`` and goes to the
handlers covering it) and ``close`` all behave as Python's. This is what
``@contextlib.contextmanager`` needs (capture/variables/contextlib_managers.py).

A generator left suspended inside a ``try``/``with`` block when the trace ends would
be closed by Python (running its ``finally``) when its last reference goes: that
moment is not traced, so such a frame is refused (``check_closed``).
"""
from __future__ import annotations

import dis
import types

from capture.exc import MissingAttribute, TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf
from capture.variables.constant import ConstantVariable
from capture.variables.iterators import ListIteratorVariable

CREATED, SUSPENDED, RUNNING, DONE = "created", "suspended", "running", "done"
_METHODS = ("send", "throw", "close", "__next__", "__iter__")


class Yielded:
    """What a generator's translator ``run`` returns at a ``YIELD_VALUE``."""

    def __init__(self, value):
        self.value = value


class GeneratorYield(Exception):
    """Raised by the YIELD_VALUE handler to leave the translator's loop."""

    def __init__(self, value):
        super().__init__("yield")
        self.value = value


class GeneratorVariable(ListIteratorVariable):
    """A generator object whose frame is a suspended translator (``body``)."""

    frame_object = True

    def __init__(self, body, name: str):
        super().__init__([])
        self.body = body
        self.name = name
        self.state = CREATED
        self.suspended_at: dis.Instruction | None = None  # the YIELD_VALUE it waits at
        self.returned = ConstantVariable(None)  # what its return statement gave (StopIteration.value)
        body.output.note_generator(self)

    def python_type(self):
        return types.GeneratorType

    def children(self):
        return tuple(self.body.stack) + tuple(self.body.symbolic_locals.values())

    def truth(self, tx):
        return True

    # ---- resuming ----
    def resume(self, tx, sent=None, thrown=None):
        """Run the body to its next yield: the yielded tracker, or None at its end
        (StopIteration). ``thrown``: an ExceptionVariable raised at the yield."""
        if self.state == RUNNING:
            raise TracedRaise(ValueError("generator already executing"))
        if self.state == DONE or (self.state == CREATED and thrown is not None):
            self.state = DONE
            if thrown is not None:
                raise TracedRaise(thrown)
            return None
        if self.state == CREATED:
            if sent is not None and not (sent.is_python_constant() and sent.as_python_constant() is None):
                raise TracedRaise(TypeError("can't send non-None value to a just-started generator"))
        elif thrown is not None:
            self.body.current = self.suspended_at
            if not self.body.raise_to_handler(TracedRaise(thrown)):
                self.state = DONE
                raise TracedRaise(thrown)
        else:
            self.body.push(sent if sent is not None else ConstantVariable(None))
        self.state = RUNNING
        try:
            result = self.body.run()
        except TracedRaise as raised:
            self.state = DONE
            if issubclass(raised.exc_type, StopIteration):  # PEP 479
                raise TracedRaise(RuntimeError("generator raised StopIteration")) from None
            raise
        except BaseException:
            self.state = DONE
            raise
        if isinstance(result, Yielded):
            self.state = SUSPENDED
            self.suspended_at = self.body.current
            return result.value
        self.state = DONE
        self.returned = result
        return None

    def stop_iteration(self, tx):
        """The StopIteration its end raises (carrying the returned value)."""
        returned, self.returned = self.returned, ConstantVariable(None)  # only the first time
        if returned.is_python_constant() and returned.as_python_constant() is None:
            return StopIteration()
        return builder.construct(tx, StopIteration, [returned], {})

    def next_item(self, tx=None):
        return self.resume(tx)

    def iter_items(self, tx):
        out = []
        while (item := self.resume(tx)) is not None:
            out.append(item)
        return out

    def is_suspended_in_block(self) -> bool:
        """Suspended where a try/with handler covers it (closing it would run code)."""
        if self.state != SUSPENDED:
            return False
        return self.body.handler_covers(self.suspended_at)

    # ---- the generator protocol ----
    def var_getattr(self, tx, name):
        if name in _METHODS:
            return BoundMethodOf(self, name)
        if name in ("__name__", "__qualname__"):
            return ConstantVariable(self.name)
        if name.startswith("gi_"):
            raise Unsupported(f"generator attribute {name}")
        raise MissingAttribute(f"'generator' object has no attribute {name!r}")

    def call_method(self, tx, name, args, kwargs):
        if kwargs:
            raise Unsupported(f"generator.{name}() with keyword arguments")
        if name == "__iter__" and not args:
            return self
        if name in ("send", "__next__"):
            value = self.resume(tx, sent=args[0] if args else None)
            if value is None:
                raise TracedRaise(self.stop_iteration(tx))
            return value
        if name == "throw" and 1 <= len(args) <= 3:
            value = self.resume(tx, thrown=_exception(tx, args))
            if value is None:
                raise TracedRaise(self.stop_iteration(tx))
            return value
        if name == "close" and not args:
            return self.close(tx)
        raise Unsupported(f"generator.{name}() with these arguments")

    def close(self, tx):
        if self.state != SUSPENDED:
            self.state = DONE
            return ConstantVariable(None)
        try:
            value = self.resume(tx, thrown=GeneratorExit())
        except TracedRaise as raised:
            if issubclass(raised.exc_type, (GeneratorExit, StopIteration)):
                return ConstantVariable(None)
            raise
        if value is not None:
            raise TracedRaise(RuntimeError("generator ignored GeneratorExit"))
        return ConstantVariable(None)

    def reconstruct(self, cg):
        raise Unsupported("a generator object escaping the compiled frame")

    def __repr__(self):
        return f"GeneratorVariable({self.name}, {self.state})"


def _exception(tx, args):
    """``throw(exc)`` / ``throw(type[, value[, tb]])``: the exception to raise."""
    first = args[0]
    value = args[1] if len(args) > 1 else None
    if value is not None and not (value.is_python_constant() and value.as_python_constant() is None):
        return value if _is_instance(value) else first.call(tx, [value], {})
    if _is_instance(first):
        return first
    if first.is_python_constant() and isinstance(first.as_python_constant(), type) \
            and issubclass(first.as_python_constant(), BaseException):
        return first.call(tx, [], {})
    raise TracedRaise(TypeError("exceptions must be classes or instances deriving from BaseException"))


def _is_instance(vt) -> bool:
    try:
        cls = vt.python_type()
    except Unsupported:
        return False
    return issubclass(cls, BaseException)
