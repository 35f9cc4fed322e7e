"""Python builtins (and the ``math`` functions) called on tracked values.

``len``, ``isinstance``, ``zip``, ``sorted`` ... each have one small handler in
``_HANDLERS``; ``operator.*`` functions are in ``capture.variables.operators``. On
constants a builtin is folded at trace time; on containers it follows Python's rules
over the tracked items.
"""
from __future__ import annotations

import builtins
import functools
import math
import operator

import torch

from capture.exc import MissingAttribute, TracedRaise, Unsupported
from capture.variables import builder, operators
from capture.variables.base import NO_OBJECT, KnownObjectMixin, VariableTracker
from capture.variables.constant import ConstantVariable, fold
from capture.variables.dicts import DictVariable, FromKeysVariable
from capture.variables.iterators import ListIteratorVariable
from capture.variables.keys import ObjectIdVariable
from capture.variables.itertools_iterators import PythonIteratorVariable  # noqa: F401 (registers itertools)
from capture.variables.lazy_iterators import LazyIteratorVariable
from capture.variables.lists import ListVariable, TupleVariable, extreme, sort_items
from capture.variables.misc import SuperVariable
from capture.variables.inference_mode import _construct_inference_mode  # noqa: F401 (registers it)
from capture.variables.nn_module import NNModuleVariable
from capture.variables.numpy_values import NumpyFunctionVariable  # noqa: F401 (registers numpy)
from capture.variables.operator_getters import OperatorGetterVariable  # noqa: F401 (registers the getters)
from capture.variables.sets import SetVariable
from capture.variables.sym import SymNodeVariable
from capture.variables.tensor import TensorVariable
from capture.variables.type_lookup import lookup_on_type
from capture.variables.user_object import ClassVariable, NewObjectVariable, UserObjectVariable
from guards import GuardKind
from guards.sources import AttrSource, TypeSource

_BUILTIN_NAMES = ["len", "isinstance", "issubclass", "getattr", "hasattr", "setattr", "delattr", "range",
                  "enumerate", "zip", "reversed", "sorted", "min", "max", "abs", "sum", "any", "all", "int",
                  "float", "bool", "str", "tuple", "list", "dict", "set", "frozenset", "type", "callable",
                  "iter", "next", "map", "filter", "round", "divmod", "pow", "print", "super", "repr",
                  "format", "hash", "chr", "ord", "slice", "id", "complex", "input", "open", "vars", "dir"]
SUPPORTED = {getattr(builtins, n) for n in _BUILTIN_NAMES}
SUPPORTED |= {v for k, v in vars(operator).items() if callable(v) and not k.startswith("_")
              and not isinstance(v, type)}
SUPPORTED |= {v for k, v in vars(math).items() if callable(v) and not k.startswith("_")}
SUPPORTED.add(object.__setattr__)
SUPPORTED.add(functools.reduce)
SUPPORTED.add(tuple.__new__)

_IO_FUNCTIONS = {print, input, open}


_SUPPORTED_IDS = frozenset(id(f) for f in SUPPORTED)   # module-level objects: their ids never go stale


def is_supported_builtin(value) -> bool:
    """By identity: hashing an arbitrary user value runs its ``__hash__``, which may
    raise anything (an object whose dataclass hash reads an attribute it lacks)."""
    return id(value) in _SUPPORTED_IDS


def _all_const(args, kwargs=None) -> bool:
    return all(a.is_python_constant() for a in args) and all(v.is_python_constant() for v in (kwargs or {}).values())


class BuiltinVariable(KnownObjectMixin, VariableTracker):
    def __init__(self, fn):
        self.fn = fn

    def var_getattr(self, tx, name):
        if name == "__name__":
            return ConstantVariable(self.fn.__name__)
        if name == "fromkeys" and self.fn is dict:
            return FromKeysVariable(dict)
        raise Unsupported(f"attribute {name} of builtin {self.fn}")

    def reconstruct(self, cg):
        return cg.object_ref(self.fn)

    def __repr__(self):
        return f"BuiltinVariable({getattr(self.fn, '__name__', self.fn)})"

    def call(self, tx, args, kwargs):
        fn = self.fn
        if fn in _IO_FUNCTIONS:
            raise Unsupported(f"call to {fn.__name__}() (I/O)")
        if operators.is_arithmetic(fn):
            return operators.apply_operator(tx, fn, args, kwargs)
        handler = _HANDLERS.get(fn)
        if handler is not None:
            return handler(tx, *args, **kwargs)
        if getattr(fn, "__module__", None) == "math" or fn in vars(math).values():
            args = [ConstantVariable(a.as_number(tx, f"math.{fn.__name__}() needs a number"))
                    if isinstance(a, SymNodeVariable) else a for a in args]
            if _all_const(args, kwargs):
                return fold(fn, args, kwargs)
            raise Unsupported(f"math.{fn.__name__} on a non-constant")
        if _all_const(args, kwargs) and fn in (repr, format, hash, chr, ord, divmod, complex, round, pow):
            return fold(fn, args, kwargs)
        if fn is round and args and isinstance(args[0], TensorVariable) and len(args) == 1:
            return tx.output.call_graph(tx, "call_function", torch.round, args, {})
        if fn is pow and len(args) == 2:
            return operators.apply_operator(tx, operator.pow, args, {})
        raise Unsupported(f"builtin {getattr(fn, '__name__', fn)} with these arguments")


