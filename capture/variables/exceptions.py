"""Exception objects made while tracing (``ValueError("bad")``, a user subclass, an
error Python itself raises on traced values).

An ``ExceptionVariable`` knows its class, its ``args`` (trackers), the attributes its
``__init__`` stored and its ``__cause__``. User ``__init__`` methods are inlined with
the tracker as ``self`` (``super().__init__(msg)`` sets ``args``); ``str()``/``repr()``
and ``isinstance`` answer from a real instance built from constant values without
running user code. In the rewritten frame an exception is rebuilt the same way
(``build_exception``), so ``raise`` at the end of a compiled frame raises an equal
exception with the caller's traceback.
"""
from __future__ import annotations

import types

from capture.exc import MissingAttribute, Unsupported
from capture.variables import builder
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.functions import UserFunctionVariable
from capture.variables.lists import TupleVariable
from capture.variables.user_object import class_member
from capture.variables.type_lookup import lookup_on_type


def build_exception(cls, args: tuple, attrs: dict, cause=None, suppress_context=False):
    """The exception ``cls(*args)`` whose ``__init__`` stored ``attrs``, without running
    ``__init__`` again (rewritten frames call this)."""
    exc = BaseException.__new__(cls, *args)
    exc.args = args
    for name, value in attrs.items():
        object.__setattr__(exc, name, value)
    if cause is not None or suppress_context:
        exc.__cause__ = cause
    return exc


def _has_python_init(cls) -> bool:
    return isinstance(lookup_on_type(cls, "__init__"), types.FunctionType)


class ExceptionVariable(VariableTracker):
    frame_object = True

    def __init__(self, cls: type, args: list, value: BaseException | None = None):
        self.cls = cls
        self.args = list(args)
        self.attrs: dict = {}
        self.cause = None  # tracker of __cause__ (ConstantVariable(None) after `raise ... from None`)
        self.value = value  # the real exception when Python itself raised it while tracing

    @classmethod
    def construct(cls_, tx, cls, args, kwargs):
        """``cls(*args, **kwargs)`` for an exception class, as the traced code calls it."""
        exc = ExceptionVariable(cls, args)
        if _has_python_init(cls):
            UserFunctionVariable(lookup_on_type(cls, "__init__")).call(tx, [exc] + list(args), kwargs)
        elif kwargs:
            raise Unsupported(f"{cls.__name__}() with keyword arguments")
        return exc

    @classmethod
    def from_exception(cls_, exc: BaseException):
        """Tracker for an exception Python raised on constant values while tracing."""
        try:
            args = [builder.wrap_constant_result(a) for a in exc.args]
        except Unsupported:
            args = [ConstantVariable(str(exc))]
        return ExceptionVariable(type(exc), args, value=exc)

    def python_type(self):
        return self.cls

    def children(self):
        return tuple(self.args) + tuple(self.attrs.values()) + ((self.cause,) if self.cause is not None else ())

    def truth(self, tx):
        return True

    # ---- a real instance, for str/repr/isinstance and folding ----
    def is_python_constant(self):
        return all(a.is_python_constant() for a in self.args) and \
            all(v.is_python_constant() for v in self.attrs.values())

    def as_python_constant(self):
        if self.value is not None:
            return self.value
        if not self.is_python_constant():
            raise Unsupported(f"{self} holds non-constant values")
        if isinstance(lookup_on_type(self.cls, "__str__"), types.FunctionType) or \
                isinstance(lookup_on_type(self.cls, "__repr__"), types.FunctionType):
            raise Unsupported(f"{self.cls.__name__} defines __str__/__repr__ in Python")
        return build_exception(self.cls, tuple(a.as_python_constant() for a in self.args),
                               {k: v.as_python_constant() for k, v in self.attrs.items()})

    # ---- attributes ----
    def var_getattr(self, tx, name):
        if name == "args":
            return TupleVariable(list(self.args))
        if name in self.attrs:
            return self.attrs[name]
        if name == "value" and issubclass(self.cls, StopIteration):
            return self.args[0] if self.args else ConstantVariable(None)
        if name == "__cause__":
            return self.cause if self.cause is not None else ConstantVariable(None)
        if name in ("__context__", "__traceback__"):
            return ConstantVariable(None)
        if name == "__suppress_context__":
            return ConstantVariable(self.cause is not None)
        if self.value is not None and name in getattr(self.value, "__dict__", {}):
            return builder.wrap_constant_result(self.value.__dict__[name])
        if lookup_on_type(self.cls, name, None) is not None:
            return class_member(tx, self.cls, name, self, None)
        raise MissingAttribute(f"{self.cls.__name__!r} object has no attribute {name!r}")

    def store_attr(self, tx, name, value):
        if name == "args":
            self.args = list(value.iter_items(tx))
        elif name == "__cause__":
            self.cause = value
        else:
            self.attrs[name] = value

    def base_method(self, tx, name, attr):
        """``super().<name>`` resolving to BaseException's own method (from a user ``__init__``)."""
        owner = getattr(attr, "__objclass__", None)
        if name == "__init__" and isinstance(owner, type) and issubclass(owner, BaseException) \
                and owner.__module__ == "builtins" and owner not in (OSError, SyntaxError, ImportError):
            return _BaseInit(self)  # a builtin exception's __init__ only sets args
        return None

    def reconstruct(self, cg):
        args = "(" + "".join(cg.reconstruct(a) + ", " for a in self.args) + ")"
        attrs = "{" + ", ".join(f"{k!r}: {cg.reconstruct(v)}" for k, v in self.attrs.items()) + "}"
        cause = "None" if self.cause is None else cg.reconstruct(self.cause)
        suppress = self.cause is not None
        return f"{cg.object_ref(build_exception)}({cg.object_ref(self.cls)}, {args}, {attrs}, {cause}, {suppress})"

    def __repr__(self):
        return f"ExceptionVariable({self.cls.__name__})"


class _BaseInit(VariableTracker):
    """``BaseException.__init__`` bound to a traced exception: it sets ``args``."""

    def __init__(self, exc: ExceptionVariable):
        self.exc = exc

    def call(self, tx, args, kwargs):
        if kwargs:
            raise Unsupported("BaseException.__init__ with keyword arguments")
        self.exc.args = list(args)
        return ConstantVariable(None)


def as_exception(tx, vt) -> ExceptionVariable:
    """What ``raise vt`` raises: an exception instance (a class is instantiated)."""
    if isinstance(vt, ExceptionVariable):
        return vt
    if vt.is_python_constant():
        value = vt.as_python_constant()
        if isinstance(value, type) and issubclass(value, BaseException):
            return vt.call(tx, [], {})
    raise Unsupported(f"raise of {vt} (exceptions must derive from BaseException)")


@builder.constructs(builder.Order.CLASS, lambda cls: issubclass(cls, BaseException))
def _construct_exception(tx, cls, args, kwargs):
    return ExceptionVariable.construct(tx, cls, args, kwargs)
