"""``MyFunction.apply(...)`` of a custom ``torch.autograd.Function``.

The call becomes one graph node that runs ``MyFunction.apply`` itself: the user's
``forward`` computes the value and the user's ``backward`` (with whatever it saved
through ``ctx.save_for_backward``, ``ctx`` attributes or ``setup_context``) computes
the gradients, exactly as in eager. Output metadata comes from running ``apply`` on
fake tensors; a forward that needs real data (``.item()``, numpy) fails there and
becomes a graph break with that reason, and so does a forward writing its input in place
(``ctx.mark_dirty``). A backend that traces the graph further
(make_fx, AOT autograd) traces through ``apply`` as it would in eager code.
"""
from __future__ import annotations

import functools

import torch

from capture.exc import Unsupported
from capture.variables.base import VariableTracker
from capture.variables.tensor import TensorVariable


def is_autograd_function(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, torch.autograd.Function) and cls is not torch.autograd.Function


@functools.lru_cache(maxsize=None)
def apply_of(cls):
    """A plain function calling ``cls.apply`` (an FX call target: printed by name,
    held by object, never mistaken for ``torch.autograd.Function.apply``)."""
    def apply(*args):
        return cls.apply(*args)
    apply.__name__ = f"{cls.__name__}_apply"
    apply.__qualname__ = f"{cls.__qualname__}.apply".replace("<locals>.", "")
    return apply


def _graphable(vt) -> bool:
    if isinstance(vt, TensorVariable) or vt.is_python_constant():
        return True
    items = getattr(vt, "items", None)
    return isinstance(items, list) and all(_graphable(i) for i in items)


class AutogradFunctionApplyVariable(VariableTracker):
    """``cls.apply`` of a ``torch.autograd.Function`` subclass reached through a source."""

    def __init__(self, cls, source=None):
        self.cls = cls
        self.source = source

    def python_type(self):
        return type(self.cls.apply)

    def call(self, tx, args, kwargs):
        if kwargs:
            raise Unsupported(f"{self.cls.__name__}.apply with keyword arguments (apply takes none)")
        for a in args:
            if not _graphable(a):
                raise Unsupported(f"{self.cls.__name__}.apply with argument {a} (only tensors and constants)")
        tensors = [a.fake for a in args if isinstance(a, TensorVariable)]
        versions = [t._version for t in tensors]
        result = tx.output.call_graph(tx, "call_function", apply_of(self.cls), list(args), {})
        if [t._version for t in tensors] != versions:
            # AOT autograd traces through apply: the write's gradient was lost (x.grad 1 where
            # eager's backward gives 3 for a forward doing t.mul_(3) with ctx.mark_dirty(t))
            raise Unsupported(f"{self.cls.__name__}.apply writes its input in place (ctx.mark_dirty): runs as is")
        return result

    def __repr__(self):
        return f"AutogradFunctionApplyVariable({self.cls.__name__})"
