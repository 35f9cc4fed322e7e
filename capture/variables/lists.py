"""Tuples (incl. namedtuples, torch.Size, structseqs) and lists."""
from __future__ import annotations

import torch

from capture.exc import MissingAttribute, TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable, fold
from guards import GuardKind
from guards.sources import ItemSource


def is_namedtuple_type(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def is_structseq_type(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "n_sequence_fields")


def same_value(a: VariableTracker, b: VariableTracker) -> bool | None:
    """Whether two trackers are the same Python value, or None if unknowable."""
    if a is b:
        return True
    if a.is_python_constant() and b.is_python_constant():
        return a.as_python_constant() == b.as_python_constant()
    return None


class BaseListVariable(VariableTracker):
    container_type = tuple

    def __init__(self, items, source=None, tuple_type=None):
        self.items = list(items)
        self.source = source
        self.tuple_type = tuple_type  # namedtuple / torch.Size / structseq class, or None

    def python_type(self):
        return self.tuple_type or self.container_type

    def children(self):
        return tuple(self.items)

    def is_python_constant(self):
        return all(i.is_python_constant() for i in self.items)

    def as_python_constant(self):
        values = [i.as_python_constant() for i in self.items]
        return self._rebuild(values)

    def _rebuild(self, values):
        t = self.python_type()
        if is_namedtuple_type(t):
            return t(*values)
        return t(values)

    def iter_items(self, tx):
        return list(self.items)

    def truth(self, tx):
        return len(self.items) > 0

    def getitem(self, tx, key: VariableTracker):
        k = key.as_python_constant()
        if isinstance(k, slice):
            return type(self)(self.items[k], tuple_type=self.tuple_type if self.tuple_type is torch.Size else None)
        try:
            return self.items[k]
        except IndexError:
            raise TracedRaise(IndexError(f"{self.container_type.__name__} index out of range")) from None
        except TypeError as e:
            raise Unsupported(f"{type(e).__name__} indexing {self}") from None

    def contains(self, tx, item):
        for existing in self.items:
            same = same_value(existing, item)
            if same is None:
                raise Unsupported(f"'in' test needing tensor comparison on {self}")
            if same:
                return True
        return False

    def var_getattr(self, tx, name):
        t = self.python_type()
        if (is_namedtuple_type(t) or is_structseq_type(t)) and name in _field_names(t):
            return self.items[_field_names(t).index(name)]
        if not hasattr(t, name):
            raise MissingAttribute(f"{t.__name__!r} object has no attribute {name!r}")
        if is_namedtuple_type(t) and not callable(getattr(t, name)):  # _fields, _field_defaults
            return builder.wrap_constant_result(getattr(t, name))
        return BoundMethodOf(self, name)

    def call_method(self, tx, name, args, kwargs):
        consts = [a.as_python_constant() for a in args if a.is_python_constant()]
        if name == "__len__":
            return ConstantVariable(len(self.items))
        if name == "__getitem__":
            return self.getitem(tx, args[0])
        if name == "__contains__":
            return ConstantVariable(self.contains(tx, args[0]))
        if name == "index" and len(consts) == len(args) == 1:
            for i, item in enumerate(self.items):
                if same_value(item, args[0]):
                    return ConstantVariable(i)
            raise Unsupported("list.index of a missing value")
        if name == "count" and len(consts) == len(args) == 1:
            return ConstantVariable(sum(1 for i in self.items if same_value(i, args[0])))
        if name == "numel" and self.tuple_type is torch.Size and not args:
            return ConstantVariable(self.as_python_constant().numel())
        if name == "_asdict" and is_namedtuple_type(self.python_type()):  # dict(zip(self._fields, self))
            pairs = [TupleVariable([ConstantVariable(k), v]) for k, v in zip(self.python_type()._fields, self.items)]
            return builder.construct(tx, dict, [ListVariable(pairs)], {})
        if name == "_replace" and is_namedtuple_type(self.python_type()):
            fields = list(self.python_type()._fields)
            items = list(self.items)
            for k, v in kwargs.items():
                items[fields.index(k)] = v
            return TupleVariable(items, tuple_type=self.tuple_type)
        return self.mutating_method(tx, name, args, kwargs)

    def mutating_method(self, tx, name, args, kwargs):
        raise Unsupported(f"method {name} of {self.python_type().__name__}")

    def reconstruct(self, cg):
        if self.source is not None:
            return cg.source_expr(self.source)  # mutations were replayed onto it
        parts = [cg.reconstruct(i) for i in self.items]
        t = self.python_type()
        if t is list:
            return "[" + ", ".join(parts) + "]"
        tup = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        if t is tuple:
            return tup
        if is_namedtuple_type(t):
            # tuple.__new__ runs no Python frame (a namedtuple's own __new__ would be hooked)
            return f"{cg.object_ref(tuple.__new__)}({cg.object_ref(t)}, {tup})"
        return f"{cg.object_ref(t)}({tup})"

    def __repr__(self):
        return f"{self.python_type().__name__}{self.items!r}"


def _field_names(t) -> list:
    if is_namedtuple_type(t):
        return list(t._fields)
    # structseq (torch.return_types.*): __match_args__ lists the fields in order
    return list(getattr(t, "__match_args__", ()))


class TupleVariable(BaseListVariable):
    container_type = tuple


class ListVariable(BaseListVariable):
    container_type = list

    def __init__(self, items, source=None, tuple_type=None):
        super().__init__(items, source, None)
        self.mutated = False

    def check_mutable(self, tx):
        if self.source is not None and not self.mutated:
            tx.output.side_effects.mutated_container(self)
        self.mutated = True

    def replay(self, target: str, temp: str) -> list[str]:
        """Statements putting the final items ``temp`` into the real list ``target``."""
        return [f"{target}[:] = {temp}"]

    def setitem(self, tx, key, value):
        self.check_mutable(tx)
        k = key.as_python_constant()
        if isinstance(k, slice):
            self.items[k] = value.iter_items(tx)
        else:
            self.items[k] = value

    def delitem(self, tx, key):
        self.check_mutable(tx)
        del self.items[key.as_python_constant()]

    def mutating_method(self, tx, name, args, kwargs):
        if name == "copy":
            return ListVariable(list(self.items))
        self.check_mutable(tx)
        if name == "append":
            self.items.append(args[0])
        elif name == "extend":
            self.items.extend(args[0].iter_items(tx))
        elif name == "insert":
            self.items.insert(args[0].as_python_constant(), args[1])
        elif name == "pop":
            index = args[0].as_python_constant() if args else -1
            return self.items.pop(index)
        elif name == "clear":
            self.items.clear()
        elif name == "reverse":
            self.items.reverse()
        elif name == "remove":
            for i, item in enumerate(self.items):
                if same_value(item, args[0]):
                    del self.items[i]
                    break
            else:
                raise Unsupported("list.remove of a missing value")
        elif name == "sort" and not args:
            self.items = sort_items(tx, self.items, kwargs.get("key"), kwargs.get("reverse"))
        elif name == "__setitem__":
            self.setitem(tx, args[0], args[1])
        else:
            raise Unsupported(f"method {name} of list")
        return ConstantVariable(None)


# ---- sorting by constant keys (list.sort, sorted, min/max with key) ----

def sort_keys(tx, items: list, key) -> list:
    """What the items are compared by: themselves, or what ``key`` returns for each."""
    if key is not None and not (key.is_python_constant() and key.as_python_constant() is None):
        return [key.call(tx, [i], {}) for i in items]
    return list(items)


def sort_items(tx, items: list, key=None, reverse=None) -> list:
    """The items sorted (stably) by constant keys, as ``sorted`` would."""
    comparable = [_comparable(k) for k in sort_keys(tx, items, key)]
    rev = bool(reverse.as_python_constant()) if reverse is not None else False
    order = sorted(range(len(items)), key=lambda i: comparable[i], reverse=rev)
    return [items[i] for i in order]


class _Opaque:
    """Stands for a non-constant inside a sort key; comparing it means we cannot sort."""

    def _refuse(self, other):
        raise Unsupported("sorting needs to compare non-constant values")
    __eq__ = __lt__ = __gt__ = __le__ = __ge__ = _refuse
    __hash__ = object.__hash__


def _comparable(vt):
    if vt.is_python_constant():
        return vt.as_python_constant()
    if isinstance(vt, BaseListVariable) and vt.python_type() is tuple:
        return tuple(_comparable(i) for i in vt.items)
    return _Opaque()


def extreme(tx, fn, items: list, key=None):
    """``min``/``max`` (``fn``) of items by constant keys: the first extreme item."""
    comparable = [_comparable(k) for k in sort_keys(tx, items, key)]
    best = fn(range(len(items)), key=lambda i: comparable[i])
    return items[best]


# ---- how real values become lists and tuples ----

def _is_sequence(value) -> bool:
    vtype = type(value)
    return vtype in (tuple, list, torch.Size) or (isinstance(value, tuple) and hasattr(vtype, "_fields"))


@builder.wraps(builder.Order.CONTAINER, _is_sequence)
def _wrap_sequence(tx, value, source):
    vtype = type(value)
    builder.guard(tx, source, GuardKind.TYPE, vtype)
    builder.guard(tx, source, GuardKind.LENGTH, len(value))
    items = [builder.wrap(tx, v, ItemSource(source, i) if source is not None else None) for i, v in enumerate(value)]
    if vtype is list:
        return tx.output.side_effects.track(value, ListVariable(items, source)) if source is not None \
            else ListVariable(items, source)
    return TupleVariable(items, source, tuple_type=None if vtype is tuple else vtype)


@builder.wraps_result(builder.Order.CONTAINER, lambda v: type(v) in (torch.Size, tuple, list) or (
        isinstance(v, tuple) and hasattr(type(v), "_fields")))
def _sequence_result(value):
    if type(value) is torch.Size:
        return TupleVariable([builder.wrap_constant_result(v) for v in value], tuple_type=torch.Size)
    items = [builder.wrap_constant_result(v) for v in value]
    if type(value) is list:
        return ListVariable(items)
    return TupleVariable(items, tuple_type=None if type(value) is tuple else type(value))


@builder.constructs(builder.Order.CONTAINER, is_namedtuple_type)
def _construct_namedtuple(tx, cls, args, kwargs):
    fields = list(cls._fields)
    values = list(args) + [None] * (len(fields) - len(args))
    for k, v in kwargs.items():
        values[fields.index(k)] = v
    for i, f in enumerate(fields):
        if values[i] is None:
            if f not in cls._field_defaults:
                raise Unsupported(f"{cls.__name__}() missing field {f!r}")
            values[i] = ConstantVariable(cls._field_defaults[f])
    return TupleVariable(values, tuple_type=cls)


_SCALAR_CLASSES = (torch.Size, torch.device, torch.dtype, torch.finfo, torch.iinfo)


@builder.constructs(builder.Order.CONTAINER, lambda cls: cls in _SCALAR_CLASSES or issubclass(cls, (int, float, str)))
def _construct_scalar(tx, cls, args, kwargs):
    """torch.Size(...), torch.device(...), int subclasses ...: folded; Size of traced items."""
    if all(a.is_python_constant() for a in args) and all(v.is_python_constant() for v in kwargs.values()):
        return fold(cls, args, kwargs)
    if cls is torch.Size:
        return TupleVariable(list(args[0].iter_items(tx)), tuple_type=torch.Size)
    raise Unsupported(f"{cls.__name__}() of non-constants")
