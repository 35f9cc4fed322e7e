"""Family "functional": operator.itemgetter/attrgetter/methodcaller, functools.partial
(of functions, modules and methods), functools.reduce/wraps/lru_cache, lambdas,
closures."""
from __future__ import annotations

import functools
import operator

import torch
from torch import nn

from bench.semantics.corpus import program

F = "functional"

LIN = nn.Linear(3, 3)


class Holder:
    def __init__(self, t):
        self.t = t
        self.inner = self

    def scaled(self, k):
        return self.t * k


@program(F)
def itemgetter_single(x):
    get = operator.itemgetter(1)
    return get([x, x * 2, x * 3])


@program(F)
def itemgetter_multiple(x):
    get = operator.itemgetter(0, 2)
    a, b = get([x, x * 2, x * 3])
    return a + b


@program(F)
def itemgetter_dict_key(x):
    return operator.itemgetter("b")({"a": x, "b": x + 1})


@program(F)
def itemgetter_as_sort_key(x):
    rows = [(2, "b"), (1, "a")]
    return x * sorted(rows, key=operator.itemgetter(0))[0][0]


@program(F)
def attrgetter_single(x):
    return operator.attrgetter("t")(Holder(x)) + 1


@program(F)
def attrgetter_dotted(x):
    return operator.attrgetter("inner.t")(Holder(x)) * 2


@program(F)
def attrgetter_tensor_attrs(x):
    shape, dtype = operator.attrgetter("shape", "dtype")(x)
    return x * shape[0], dtype


@program(F)
def methodcaller_on_object(x):
    return operator.methodcaller("scaled", 3)(Holder(x))


@program(F)
def methodcaller_on_tensor(x):
    return operator.methodcaller("sum", dim=0)(x.reshape(3, 1))


@program(F)
def methodcaller_on_str(x):
    return x * len(operator.methodcaller("upper")("abc"))


@program(F)
def operator_functions_on_tensors(x):
    return operator.add(x, 1), operator.mul(x, x), operator.neg(x), operator.getitem(x, 0)


@program(F)
def operator_contains_and_truth(x):
    return x + operator.contains([1, 2], 2) + operator.truth(0) + operator.not_(0)


@program(F)
def partial_of_function(x):
    def f(a, b, c=1):
        return a * b + c
    g = functools.partial(f, b=2)
    return g(x) + g(x, c=3)


@program(F)
def partial_of_torch_function(x):
    clamp = functools.partial(torch.clamp, min=-0.5, max=0.5)
    return clamp(x)


@program(F)
def partial_of_module(x):
    call = functools.partial(LIN)
    return call(x)


@program(F)
def partial_of_bound_method(x):
    h = Holder(x)
    f = functools.partial(h.scaled, 4)
    return f()


@program(F)
def partial_of_partial(x):
    def f(a, b, c):
        return a + b * c
    g = functools.partial(functools.partial(f, x), 2)
    return g(3)


@program(F)
def partial_attributes(x):
    p = functools.partial(max, 1, key=None)
    return x * len(p.args) + len(p.keywords), p.func is max


@program(F)
def reduce_sum(x):
    return functools.reduce(operator.add, [x, x, x])


@program(F)
def reduce_with_initial(x):
    return functools.reduce(lambda a, b: a * b, [1, 2, 3], 4) * x


@program(F)
def wraps_decorator(x):
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return fn(*args) + 1
        return wrapper

    @deco
    def inner(t):
        return t * 2
    return inner(x), inner.__name__


@program(F)
def lru_cache_function(x):
    return x * cached_fib(10)


@functools.lru_cache(maxsize=None)
def cached_fib(n):
    return n if n < 2 else cached_fib(n - 1) + cached_fib(n - 2)


@program(F)
def closure_counter(x):
    def make():
        count = 0

        def bump():
            nonlocal count
            count += 1
            return count
        return bump
    b = make()
    b()
    return x * b()


@program(F)
def lambda_default_capture(x):
    fns = [lambda t, i=i: t * i for i in range(3)]
    return [f(x) for f in fns]


@program(F)
def late_binding_closure(x):
    fns = [lambda t: t * i for i in range(3)]
    return [f(x) for f in fns]


@program(F)
def kwargs_and_star_args(x):
    def f(*args, **kwargs):
        return sum(args) + sum(kwargs.values())
    return f(x, x, a=1, b=2)


@program(F)
def keyword_only_and_defaults(x):
    def f(a, *, scale=2, shift=0):
        return a * scale + shift
    return f(x) + f(x, shift=1)


@program(F)
def recursion_small(x):
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)
    return x * fact(4)


@program(F)
def map_with_partial(x):
    f = functools.partial(operator.mul, 3)
    return list(map(f, [x, x + 1]))


@program(F)
def singledispatch_function(x):
    return x * describe(2) + describe("ab")


@functools.singledispatch
def describe(v):
    return 0


@describe.register
def _(v: int):
    return v


@describe.register
def _(v: str):
    return len(v)


@program(F)
def cmp_to_key_sort(x):
    items = sorted([3, 1, 2], key=functools.cmp_to_key(lambda a, b: b - a))
    return x * items[0]


@program(F)
def cached_property_on_object(x):
    class C:
        @functools.cached_property
        def value(self):
            return 5
    c = C()
    return x * c.value + c.value


# ---- held-out variants: what functools.wraps copies onto a nested function ----

@program(F)
def wraps_copies_doc_module_dict_and_wrapped(x):
    def inner(t):
        """Doubles."""
        return t * 2
    inner.scale = 3

    @functools.wraps(inner)
    def wrapper(t):
        return inner(t) * wrapper.scale
    return (wrapper(x), wrapper.__doc__, wrapper.__module__, wrapper.__wrapped__ is inner,
            wrapper.__qualname__, sorted(wrapper.__dict__))


@program(F)
def nested_function_attributes_and_missing_one(x):
    def f(a: int, b=2) -> int:
        return a
    f.tag = "t"
    return x * len(f.__annotations__), f.__doc__, f.tag, getattr(f, "missing", None), hasattr(f, "tag")
