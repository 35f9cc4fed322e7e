"""Python builtins, and the ``operator`` and ``math`` functions, on tracked values.

Operators on tensors become graph nodes; on constants they are folded at trace
time; on containers they follow Python's rules over the tracked items.
"""
from __future__ import annotations

import builtins
import enum
import functools
import inspect
import math
import operator
import types

import torch

from capture.exc import MissingAttribute, Unsupported
from capture.variables.base import KnownObjectMixin, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.tensor import TensorVariable

_ARITH = {operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
          operator.pow, operator.matmul, operator.and_, operator.or_, operator.xor, operator.lshift,
          operator.rshift, operator.iadd, operator.isub, operator.imul, operator.itruediv,
          operator.ifloordiv, operator.imod, operator.ipow, operator.imatmul, operator.iand, operator.ior,
          operator.ixor, operator.ilshift, operator.irshift, operator.neg, operator.pos, operator.invert,
          operator.abs, operator.lt, operator.le, operator.eq, operator.ne, operator.gt, operator.ge,
          operator.not_, operator.truth}
_INPLACE_TO_PLAIN = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
                     operator.itruediv: operator.truediv, operator.ifloordiv: operator.floordiv,
                     operator.imod: operator.mod, operator.ipow: operator.pow, operator.imatmul: operator.matmul,
                     operator.iand: operator.and_, operator.ior: operator.or_, operator.ixor: operator.xor,
                     operator.ilshift: operator.lshift, operator.irshift: operator.rshift}

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


def is_supported_builtin(value) -> bool:
    try:
        return value in SUPPORTED
    except TypeError:
        return False


def _all_const(args, kwargs=None) -> bool:
    return all(a.is_python_constant() for a in args) and all(v.is_python_constant() for v in (kwargs or {}).values())


def fold(fn, args, kwargs=None):
    """Run ``fn`` on constant arguments at trace time."""
    from capture.variables.builder import wrap_constant_result
    consts = [a.as_python_constant() for a in args]
    kw = {k: v.as_python_constant() for k, v in (kwargs or {}).items()}
    try:
        result = fn(*consts, **kw)
    except Exception as e:
        raise Unsupported(f"{getattr(fn, '__name__', fn)} raised {type(e).__name__}: {e}") from None
    return wrap_constant_result(result)


class BuiltinVariable(KnownObjectMixin, VariableTracker):
    def __init__(self, fn):
        self.fn = fn

    def var_getattr(self, tx, name):
        if name == "__name__":
            return ConstantVariable(self.fn.__name__)
        raise Unsupported(f"attribute {name} of builtin {self.fn}")

    def reconstruct(self, cg):
        return cg.object_ref(self.fn)

    def __repr__(self):
        return f"BuiltinVariable({getattr(self.fn, '__name__', self.fn)})"

    def call(self, tx, args, kwargs):
        fn = self.fn
        if fn in _IO_FUNCTIONS:
            raise Unsupported(f"call to {fn.__name__}() (I/O)")
        if fn in _ARITH:
            return self._operator(tx, fn, args, kwargs)
        handler = _HANDLERS.get(fn)
        if handler is not None:
            return handler(tx, *args, **kwargs)
        if getattr(fn, "__module__", None) == "math" or fn in vars(math).values():
            if _all_const(args, kwargs):
                return fold(fn, args, kwargs)
            raise Unsupported(f"math.{fn.__name__} on a non-constant")
        if _all_const(args, kwargs) and fn in (repr, format, hash, chr, ord, divmod, complex, round, pow):
            return fold(fn, args, kwargs)
        if fn is round and args and isinstance(args[0], TensorVariable) and len(args) == 1:
            return tx.output.call_graph(tx, "call_function", torch.round, args, {})
        if fn is pow and len(args) == 2:
            return self._operator(tx, operator.pow, args, {})
        raise Unsupported(f"builtin {getattr(fn, '__name__', fn)} with these arguments")

    def _operator(self, tx, fn, args, kwargs):
        if kwargs:
            raise Unsupported("operator with keyword arguments")
        if any(isinstance(a, TensorVariable) for a in args):
            if fn in (operator.not_, operator.truth):
                raise Unsupported("data-dependent control flow: truth value of a tensor")
            for a in args:
                if not isinstance(a, TensorVariable) and not _graphable(a):
                    raise Unsupported(f"{fn.__name__} between a tensor and {a}")
            return tx.output.call_graph(tx, "call_function", fn, args, {})
        if fn in (operator.not_, operator.truth):
            value = args[0].truth(tx)
            return ConstantVariable((not value) if fn is operator.not_ else value)
        if _all_const(args):
            return fold(fn, args)
        return _container_operator(tx, fn, args)


