"""``with`` blocks over Python context managers (user classes, contextlib's plain ones).

``BEFORE_WITH`` on an object whose class defines ``__enter__``/``__exit__`` in Python
inlines ``__enter__`` and keeps the bound ``__exit__`` here; the block's normal end
calls it with three Nones, an exception leaving the block calls it with the exception
(``WITH_EXCEPT_START``) and a true result swallows the exception -- all traced.
A graph break inside such a block is refused (the frame runs eagerly): the rest of
the block would run natively on a rebuilt copy of the manager.
"""
from __future__ import annotations

import contextlib

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.user_object import construct_plain_object


# contextlib's plain context managers, built like user objects (their methods inlined).
# (@contextmanager's generator-based one is not: a generator runs to its end when traced.)
CONTEXTLIB_CLASSES = (contextlib.nullcontext, contextlib.suppress)


@builder.constructs(builder.Order.OBJECT - 3, lambda cls: cls in CONTEXTLIB_CLASSES)
def _construct_contextlib(tx, cls, args, kwargs):
    return construct_plain_object(tx, cls, args, kwargs)


class WithExitVariable(VariableTracker):
    def __init__(self, exit_method: VariableTracker, manager: VariableTracker):
        self.exit_method = exit_method
        self.manager = manager

    def children(self):
        return (self.exit_method, self.manager)

    def call(self, tx, args, kwargs):
        return self.exit_method.call(tx, args, kwargs)

    def reconstruct(self, cg):
        raise Unsupported(f"a graph break inside a with-block over {self.manager}")

    def __repr__(self):
        return f"WithExitVariable({self.manager!r})"


def enter_context(tx, manager: VariableTracker):
    """``with manager:`` entered: ``(exit, entered)``, the exit to call when the block
    ends and what ``as`` binds."""
    entered = manager.enter_with(tx)
    return entered if entered is not None else enter_user_context(tx, manager)


def enter_user_context(tx, manager: VariableTracker):
    """``(exit, entered)``: the traced ``__exit__`` and what ``__enter__`` returned."""
    enter = tx.call_builtin(getattr, manager, ConstantVariable("__enter__"))
    exit_method = tx.call_builtin(getattr, manager, ConstantVariable("__exit__"))
    return WithExitVariable(exit_method, manager), enter.call(tx, [], {})
