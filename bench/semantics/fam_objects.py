"""Family "objects": default equality and hash of user objects, hasattr/getattr on
torch objects and configs, classes (plain and nn.Module) defined inside the function."""
from __future__ import annotations

import torch
from torch import nn

from bench.semantics.corpus import program

F = "objects"


class Plain:
    def __init__(self, v=1):
        self.v = v


class WithEq:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return isinstance(other, WithEq) and self.v == other.v

    def __hash__(self):
        return hash(self.v)


class Config:
    hidden = 4
    use_bias = True

    def __init__(self):
        self.scale = 2.0


CONFIG = Config()


@program(F)
def default_eq_is_identity(x):
    a, b = Plain(), Plain()
    return x + (a == b) + (a == a) + (a != b)


@program(F)
def default_eq_of_existing_objects(x):
    return x * (CONFIG == CONFIG) + (CONFIG != Config)


@program(F)
def custom_eq_compares_values(x):
    return x + (WithEq(1) == WithEq(1)) + (WithEq(1) == WithEq(2))


@program(F)
def default_hash_in_set(x):
    a, b = Plain(), Plain()
    s = {a, b, a}
    return x * len(s)


@program(F)
def default_hash_as_dict_key(x):
    a = Plain(3)
    d = {a: x}
    return d[a] + a.v


@program(F)
def custom_hash_dedups(x):
    s = {WithEq(1), WithEq(1), WithEq(2)}
    return x * len(s)


@program(F)
def is_and_is_not(x):
    a, b = Plain(), Plain()
    c = a
    return x + (a is c) + (a is not b)


@program(F)
def hasattr_torch_size_fields(x):
    return x + hasattr(x.shape, "_fields") + hasattr(x.shape, "numel")


@program(F)
def hasattr_tensor_attributes(x):
    return x + hasattr(x, "grad") + hasattr(x, "no_such_thing") + hasattr(x, "shape")


@program(F)
def hasattr_module_attributes(x):
    m = LINEAR
    return x + hasattr(m, "weight") + hasattr(m, "missing") + hasattr(m, "in_features")


LINEAR = nn.Linear(3, 3)


@program(F)
def hasattr_dtype_and_device(x):
    return x + hasattr(x.dtype, "is_floating_point") + hasattr(x.device, "type") + hasattr(x.dtype, "nope")


@program(F)
def getattr_config_default_missing(x):
    return x * getattr(CONFIG, "missing_option", 3) + getattr(CONFIG, "hidden", 0)


@program(F)
def getattr_config_instance_and_class(x):
    return x * CONFIG.scale + CONFIG.hidden + getattr(CONFIG, "use_bias")


@program(F)
def getattr_missing_raises(x):
    return x + getattr(CONFIG, "not_there")


@program(F)
def getattr_default_none_then_branch(x):
    act = getattr(CONFIG, "activation", None)
    if act is None:
        return x.relu()
    return x


@program(F)
def getattr_module_default(x):
    bias = getattr(LINEAR, "bias", None)
    extra = getattr(LINEAR, "extra_thing", None)
    return LINEAR(x) + (bias is not None) + (extra is None)


@program(F)
def class_defined_inside(x):
    class Point:
        def __init__(self, a, b):
            self.a, self.b = a, b

        def total(self):
            return self.a + self.b
    p = Point(x, 2)
    return p.total()


@program(F)
def class_inside_with_class_attr(x):
    class K:
        scale = 3

        def apply(self, t):
            return t * self.scale
    return K().apply(x)


@program(F)
def class_inside_with_inheritance(x):
    class A:
        def f(self, t):
            return t + 1

    class B(A):
        def f(self, t):
            return super().f(t) * 2
    return B().f(x)


@program(F)
def module_subclass_defined_inside(x):
    class Double(nn.Module):
        def forward(self, t):
            return t * 2
    return Double()(x)


@program(F)
def module_subclass_inside_with_param_free_init(x):
    class Scale(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, t):
            return t * self.k
    return Scale(3)(x) + Scale(1)(x)