def _graphable(vt) -> bool:
    from capture.variables.lists import BaseListVariable
    if vt.is_python_constant():
        return True
    if isinstance(vt, BaseListVariable):
        return all(isinstance(i, TensorVariable) or _graphable(i) for i in vt.items)
    return False


def _container_operator(tx, fn, args):
    from capture.variables.lists import BaseListVariable, ListVariable, TupleVariable
    from capture.variables.user_object import NewObjectVariable, UserObjectVariable
    plain = _INPLACE_TO_PLAIN.get(fn, fn)
    if any(isinstance(a, (NewObjectVariable, UserObjectVariable)) for a in args):
        overloaded = _user_dunder(tx, fn, args)
        if overloaded is not None:
            return overloaded
        if fn in (operator.eq, operator.ne) and all(
                inspect_eq_is_default(a) for a in args):
            same = _is(tx, args[0], args[1])
            return ConstantVariable(same if fn is operator.eq else not same)
    if len(args) == 2:
        a, b = args
        if plain is operator.add and isinstance(a, BaseListVariable) and isinstance(b, BaseListVariable) \
                and a.python_type() is b.python_type() or (plain is operator.add and isinstance(a, TupleVariable)
                                                           and isinstance(b, TupleVariable)):
            if fn is operator.iadd and isinstance(a, ListVariable):
                a.call_method(tx, "extend", [b], {})
                return a
            return type(a)(a.items + b.items)
        if fn is operator.iadd and isinstance(a, ListVariable) and isinstance(b, BaseListVariable):
            a.call_method(tx, "extend", [b], {})
            return a
        if plain is operator.mul and isinstance(a, BaseListVariable) and b.is_python_constant():
            return type(a)(a.items * b.as_python_constant())
        if plain is operator.mul and isinstance(b, BaseListVariable) and a.is_python_constant():
            return type(b)(b.items * a.as_python_constant())
        if fn in (operator.eq, operator.ne):
            same = _structural_eq(a, b)
            if same is not None:
                return ConstantVariable(same if fn is operator.eq else not same)
        if fn in (operator.is_, operator.is_not):
            pass
    overloaded = _user_dunder(tx, fn, args)
    if overloaded is not None:
        return overloaded
    raise Unsupported(f"operator {fn.__name__} on {', '.join(map(repr, args))}")


_DUNDERS = {operator.add: "add", operator.sub: "sub", operator.mul: "mul", operator.truediv: "truediv",
            operator.floordiv: "floordiv", operator.mod: "mod", operator.pow: "pow", operator.matmul: "matmul",
            operator.and_: "and", operator.or_: "or", operator.xor: "xor", operator.lshift: "lshift",
            operator.rshift: "rshift"}
_COMPARE_DUNDERS = {operator.lt: ("lt", "gt"), operator.le: ("le", "ge"), operator.gt: ("gt", "lt"),
                    operator.ge: ("ge", "le"), operator.eq: ("eq", "eq"), operator.ne: ("ne", "ne")}


def inspect_eq_is_default(vt) -> bool:
    try:
        return vt.python_type().__eq__ is object.__eq__
    except Unsupported:
        return False


def _user_method(vt, name):
    from capture.variables.user_object import NewObjectVariable, UserObjectVariable
    if not isinstance(vt, (NewObjectVariable, UserObjectVariable)):
        return None
    attr = inspect.getattr_static(vt.python_type(), name, None)
    return attr if isinstance(attr, types.FunctionType) else None