# ---------------- individual builtins ----------------

def _len(tx, obj):
    if isinstance(obj, TensorVariable):
        if obj.fake.dim() == 0:
            raise Unsupported("len() of a 0-d tensor")
        return builder.wrap_constant_result(obj.fake.shape[0])
    if obj.is_python_constant() and not hasattr(obj, "items") and not hasattr(obj, "values"):
        return fold(len, [obj])
    return obj.call_method(tx, "__len__", [], {})


def _isinstance(tx, obj, classes):
    cls = classes.as_python_constant()
    try:
        t = obj.python_type()
    except Unsupported:
        raise Unsupported(f"isinstance on {obj}") from None
    if isinstance(obj, TensorVariable) and (cls is torch.Tensor or (isinstance(cls, tuple) and torch.Tensor in cls)):
        return ConstantVariable(True)
    return ConstantVariable(issubclass(t, cls))


def _issubclass(tx, a, b):
    return ConstantVariable(issubclass(a.as_python_constant(), b.as_python_constant()))


def _raised_attribute_error(raised: TracedRaise) -> bool:
    return issubclass(raised.exc_type, AttributeError)


def _getattr(tx, obj, name, default=None):
    name = name.as_python_constant()
    try:
        return obj.var_getattr(tx, name)
    except MissingAttribute:
        if default is None:
            raise
        return default
    except TracedRaise as raised:  # e.g. a property raising AttributeError
        if default is None or not _raised_attribute_error(raised):
            raise
        return default


def _hasattr(tx, obj, name):
    if isinstance(obj, TensorVariable):
        return ConstantVariable(obj.has_attribute(tx, name.as_python_constant()))
    try:
        obj.var_getattr(tx, name.as_python_constant())
        return ConstantVariable(True)
    except MissingAttribute:
        return ConstantVariable(False)
    except TracedRaise as raised:
        if not _raised_attribute_error(raised):
            raise
        return ConstantVariable(False)


def _setattr(tx, obj, name, value):
    setter = getattr(obj, "store_attr", None)
    if setter is None:
        raise Unsupported(f"setting attribute {name.as_python_constant()!r} on {obj}")
    setter(tx, name.as_python_constant(), value)
    return ConstantVariable(None)


def _delattr(tx, obj, name):
    deleter = getattr(obj, "delete_attr", None)
    if deleter is None:
        raise Unsupported(f"deleting attribute {name.as_python_constant()!r}")
    deleter(tx, name.as_python_constant())
    return ConstantVariable(None)


def _object_setattr(tx, obj, name, value):
    generic = getattr(obj, "generic_setattr", None)  # bypasses the class's own __setattr__
    if generic is not None and name.is_python_constant():
        generic(tx, name.as_python_constant(), value)
        return ConstantVariable(None)
    return _setattr(tx, obj, name, value)


def _range(tx, *args):
    args = [ConstantVariable(a.as_number(tx, "range() unrolls its loop, so it needs a fixed count"))
            if isinstance(a, SymNodeVariable) else a for a in args]
    return fold(range, args)


def _items_of(tx, iterable):
    return list(iterable.iter_items(tx))


def _enumerate(tx, iterable, start=None):
    first = start.as_python_constant() if start is not None else 0
    return LazyIteratorVariable(enumerate, [_iter(tx, iterable)], start=first)


def _zip(tx, *iterables, strict=None):
    strict = bool(strict.as_python_constant()) if strict is not None else False
    return LazyIteratorVariable(zip, [_iter(tx, it) for it in iterables], strict=strict)


def _reversed(tx, seq):
    return ListIteratorVariable(list(reversed(_items_of(tx, seq))), origin=reversed)