@program(F)
def builtin_module_built_inside(x):
    act = nn.ReLU()
    return act(x - 0.5)


@program(F)
def dataclass_built_inside(x):
    import dataclasses

    @dataclasses.dataclass
    class Out:
        a: torch.Tensor
        b: int = 2
    o = Out(x)
    return o.a * o.b


@program(F)
def object_returned_from_function(x):
    p = Plain(x * 2)
    return p


@program(F)
def setattr_getattr_delattr_on_new_object(x):
    p = Plain(1)
    setattr(p, "w", x)
    y = getattr(p, "w") + p.v
    delattr(p, "w")
    return y, hasattr(p, "w")


@program(F)
def vars_of_new_object(x):
    p = Plain(2)
    p.extra = 3
    return x * sum(vars(p).values())


@program(F)
def type_name_of_objects(x):
    return x + len(type(Plain()).__name__) + len(type(x).__name__)


@program(F)
def isinstance_checks(x):
    p = Plain()
    return x + isinstance(p, Plain) + isinstance(p, (int, Plain)) + isinstance(x, torch.Tensor) \
        + issubclass(WithEq, object)


@program(F)
def callable_checks(x):
    return x + callable(Plain) + callable(Plain()) + callable(LINEAR) + callable(len)


@program(F)
def id_of_new_objects_differs(x):
    a, b = Plain(), Plain()
    return x + (id(a) != id(b)) + (id(a) == id(a))


@program(F)
def object_with_slots(x):
    class S:
        __slots__ = ("a",)

        def __init__(self, a):
            self.a = a
    return S(x).a + 1


@program(F)
def property_on_class_inside(x):
    class P:
        def __init__(self, t):
            self._t = t

        @property
        def doubled(self):
            return self._t * 2
    return P(x).doubled


@program(F)
def staticmethod_and_classmethod_inside(x):
    class C:
        k = 5

        @staticmethod
        def s(t):
            return t + 1

        @classmethod
        def c(cls, t):
            return t * cls.k
    return C.s(x) + C.c(x) + C().c(x)


# ---- held-out variants: classes and modules made inside the frame ----

@program(F)
def class_inside_closes_over_tensor(x):
    w = x * 2

    class Shift:
        def __init__(self, k):
            self.k = k

        def apply(self, t):
            return t + w * self.k
    return Shift(3).apply(x)


@program(F)
def class_inside_method_updates_enclosing_cell(x):
    calls = 0

    class Counted:
        def run(self, t):
            nonlocal calls
            calls += 1
            return t * calls
    c = Counted()
    return c.run(x) + c.run(x), calls


@program(F)
def class_inside_three_level_super_init(x):
    class A:
        def __init__(self, t):
            self.t = t

    class B(A):
        def __init__(self, t, k):
            super().__init__(t * k)
            self.k = k

    class C(B):
        def __init__(self, t):
            super().__init__(t, 3)

        def total(self):
            return self.t + self.k
    return C(x).total()


@program(F)
def dataclass_frozen_inside(x):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Pair:
        a: torch.Tensor
        b: float = 0.5
    p = Pair(x)
    try:
        p.b = 2.0
    except dataclasses.FrozenInstanceError:
        pass
    return p.a * p.b


@program(F)
def dataclass_default_factory_and_post_init(x):
    import dataclasses

    @dataclasses.dataclass
    class Acc:
        items: list = dataclasses.field(default_factory=list)

        def __post_init__(self):
            self.items.append(1)
    a = Acc()
    a.items.append(2)
    return x * sum(a.items)


@program(F)
def property_setter_on_class_inside(x):
    class Box:
        def __init__(self):
            self._v = 1

        @property
        def v(self):
            return self._v

        @v.setter
        def v(self, value):
            self._v = value * 2
    b = Box()
    b.v = 3
    return x * b.v