def _user_dunder(tx, fn, args):
    """Inline a user class's operator method (``__add__``, ``__radd__``, ``__lt__`` ...)."""
    from capture.variables.functions import UserFunctionVariable
    plain = _INPLACE_TO_PLAIN.get(fn, fn)
    if len(args) == 1:
        name = {operator.neg: "neg", operator.pos: "pos", operator.invert: "invert", operator.abs: "abs"}.get(fn)
        method = _user_method(args[0], f"__{name}__") if name else None
        return UserFunctionVariable(method).call(tx, [args[0]], {}) if method else None
    a, b = args
    attempts = []
    if fn in _INPLACE_TO_PLAIN:
        attempts.append((a, f"__i{_DUNDERS[plain]}__", b))
    if plain in _DUNDERS:
        attempts += [(a, f"__{_DUNDERS[plain]}__", b), (b, f"__r{_DUNDERS[plain]}__", a)]
    elif plain in _COMPARE_DUNDERS:
        forward, reflected = _COMPARE_DUNDERS[plain]
        attempts += [(a, f"__{forward}__", b), (b, f"__{reflected}__", a)]
    for self_vt, name, other in attempts:
        method = _user_method(self_vt, name)
        if method is None:
            continue
        result = UserFunctionVariable(method).call(tx, [self_vt, other], {})
        if not (result.is_python_constant() and result.as_python_constant() is NotImplemented):
            return result
    return None


def _structural_eq(a, b):
    from capture.variables.lists import BaseListVariable, same_value
    if isinstance(a, BaseListVariable) and isinstance(b, BaseListVariable):
        if a.python_type() is not b.python_type() and not (
                issubclass(a.python_type(), tuple) and issubclass(b.python_type(), tuple)):
            return False
        if len(a.items) != len(b.items):
            return False
        for x, y in zip(a.items, b.items):
            same = _structural_eq(x, y)
            if same is None or not same:
                return same
        return True
    same = same_value(a, b)
    if same is None:
        ua, ub = _underlying(a), _underlying(b)
        if ua is not _NO and ub is not _NO:
            return ua == ub if type(ua) is type(ub) and not isinstance(ua, torch.Tensor) else None
    return same


_NO = object()


def _built_while_tracing(vt) -> bool:
    from capture.variables.misc import SuperVariable
    from capture.variables.model_output import ModelOutputVariable
    from capture.variables.user_object import NewObjectVariable
    return isinstance(vt, (NewObjectVariable, ModelOutputVariable, SuperVariable))


def _underlying(vt):
    """The real object a tracker stands for, when it is one (module, object, class)."""
    if _built_while_tracing(vt):
        return _NO  # its ``cls`` is its class, not the object
    for attr in ("module", "value", "fn", "cls"):
        if hasattr(vt, attr) and not isinstance(vt, (TensorVariable, ConstantVariable)):
            return getattr(vt, attr)
    return _NO


def _is(tx, a, b):
    if a is b:
        return True
    if a.is_python_constant() and b.is_python_constant():
        x, y = a.as_python_constant(), b.as_python_constant()
        if x is None or y is None or isinstance(x, (bool, type, enum.Enum)) or isinstance(y, (bool, type, enum.Enum)):
            return x is y
        if type(x) is not type(y):
            return False
        if type(x) in (torch.dtype, torch.device, torch.layout, torch.memory_format) or callable(x):
            return x is y if type(x) is not torch.device else x == y
    ta, tb = isinstance(a, TensorVariable), isinstance(b, TensorVariable)
    if ta and tb:
        if a.node is b.node:
            return True
        return tx.output.tensor_identity(tx, a, b)
    if ta or tb:
        return False  # a tensor is never a constant, container or module
    if _built_while_tracing(a) or _built_while_tracing(b):
        return False  # an object built in this trace is only itself (``a is b`` was checked first)
    ua, ub = _underlying(a), _underlying(b)
    if ua is not _NO and ub is not _NO:
        return ua is ub
    if a.is_python_constant() != b.is_python_constant():
        return False
    raise Unsupported(f"'is' between {a} and {b}")


# ---------------- individual builtins ----------------