def _sorted(tx, iterable, key=None, reverse=None):
    """Sort by constant keys (the items themselves, or what ``key`` returns for each)."""
    return ListVariable(sort_items(tx, _items_of(tx, iterable), key, reverse))


def _reduce(tx, fn, iterable, *initial):
    items = _items_of(tx, iterable)
    if initial:
        acc, rest = initial[0], items
    elif items:
        acc, rest = items[0], items[1:]
    else:
        raise Unsupported("reduce() of an empty sequence with no initial value")
    for item in rest:
        acc = fn.call(tx, [acc, item], {})
    return acc


def _min_max(fn):
    def handler(tx, *args, key=None, default=None):
        items = list(args) if len(args) > 1 else _items_of(tx, args[0])
        if not items:
            if default is not None:
                return default
            raise TracedRaise(ValueError(f"{fn.__name__}() arg is an empty sequence"))
        if key is None and _all_const(items):
            return fold(fn, items)
        if key is None and any(isinstance(i, SymNodeVariable) for i in items) and all(
                isinstance(i, SymNodeVariable) or i.is_python_constant() for i in items):
            best = items[0]  # each comparison is answered for this call's sizes and guarded
            for item in items[1:]:
                better = operators.apply_operator(tx, operator.gt if fn is max else operator.lt, [item, best], {})
                if better.truth(tx):
                    best = item
            return best
        return extreme(tx, fn, items, key)
    return handler


def _abs(tx, x):
    return operators.apply_operator(tx, operator.abs, [x], {})


def _sum(tx, iterable, start=None):
    items = _items_of(tx, iterable)
    if _all_const(items) and (start is None or start.is_python_constant()):
        return fold(sum, [ConstantVariable([i.as_python_constant() for i in items])] + ([start] if start else []))
    total = start if start is not None else ConstantVariable(0)
    for item in items:
        total = operators.apply_operator(tx, operator.add, [total, item], {})
    return total


def _any_all(fn):
    def handler(tx, iterable):
        items = _items_of(tx, iterable)
        truths = [i.truth(tx) for i in items]
        return ConstantVariable(fn(truths))
    return handler


def _scalar(fn):
    def handler(tx, *args, **kwargs):
        if args and isinstance(args[0], TensorVariable):
            raise Unsupported(f"{fn.__name__}() of a tensor needs its data")
        if fn is bool and len(args) == 1:
            return ConstantVariable(args[0].truth(tx))
        if fn is int and len(args) == 1 and isinstance(args[0], SymNodeVariable) and not kwargs:
            return args[0] if args[0].python_type() is int else ConstantVariable(
                args[0].as_number(tx, "int() of a symbolic float"))
        if fn is float and len(args) == 1 and isinstance(args[0], SymNodeVariable) and not kwargs:
            return builder.wrap_constant_result(torch.sym_float(args[0].value))
        if _all_const(args, kwargs):
            return fold(fn, args, kwargs)
        raise Unsupported(f"{fn.__name__}() of {args}")
    return handler


def _tuple(tx, iterable=None):
    return TupleVariable(_items_of(tx, iterable) if iterable is not None else [])


def _list(tx, iterable=None):
    return ListVariable(_items_of(tx, iterable) if iterable is not None else [])


def _dict(tx, *args, **kwargs):
    d = DictVariable({})
    d.call_method(tx, "update", list(args), kwargs)
    return d


def _set(tx, iterable=None):
    return SetVariable.from_items(tx, _items_of(tx, iterable) if iterable is not None else [])


def _frozenset(tx, iterable=None):
    items = _items_of(tx, iterable) if iterable is not None else []
    return fold(frozenset, [ConstantVariable(tuple(i.as_python_constant() for i in items))])


def _type(tx, obj):
    """``type(obj)``: reached through ``type(<obj's source>)`` when obj has one, so the
    class attributes read through it (``type(self).SCALE``) are guarded."""
    if obj.source is not None:
        return ClassVariable(obj.python_type(), TypeSource(obj.source))
    return ClassVariable(obj.python_type(), obj.cls_source if isinstance(obj, NewObjectVariable) else None)


def _callable(tx, obj):
    try:
        cls = obj.python_type()
    except Unsupported:
        cls = None
    if cls is not None and not isinstance(obj, ConstantVariable):
        return ConstantVariable(lookup_on_type(cls, "__call__", None) is not None)
    return _callable_by_tracker(tx, obj)


def _callable_by_tracker(tx, obj):
    if isinstance(obj, (TensorVariable,)) or obj.is_python_constant() and not isinstance(obj, BuiltinVariable):
        return ConstantVariable(callable(obj.as_python_constant()) if obj.is_python_constant() else False)
    return ConstantVariable(hasattr(obj, "call") and type(obj).call is not VariableTracker.call)


