"""A function decorated by a grad-mode context manager: ``torch.no_grad()(fn)`` or
``@torch.enable_grad()`` on a function defined in the compiled code.

Calling it runs ``fn`` inside the mode, as the decorator's wrapper does: the mode is
entered, ``fn`` is inlined, and the previous mode is restored on return and on an
exception leaving ``fn``.
"""
from __future__ import annotations

from capture.exc import TracedRaise, Unsupported
from capture.variables.base import VariableTracker


class GradModeDecoratedVariable(VariableTracker):
    def __init__(self, mode, fn: VariableTracker):
        self.mode = mode  # a GradModeVariable
        self.fn = fn

    def children(self):
        return (self.fn,)

    def truth(self, tx):
        return True

    def call(self, tx, args, kwargs):
        if self.mode.applied_from is not None:
            raise Unsupported("set_grad_enabled(...) used as a decorator")
        exit_fn = self.mode.enter(tx)
        try:
            result = self.fn.call(tx, args, kwargs)
        except TracedRaise:
            exit_fn.call(tx, [], {})
            raise
        exit_fn.call(tx, [], {})
        return result

    def __repr__(self):
        return f"GradModeDecoratedVariable({self.fn!r})"
