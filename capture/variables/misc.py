"""Python modules (math, torch, user modules), super() and os.environ."""
from __future__ import annotations

import os
import types

from capture.exc import MissingAttribute, Unsupported
from capture.skipfiles import is_torch_file
from capture.variables import builder
from capture.variables.base import BoundMethodOf, KnownObjectMixin, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.functions import UserFunctionVariable, UserMethodVariable
from capture.variables.user_object import ClassVariable, inline_property
from guards import GuardKind
from guards.sources import AttrSource
from guards.state import ENVIRON_GET


class PythonModuleVariable(KnownObjectMixin, VariableTracker):
    _value_attr = "module"

    def __init__(self, module: types.ModuleType, source=None):
        self.module = module
        self.source = source

    def python_type(self):
        return types.ModuleType

    def var_getattr(self, tx, name):
        if not hasattr(self.module, name):
            raise MissingAttribute(f"module {self.module.__name__!r} has no attribute {name!r}")
        value = getattr(self.module, name)
        return builder.wrap(tx, value, AttrSource(self.source, name) if self.source is not None else None)

    def reconstruct(self, cg):
        return cg.source_expr(self.source) if self.source is not None else cg.object_ref(self.module)

    def __repr__(self):
        return f"PythonModuleVariable({self.module.__name__})"


class SuperVariable(VariableTracker):
    def __init__(self, cls: type, obj: VariableTracker):
        self.cls = cls
        self.obj = obj

    def children(self):
        return (self.obj,)

    def python_type(self):
        return super

    def reconstruct(self, cg):
        """The same binding, rebuilt (a super object kept across a graph break)."""
        return f"{cg.object_ref(super)}({cg.object_ref(self.cls)}, {cg.reconstruct(self.obj)})"

    def var_getattr(self, tx, name):
        # super() in a classmethod (``super(C, cls)``): the second argument is the class itself
        bound_to_class = isinstance(self.obj, ClassVariable) and issubclass(self.obj.cls, self.cls)
        obj_type = self.obj.cls if bound_to_class else self.obj.python_type()
        mro = obj_type.__mro__
        start = mro.index(self.cls) + 1
        for klass in mro[start:]:
            if name in vars(klass):
                attr = vars(klass)[name]
                if isinstance(attr, staticmethod):
                    return builder.wrap(tx, attr.__func__, None)
                if isinstance(attr, classmethod):
                    cls_vt = self.obj if bound_to_class else ClassVariable(obj_type)
                    return UserMethodVariable(UserFunctionVariable(attr.__func__), cls_vt)
                if bound_to_class:
                    if attr is vars(object)["__init_subclass__"]:
                        return NoOpInit(takes_arguments=False)
                    if isinstance(attr, types.FunctionType):
                        return UserFunctionVariable(attr)  # a plain function, looked up on a class
                    raise Unsupported(f"super().{name} in a classmethod is {type(attr).__name__}")
                if isinstance(attr, property):
                    return inline_property(tx, attr, self.obj)
                answered = self.obj.base_method(tx, name, attr)
                if answered is not None:
                    return answered
                if isinstance(attr, types.FunctionType):
                    if name == "__init__" and is_torch_file(attr.__code__.co_filename):
                        raise Unsupported("super().__init__ of a torch class inside a compiled function")
                    return UserMethodVariable(UserFunctionVariable(attr), self.obj)
                if attr is object.__init__:
                    return NoOpInit()
                if attr in (object.__getattribute__, object.__setattr__) and hasattr(self.obj, "generic_setattr"):
                    return _ObjectAttrAccess(self.obj, setting=attr is object.__setattr__)
                method = self.obj.dict_method(tx, name, attr) if hasattr(self.obj, "dict_method") else None
                if method is not None:
                    return method
                raise Unsupported(f"super().{name} is {type(attr).__name__}")
        raise MissingAttribute(f"super() has no attribute {name!r}")


