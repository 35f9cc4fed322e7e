"""Attribute lookup on an instance's class, as ``object.__getattribute__`` does it.

``inspect.getattr_static(cls, name)`` answers for the class object itself, so it also
finds what the metaclass defines: ``getattr_static(MyModule, "__name__")`` is
``type``'s ``__name__`` descriptor, although an *instance* of ``MyModule`` has no
``__name__`` at all (``getattr(module, "__name__", None)`` is None). An instance's
attribute lookup only walks ``type(obj).__mro__``; ``lookup_on_type`` does exactly that.
"""
from __future__ import annotations

_MISSING = object()


def lookup_on_type(cls: type, name: str, default=_MISSING):
    """What ``type(obj).__mro__`` holds for ``name`` (no descriptor is invoked);
    ``default`` when no class in the MRO defines it, else AttributeError."""
    for klass in cls.__mro__:
        found = vars(klass).get(name, _MISSING)
        if found is not _MISSING:
            return found
    if default is _MISSING:
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")
    return default
