"""Dicts with keys known at trace time (strings, numbers, other constants)."""
from __future__ import annotations

import collections

from capture.exc import MissingAttribute, TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.dict_views import DictViewVariable
from capture.variables.keys import is_constant_key, key_expr, key_tracker, to_key
from capture.variables.lists import ListVariable, TupleVariable
from guards import GuardKind
from guards.sources import ItemSource


def _key(tx, key_vt) -> object:
    return to_key(tx, key_vt)


class DictVariable(VariableTracker):
    def __init__(self, items: dict, source=None, dict_type=dict):
        self.items = dict(items)  # python key -> tracker
        self.source = source
        self.dict_type = dict_type
        self.mutated = False
        self.default_factory = None  # a defaultdict's factory (a tracker)

    def python_type(self):
        return self.dict_type

    def children(self):
        return tuple(self.items.values())

    def is_python_constant(self):
        return all(is_constant_key(k) and v.is_python_constant() for k, v in self.items.items())

    def as_python_constant(self):
        return self.dict_type({k: v.as_python_constant() for k, v in self.items.items()})

    def truth(self, tx):
        return bool(self.items)

    def iter_items(self, tx):
        return [key_tracker(k) for k in self.items]

    def str_items(self, tx):
        for k, v in self.items.items():
            if not isinstance(k, str):
                raise Unsupported("** with non-string keys")
            yield k, v

    def contains_key(self, key) -> bool:
        return key in self.items

    def contains(self, tx, item):
        return _key(tx, item) in self.items

    def check_mutable(self, tx):
        if self.source is not None and not self.mutated:
            tx.output.side_effects.mutated_container(self)
        self.mutated = True

    def getitem(self, tx, key_vt):
        key = _key(tx, key_vt)
        if key not in self.items:
            if self.default_factory is not None:  # defaultdict.__missing__: a new entry
                self.check_mutable(tx)
                self.items[key] = self.default_factory.call(tx, [], {})
                return self.items[key]
            raise self.key_error(key)
        return self.items[key]

    def key_error(self, key):
        """What a missing key raises: Python's KeyError (a dict subclass with __missing__
        would do something else: not traced)."""
        if not is_constant_key(key):
            return Unsupported(f"KeyError of a missing object key {key!r}")
        if hasattr(self.dict_type, "__missing__") and self.dict_type is not collections.defaultdict:
            return Unsupported(f"missing key {key!r} of a {self.dict_type.__name__} (__missing__)")
        return TracedRaise(KeyError(key))

    def setitem(self, tx, key_vt, value):
        self.check_mutable(tx)
        self.items[_key(tx, key_vt)] = value

    def delitem(self, tx, key_vt):
        self.check_mutable(tx)
        self.items.pop(_key(tx, key_vt))

    def var_getattr(self, tx, name):
        if name == "default_factory" and self.dict_type is collections.defaultdict:
            return self.default_factory or ConstantVariable(None)
        if not hasattr(self.dict_type, name):
            raise MissingAttribute(f"{self.dict_type.__name__!r} object has no attribute {name!r}")
        return BoundMethodOf(self, name)

    def call_method(self, tx, name, args, kwargs):
        if name == "__len__":
            return ConstantVariable(len(self.items))
        if name == "__getitem__":
            return self.getitem(tx, args[0])
        if name == "__contains__":
            return ConstantVariable(self.contains(tx, args[0]))
        if name in ("keys", "values", "items") and not args:
            return DictViewVariable(self, name)  # a live view, as in Python
        if name == "get":
            key = _key(tx, args[0])
            default = args[1] if len(args) > 1 else ConstantVariable(None)
            return self.items.get(key, default)
        if name == "copy":
            return DictVariable(self.items, dict_type=self.dict_type)
        if name == "update":
            self.check_mutable(tx)
            for arg in args:
                if isinstance(arg, DictVariable):
                    self.items.update(arg.items)
                else:
                    for pair in arg.iter_items(tx):
                        k, v = pair.iter_items(tx)
                        self.items[_key(tx, k)] = v
            for k, v in kwargs.items():
                self.items[k] = v
            return ConstantVariable(None)
        if name == "pop":
            self.check_mutable(tx)
            key = _key(tx, args[0])
            if key in self.items:
                return self.items.pop(key)
            if len(args) > 1:
                return args[1]
            raise self.key_error(key)
        if name == "setdefault":
            key = _key(tx, args[0])
            if key not in self.items:
                self.check_mutable(tx)
                self.items[key] = args[1] if len(args) > 1 else ConstantVariable(None)
            return self.items[key]
        if name == "clear":
            self.check_mutable(tx)
            self.items.clear()
            return ConstantVariable(None)
        if name == "popitem" and not args:
            return self._popitem(tx, kwargs)
        if name == "move_to_end" and self.dict_type is collections.OrderedDict:
            self.check_mutable(tx)
            key = _key(tx, args[0])
            last = (args[1] if len(args) > 1 else kwargs.get("last", ConstantVariable(True))).as_python_constant()
            if key not in self.items:
                raise self.key_error(key)
            value = self.items.pop(key)
            self.items = {key: value, **self.items} if not last else {**self.items, key: value}
            return ConstantVariable(None)
        if name == "__setitem__":
            self.setitem(tx, args[0], args[1])
            return ConstantVariable(None)
        raise Unsupported(f"method {name} of dict")

    def _popitem(self, tx, kwargs):
        last = kwargs.get("last", ConstantVariable(True)).as_python_constant()
        if kwargs and self.dict_type is not collections.OrderedDict:
            raise Unsupported("dict.popitem() takes no keyword arguments")
        if not self.items:
            raise TracedRaise(KeyError("popitem(): dictionary is empty"))
        self.check_mutable(tx)
        key = next(reversed(self.items)) if last else next(iter(self.items))
        return TupleVariable([key_tracker(key), self.items.pop(key)])

    def reconstruct(self, cg):
        if self.source is not None:
            return cg.source_expr(self.source)  # mutations were replayed onto it
        if self.default_factory is not None:
            body = "{" + ", ".join(f"{key_expr(cg, k)}: {cg.reconstruct(v)}" for k, v in self.items.items()) + "}"
            return f"{cg.object_ref(collections.defaultdict)}({cg.reconstruct(self.default_factory)}, {body})"
        body = "{" + ", ".join(f"{key_expr(cg, k)}: {cg.reconstruct(v)}" for k, v in self.items.items()) + "}"
        if self.dict_type is dict:
            return body
        return f"{cg.object_ref(self.dict_type)}({body})"

    def __repr__(self):
        return f"DictVariable({list(self.items)})"


