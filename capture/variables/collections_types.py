"""``collections.deque`` and ``collections.Counter`` (and ``namedtuple`` classes made
while tracing).

A deque is a list tracker with deque's methods (``appendleft``, ``popleft``,
``rotate``, ``maxlen`` dropping items from the other end ...); a deque that existed
before the frame is mutated through the side-effect replay like a list. A Counter is a
dict tracker whose missing keys read as 0 without being inserted, whose ``update`` and
``subtract`` count, and whose other methods and operators (``most_common``, ``+``,
``&`` ...) are folded when every count is a constant. ``collections.namedtuple(...)``
with constant arguments makes its class for real (a class private to the trace, as in
capture/variables/class_builder.py).
"""
from __future__ import annotations

import collections
import operator

from capture.exc import TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, KnownObjectMixin, VariableTracker
from capture.variables.constant import ConstantVariable, fold
from capture.variables.dicts import DictVariable, _key
from capture.variables.iterators import ListIteratorVariable
from capture.variables.keys import key_expr
from capture.variables.lists import ListVariable
from capture.variables.operators import apply_operator
from capture.variables.user_object import ClassVariable
from guards import GuardKind
from guards.sources import ItemSource

_DEQUE_METHODS = {"append", "appendleft", "pop", "popleft", "extend", "extendleft", "rotate", "clear", "copy",
                  "count", "index", "remove", "reverse", "insert", "__len__", "__getitem__", "__contains__"}


class DequeVariable(ListVariable):
    def __init__(self, items, source=None, maxlen=None):
        super().__init__(items, source)
        self.maxlen = maxlen

    def python_type(self):
        return collections.deque

    def var_getattr(self, tx, name):
        if name == "maxlen":
            return ConstantVariable(self.maxlen)
        if name in _DEQUE_METHODS:
            return BoundMethodOf(self, name)
        return super().var_getattr(tx, name)

    def getitem(self, tx, key):
        if not key.is_python_constant():
            raise Unsupported("deque index that is not a constant")
        index = key.as_python_constant()
        if not isinstance(index, int):
            raise TracedRaise(TypeError(f"sequence index must be integer, not {type(index).__name__!r}"))
        try:
            return self.items[index]
        except IndexError:
            raise TracedRaise(IndexError("deque index out of range")) from None

    def _trim(self, from_left: bool):
        if self.maxlen is not None:
            while len(self.items) > self.maxlen:
                self.items.pop(0 if from_left else -1)

    def mutating_method(self, tx, name, args, kwargs):
        if kwargs:
            raise Unsupported(f"deque.{name}() with keyword arguments")
        if name == "copy":
            return DequeVariable(list(self.items), maxlen=self.maxlen)
        if name in ("pop", "popleft"):
            if args:
                raise TracedRaise(TypeError(f"deque.{name}() takes no arguments ({len(args)} given)"))
            if not self.items:
                raise TracedRaise(IndexError("pop from an empty deque"))
            self.check_mutable(tx)
            return self.items.pop(-1 if name == "pop" else 0)
        self.check_mutable(tx)
        if name == "append":
            self.items.append(args[0])
            self._trim(from_left=True)
        elif name == "appendleft":
            self.items.insert(0, args[0])
            self._trim(from_left=False)
        elif name == "extend":
            self.items.extend(args[0].iter_items(tx))
            self._trim(from_left=True)
        elif name == "extendleft":
            for item in args[0].iter_items(tx):
                self.items.insert(0, item)
            self._trim(from_left=False)
        elif name == "rotate":
            n = args[0].as_python_constant() if args else 1
            if self.items:
                n %= len(self.items)
                self.items[:] = self.items[-n:] + self.items[:-n] if n else self.items
        elif name == "insert" and self.maxlen is not None and len(self.items) >= self.maxlen:
            raise TracedRaise(IndexError("deque already at its maximum size"))
        else:
            return super().mutating_method(tx, name, args, kwargs)
        return ConstantVariable(None)

    def replay(self, target: str, temp: str) -> list[str]:
        return [f"{target}.clear()", f"{target}.extend({temp})"]

    def reconstruct(self, cg):
        if self.source is not None:
            return cg.source_expr(self.source)  # mutations were replayed onto it
        items = "[" + ", ".join(cg.reconstruct(i) for i in self.items) + "]"
        return f"{cg.object_ref(collections.deque)}({items}, {self.maxlen!r})"

    def __repr__(self):
        return f"DequeVariable({len(self.items)} items)"


