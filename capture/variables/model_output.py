"""transformers' ``ModelOutput`` instances built inside a compiled frame.

A ModelOutput is an OrderedDict dataclass: its ``__post_init__`` puts every non-None
field in the dict part, and its ``__setattr__``/``__setitem__`` keep attributes and
entries in step. Tracing that machinery (OrderedDict internals, ``fields()``, pytree
registration) would break the graph for every layer of a model, so instead this tracker
holds the fields and answers the attribute, dict and tuple protocols from them. The
rewritten frame builds the real object by calling the class with the final fields,
which runs the same constructor eager would.
"""
from __future__ import annotations

import dataclasses

from capture import runtime
from capture.exc import MissingAttribute, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.iterators import ListIteratorVariable
from capture.variables.lists import TupleVariable
from capture.variables.tensor import TensorVariable
from capture.variables.user_object import ClassVariable, class_member

# Methods answered from the fields; the rest of the class's methods are traced.
_PROTOCOL = {"to_tuple", "keys", "values", "items", "get", "__getitem__", "__contains__", "__len__", "__iter__"}


def is_model_output_class(cls) -> bool:
    return dataclasses.is_dataclass(cls) and isinstance(cls, type) and any(
        k.__name__ == "ModelOutput" and k.__module__ == "transformers.utils.generic" for k in cls.__mro__)


def _is_none(vt) -> bool:
    return vt.is_python_constant() and vt.as_python_constant() is None


class ModelOutputVariable(VariableTracker):
    def __init__(self, cls: type, fields: dict):
        self.cls = cls
        self.fields = fields  # every dataclass field, in order (attributes)
        self.keys_order = [k for k, v in fields.items() if not _is_none(v)]  # the dict part

    @classmethod
    def construct(cls_, tx, cls, args, kwargs):
        names = [f.name for f in dataclasses.fields(cls)]
        if len(args) > len(names) or any(k not in names for k in kwargs):
            raise Unsupported(f"{cls.__name__}() with unexpected arguments")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in values:
                raise Unsupported(f"{cls.__name__}() got {k!r} twice")
            values[k] = v
        for f in dataclasses.fields(cls):
            if f.name not in values:
                if f.default is dataclasses.MISSING:
                    raise Unsupported(f"{cls.__name__}() missing field {f.name!r}")
                values[f.name] = ConstantVariable(f.default)
        fields = {n: values[n] for n in names}
        first = fields[names[0]]
        if not isinstance(first, TensorVariable) and all(_is_none(fields[n]) for n in names[1:]) \
                and not _is_none(first):
            raise Unsupported(f"{cls.__name__}() whose only field is not a tensor (key/value iterator form)")
        return cls_(cls, fields)

    def python_type(self):
        return self.cls

    def children(self):
        return tuple(self.fields.values())

    def truth(self, tx):
        return bool(self.keys_order)

    def _items(self):
        return [(k, self.fields[k]) for k in self.keys_order]

    def iter_items(self, tx):
        return [ConstantVariable(k) for k in self.keys_order]

    def getitem(self, tx, key_vt):
        if not key_vt.is_python_constant():
            raise Unsupported(f"{self.cls.__name__}[non-constant]")
        key = key_vt.as_python_constant()
        if isinstance(key, str):
            if key not in self.keys_order:
                raise Unsupported(f"KeyError {key!r} in {self.cls.__name__}")
            return self.fields[key]
        values = [v for _, v in self._items()]
        if isinstance(key, slice):
            return TupleVariable(values[key])
        try:
            return values[key]
        except (IndexError, TypeError):
            raise Unsupported(f"{self.cls.__name__}[{key!r}] raises") from None

    def contains(self, tx, item):
        return item.is_python_constant() and item.as_python_constant() in self.keys_order

    def var_getattr(self, tx, name):
        if name in self.fields:
            return self.fields[name]
        if name in _PROTOCOL:
            return BoundMethodOf(self, name)
        if name == "__class__":
            return ClassVariable(self.cls, None)
        try:
            return class_member(tx, self.cls, name, self, None)
        except AttributeError:
            raise MissingAttribute(f"{self.cls.__name__!r} object has no attribute {name!r}") from None

    def call_method(self, tx, name, args, kwargs):
        if kwargs:
            raise Unsupported(f"{self.cls.__name__}.{name}() with keyword arguments")
        if name == "to_tuple" and not args:
            return TupleVariable([v for _, v in self._items()])
        if name == "keys" and not args:
            return ListIteratorVariable(self.iter_items(tx))
        if name == "values" and not args:
            return ListIteratorVariable([v for _, v in self._items()])
        if name == "items" and not args:
            return ListIteratorVariable([TupleVariable([ConstantVariable(k), v]) for k, v in self._items()])
        if name == "get" and 1 <= len(args) <= 2:
            key = args[0].as_python_constant() if args[0].is_python_constant() else None
            if key in self.keys_order:
                return self.fields[key]
            return args[1] if len(args) == 2 else ConstantVariable(None)
        if name == "__getitem__" and len(args) == 1:
            return self.getitem(tx, args[0])
        if name == "__contains__" and len(args) == 1:
            return ConstantVariable(self.contains(tx, args[0]))
        if name == "__len__" and not args:
            return ConstantVariable(len(self.keys_order))
        if name == "__iter__" and not args:
            return ListIteratorVariable(self.iter_items(tx))
        return self.var_getattr(tx, name).call(tx, args, kwargs)

    def store_attr(self, tx, name, value):
        """ModelOutput.__setattr__: a field that becomes non-None also enters the dict."""
        if name not in self.fields:
            raise Unsupported(f"setting a non-field attribute {name!r} on a {self.cls.__name__}")
        if _is_none(value) and name in self.keys_order:
            raise Unsupported(f"setting {self.cls.__name__}.{name} back to None")
        self.fields[name] = value
        if not _is_none(value) and name not in self.keys_order:
            self._insert_key(name)

    def setitem(self, tx, key_vt, value):
        """ModelOutput.__setitem__: both the entry and the attribute."""
        if not key_vt.is_python_constant() or key_vt.as_python_constant() not in self.fields:
            raise Unsupported(f"{self.cls.__name__}[key] = value for a key that is not a field")
        key = key_vt.as_python_constant()
        if _is_none(value):
            raise Unsupported(f"{self.cls.__name__}[{key!r}] = None")
        self.fields[key] = value
        if key not in self.keys_order:
            self._insert_key(key)

    def _insert_key(self, name):
        # the rebuilt object puts keys in field order; eager appends: equal only if in order
        order = list(self.fields)
        if self.keys_order and order.index(name) < order.index(self.keys_order[-1]):
            raise Unsupported(f"{self.cls.__name__}: a field set out of field order")
        self.keys_order.append(name)

    def reconstruct(self, cg):
        fields = "{" + ", ".join(f"{k!r}: {cg.reconstruct(v)}" for k, v in self.fields.items()) + "}"
        return f"{cg.runtime_ref(runtime.build_with_hook_off)}({cg.object_ref(self.cls)}, {fields})"

    def __repr__(self):
        return f"ModelOutputVariable({self.cls.__name__}, {self.keys_order})"


@builder.constructs(builder.Order.OBJECT, is_model_output_class)
def _construct_model_output(tx, cls, args, kwargs):
    return ModelOutputVariable.construct(tx, cls, args, kwargs)
