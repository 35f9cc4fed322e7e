"""What dict keys and set members are while tracing.

A constant key is itself. An object whose class keeps object's default ``__hash__``
and ``__eq__`` (a user object, a module, an exception ...) hashes and compares by
identity in Python: its key is an ``IdentityKey`` on the object it stands for (the
real object when it existed before the frame, else the tracker made for it, which
every alias shares). An object whose class defines ``__hash__`` is a ``HashedKey``: its traced ``__hash__`` and ``__eq__`` decide, as in Python. ``id(obj)`` of an object made in the frame is an
``ObjectIdVariable``: it compares and hashes like the number Python would give (equal
only for the same object) but cannot leave the frame (the number would differ).
"""
from __future__ import annotations

import operator
import types

from capture.exc import TracedRaise, Unsupported
from capture.variables.base import NO_OBJECT, VariableTracker
from capture.variables.constant import ConstantVariable
from guards import GuardKind


class IdentityKey:
    """A hashable stand-in for ``vt`` keyed by ``identity`` (``kind`` keeps an object and
    its ``id()`` apart)."""

    __slots__ = ("vt", "identity", "kind")

    def __init__(self, vt, identity, kind: str = "object"):
        self.vt = vt
        self.identity = identity
        self.kind = kind

    def __hash__(self):
        return hash((self.kind, id(self.identity)))

    def __eq__(self, other):
        return isinstance(other, IdentityKey) and other.kind == self.kind and other.identity is self.identity

    def __repr__(self):
        return f"IdentityKey({self.vt!r})"


class HashedKey(IdentityKey):
    """An object made in the frame whose class defines ``__hash__`` (and ``__eq__``): hashed by
    its traced ``__hash__`` (a constant), compared by its traced ``__eq__`` when hashes meet,
    as Python's dict and set do."""

    __slots__ = ("tx", "hash_value")

    def __init__(self, tx, vt):
        super().__init__(vt, vt)
        self.tx = tx
        value = vt.var_getattr(tx, "__hash__").call(tx, [], {})
        if not value.is_python_constant() or not isinstance(value.as_python_constant(), int):
            raise Unsupported(f"__hash__ of {vt} is not a constant int")
        self.hash_value = hash(value.as_python_constant())  # as Python reduces it (-1 is -2 ...)

    def __hash__(self):
        return self.hash_value

    def __eq__(self, other):
        if isinstance(other, IdentityKey) and other.vt is self.vt:
            return True
        same = self.tx.call_builtin(operator.eq, self.vt, key_tracker(other))
        if not same.is_python_constant():
            raise Unsupported(f"__eq__ of {self.vt} gave a non-constant")
        return bool(same.as_python_constant())


def identity_of(tx, vt):
    """The object ``vt``'s identity is decided on: the real object (its identity guarded
    when it was read from the frame: another object next call would hash differently), or
    the tracker of an object made in the frame; None if it has no identity we can use."""
    real = vt.underlying()
    if real is not NO_OBJECT:
        if vt.source is not None:
            tx.output.add_guard(tx, GuardKind.IDENTITY, vt.source, real)
        return real
    if vt.frame_object and vt.source is None:
        return vt
    return None


def has_default_hash(cls) -> bool:
    return cls.__hash__ is object.__hash__ and cls.__eq__ is object.__eq__


def to_key(tx, vt):
    """The Python value ``vt`` is as a dict key or set member (or Unsupported/TypeError)."""
    if isinstance(vt, ObjectIdVariable):
        return IdentityKey(vt, vt.identity, kind="id")
    if vt.is_python_constant():
        key = vt.as_python_constant()
        try:
            hash(key)
        except TypeError as e:
            raise TracedRaise(e) from None
        return key
    try:
        cls = vt.python_type()
    except Unsupported:
        cls = None
    if cls is not None and cls.__hash__ is None:
        raise TracedRaise(TypeError(f"unhashable type: {cls.__name__!r}"))
    if cls is not None and isinstance(cls.__hash__, types.FunctionType) and (
            vt.source is not None or vt.frame_object):  # one tracker per object: the key's identity
        return HashedKey(tx, vt)
    identity = identity_of(tx, vt) if cls is not None and has_default_hash(cls) else None
    if identity is None:
        raise Unsupported(f"{vt} as a dict key or set member")
    return IdentityKey(vt, identity)


def key_tracker(key) -> VariableTracker:
    """The tracker a key stands for (what iterating the dict or set gives)."""
    return key.vt if isinstance(key, IdentityKey) else ConstantVariable(key)


def key_expr(cg, key) -> str:
    """The key in generated code."""
    return cg.reconstruct(key.vt) if isinstance(key, IdentityKey) else cg.constant_expr(key)


def is_constant_key(key) -> bool:
    return not isinstance(key, IdentityKey)


class ObjectIdVariable(VariableTracker):
    """``id(obj)`` of an object made in the frame."""

    def __init__(self, identity):
        self.identity = identity

    def python_type(self):
        return int

    def truth(self, tx):
        return True

    def same_as(self, other) -> bool | None:
        """``self == other`` when it can be decided (another id), else None."""
        if isinstance(other, ObjectIdVariable):
            return other.identity is self.identity
        return None

    def reconstruct(self, cg):
        raise Unsupported("id() of an object made inside the compiled frame, escaping it (it would differ)")

    def __repr__(self):
        return "ObjectIdVariable()"
