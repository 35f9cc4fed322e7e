"""Family "classes": class attributes read through cls / type(self) / __class__ and
changed between calls (guards), inheritance and super(), properties, __call__,
operator overloading, ModelOutput-like dict subclasses."""
from __future__ import annotations

import collections

import torch
from torch import nn

from bench.semantics.corpus import program

F = "classes"


class Scaled(nn.Module):
    SCALE = 2.0

    @classmethod
    def factor(cls):
        return cls.SCALE

    def forward(self, x):
        return x * self.factor() + type(self).SCALE + self.__class__.SCALE


SCALED = Scaled()


class Counter:
    created = 0

    def __init__(self):
        type(self).created += 0  # reads through type(self)

    @classmethod
    def make(cls):
        return cls()


class Vec:
    def __init__(self, t):
        self.t = t

    def __add__(self, other):
        return Vec(self.t + (other.t if isinstance(other, Vec) else other))

    def __radd__(self, other):
        return Vec(self.t + other)

    def __mul__(self, k):
        return Vec(self.t * k)

    def __neg__(self):
        return Vec(-self.t)

    def __len__(self):
        return self.t.shape[0]

    def __getitem__(self, i):
        return self.t[i]

    def __call__(self, k):
        return self.t * k


class Base(nn.Module):
    def forward(self, x):
        return self.act(x) + 1

    def act(self, x):
        return x.relu()


class Child(Base):
    def act(self, x):
        return super().act(x) * 2


class Output(collections.OrderedDict):
    """Like transformers' ModelOutput: a dict whose items are also attributes."""

    def __init__(self, **kw):
        super().__init__(**kw)
        for k, v in kw.items():
            object.__setattr__(self, k, v)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        object.__setattr__(self, key, value)


def _scale_state():
    return Scaled.SCALE


def _scale_reset():
    Scaled.SCALE = 2.0


@program(F, state=_scale_state, reset=_scale_reset)
def class_attr_through_cls_type_and_dunder_class(x):
    return SCALED(x)


def _scale_change():
    Scaled.SCALE = 5.0


@program(F, state=_scale_state, reset=_scale_reset, between=_scale_change)
def class_attr_changed_between_calls(x):
    return SCALED(x)


class Plain:
    K = 1.0

    @classmethod
    def k(cls):
        return cls.K

    def get(self):
        return self.K


def _plain_reset():
    Plain.K = 1.0


def _plain_change():
    Plain.K = 3.0


@program(F, reset=_plain_reset, between=_plain_change)
def class_attr_of_object_made_inside_changed_between_calls(x):
    p = Plain()
    return x * p.k() + p.get()


@program(F)
def classmethod_constructor(x):
    return x + isinstance(Counter.make(), Counter)


@program(F)
def operator_overloads(x):
    v = Vec(x)
    w = v + 1
    u = 2 + v
    return (w + u).t, (-v).t, (v * 3).t


@program(F)
def len_getitem_call_dunders(x):
    v = Vec(x)
    return v[0] * len(v) + v(2)


@program(F)
def inheritance_with_super(x):
    return Child()(x)


@program(F)
def isinstance_of_subclass_instance(x):
    c = Child()
    return x + isinstance(c, Base) + isinstance(c, nn.Module) + (type(c) is Child)


@program(F)
def dict_subclass_built_and_read(x):
    o = Output(a=x, b=x * 2)
    o["c"] = x + 1
    return o.a + o["b"] + o.c, list(o.keys())


@program(F)
def dict_subclass_returned(x):
    return Output(logits=x * 2)


@program(F)
def class_attribute_default_overridden_by_instance(x):
    class K:
        v = 1
    k = K()
    k.v = 5
    return x * k.v + K.v


@program(F)
def mro_and_name(x):
    return x * len(Child.__mro__) + len(Child.__name__)


@program(F)
def getattr_on_class(x):
    return x * getattr(Scaled, "SCALE") + getattr(Scaled, "MISSING", 1)


@program(F)
def enum_members(x):
    import enum

    class Mode(enum.Enum):
        A = 1
        B = 2
    return x * Mode.B.value + (Mode.A is Mode["A"]) + len(list(Mode))


@program(F)
def str_format_of_objects(x):
    s = f"{x.shape[0]}-{'abc'}-{3.5:.1f}"
    return x * len(s), s


@program(F)
def repr_of_simple_objects(x):
    return x * len(repr((1, "a", None))), repr([1.5])


# ---- held-out variants: dict subclasses and class attributes ----

class Record(collections.OrderedDict):
    """ModelOutput-like: items mirrored as attributes, a Python to_tuple."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def to_tuple(self):
        return tuple(self[k] for k in self.keys())


class Registry:
    count = 0

    @classmethod
    def bump(cls):
        cls.count += 1
        return cls.count


def _registry_state():
    return Registry.count


def _registry_reset():
    Registry.count = 0


@program(F)
def dict_subclass_filled_in_a_loop(x):
    r = Record()
    for i, name in enumerate(("a", "b", "c")):
        r[name] = x * i
    return r.to_tuple(), r.b, len(r), "b" in r


@program(F)
def dict_subclass_update_pop_and_get(x):
    r = Record()
    r["a"] = x
    r.update(b=x + 1)
    popped = r.pop("a")
    return popped + r.get("b") + r.get("zz", 0), list(r.items())


@program(F)
def dict_subclass_returned_with_attributes(x):
    r = Record()
    r["logits"] = x * 2
    r["hidden"] = x - 1
    return r


@program(F, state=_registry_state, reset=_registry_reset)
def class_attribute_incremented_through_cls(x):
    return x * Registry.bump()


# ---- held-out variants: super() objects living across a graph break ----

class _Scaled(nn.Module):
    def forward(self, t):
        return t * 2


class _Shifted(_Scaled):
    def forward(self, t):
        s = super()
        y = t.sin()
        print("between")
        return s.forward(y) + 1, type(s).__name__


_SHIFTED = _Shifted()


@program(F, tc_whole=False)
def super_object_kept_across_break(x):
    return _SHIFTED(x)