def _len(tx, obj):
    if isinstance(obj, TensorVariable):
        if obj.fake.dim() == 0:
            raise Unsupported("len() of a 0-d tensor")
        return ConstantVariable(obj.fake.shape[0])
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


def _getattr(tx, obj, name, default=None):
    name = name.as_python_constant()
    try:
        return obj.var_getattr(tx, name)
    except MissingAttribute:
        if default is None:
            raise
        return default


def _hasattr(tx, obj, name):
    try:
        obj.var_getattr(tx, name.as_python_constant())
        return ConstantVariable(True)
    except MissingAttribute:
        return ConstantVariable(False)


def _setattr(tx, obj, name, value):
    setter = getattr(obj, "store_attr", None)
    if setter is None:
        raise Unsupported(f"setting attribute {name.as_python_constant()!r} on {obj}")
    setter(tx, name.as_python_constant(), value)
    return ConstantVariable(None)


def _delattr(tx, obj, name):
    raise Unsupported(f"deleting attribute {name.as_python_constant()!r}")


def _object_setattr(tx, obj, name, value):
    generic = getattr(obj, "generic_setattr", None)  # bypasses the class's own __setattr__
    if generic is not None and name.is_python_constant():
        generic(tx, name.as_python_constant(), value)
        return ConstantVariable(None)
    return _setattr(tx, obj, name, value)


def _range(tx, *args):
    return fold(range, args)


def _items_of(tx, iterable):
    return list(iterable.iter_items(tx))


def _enumerate(tx, iterable, start=None):
    from capture.variables.lists import TupleVariable, ListVariable
    first = start.as_python_constant() if start is not None else 0
    return ListVariable([TupleVariable([ConstantVariable(first + i), v])
                         for i, v in enumerate(_items_of(tx, iterable))])


def _zip(tx, *iterables, strict=None):
    from capture.variables.lists import TupleVariable, ListVariable
    columns = [_items_of(tx, it) for it in iterables]
    if strict is not None and strict.as_python_constant() and len({len(c) for c in columns}) > 1:
        raise Unsupported("zip(strict=True) with unequal lengths")
    return ListVariable([TupleVariable(list(row)) for row in zip(*columns)])


def _reversed(tx, seq):
    from capture.variables.lists import ListVariable
    return ListVariable(list(reversed(_items_of(tx, seq))))


def _sorted(tx, iterable, key=None, reverse=None):
    """Sort by constant keys (the items themselves, or what ``key`` returns for each)."""
    from capture.variables.lists import ListVariable
    items = _items_of(tx, iterable)
    if key is not None and not (key.is_python_constant() and key.as_python_constant() is None):
        keys = [key.call(tx, [i], {}) for i in items]
    else:
        keys = items
    rev = bool(reverse.as_python_constant()) if reverse is not None else False
    comparable = [_sort_key(k) for k in keys]
    order = sorted(range(len(items)), key=lambda i: comparable[i], reverse=rev)
    return ListVariable([items[i] for i in order])


class _Opaque:
    """Stands for a non-constant inside a sort key; comparing it means we cannot sort."""

    def _refuse(self, other):
        raise Unsupported("sorted() needs to compare non-constant values")
    __eq__ = __lt__ = __gt__ = __le__ = __ge__ = _refuse
    __hash__ = object.__hash__


def _sort_key(vt):
    from capture.variables.lists import BaseListVariable
    if vt.is_python_constant():
        return vt.as_python_constant()
    if isinstance(vt, BaseListVariable) and vt.python_type() is tuple:
        return tuple(_sort_key(i) for i in vt.items)
    return _Opaque()


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
    def handler(tx, *args, **kwargs):
        items = args if len(args) > 1 else _items_of(tx, args[0])
        if _all_const(items, kwargs):
            return fold(fn, list(items), kwargs)
        raise Unsupported(f"{fn.__name__}() of non-constant values")
    return handler


def _abs(tx, x):
    return BuiltinVariable(operator.abs).call(tx, [x], {})