def _iter(tx, obj):
    if isinstance(obj, ListIteratorVariable):
        return obj
    origin = obj.python_type() if hasattr(obj, "items") and isinstance(obj.items, list) else None
    return ListIteratorVariable(_items_of(tx, obj), origin=origin)


def _next(tx, it, default=None):
    if not isinstance(it, ListIteratorVariable):
        raise Unsupported(f"next() on {it}")
    item = it.next_item(tx)
    if item is None:
        if default is None:
            raise TracedRaise(it.stop_iteration(tx))
        return default
    return item


def _map(tx, fn, *iterables):
    return LazyIteratorVariable(map, [_iter(tx, it) for it in iterables], fn=fn)


def _filter(tx, fn, iterable):
    if fn.is_python_constant() and fn.as_python_constant() is None:
        fn = None
    return LazyIteratorVariable(filter, [_iter(tx, iterable)], fn=fn)


def _str(tx, *args):
    if args and not args[0].is_python_constant():
        raise Unsupported(f"str() of {args[0]}")
    return fold(str, args)


def _super(tx, *args):
    if args:
        return SuperVariable(args[0].as_python_constant(), args[1])
    cls_cell = tx.cells.get("__class__")
    if cls_cell is None or not tx.code.co_varnames:
        raise Unsupported("super() without __class__ cell")
    first = tx.code.co_varnames[0]
    self_vt = tx.symbolic_locals.get(first)
    if self_vt is None:
        cell = tx.cells.get(first)
        self_vt = cell.load(tx) if cell is not None else None
    if self_vt is None:
        raise Unsupported("super() with no self")
    return SuperVariable(cls_cell.load(tx).as_python_constant(), self_vt)


def _id(tx, obj):
    """id() of an object reached through a source: its identity is guarded; of an object
    made in the frame: a stand-in that compares like it (capture/variables/keys.py)."""
    real = obj.underlying()
    if real is not NO_OBJECT and obj.source is not None and isinstance(obj, (NNModuleVariable, UserObjectVariable,
                                                                       ClassVariable)):
        tx.output.add_guard(tx, GuardKind.IDENTITY, obj.source, real)
        return ConstantVariable(id(real))
    if obj.frame_object and obj.source is None:
        return ObjectIdVariable(obj)
    raise Unsupported(f"id() of {obj}: no source to guard its identity by")


def _vars(tx, obj=None):
    if isinstance(obj, UserObjectVariable) and obj.source is not None and hasattr(obj.value, "__dict__"):
        return builder.wrap(tx, obj.value.__dict__, AttrSource(obj.source, "__dict__"))
    if isinstance(obj, NewObjectVariable):
        return obj.instance_dict()
    raise Unsupported("vars() of this value")


def _slice(tx, *args):
    return fold(slice, args)


_HANDLERS = {
    len: _len, isinstance: _isinstance, issubclass: _issubclass, getattr: _getattr, hasattr: _hasattr,
    setattr: _setattr, delattr: _delattr, object.__setattr__: _object_setattr, range: _range,
    enumerate: _enumerate, zip: _zip, reversed: _reversed, sorted: _sorted, min: _min_max(min),
    max: _min_max(max), abs: _abs, sum: _sum, any: _any_all(any), all: _any_all(all),
    int: _scalar(int), float: _scalar(float), bool: _scalar(bool), str: _str, tuple: _tuple, list: _list,
    dict: _dict, set: _set, frozenset: _frozenset, type: _type, callable: _callable, iter: _iter,
    next: _next, map: _map, filter: _filter, super: _super, id: _id, slice: _slice, vars: _vars,
    **operators.HANDLERS,
    functools.reduce: _reduce,
    tuple.__new__: lambda tx, cls, iterable=None: _tuple_new(tx, cls, iterable),
}


def _tuple_new(tx, cls, iterable):
    t = cls.as_python_constant()
    if not (t is tuple or hasattr(t, "_fields")):
        raise Unsupported(f"tuple.__new__ of {t}")
    items = _items_of(tx, iterable) if iterable is not None else []
    return TupleVariable(items, tuple_type=None if t is tuple else t)


# ---- builtins reached while tracing, and builtin classes called ----

@builder.wraps(builder.Order.BUILTIN, is_supported_builtin)
def _wrap_builtin(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return BuiltinVariable(value)


@builder.constructs(builder.Order.FIRST, is_supported_builtin)
def _construct_builtin_class(tx, cls, args, kwargs):
    return BuiltinVariable(cls).call(tx, args, kwargs)