class _ObjectAttrAccess(VariableTracker):
    """``super().__getattribute__`` / ``super().__setattr__`` reaching object's: the plain
    lookup or store, past the class's own override."""

    def __init__(self, obj, setting: bool):
        self.obj = obj
        self.setting = setting

    def children(self):
        return (self.obj,)

    def call(self, tx, args, kwargs):
        what = "__setattr__" if self.setting else "__getattribute__"
        if len(args) != 1 + self.setting or kwargs or not args[0].is_python_constant():
            raise Unsupported(f"object.{what} with a non-constant name")
        name = args[0].as_python_constant()
        if not self.setting:
            return self.obj.generic_getattr(tx, name)
        self.obj.generic_setattr(tx, name, args[1])
        return ConstantVariable(None)


class NoOpInit(VariableTracker):
    """An ``__init__`` with nothing left to do (object's; nn.Module's on a module whose
    tables are already set up)."""

    def __init__(self, takes_arguments: bool = True):
        self.takes_arguments = takes_arguments

    def call(self, tx, args, kwargs):
        if (args or kwargs) and not self.takes_arguments:
            raise Unsupported("__init__ with arguments")
        return ConstantVariable(None)


class EnvironVariable(VariableTracker):
    """``os.environ``: reads are folded to this call's values and guarded (one lookup
    each); writing the environment from compiled code is a graph break."""

    def __init__(self, source=None):
        self.source = source

    def python_type(self):
        return type(os.environ)

    def _read(self, tx, key_vt):
        if not key_vt.is_python_constant() or not isinstance(key_vt.as_python_constant(), str):
            raise Unsupported("os.environ read with a non-constant key")
        key = key_vt.as_python_constant()
        value = os.environ.get(key)
        tx.output.guard_state_read(tx, ENVIRON_GET, "os.environ.get", (key,), value)
        return key, value

    def getitem(self, tx, key_vt):
        key, value = self._read(tx, key_vt)
        if value is None:
            raise Unsupported(f"os.environ[{key!r}] raises KeyError")
        return ConstantVariable(value)

    def contains(self, tx, item):
        return self._read(tx, item)[1] is not None

    def var_getattr(self, tx, name):
        if name in ("get", "__getitem__", "__contains__"):
            return BoundMethodOf(self, name)
        raise Unsupported(f"os.environ.{name}")

    def call_method(self, tx, name, args, kwargs):
        if name == "get" and 1 <= len(args) <= 2 and not kwargs:
            _, value = self._read(tx, args[0])
            return ConstantVariable(value) if value is not None else (
                args[1] if len(args) == 2 else ConstantVariable(None))
        if name == "__getitem__" and len(args) == 1:
            return self.getitem(tx, args[0])
        if name == "__contains__" and len(args) == 1:
            return ConstantVariable(self.contains(tx, args[0]))
        raise Unsupported(f"os.environ.{name}()")

    def reconstruct(self, cg):
        return cg.object_ref(os.environ)


@builder.wraps(builder.Order.ENVIRON, lambda v: v is os.environ)
def _wrap_environ(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return EnvironVariable(source)


@builder.wraps(builder.Order.FUNCTION, lambda v: isinstance(v, types.ModuleType))
def _wrap_python_module(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return PythonModuleVariable(value, source)


@builder.wraps(builder.Order.CONTAINER, lambda v: type(v) is super)
def _wrap_super(tx, value, source):
    """A super object the frame receives (kept across a graph break): its class by
    identity, its object as any value read through it."""
    if source is None:
        raise Unsupported("a super object reached without a source")
    builder.guard(tx, source, GuardKind.TYPE, super)
    builder.guard(tx, AttrSource(source, "__thisclass__"), GuardKind.IDENTITY, value.__thisclass__)
    return SuperVariable(value.__thisclass__, builder.wrap(tx, value.__self__, AttrSource(source, "__self__")))
