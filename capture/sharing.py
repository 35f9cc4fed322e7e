"""When instances of one nn.Module class share cache entries.

A module reached from the frame's arguments or closure (``L['self']``) is guarded by
identity at first: one id check, its tree's members and parameters behind the dict
watch, its parameters bound into the rewritten frame as constants. That is the
cheapest hit path, and right while one instance is compiled.

A class becomes *shared* when two live instances of it are given to
``capture.compile`` (the compile-each-block pattern), or when a frame misses its cache
because another instance of the class came where an entry expected the first (as
torch.compile unspecializes nn.Modules). From then on, a module of that class reached
from the frame's arguments or closure, and every module under it, is guarded by
structure: its type, its members' types and settings, hooks, and its parameters and
buffers as graph inputs read through the module on each call and guarded like any
tensor (type, dtype, device, shape, stride, requires_grad). All instances then share
one entry. Entries made before keep their identity path (they are tried first, and
cost one id check to miss).

A module the graph itself calls (a leaf module such as nn.LSTM, held by the graph)
stays identity-guarded even under a shared root: the entry cannot serve another
instance's leaf.
"""
from __future__ import annotations

import weakref

from torch import nn

from capture.state import LAST_COMPILED_INSTANCE, SHARED_CLASSES
from guards.sources import ClosureSource, LocalSource


def note_compiled(module: nn.Module) -> None:
    """``capture.compile(module)``: a second live instance of its class shares it."""
    cls = type(module)
    previous = LAST_COMPILED_INSTANCE.get(cls)
    if previous is not None and previous() is not None and previous() is not module:
        SHARED_CLASSES.add(cls)
    LAST_COMPILED_INSTANCE[cls] = weakref.ref(module)


def note_identity_miss(expected, value) -> bool:
    """An entry expected module ``expected`` where ``value`` came: the same class makes
    it shared. Whether it did."""
    if isinstance(expected, nn.Module) and type(value) is type(expected) and value is not expected:
        SHARED_CLASSES.add(type(value))
        return True
    return False


def is_shared(cls: type) -> bool:
    return cls in SHARED_CLASSES


def from_frame_inputs(source) -> bool:
    """``source`` starts at one of the frame's locals or closure cells (not a global:
    a module held by a global is one object, and keeps its identity path)."""
    while source is not None:
        if isinstance(source, (LocalSource, ClosureSource)):
            return True
        source = getattr(source, "base", None)
    return False
