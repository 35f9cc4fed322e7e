"""Grad-mode context managers: ``torch.no_grad()``, ``torch.enable_grad()``,
``torch.set_grad_enabled(mode)``.

Entering and leaving become ``torch._C._set_grad_enabled`` nodes in the graph, so the
captured ops run under the same mode as in eager; fake propagation follows the mode
the tracer is in.
"""
from __future__ import annotations

import torch

from capture.exc import Unsupported
from capture.runtime import GradModeRestorer, grad_mode_restorer
from capture.variables import builder
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.grad_mode_decorated import GradModeDecoratedVariable
from guards import GuardKind

GRAD_MODE_CLASSES = {torch.no_grad: False, torch.enable_grad: True}


def set_grad_mode(tx, enabled: bool):
    tx.output.set_grad_enabled(enabled)


class GradModeVariable(VariableTracker):
    """An unentered grad-mode context manager (or a set_grad_enabled already applied)."""

    def __init__(self, enabled: bool, applied_from: bool | None = None):
        self.enabled = enabled
        self.applied_from = applied_from  # set_grad_enabled changes the mode on creation

    def python_type(self):
        return torch.set_grad_enabled if self.applied_from is not None else (
            torch.no_grad if not self.enabled else torch.enable_grad)

    def truth(self, tx):
        return True

    def enter_with(self, tx):
        return self.enter(tx), ConstantVariable(None)

    def enter(self, tx):
        previous = tx.output.grad_enabled if self.applied_from is None else self.applied_from
        set_grad_mode(tx, self.enabled)
        return GradModeExit(previous)

    def var_getattr(self, tx, name):
        raise Unsupported(f"attribute {name} of a grad-mode context manager")

    def call(self, tx, args, kwargs):
        """``torch.no_grad()(fn)``: the decorator form."""
        if len(args) != 1 or kwargs:
            raise Unsupported("calling a grad-mode context manager with these arguments")
        return GradModeDecoratedVariable(self, args[0])


class GradModeExit(VariableTracker):
    """The bound ``__exit__`` BEFORE_WITH leaves on the stack."""

    def __init__(self, restore: bool):
        self.restore = restore

    def call(self, tx, args, kwargs):
        set_grad_mode(tx, self.restore)
        return ConstantVariable(None)

    def reconstruct(self, cg):
        # A resume function continuing inside the block calls it on exit, normal or not.
        return cg.object_ref(grad_mode_restorer(self.restore))


@builder.constructs(builder.Order.OBJECT, lambda cls: cls in GRAD_MODE_CLASSES or cls is torch.set_grad_enabled)
def make_grad_mode(tx, cls, args, kwargs):
    if cls in GRAD_MODE_CLASSES:
        if args or kwargs:
            raise Unsupported(f"{cls.__name__} with arguments")
        return GradModeVariable(GRAD_MODE_CLASSES[cls])
    mode = (args[0] if args else kwargs["mode"]).as_python_constant()
    previous = tx.output.grad_enabled
    set_grad_mode(tx, bool(mode))
    return GradModeVariable(bool(mode), applied_from=previous)


@builder.wraps(builder.Order.OBJECT, lambda v: type(v) is GradModeRestorer)
def _wrap_restorer(tx, value, source):
    """A grad-mode block's exit handed to a resume function."""
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return GradModeExit(value.mode)
