"""Instances of user dict subclasses created inside a compiled function (a
ModelOutput-like ``class Output(OrderedDict)`` whose ``__init__``/``__setitem__`` also
set attributes).

The tracker keeps the dict part as a ``DictVariable`` and the instance attributes as
trackers. The class's Python methods are traced with it as ``self``; dict's own (C)
methods -- reached directly (``o.keys()``, ``o[k]`` without a Python ``__getitem__``)
or through ``super()`` (``super().__setitem__(k, v)``, ``super().__init__(**kw)``) --
act on the dict part, and ``object.__setattr__(self, k, v)`` on the attributes. The
rewritten frame builds the real object from both (``runtime.build_dict_object``)
without running the class's code again.
"""
from __future__ import annotations

import collections
import types

from capture import runtime
from capture.exc import MissingAttribute, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.dicts import DictVariable
from capture.variables.functions import UserFunctionVariable
from capture.variables.keys import key_expr
from capture.variables.model_output import is_model_output_class
from capture.variables.type_lookup import lookup_on_type
from capture.variables.user_object import ClassVariable, class_member
from guards.sources import AttrSource

_DICT_BASES = (dict, collections.OrderedDict)
# dict methods answered by the dict part (DictVariable.call_method)
_DICT_METHODS = {"keys", "values", "items", "get", "pop", "popitem", "setdefault", "update", "clear", "copy",
                 "__getitem__", "__setitem__", "__delitem__", "__contains__", "__len__", "__iter__",
                 "move_to_end"}


def _dict_base(cls):
    return next(k for k in cls.__mro__ if k in _DICT_BASES)


def _constructible(cls) -> bool:
    return (isinstance(cls, type) and type(cls) is type and issubclass(cls, _DICT_BASES)
            and cls.__module__ != "collections" and cls not in _DICT_BASES and not is_model_output_class(cls)
            and cls.__new__ is dict.__new__ and not hasattr(cls, "__missing__"))


class DictObjectVariable(VariableTracker):
    """An instance of a dict subclass made while tracing."""

    frame_object = True

    def __init__(self, cls: type, cls_source=None):
        self.cls = cls
        self.cls_source = cls_source
        self.dict_part = DictVariable({}, dict_type=_dict_base(cls))
        self.attrs: dict = {}

    def python_type(self):
        return self.cls

    def children(self):
        return (self.dict_part, *self.attrs.values())

    def _python_method(self, name):
        attr = lookup_on_type(self.cls, name, None)
        return attr if isinstance(attr, types.FunctionType) else None

    def truth(self, tx):
        if self._python_method("__bool__") or self._python_method("__len__"):
            raise Unsupported(f"truth value of {self.cls.__name__} (custom __bool__/__len__)")
        return self.dict_part.truth(tx)

    def iter_items(self, tx):
        if self._python_method("__iter__"):
            raise Unsupported(f"iteration over {self.cls.__name__} (custom __iter__)")
        return self.dict_part.iter_items(tx)

    def dict_method(self, tx, name, attr):
        """dict's own method ``name`` (what ``attr`` is), acting on the dict part."""
        if getattr(attr, "__objclass__", None) in _DICT_BASES and name in _DICT_METHODS:
            return BoundMethodOf(self.dict_part, name)
        if name == "__init__" and getattr(attr, "__objclass__", None) in _DICT_BASES:
            return BoundMethodOf(self.dict_part, "update")
        return None

    def var_getattr(self, tx, name):
        if name == "__class__":
            return ClassVariable(self.cls, self.cls_source)
        static = lookup_on_type(self.cls, name, None)
        if name in self.attrs and not (static is not None and hasattr(type(static), "__set__")):
            return self.attrs[name]
        if static is None:
            raise MissingAttribute(f"{self.cls.__name__!r} object has no attribute {name!r}")
        method = self.dict_method(tx, name, static)
        if method is not None:
            return method
        source = AttrSource(self.cls_source, name) if self.cls_source is not None else None
        return class_member(tx, self.cls, name, self, source)

    def call_method(self, tx, name, args, kwargs):
        python = self._python_method(name)
        if python is not None:
            return UserFunctionVariable(python).call(tx, [self] + list(args), kwargs)
        method = self.dict_method(tx, name, lookup_on_type(self.cls, name, None))
        if method is None:
            return self.var_getattr(tx, name).call(tx, args, kwargs)
        return method.call(tx, args, kwargs)

    def getitem(self, tx, key):
        return self.call_method(tx, "__getitem__", [key], {})

    def setitem(self, tx, key, value):
        self.call_method(tx, "__setitem__", [key, value], {})

    def delitem(self, tx, key):
        self.call_method(tx, "__delitem__", [key], {})

    def contains(self, tx, item):
        if self._python_method("__contains__"):
            return self.call_method(tx, "__contains__", [item], {}).truth(tx)
        return self.dict_part.contains(tx, item)

    def store_attr(self, tx, name, value):
        setattr_fn = lookup_on_type(self.cls, "__setattr__")
        if isinstance(setattr_fn, types.FunctionType):
            UserFunctionVariable(setattr_fn).call(tx, [self, ConstantVariable(name), value], {})
            return
        self.generic_setattr(tx, name, value)

    def generic_setattr(self, tx, name, value):
        static = lookup_on_type(self.cls, name, None)
        if static is not None and hasattr(type(static), "__set__"):
            raise Unsupported(f"assignment through descriptor {name!r}")
        self.attrs[name] = value

    def delete_attr(self, tx, name):
        if name not in self.attrs:
            raise Unsupported(f"deleting attribute {name!r}")
        del self.attrs[name]

    def reconstruct(self, cg):
        items = "{" + ", ".join(f"{key_expr(cg, k)}: {cg.reconstruct(v)}"
                                for k, v in self.dict_part.items.items()) + "}"
        attrs = "{" + ", ".join(f"{k!r}: {cg.reconstruct(v)}" for k, v in self.attrs.items()) + "}"
        return f"{cg.runtime_ref(runtime.build_dict_object)}({cg.object_ref(self.cls)}, {items}, {attrs})"

    def __repr__(self):
        return f"DictObjectVariable({self.cls.__name__}, {list(self.dict_part.items)})"


@builder.constructs(builder.Order.OBJECT + 1, _constructible, takes_source=True)
def _construct_dict_object(tx, cls, args, kwargs, cls_source=None):
    obj = DictObjectVariable(cls, cls_source)
    init = lookup_on_type(cls, "__init__")
    if isinstance(init, types.FunctionType):
        UserFunctionVariable(init).call(tx, [obj] + list(args), kwargs)
    else:
        obj.dict_part.call_method(tx, "update", list(args), kwargs)
    return obj
