"""How real Python values become trackers: three dispatch tables.

* ``wrap(tx, value, source)``: a value read from the frame through ``source`` (None
  for values with nothing to guard, e.g. builtins). Each rule adds the guards that keep
  our use of the value valid on later calls: a constant's value, a container's type and
  length, a module's or function's identity, a tensor's metadata.
* ``wrap_constant_result(value)``: a value computed at trace time (no source, no guards).
* ``construct(tx, cls, args, kwargs)``: a class called while tracing.

Each tracker module registers the rules for the trackers it defines (``@wraps``,
``@wraps_result``, ``@constructs``); ``capture/variables/__init__.py`` imports every
tracker module, so the tables are complete once the package is imported. Rules are
tried in ``order`` (lowest first, see ``Order``); the first whose ``when`` matches
builds the tracker. This module imports no tracker module: any tracker can call
``wrap`` without an import cycle.
"""
from __future__ import annotations

import collections
import dataclasses
import enum
from typing import Callable

from capture.exc import Unsupported


class Order(enum.IntEnum):
    """Where a rule sits in its table. Only overlapping rules need a relative order;
    these are the ones that do, named after what they catch."""

    FIRST = 0  # before every other rule of its table (builtin classes when a class is called)
    TENSOR = 10  # tensors before anything generic (a tensor subclass is a user object too)
    ENVIRON = 20  # os.environ is a mapping with a type of its own
    LITERAL = 30
    CONTAINER = 50  # tuples, lists, dicts (after literals: a tuple of literals is a tuple)
    MODULE = 60  # nn.Module instances, before the callables below (a module is callable)
    COMPILED = 70  # a function made by capture.compile: its original function
    BUILTIN = 80  # builtins before classes: ``int`` is a supported builtin, not a user class
    TORCH = 90
    FUNCTION = 100
    CLASS = 110
    OBJECT = 120  # special objects (partials, grad-mode restorers, C callables)
    FALLBACK = 1000  # anything else: an instance of a user class


@dataclasses.dataclass(frozen=True)
class Rule:
    order: int
    when: Callable  # value (or class) -> bool
    build: Callable
    name: str
    takes_source: bool = False  # construct rules: build(..., cls_source=) gets the class's source


_WRAP: list[Rule] = []
_RESULT: list[Rule] = []
_CONSTRUCT: list[Rule] = []


def _register(table: list, order: int, when: Callable, takes_source: bool = False):
    def register(build):
        table.append(Rule(int(order), when, build, f"{build.__module__}.{build.__qualname__}", takes_source))
        table.sort(key=lambda r: r.order)  # stable: rules of one order keep registration order
        return build
    return register


def wraps(order: int, when: Callable):
    """Register ``build(tx, value, source)`` for values read through a source."""
    return _register(_WRAP, order, when)


def wraps_result(order: int, when: Callable):
    """Register ``build(value)`` for values computed at trace time."""
    return _register(_RESULT, order, when)


def constructs(order: int, when: Callable, takes_source: bool = False):
    """Register ``build(tx, cls, args, kwargs)`` for calls of classes matching ``when(cls)``
    (``takes_source``: also ``cls_source=``, where the class was read, for guards)."""
    return _register(_CONSTRUCT, order, when, takes_source)


def rules() -> dict:
    """The three tables, in the order rules are tried (for docs and tests)."""
    return {"wrap": list(_WRAP), "wrap_constant_result": list(_RESULT), "construct": list(_CONSTRUCT)}


def guard(tx, source, kind, expected):
    """Guard ``source``'s value (nothing to guard without a source)."""
    if source is not None:
        tx.output.add_guard(tx, kind, source, expected)


_MUTABLE_CONTAINERS = (list, dict, collections.OrderedDict)


def wrap(tx, value, source):
    """Tracker for ``value`` read through ``source`` (None: no guards, e.g. builtins)."""
    if type(value) in _MUTABLE_CONTAINERS and source is not None:
        known = tx.output.side_effects.tracked(value)
        if known is not None:
            return known  # the same object read again (or through an alias): same state
    for rule in _WRAP:
        if rule.when(value):
            return rule.build(tx, value, source)
    raise Unsupported(f"value of type {type(value).__name__}")


def wrap_constant_result(value):
    """Tracker for a value computed at trace time (no source, so no guards)."""
    for rule in _RESULT:
        if rule.when(value):
            return rule.build(value)
    raise Unsupported(f"value of type {type(value).__name__} computed while tracing")


def construct(tx, cls: type, args: list, kwargs: dict, cls_source=None):
    """What calling ``cls`` (read through ``cls_source``) while tracing makes."""
    for rule in _CONSTRUCT:
        if rule.when(cls):
            if rule.takes_source:
                return rule.build(tx, cls, args, kwargs, cls_source=cls_source)
            return rule.build(tx, cls, args, kwargs)
    raise Unsupported(f"constructing {cls.__module__}.{cls.__qualname__} inside a compiled function")
