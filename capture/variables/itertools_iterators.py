"""``itertools`` iterators over traced values.

The real ``itertools`` function runs on Python iterators that yield *trackers* (one
per item of the traced iterables, pulled lazily), with callables that inline the
traced function (``accumulate``'s func, ``takewhile``'s predicate, ``groupby``'s key
...). So every combinatoric and infinite iterator (``count``, ``cycle``, ``islice``
of them) behaves exactly as itertools does, one item at a time; its items are the
trackers themselves, tuples of them, or plain values (``count``'s numbers).
"""
from __future__ import annotations

import itertools
import operator

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.iterators import ListIteratorVariable
from capture.variables.lists import TupleVariable
from capture.variables.operators import apply_operator

# itertools constructors and which of their positional arguments are callables
_CALLABLE_ARGS = {itertools.accumulate: (1,), itertools.starmap: (0,), itertools.takewhile: (0,),
                  itertools.dropwhile: (0,), itertools.filterfalse: (0,), itertools.groupby: (1,)}
_ITERABLE_ARGS = {itertools.accumulate: (0,), itertools.starmap: (1,), itertools.takewhile: (1,),
                  itertools.dropwhile: (1,), itertools.filterfalse: (1,), itertools.groupby: (0,),
                  itertools.islice: (0,), itertools.cycle: (0,), itertools.pairwise: (0,),
                  itertools.combinations: (0,), itertools.combinations_with_replacement: (0,),
                  itertools.permutations: (0,), itertools.compress: (0, 1)}
_MODES = {itertools.accumulate: "value", itertools.starmap: "value", itertools.groupby: "key"}
_ALL_ITERABLES = {itertools.product, itertools.chain, itertools.zip_longest}
SUPPORTED = set(_ITERABLE_ARGS) | _ALL_ITERABLES | {itertools.count, itertools.repeat}
_KEYWORDS = {"repeat", "fillvalue", "initial", "func", "key", "r"}


class PythonIteratorVariable(ListIteratorVariable):
    """A real Python iterator (an itertools object) whose items are trackers or values."""

    def __init__(self, kind: type, iterator, driver):
        super().__init__([])
        self.kind = kind
        self.iterator = iterator
        self.driver = driver  # holds the translator the next item is computed under

    def python_type(self):
        return self.kind

    def next_item(self, tx=None):
        if tx is not None:
            self.driver.tx = tx
        try:
            return to_tracker(next(self.iterator), self.driver)
        except StopIteration:
            return None

    def iter_items(self, tx):
        out = []
        while (item := self.next_item(tx)) is not None:
            out.append(item)
        return out

    def reconstruct(self, cg):
        raise Unsupported(f"an itertools.{self.kind.__name__} iterator escaping the compiled frame")

    def __repr__(self):
        return f"PythonIteratorVariable({self.kind.__name__})"


class _Driver:
    """What the real iterator calls back into: the translator of the current step."""

    def __init__(self, tx):
        self.tx = tx

    def pull(self, iterator_vt, unpack: bool = False):
        """A Python iterator over a traced iterator's items (trackers; with ``unpack``,
        tuples of the items' own items, as starmap calls with them)."""
        while (item := iterator_vt.next_item(self.tx)) is not None:
            yield tuple(item.iter_items(self.tx)) if unpack else item

    def pull_each(self, iterator_vt):
        """A Python iterator of Python iterators, one per item of a traced iterator of
        iterables (``chain.from_iterable``), each made when it is reached."""
        while (item := iterator_vt.next_item(self.tx)) is not None:
            yield self.pull(_iterator(self.tx, item))

    def callable(self, fn_vt, mode: str):
        """``fn_vt`` as a Python callable returning a truth value ("truth": predicates),
        a comparable key ("key": groupby) or the tracker itself ("value")."""
        def call(*args):
            result = fn_vt.call(self.tx, [to_tracker(a, self) for a in args], {})
            if mode == "truth":
                return result.truth(self.tx)
            return _hashable(result) if mode == "key" else result
        return call

    def add(self, a, b):
        return apply_operator(self.tx, operator.add, [to_tracker(a, self), to_tracker(b, self)], {})


def _hashable(vt):
    """groupby compares keys: constants by value, other trackers by identity."""
    return vt.as_python_constant() if vt.is_python_constant() else vt


def to_tracker(value, driver):
    if isinstance(value, VariableTracker):
        return value
    if isinstance(value, tuple):
        return TupleVariable([to_tracker(v, driver) for v in value])
    if type(value).__module__ == "itertools":  # groupby's groups
        return PythonIteratorVariable(type(value), value, driver)
    return ConstantVariable(value)


def _iterator(tx, vt):
    return vt if isinstance(vt, ListIteratorVariable) else ListIteratorVariable(list(vt.iter_items(tx)))


class ChainFromIterableVariable(VariableTracker):
    """``itertools.chain.from_iterable`` (a classmethod of a C type) before its call."""

    def call(self, tx, args, kwargs):
        if kwargs or len(args) != 1:
            raise Unsupported("chain.from_iterable with these arguments")
        driver = _Driver(tx)
        return PythonIteratorVariable(itertools.chain, itertools.chain.from_iterable(
            driver.pull_each(_iterator(tx, args[0]))), driver)

    def reconstruct(self, cg):
        return cg.object_ref(itertools.chain.from_iterable)


@builder.wraps(builder.Order.OBJECT - 1, lambda v: type(v) is type(itertools.chain.from_iterable)
               and v == itertools.chain.from_iterable)
def _wrap_chain_from_iterable(tx, value, source):
    return ChainFromIterableVariable()


@builder.constructs(builder.Order.OBJECT - 1, lambda cls: cls in SUPPORTED)
def _construct_itertools(tx, cls, args, kwargs):
    if any(k not in _KEYWORDS for k in kwargs):
        raise Unsupported(f"itertools.{cls.__name__} with keyword {next(iter(kwargs))!r}")
    driver = _Driver(tx)
    callables = _CALLABLE_ARGS.get(cls, ())
    iterables = range(len(args)) if cls in _ALL_ITERABLES else _ITERABLE_ARGS.get(cls, ())
    real_args = []
    for i, a in enumerate(args):
        if i in callables:
            none = a.is_python_constant() and a.as_python_constant() is None
            real_args.append(None if none else driver.callable(a, _MODES.get(cls, "truth")))
        elif i in iterables:
            real_args.append(driver.pull(_iterator(tx, a), unpack=cls is itertools.starmap))
        elif a.is_python_constant():
            real_args.append(a.as_python_constant())
        elif cls is itertools.repeat and i == 0:
            real_args.append(a)  # the repeated object: a tracker, handed back as it is
        else:
            raise Unsupported(f"itertools.{cls.__name__} argument {a}")
    real_kwargs = {}
    for k, v in kwargs.items():
        if k in ("func", "key"):
            real_kwargs[k] = driver.callable(v, "value" if k == "func" else "key")
        else:
            real_kwargs[k] = v if not v.is_python_constant() else v.as_python_constant()
    if cls is itertools.groupby and (len(real_args) < 2 or real_args[1] is None) and "key" not in real_kwargs:
        real_args[1:2] = [_hashable]  # items compared by value (constants), as groupby compares them
    if cls is itertools.accumulate and (len(real_args) < 2 or real_args[1] is None) and "func" not in real_kwargs:
        real_args[1:2] = [driver.add]
    return PythonIteratorVariable(cls, cls(*real_args, **real_kwargs), driver)