def _sum(tx, iterable, start=None):
    items = _items_of(tx, iterable)
    if _all_const(items) and (start is None or start.is_python_constant()):
        return fold(sum, [ConstantVariable([i.as_python_constant() for i in items])] + ([start] if start else []))
    total = start if start is not None else ConstantVariable(0)
    for item in items:
        total = BuiltinVariable(operator.add).call(tx, [total, item], {})
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
        if _all_const(args, kwargs):
            return fold(fn, args, kwargs)
        raise Unsupported(f"{fn.__name__}() of {args}")
    return handler


def _tuple(tx, iterable=None):
    from capture.variables.lists import TupleVariable
    return TupleVariable(_items_of(tx, iterable) if iterable is not None else [])


def _list(tx, iterable=None):
    from capture.variables.lists import ListVariable
    return ListVariable(_items_of(tx, iterable) if iterable is not None else [])


def _dict(tx, *args, **kwargs):
    from capture.variables.dicts import DictVariable
    d = DictVariable({})
    d.call_method(tx, "update", list(args), kwargs)
    return d


def _set(tx, iterable=None):
    from capture.variables.sets import SetVariable
    return SetVariable.from_items(tx, _items_of(tx, iterable) if iterable is not None else [])


def _frozenset(tx, iterable=None):
    items = _items_of(tx, iterable) if iterable is not None else []
    return fold(frozenset, [ConstantVariable(tuple(i.as_python_constant() for i in items))])


def _type(tx, obj):
    from capture.variables.user_object import ClassVariable
    return ClassVariable(obj.python_type(), None)


def _callable(tx, obj):
    if isinstance(obj, (TensorVariable,)) or obj.is_python_constant() and not isinstance(obj, BuiltinVariable):
        return ConstantVariable(callable(obj.as_python_constant()) if obj.is_python_constant() else False)
    return ConstantVariable(hasattr(obj, "call") and type(obj).call is not VariableTracker.call)


def _iter(tx, obj):
    from capture.variables.iterators import ListIteratorVariable
    if isinstance(obj, ListIteratorVariable):
        return obj
    origin = obj.python_type() if hasattr(obj, "items") and isinstance(obj.items, list) else None
    return ListIteratorVariable(_items_of(tx, obj), origin=origin)


def _next(tx, it, default=None):
    from capture.variables.iterators import ListIteratorVariable
    if not isinstance(it, ListIteratorVariable):
        raise Unsupported(f"next() on {it}")
    item = it.next_item()
    if item is None:
        if default is None:
            raise Unsupported("next() on an exhausted iterator (StopIteration)")
        return default
    return item


def _map(tx, fn, *iterables):
    from capture.variables.lists import ListVariable
    columns = [_items_of(tx, it) for it in iterables]
    return ListVariable([fn.call(tx, list(row), {}) for row in zip(*columns)])


def _filter(tx, fn, iterable):
    from capture.variables.lists import ListVariable
    items = _items_of(tx, iterable)
    if fn.is_python_constant() and fn.as_python_constant() is None:
        return ListVariable([i for i in items if i.truth(tx)])
    return ListVariable([i for i in items if fn.call(tx, [i], {}).truth(tx)])


def _str(tx, *args):
    if args and not args[0].is_python_constant():
        raise Unsupported(f"str() of {args[0]}")
    return fold(str, args)


def _super(tx, *args):
    from capture.variables.misc import SuperVariable
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
    """id() of an object reached through a source: its identity is guarded."""
    from capture.variables.nn_module import NNModuleVariable
    from capture.variables.user_object import ClassVariable, UserObjectVariable
    real = _underlying(obj)
    if real is not _NO and obj.source is not None and isinstance(obj, (NNModuleVariable, UserObjectVariable,
                                                                       ClassVariable)):
        from guards import GuardKind
        tx.output.add_guard(tx, GuardKind.IDENTITY, obj.source, real)
        return ConstantVariable(id(real))
    raise Unsupported("id() of a value without a stable identity")


def _vars(tx, obj=None):
    from capture.sources import AttrSource
    from capture.variables.builder import wrap
    from capture.variables.user_object import UserObjectVariable
    if isinstance(obj, UserObjectVariable) and obj.source is not None and hasattr(obj.value, "__dict__"):
        return wrap(tx, obj.value.__dict__, AttrSource(obj.source, "__dict__"))
    raise Unsupported("vars() of this value")


