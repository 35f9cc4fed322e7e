"""contextlib's generator-based context managers and ``ExitStack``, traced.

``@contextlib.contextmanager`` functions (contextlib's ``helper``, inlined) make a
``GeneratorContextManagerVariable`` over the traced generator (a lazy
``GeneratorVariable``): entering runs it to its ``yield`` (what it yields is what
``as`` binds), a normal exit resumes it and expects it to finish, an exception
leaving the block is thrown into it at the ``yield`` -- its handlers run, and the
exception is swallowed if the generator finishes, propagated if it re-raises (as
``_GeneratorContextManager.__exit__`` does).

``ExitStackVariable`` keeps the exits it was given (``enter_context``, ``callback``,
``push``) and unwinds them last-in first-out on exit, passing an exception from one to
the next as ``ExitStack.__exit__`` does. A graph break inside either block is refused
(the rest of the block would have to run natively on a rebuilt manager).
"""
from __future__ import annotations

import contextlib

from capture.exc import TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.generators import GeneratorVariable
from capture.variables.lists import TupleVariable
from capture.variables.user_object import ClassVariable
from capture.variables.with_exit import enter_context


def _is_none(vt) -> bool:
    return vt is None or (vt.is_python_constant() and vt.as_python_constant() is None)


class ExitCall(VariableTracker):
    """The bound ``__exit__`` BEFORE_WITH leaves on the stack for a manager of this module."""

    def __init__(self, manager):
        self.manager = manager

    def children(self):
        return (self.manager,)

    def call(self, tx, args, kwargs):
        if kwargs or len(args) != 3:
            raise Unsupported(f"__exit__ of {self.manager} with these arguments")
        return self.manager.exit(tx, args[1] if not _is_none(args[0]) else None)

    def reconstruct(self, cg):
        raise Unsupported(f"a graph break inside a with-block over {self.manager}")


class GeneratorContextManagerVariable(VariableTracker):
    def __init__(self, gen: VariableTracker):
        self.gen = gen
        self.entered = False

    def python_type(self):
        return contextlib._GeneratorContextManager

    def children(self):
        return (self.gen,)

    def truth(self, tx):
        return True

    def enter_with(self, tx):
        if self.entered:
            raise Unsupported("re-entering a @contextmanager context manager")
        self.entered = True
        if not isinstance(self.gen, GeneratorVariable):
            raise Unsupported(f"@contextmanager over {self.gen}")
        value = self.gen.resume(tx)
        if value is None:
            raise TracedRaise(RuntimeError("generator didn't yield"))
        return ExitCall(self), value

    def exit(self, tx, exc):
        """``__exit__``: False (propagate ``exc``), True (swallow it), or a raise."""
        if exc is None:
            if self.gen.resume(tx) is not None:
                raise TracedRaise(RuntimeError("generator didn't stop"))
            return ConstantVariable(False)
        try:
            value = self.gen.resume(tx, thrown=exc)
        except TracedRaise as raised:
            if raised.exc is exc:
                return ConstantVariable(False)  # re-raised: the with statement propagates it
            raise
        if value is not None:
            raise TracedRaise(RuntimeError("generator didn't stop after throw()"))
        return ConstantVariable(True)  # the generator finished: the exception is swallowed

    def reconstruct(self, cg):
        raise Unsupported("a @contextmanager context manager escaping the compiled frame")

    def __repr__(self):
        return f"GeneratorContextManagerVariable({self.gen!r})"


class ExitStackVariable(VariableTracker):
    def __init__(self):
        self.exits: list = []  # trackers called as exit(exc_type, exc, tb), last first

    def python_type(self):
        return contextlib.ExitStack

    def children(self):
        return tuple(self.exits)

    def truth(self, tx):
        return True

    def enter_with(self, tx):
        return ExitCall(self), self

    def var_getattr(self, tx, name):
        if name in ("enter_context", "callback", "push", "close", "__enter__", "__exit__"):
            return BoundMethodOf(self, name)
        raise Unsupported(f"ExitStack.{name}")

    def call_method(self, tx, name, args, kwargs):
        if name == "enter_context" and len(args) == 1 and not kwargs:
            exit_vt, entered = enter_context(tx, args[0])
            self.exits.append(exit_vt)
            return entered
        if name == "callback" and args:
            self.exits.append(_Callback(args[0], list(args[1:]), dict(kwargs)))
            return args[0]
        if name == "push" and len(args) == 1 and not kwargs:
            self.exits.append(args[0])
            return args[0]
        if name == "close" and not args and not kwargs:
            self.exit(tx, None)
            return ConstantVariable(None)
        if name == "__enter__" and not args and not kwargs:
            return self
        if name == "__exit__" and len(args) == 3 and not kwargs:
            return ExitCall(self).call(tx, args, {})
        raise Unsupported(f"ExitStack.{name}() with these arguments")

    def exit(self, tx, exc):
        """``ExitStack.__exit__``: each exit sees the exception the ones after it left."""
        received = exc is not None
        suppressed = pending_raise = False
        while self.exits:
            exit_vt = self.exits.pop()
            exc_args = [ConstantVariable(None)] * 3 if exc is None else \
                [ClassVariable(exc.python_type()), exc, ConstantVariable(None)]
            try:
                swallow = exit_vt.call(tx, exc_args, {}).truth(tx)
            except TracedRaise as raised:
                if isinstance(raised.exc, BaseException):
                    raise Unsupported(f"an exit callback raised {type(raised.exc).__name__}") from None
                exc, pending_raise = raised.exc, True
                continue
            if swallow and exc is not None:
                suppressed, pending_raise, exc = True, False, None
        if pending_raise:
            raise TracedRaise(exc)
        return ConstantVariable(received and suppressed)

    def reconstruct(self, cg):
        raise Unsupported("a contextlib.ExitStack escaping the compiled frame")

    def __repr__(self):
        return f"ExitStackVariable({len(self.exits)} exits)"


class _Callback(VariableTracker):
    """``stack.callback(fn, *args, **kwargs)``: an exit that calls fn and never swallows."""

    def __init__(self, fn, args: list, kwargs: dict):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def children(self):
        return (self.fn, *self.args, *self.kwargs.values())

    def call(self, tx, args, kwargs):
        self.fn.call(tx, list(self.args), dict(self.kwargs))
        return ConstantVariable(False)


@builder.constructs(builder.Order.OBJECT - 3, lambda cls: cls is contextlib._GeneratorContextManager)
def _construct_generator_cm(tx, cls, args, kwargs):
    """contextlib's ``helper`` calls ``_GeneratorContextManager(func, args, kwds)``."""
    if kwargs or len(args) != 3 or not isinstance(args[1], TupleVariable):
        raise Unsupported("_GeneratorContextManager with these arguments")
    func, fn_args, fn_kwargs = args
    kw = {k: v for k, v in fn_kwargs.str_items(tx)}
    return GeneratorContextManagerVariable(func.call(tx, list(fn_args.items), kw))


@builder.constructs(builder.Order.OBJECT - 3, lambda cls: cls is contextlib.ExitStack)
def _construct_exit_stack(tx, cls, args, kwargs):
    if args or kwargs:
        raise Unsupported("contextlib.ExitStack() with arguments")
    return ExitStackVariable()
