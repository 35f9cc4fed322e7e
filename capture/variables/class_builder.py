"""Classes defined inside a compiled function (``LOAD_BUILD_CLASS``).

The class body is traced like any inlined function, its namespace being its locals
(``LOAD_NAME``/``STORE_NAME``), so whatever it calls is traced with the usual rules.
The namespace is then *realized*: every value must be something a real class can hold
-- constants, classes and functions that existed before, the functions the body
defined (real function objects over the same code, with real cells standing for the
traced cells: ``OutputGraph.local_cell`` maps them back, so calls of the methods
still read and write the traced cells), and ``staticmethod``/``classmethod``/
``property``/``functools.cached_property`` wrappers of those. The real class is then
made by its metaclass (``type`` or ``abc.ABCMeta``; bases whose ``__init_subclass__``
is Python code, which could have effects, are refused), as ``__build_class__`` would.

A class made this way is private to one trace: attribute reads need no guards, its
instances are ``NewObjectVariable``s (or modules, capture/variables/new_module.py), and
neither the class, its functions nor its instances may leave the frame (the rewritten
frame would hand out the same class on every call, where Python makes a new one each
time): ``OutputGraph.local_objects`` lists them and the frame code generator refuses
them. ``@dataclasses.dataclass`` on such a class runs for real (it only changes the
class it is given).
"""
from __future__ import annotations

import abc
import builtins
import dataclasses
import functools
import types

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import KnownObjectMixin, VariableTracker
from capture.variables.cells import CellBox
from capture.variables.constant import ConstantVariable
from capture.variables.dicts import DictVariable
from capture.variables.functions import NestedFunctionVariable
from capture.variables.lists import BaseListVariable
from capture.variables.user_object import ClassVariable
from guards import GuardKind

_METACLASSES = (type, abc.ABCMeta)
_DESCRIPTORS = (staticmethod, classmethod, property, functools.cached_property)


class BuildClassVariable(KnownObjectMixin, VariableTracker):
    """``builtins.__build_class__``, as LOAD_BUILD_CLASS pushes it."""

    fn = builtins.__build_class__

    def call(self, tx, args, kwargs):
        if len(args) < 2 or not isinstance(args[0], NestedFunctionVariable) or not args[1].is_python_constant():
            raise Unsupported("__build_class__ with these arguments")
        body, name = args[0], args[1].as_python_constant()
        bases = tuple(_real_base(b) for b in args[2:])
        kw = {k: realize(tx, v) for k, v in kwargs.items()}
        meta = _metaclass(kw.pop("metaclass", None), bases)
        for base in bases:
            for klass in base.__mro__[:-1]:
                if "__init_subclass__" in vars(klass):
                    raise Unsupported(f"class {name} derives from {klass.__name__}, which defines __init_subclass__")
        if kw:
            raise Unsupported(f"class {name} with keywords {sorted(kw)}")
        namespace = run_body(tx, body)
        real_ns = {k: realize(tx, v) for k, v in namespace.items()}
        cls = meta(name, bases, real_ns)
        tx.output.add_local_object(cls)
        class_cell = namespace.get("__classcell__")
        if isinstance(class_cell, CellBox):
            class_cell.value = ClassVariable(cls)  # what super() and __class__ read in its methods
        return ClassVariable(cls)


def _real_base(vt):
    base = vt.as_python_constant() if vt.is_python_constant() else None
    if not isinstance(base, type):
        raise Unsupported(f"class base {vt} is not a class")
    return base


def _metaclass(explicit, bases):
    winner = explicit if explicit is not None else type
    for base in bases:
        if issubclass(type(base), winner):
            winner = type(base)
    if winner not in _METACLASSES:
        raise Unsupported(f"class with metaclass {winner.__name__} defined inside a compiled function")
    return winner


def run_body(tx, body: NestedFunctionVariable) -> dict:
    """Trace the class body; its namespace (name -> tracker)."""
    cells = {}
    if body.closure is not None:
        for name, box in zip(body.code.co_freevars, body.closure.iter_items(tx)):
            cells[name] = box
    child = tx.inlined(body.code, body.f_globals, {}, cells, func_name=body.code.co_qualname)
    child.run()
    return child.symbolic_locals


class DescriptorVariable(VariableTracker):
    """``staticmethod(f)`` / ``classmethod(f)`` / ``property(...)`` / ``cached_property(f)``
    made while tracing (in a class body): realized when the class is made."""

    def __init__(self, kind: type, args: list):
        self.kind = kind
        self.args = list(args)

    def python_type(self):
        return self.kind

    def children(self):
        return tuple(self.args)

    def truth(self, tx):
        return True

    def var_getattr(self, tx, name):
        if self.kind is property and name in ("setter", "getter", "deleter"):
            return _PropertyCopy(self, name)
        if name == "__func__" and self.kind in (staticmethod, classmethod):
            return self.args[0]
        raise Unsupported(f"attribute {name} of a {self.kind.__name__} made inside a compiled function")

    def realize(self, tx):
        return self.kind(*[realize(tx, a) for a in self.args])

    def __repr__(self):
        return f"DescriptorVariable({self.kind.__name__})"