def _slice(tx, *args):
    return fold(slice, args)


def _getitem(tx, obj, key):
    if isinstance(obj, TensorVariable):
        return tx.output.call_graph(tx, "call_function", operator.getitem, [obj, key], {})
    getitem = getattr(obj, "getitem", None)
    if getitem is not None:
        return getitem(tx, key)
    if obj.is_python_constant() and key.is_python_constant():
        return fold(operator.getitem, [obj, key])
    return obj.call_method(tx, "__getitem__", [key], {})


def _setitem(tx, obj, key, value):
    if isinstance(obj, TensorVariable):
        tx.output.call_graph(tx, "call_function", operator.setitem, [obj, key, value], {})
        return ConstantVariable(None)
    setitem = getattr(obj, "setitem", None)
    if setitem is None:
        raise Unsupported(f"item assignment on {obj}")
    setitem(tx, key, value)
    return ConstantVariable(None)


def _delitem(tx, obj, key):
    delitem = getattr(obj, "delitem", None)
    if delitem is None:
        raise Unsupported(f"item deletion on {obj}")
    delitem(tx, key)
    return ConstantVariable(None)


def _contains(tx, container, item):
    if isinstance(container, TensorVariable):
        raise Unsupported("'in' on a tensor is data-dependent")
    contains = getattr(container, "contains", None)
    if contains is not None:
        return ConstantVariable(contains(tx, item))
    if container.is_python_constant() and item.is_python_constant():
        return fold(operator.contains, [container, item])
    return container.call_method(tx, "__contains__", [item], {})


def _is_(tx, a, b):
    return ConstantVariable(_is(tx, a, b))


def _is_not(tx, a, b):
    return ConstantVariable(not _is(tx, a, b))


def _index(tx, a):
    if a.is_python_constant():
        return fold(operator.index, [a])
    raise Unsupported(f"operator.index of {a}")


def _itemgetter_call(tx, *args):
    raise Unsupported("operator.itemgetter")


_HANDLERS = {
    len: _len, isinstance: _isinstance, issubclass: _issubclass, getattr: _getattr, hasattr: _hasattr,
    setattr: _setattr, delattr: _delattr, object.__setattr__: _object_setattr, range: _range,
    enumerate: _enumerate, zip: _zip, reversed: _reversed, sorted: _sorted, min: _min_max(min),
    max: _min_max(max), abs: _abs, sum: _sum, any: _any_all(any), all: _any_all(all),
    int: _scalar(int), float: _scalar(float), bool: _scalar(bool), str: _str, tuple: _tuple, list: _list,
    dict: _dict, set: _set, frozenset: _frozenset, type: _type, callable: _callable, iter: _iter,
    next: _next, map: _map, filter: _filter, super: _super, id: _id, slice: _slice, vars: _vars,
    operator.getitem: _getitem, operator.setitem: _setitem, operator.delitem: _delitem,
    operator.contains: _contains, operator.is_: _is_, operator.is_not: _is_not, operator.index: _index,
    operator.itemgetter: _itemgetter_call, operator.attrgetter: _itemgetter_call,
    functools.reduce: _reduce,
    tuple.__new__: lambda tx, cls, iterable=None: _tuple_new(tx, cls, iterable),
}


def _tuple_new(tx, cls, iterable):
    from capture.variables.lists import TupleVariable
    t = cls.as_python_constant()
    if not (t is tuple or hasattr(t, "_fields")):
        raise Unsupported(f"tuple.__new__ of {t}")
    items = _items_of(tx, iterable) if iterable is not None else []
    return TupleVariable(items, tuple_type=None if t is tuple else t)


class BoundMethodOf(VariableTracker):
    """``obj.name`` for a container or constant, before it is called."""

    def __init__(self, obj: VariableTracker, name: str):
        self.obj = obj
        self.name = name

    def call(self, tx, args, kwargs):
        return self.obj.call_method(tx, self.name, args, kwargs)

    def reconstruct(self, cg):
        return f"{cg.reconstruct(self.obj)}.{self.name}"

    def __repr__(self):
        return f"BoundMethodOf({self.obj!r}.{self.name})"

