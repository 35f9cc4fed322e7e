"""Operators (``operator.*``: arithmetic, comparisons, identity, items) on tracked values.

On tensors they become graph nodes; on constants they are folded at trace time; on
containers they follow Python's rules over the tracked items; on instances of user
classes they inline the class's dunder method (``__add__``, ``__radd__``, ``__lt__``...).
"""
from __future__ import annotations

import enum
import operator
import types

import torch

from capture.exc import Unsupported
from capture.variables.base import NO_OBJECT
from capture.variables.constant import ConstantVariable, fold
from capture.variables.dict_views import SET_OPERATORS, DictViewVariable
from capture.variables.functions import UserFunctionVariable
from capture.variables.keys import ObjectIdVariable
from capture.variables.lists import BaseListVariable, ListVariable, TupleVariable, same_value
from capture.variables.misc import SuperVariable
from capture.variables.model_output import ModelOutputVariable
from capture.variables.new_module import NewModuleVariable
from capture.variables.numpy_arrays import NdarrayVariable, ndarray_operator
from capture.variables.sym import SymNodeVariable, sym_operator
from capture.variables.tensor import TensorVariable
from capture.variables.type_lookup import lookup_on_type
from capture.variables.user_object import NewObjectVariable, UserObjectVariable

ARITH = {operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
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


def _all_const(args) -> bool:
    return all(a.is_python_constant() for a in args)


def is_arithmetic(fn) -> bool:
    return fn in ARITH


def apply_operator(tx, fn, args, kwargs):
    """``fn`` (one of ``ARITH``) applied to trackers."""
    if kwargs:
        raise Unsupported("operator with keyword arguments")
    if any(isinstance(a, NdarrayVariable) for a in args):
        return ndarray_operator(tx, fn, args)
    if any(isinstance(a, TensorVariable) for a in args):
        if fn in (operator.not_, operator.truth):
            raise Unsupported("data-dependent control flow: truth value of a tensor")
        for a in args:
            if not isinstance(a, TensorVariable) and not _graphable(a):
                raise Unsupported(f"{fn.__name__} between a tensor and {a}")
        if fn in _INPLACE_TO_PLAIN and not isinstance(args[0], TensorVariable):
            # `s = 0; s += t`: a number has no in-place operator, Python falls back to
            # the plain one (t.__radd__) -- and FX cannot print `0 += t`.
            fn = _INPLACE_TO_PLAIN[fn]
        return tx.output.call_graph(tx, "call_function", fn, args, {})
    if fn in (operator.not_, operator.truth):
        value = args[0].truth(tx)
        return ConstantVariable((not value) if fn is operator.not_ else value)
    if any(isinstance(a, SymNodeVariable) for a in args):
        return sym_operator(tx, fn, args)
    if _all_const(args):
        return fold(fn, args)
    return _container_operator(tx, fn, args)


def _graphable(vt) -> bool:
    if vt.is_python_constant() or isinstance(vt, SymNodeVariable):
        return True
    if isinstance(vt, BaseListVariable):
        return all(isinstance(i, TensorVariable) or _graphable(i) for i in vt.items)
    return False


def _container_operator(tx, fn, args):
    plain = _INPLACE_TO_PLAIN.get(fn, fn)
    if fn in (operator.eq, operator.ne) and isinstance(args[0], ObjectIdVariable):
        same = args[0].same_as(args[1])
        if same is not None:
            return ConstantVariable(same if fn is operator.eq else not same)
    if plain in SET_OPERATORS and len(args) == 2:
        if isinstance(args[0], DictViewVariable):
            return args[0].set_operation(tx, plain, args[1])
        if isinstance(args[1], DictViewVariable):
            return args[1].set_operation(tx, plain, args[0], reflected=True)
    if any(isinstance(a, (NewObjectVariable, UserObjectVariable)) for a in args):
        overloaded = _user_dunder(tx, fn, args)
        if overloaded is not None:
            return overloaded
        if fn in (operator.eq, operator.ne) and all(
                inspect_eq_is_default(a) for a in args):
            same = identical(tx, args[0], args[1])
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
        if fn in (operator.eq, operator.ne) and _has_sym_items(a, b):
            same = _sym_sequence_eq(tx, a, b)
            return ConstantVariable(same if fn is operator.eq else not same)
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
    if not isinstance(vt, (NewObjectVariable, UserObjectVariable, NewModuleVariable)):
        return None
    attr = lookup_on_type(vt.python_type(), name, None)
    return attr if isinstance(attr, types.FunctionType) else None


def _user_dunder(tx, fn, args):
    """Inline a user class's operator method (``__add__``, ``__radd__``, ``__lt__`` ...)."""
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


def _has_sym_items(a, b) -> bool:
    return all(isinstance(v, BaseListVariable) for v in (a, b)) and any(
        isinstance(i, SymNodeVariable) for v in (a, b) for i in v.items)


def _sym_sequence_eq(tx, a, b) -> bool:
    """``a == b`` for sequences holding symbolic sizes (``x.shape == y.shape``): item by
    item, each comparison of sizes answered for this call and guarded."""
    if not _structural_eq_types(a, b) or len(a.items) != len(b.items):
        return False
    for x, y in zip(a.items, b.items):
        if isinstance(x, SymNodeVariable) or isinstance(y, SymNodeVariable):
            if not sym_operator(tx, operator.eq, [x, y]).truth(tx):
                return False
        elif not _structural_eq(x, y):
            return False
    return True


def _structural_eq_types(a, b) -> bool:
    return a.python_type() is b.python_type() or (issubclass(a.python_type(), tuple)
                                                  and issubclass(b.python_type(), tuple))


def _structural_eq(a, b):
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
        ua, ub = a.underlying(), b.underlying()
        if ua is not NO_OBJECT and ub is not NO_OBJECT:
            return ua == ub if type(ua) is type(ub) and not isinstance(ua, torch.Tensor) else None
    return same


def _built_while_tracing(vt) -> bool:
    return isinstance(vt, (NewObjectVariable, ModelOutputVariable, SuperVariable))


def identical(tx, a, b) -> bool:
    """``a is b``, decided at trace time (guarded where it depends on the call)."""
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
    ua, ub = a.underlying(), b.underlying()
    if ua is not NO_OBJECT and ub is not NO_OBJECT:
        return ua is ub
    if a.is_python_constant() != b.is_python_constant():
        return False
    raise Unsupported(f"'is' between {a} and {b}")


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
    return ConstantVariable(identical(tx, a, b))


def _is_not(tx, a, b):
    return ConstantVariable(not identical(tx, a, b))


def _index(tx, a):
    if a.is_python_constant():
        return fold(operator.index, [a])
    raise Unsupported(f"operator.index of {a}")


def _itemgetter_call(tx, *args):
    raise Unsupported("operator.itemgetter")


HANDLERS = {
    operator.getitem: _getitem, operator.setitem: _setitem, operator.delitem: _delitem,
    operator.contains: _contains, operator.is_: _is_, operator.is_not: _is_not, operator.index: _index,
    operator.itemgetter: _itemgetter_call, operator.attrgetter: _itemgetter_call,
}