class _PropertyCopy(VariableTracker):
    """``prop.setter`` (``getter``/``deleter``) before it is called with a function."""

    def __init__(self, prop: DescriptorVariable, which: str):
        self.prop = prop
        self.which = which

    def call(self, tx, args, kwargs):
        if len(args) != 1 or kwargs:
            raise Unsupported(f"property.{self.which} with these arguments")
        parts = self.prop.args + [ConstantVariable(None)] * (3 - len(self.prop.args))
        parts[("getter", "setter", "deleter").index(self.which)] = args[0]
        return DescriptorVariable(property, parts)


def realize(tx, vt):
    """The real object a class namespace entry stands for, or Unsupported."""
    if isinstance(vt, (DescriptorVariable, DataclassFieldVariable)):
        return vt.realize(tx)
    if isinstance(vt, NestedFunctionVariable):
        return real_function(tx, vt)
    if isinstance(vt, CellBox):
        return tx.output.real_cell(vt)
    if isinstance(vt, BaseListVariable):
        items = [realize(tx, i) for i in vt.items]
        return items if vt.python_type() is list else vt._rebuild(items)
    if isinstance(vt, DictVariable) and vt.dict_type is dict:
        return {k: realize(tx, v) for k, v in vt.items.items()}
    if vt.is_python_constant():
        return vt.as_python_constant()
    raise Unsupported(f"{vt} as a class attribute of a class defined inside a compiled function")


def real_function(tx, fn_vt: NestedFunctionVariable) -> types.FunctionType:
    """A real function over ``fn_vt``'s code: its cells are real cells mapped back to the
    traced ones (``OutputGraph.local_cell``)."""
    closure = None
    if fn_vt.closure is not None:
        closure = tuple(tx.output.real_cell(box) for box in fn_vt.closure.iter_items(tx))
    defaults = tuple(realize(tx, d) for d in fn_vt.defaults.iter_items(tx)) if fn_vt.defaults is not None else None
    fn = types.FunctionType(fn_vt.code, fn_vt.f_globals, fn_vt.code.co_name, defaults, closure)
    fn.__qualname__ = fn_vt.code.co_qualname
    if fn_vt.kwdefaults is not None:
        fn.__kwdefaults__ = {k: realize(tx, v) for k, v in fn_vt.kwdefaults.items.items()}
    tx.output.add_local_object(fn)
    return fn


class DataclassDecoratorVariable(VariableTracker):
    """``dataclasses.dataclass`` (or ``dataclass(**options)``) applied to a class made in
    this trace: it runs for real on that class (nothing else sees it)."""

    def __init__(self, options: dict | None = None):
        self.options = options or {}

    def call(self, tx, args, kwargs):
        if not args:
            if self.options:
                raise Unsupported("dataclass()() with options twice")
            return DataclassDecoratorVariable({k: v.as_python_constant() for k, v in kwargs.items()})
        if len(args) != 1 or kwargs or not isinstance(args[0], ClassVariable) \
                or not tx.output.is_local_object(args[0].cls):
            raise Unsupported("dataclasses.dataclass on a class that existed before the frame")
        cls = dataclasses.dataclass(args[0].cls, **self.options)
        for value in vars(cls).values():
            if isinstance(value, types.FunctionType):
                tx.output.add_local_object(value)
        return ClassVariable(cls)


class DataclassFieldVariable(VariableTracker):
    """``dataclasses.field(...)`` in a class body: a real Field, made from constant
    options (``default_factory=list`` ...) for the class to hold."""

    def __init__(self, field=None):
        self.field = field

    def call(self, tx, args, kwargs):
        if self.field is not None or args:
            raise Unsupported("dataclasses.field with these arguments")
        return DataclassFieldVariable(dataclasses.field(**{k: realize(tx, v) for k, v in kwargs.items()}))

    def realize(self, tx):
        if self.field is None:
            raise Unsupported("dataclasses.field itself as a class attribute")
        return self.field


@builder.wraps(builder.Order.FUNCTION - 1, lambda v: v is dataclasses.field)
def _wrap_dataclass_field(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return DataclassFieldVariable()


@builder.wraps(builder.Order.FUNCTION - 1, lambda v: v is dataclasses.dataclass)
def _wrap_dataclass(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return DataclassDecoratorVariable()


@builder.constructs(builder.Order.FIRST, lambda cls: cls in _DESCRIPTORS)
def _construct_descriptor(tx, cls, args, kwargs):
    if kwargs or not 1 <= len(args) <= (4 if cls is property else 1):
        raise Unsupported(f"{cls.__name__}() with these arguments")
    return DescriptorVariable(cls, args)