@program(F)
def slots_class_inside_unset_slot(x):
    class S:
        __slots__ = ("a", "b")

        def __init__(self, a):
            self.a = a
    s = S(x)
    return s.a + hasattr(s, "b")


@program(F)
def cached_property_on_class_inside(x):
    import functools

    class Lazy:
        def __init__(self, t):
            self.t = t
            self.computed = 0

        @functools.cached_property
        def double(self):
            self.computed += 1
            return self.t * 2
    z = Lazy(x)
    return z.double + z.double, z.computed


@program(F)
def sequential_built_inside(x):
    return nn.Sequential(nn.ReLU(), nn.Tanh())(x - 0.2)


@program(F)
def module_list_built_inside_iterated(x):
    layers = nn.ModuleList([nn.ReLU(), nn.Sigmoid()])
    for layer in layers:
        x = layer(x)
    return x, len(layers)


@program(F)
def module_inside_with_buffer_and_children(x):
    class Block(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.register_buffer("scale", scale)
            self.act = nn.GELU()
            self.gate = nn.Sigmoid()

        def forward(self, t):
            names = [name for name, _ in self.named_children()]
            return self.gate(self.act(t * self.scale)), names, self.training
    return Block(x.abs() + 1)(x)


@program(F)
def module_class_inside_calls_helper_module(x):
    class Inner(nn.Module):
        def forward(self, t):
            return t.relu() + 1

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, t):
            return self.inner(t) * 2
    return Outer()(x)


# ---- held-out variants: identity hashing, id(), vars(), hasattr on tensors ----

@program(F)
def object_keys_iterated_and_popped(x):
    a, b, c = Plain(1), Plain(2), Plain(3)
    d = {a: x, b: x + 1}
    d[c] = x * 2
    d[a] = d[a] + 1
    popped = d.pop(b)
    return [k.v for k in d], popped, (b in d), (c in d)


@program(F)
def set_of_objects_add_discard_len(x):
    a, b = Plain(), Plain()
    s = {a}
    s.add(b)
    s.add(a)
    n = len(s)
    s.discard(a)
    return x * n + len(s), (b in s), (a in s)


@program(F)
def module_and_function_as_dict_keys(x):
    table = {LINEAR: 2, torch.relu: 3}
    return x * table[LINEAR] + table[torch.relu]


@program(F)
def dedup_by_id_seen_set(x):
    a, b = Plain(2), Plain(3)
    seen, total = set(), 0
    for obj in (a, b, a, b, a):
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += obj.v
    return x * total, len(seen)


@program(F)
def vars_written_through(x):
    p = Plain(1)
    vars(p)["w"] = x * 3
    vars(p).update(v=5)
    return p.w + p.v, sorted(vars(p))


def _tagged_tensor():
    t = torch.randn(3)
    t.tag = "mine"
    return (t,)


@program(F, inputs=_tagged_tensor)
def hasattr_tensor_instance_attribute(x):
    return x * (hasattr(x, "tag") + 2 * hasattr(x, "other")) + hasattr(x * 2, "tag")


@program(F)
def unhashable_key_raises_type_error(x):
    try:
        {[1]: x}
    except TypeError as e:
        return x + len(str(e))
    return x


@program(F)
def custom_hash_objects_as_keys_and_members(x):
    a, b, c = WithEq(1), WithEq(1), WithEq(2)
    d = {a: x, c: x * 2}
    d[b] = x + 1  # equal to a: replaces a's value, keeps a as the key
    s = {c, a, b, 1}
    return d[a] + d[c], len(d), [k is a for k in d], len(s), sorted(k.v if isinstance(k, WithEq) else k for k in s), (WithEq(2) in s)


def _frozen_keys():
    return (torch.randn(3), WithEq(1), WithEq(1))


@program(F, inputs=_frozen_keys)
def custom_hash_argument_objects_as_keys(x, a, b):
    d = {a: x}
    d[b] = x + 1
    return d[a], len(d), next(iter(d)) is a, b in {a}