class CounterVariable(DictVariable):
    def __init__(self, items: dict, source=None):
        super().__init__(items, source, dict_type=collections.Counter)

    def getitem(self, tx, key_vt):
        key = _key(tx, key_vt)
        return self.items.get(key, ConstantVariable(0))  # Counter.__missing__: 0, not inserted

    def count(self, tx, iterable, sign=1):
        """``update``/``subtract`` of a mapping (its counts) or an iterable (one each)."""
        self.check_mutable(tx)
        op = operator.add if sign > 0 else operator.sub
        if isinstance(iterable, DictVariable):
            pairs = list(iterable.items.items())
        else:
            pairs = [(_key(tx, k), ConstantVariable(1)) for k in iterable.iter_items(tx)]
        for key, n in pairs:
            self.items[key] = apply_operator(tx, op, [self.items.get(key, ConstantVariable(0)), n], {})

    def call_method(self, tx, name, args, kwargs):
        if name in ("update", "subtract"):
            for arg in args:
                self.count(tx, arg, 1 if name == "update" else -1)
            if kwargs:
                self.count(tx, DictVariable(kwargs), 1 if name == "update" else -1)
            return ConstantVariable(None)
        if name == "__getitem__":
            return self.getitem(tx, args[0])
        if name == "copy":
            return CounterVariable(self.items)
        if name in ("most_common", "elements", "total", "__add__", "__sub__", "__and__", "__or__", "__pos__",
                    "__neg__") or name not in vars(dict):
            if not self.is_python_constant():
                raise Unsupported(f"Counter.{name} of non-constant counts")
            if name == "elements":  # an iterator over the keys, each repeated by its count
                return ListIteratorVariable([ConstantVariable(k) for k in self.as_python_constant().elements()])
            return fold(getattr(collections.Counter, name), [ConstantVariable(self.as_python_constant()), *args],
                        kwargs)
        return super().call_method(tx, name, args, kwargs)

    def reconstruct(self, cg):
        if self.source is not None:
            return cg.source_expr(self.source)
        body = "{" + ", ".join(f"{key_expr(cg, k)}: {cg.reconstruct(v)}" for k, v in self.items.items()) + "}"
        return f"{cg.object_ref(collections.Counter)}({body})"


@builder.constructs(builder.Order.CONTAINER - 1, lambda cls: cls is collections.deque)
def _construct_deque(tx, cls, args, kwargs):
    iterable = args[0] if args else kwargs.get("iterable")
    maxlen_vt = args[1] if len(args) > 1 else kwargs.get("maxlen")
    maxlen = maxlen_vt.as_python_constant() if maxlen_vt is not None else None
    q = DequeVariable(list(iterable.iter_items(tx)) if iterable is not None else [], maxlen=maxlen)
    q._trim(from_left=True)
    return q


@builder.constructs(builder.Order.CONTAINER - 1, lambda cls: cls is collections.Counter)
def _construct_counter(tx, cls, args, kwargs):
    if len(args) > 1:
        raise Unsupported("Counter() with more than one positional argument")
    c = CounterVariable({})
    c.call_method(tx, "update", list(args), kwargs)
    c.mutated = False
    return c


@builder.wraps_result(builder.Order.CONTAINER - 1, lambda v: type(v) is collections.Counter)
def _counter_result(value):
    return CounterVariable({k: builder.wrap_constant_result(v) for k, v in value.items()})


@builder.wraps(builder.Order.CONTAINER - 1, lambda v: type(v) is collections.deque)
def _wrap_deque(tx, value, source):
    builder.guard(tx, source, GuardKind.TYPE, collections.deque)
    builder.guard(tx, source, GuardKind.LENGTH, len(value))
    if value.maxlen is not None:
        raise Unsupported("a deque with maxlen that existed before the frame")
    items = [builder.wrap(tx, v, ItemSource(source, i) if source is not None else None) for i, v in enumerate(value)]
    q = DequeVariable(items, source)
    return tx.output.side_effects.track(value, q) if source is not None else q


class NamedTupleFactoryVariable(KnownObjectMixin, VariableTracker):
    """``collections.namedtuple``: with constant arguments, the class is made for real."""

    fn = collections.namedtuple

    def call(self, tx, args, kwargs):
        if not all(a.is_python_constant() for a in args) or not all(v.is_python_constant() for v in kwargs.values()):
            raise Unsupported("collections.namedtuple with non-constant arguments")
        cls = collections.namedtuple(*[a.as_python_constant() for a in args],
                                     **{k: v.as_python_constant() for k, v in kwargs.items()})
        tx.output.add_local_object(cls)
        return ClassVariable(cls)


@builder.wraps(builder.Order.FUNCTION - 1, lambda v: v is collections.namedtuple)
def _wrap_namedtuple_factory(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return NamedTupleFactoryVariable()