# ---- how real values become dicts ----

def _key_has_literal_repr(key) -> bool:
    if type(key) in (str, int, bytes, type(None)):
        return True
    if type(key) is float:
        return key == key and key not in (float("inf"), float("-inf"))
    return type(key) is tuple and all(_key_has_literal_repr(k) for k in key)


@builder.wraps(builder.Order.CONTAINER, lambda v: type(v) in (dict, collections.OrderedDict))
def _wrap_dict(tx, value, source):
    if not all(_key_has_literal_repr(k) for k in value):
        raise Unsupported("dict with keys that have no literal form (guards index it by key)")
    builder.guard(tx, source, GuardKind.TYPE, type(value))
    builder.guard(tx, source, GuardKind.DICT_KEYS, tuple(value))
    items = {k: builder.wrap(tx, v, ItemSource(source, k) if source is not None else None) for k, v in value.items()}
    vt = DictVariable(items, source, dict_type=type(value))
    return tx.output.side_effects.track(value, vt) if source is not None else vt


@builder.wraps_result(builder.Order.CONTAINER, lambda v: type(v) is dict)
def _dict_result(value):
    return DictVariable({k: builder.wrap_constant_result(v) for k, v in value.items()})


def _plain_dict_class(cls) -> bool:
    """OrderedDict and collections' other dict subclasses that keep dict's __init__
    (``dict`` itself is a builtin: capture.variables.builtin)."""
    return cls is collections.OrderedDict or (
        issubclass(cls, dict) and cls.__init__ is dict.__init__ and cls.__module__ == "collections")


@builder.constructs(builder.Order.CONTAINER, lambda cls: cls is collections.defaultdict)
def _construct_defaultdict(tx, cls, args, kwargs):
    d = DictVariable({}, dict_type=cls)
    if args and not (args[0].is_python_constant() and args[0].as_python_constant() is None):
        d.default_factory = args[0]
    d.call_method(tx, "update", list(args[1:]), kwargs)
    d.mutated = False
    return d


class FromKeysVariable(VariableTracker):
    """``dict.fromkeys`` (or a dict subclass's): a new dict mapping each key to one value."""

    def __init__(self, dict_type: type):
        self.dict_type = dict_type

    def call(self, tx, args, kwargs):
        if kwargs or not args:
            raise Unsupported("dict.fromkeys with these arguments")
        value = args[1] if len(args) > 1 else ConstantVariable(None)
        return DictVariable({_key(tx, k): value for k in args[0].iter_items(tx)}, dict_type=self.dict_type)


@builder.constructs(builder.Order.CONTAINER, _plain_dict_class)
def _construct_dict(tx, cls, args, kwargs):
    d = DictVariable({}, dict_type=cls)
    d.call_method(tx, "update", list(args), kwargs)
    d.mutated = False
    return d
