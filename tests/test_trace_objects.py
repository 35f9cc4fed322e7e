"""Objects that control their own attributes: ``__dict__`` reads, ``object.__getattribute__``
and ``object.__setattr__`` called directly, Python ``__getattribute__``/``__setattr__``
overrides (config and proxy classes of libraries). Each test runs the same code on two
twin objects, one compiled and one eager, and compares results and object state."""
import torch

import capture


class Config:
    def __init__(self):
        self.scale = 2.0
        self.name = "cfg"


class AliasedConfig:
    """Like transformers' config classes: some names are aliases of others."""
    attribute_map = {"width": "hidden_size"}

    def __init__(self):
        self.hidden_size = 4
        self.scale = 0.5

    def __getattribute__(self, key):
        if key != "attribute_map" and key in super().__getattribute__("attribute_map"):
            key = super().__getattribute__("attribute_map")[key]
        return super().__getattribute__(key)

    def __setattr__(self, key, value):
        if key in super().__getattribute__("attribute_map"):
            key = super().__getattribute__("attribute_map")[key]
        super().__setattr__(key, value)


class Doubling:
    """A __setattr__ that changes the value stored: replaying the store must not run it twice."""

    def __init__(self):
        object.__setattr__(self, "count", 1)

    def __setattr__(self, key, value):
        object.__setattr__(self, key, value * 2)


def state(obj) -> dict:
    return dict(object.__getattribute__(obj, "__dict__"))


def run_twins(make_fn, calls=3, change=None):
    """``make_fn()`` -> (fn, obj); compiles one twin, runs the other eagerly."""
    fn_c, obj_c = make_fn()
    fn_e, obj_e = make_fn()
    compiled = capture.compile(fn_c, backend="eager")
    for i in range(calls):
        if change is not None and i == calls - 1:
            change(obj_c)
            change(obj_e)
        x = torch.randn(3)
        torch.testing.assert_close(compiled(x), fn_e(x))
        assert state(obj_c) == state(obj_e)
    return fn_c


def one_graph(fn):
    ex = capture.explain(fn, torch.randn(3))
    assert ex.graph_count == 1 and not ex.all_breaks, [str(r) for r in ex.all_breaks]


def test_reading_and_writing_an_instance_dict():
    def make():
        cfg = Config()

        def f(x):
            d = cfg.__dict__
            d["calls"] = d.get("calls", 0) + 1
            return x * d["scale"] + len(vars(cfg))
        return f, cfg

    fn = run_twins(make, change=lambda c: setattr(c, "scale", -1.0))
    one_graph(make()[0])
    assert fn is not None


def test_attribute_set_after_dict_read_is_one_state():
    def make():
        cfg = Config()

        def f(x):
            d = cfg.__dict__
            cfg.scale = 3.0            # a plain store, seen through the dict read before it
            return x * d["scale"] * cfg.scale
        return f, cfg

    run_twins(make)


def test_aliasing_getattribute_and_setattr_are_followed():
    def make():
        cfg = AliasedConfig()

        def f(x):
            cfg.width = cfg.width + 1  # through attribute_map: hidden_size
            return x * cfg.hidden_size * cfg.scale
        return f, cfg

    run_twins(make, change=lambda c: setattr(c, "scale", 2.0))
    one_graph(make()[0])


def test_store_through_custom_setattr_happens_once():
    def make():
        obj = Doubling()

        def f(x):
            obj.count = obj.count + 1
            return x * obj.count
        return f, obj

    run_twins(make, calls=4)


def test_object_getattribute_and_setattr_called_directly():
    def make():
        obj = Doubling()

        def f(x):
            object.__setattr__(obj, "raw", 5)
            return x + object.__getattribute__(obj, "count") + object.__getattribute__(obj, "raw")
        return f, obj

    run_twins(make)
    one_graph(make()[0])


def test_guards_on_proxy_attributes_do_not_reenter_getattribute():
    calls = []

    class Proxy:
        def __init__(self, inner):
            object.__setattr__(self, "inner", inner)

        def __getattribute__(self, key):
            calls.append(key)
            own = object.__getattribute__(self, "__dict__")
            return own[key] if key in own else getattr(own["inner"], key)

    def make():
        proxy = Proxy(Config())

        def f(x):
            return x * proxy.scale
        return f, proxy

    fn_c, proxy = make()
    compiled = capture.compile(fn_c, backend="eager")
    x = torch.randn(3)
    torch.testing.assert_close(compiled(x), fn_c(x))
    calls.clear()
    torch.testing.assert_close(compiled(x), x * 2.0)
    assert calls == []                  # the hit path read state without calling __getattribute__
    object.__getattribute__(proxy, "inner").scale = 5.0
    torch.testing.assert_close(compiled(x), x * 5.0)


def test_mapping_subclass_methods_from_collections_abc_are_inlined():
    import collections.abc

    class Registry(collections.abc.Mapping):
        def __init__(self):
            self._d = {"a": 1.0, "b": 2.0}

        def __getitem__(self, k):
            return self._d[k]

        def __iter__(self):
            return iter(self._d)

        def __len__(self):
            return len(self._d)

    def make():
        reg = Registry()

        def f(x):
            return x * reg.get("a", 0.0) + ("b" in reg) + len(reg)
        return f, reg

    run_twins(make, change=lambda r: r._d.update(a=5.0))
    one_graph(make()[0])


def test_dict_subclass_instance_attributes():
    class Output(dict):
        pass

    def make():
        out = Output(k=1)
        out.scale = 3.0

        def f(x):
            return x * out.scale
        return f, out

    run_twins(make, change=lambda o: setattr(o, "scale", -2.0))
    one_graph(make()[0])


def test_is_compiling_is_true_while_traced_and_getattr_default_on_none():
    cache = None

    def f(x):
        if not torch.compiler.is_compiling():
            x = x + 100                      # bookkeeping a library skips when compiled
        return x * getattr(cache, "scale", 2.0)

    compiled = capture.compile(f, backend="eager")
    x = torch.randn(3)
    torch.testing.assert_close(compiled(x), x * 2.0)
    torch.testing.assert_close(f(x), (x + 100) * 2.0)
    one_graph(f)


def test_dict_subclass_reads_its_dict_part_through_super():
    class Registry(dict):
        def __setitem__(self, key, value):
            super().__setitem__(str(key), value)

        def get(self, key):
            return super().get(str(key)) or {}

    reg = Registry()
    reg[1] = {"scale": 2.0}

    def f(x, key=1):
        flags = reg.get(key)
        return x * flags.get("scale", 1.0) + len(reg.get(7)) + ("1" in reg.keys())

    compiled = capture.compile(f, backend="eager")
    x = torch.ones(2)
    torch.testing.assert_close(compiled(x), f(x))
    reg[1] = {"scale": 5.0}                       # a new value object
    torch.testing.assert_close(compiled(x), f(x))
    reg["1"]["scale"] = 7.0                       # the nested dict mutated in place
    torch.testing.assert_close(compiled(x), f(x))
    reg[7] = {"a": 1}                             # a new key
    torch.testing.assert_close(compiled(x), f(x))
    one_graph(f)


def test_instance_dict_entries_sit_behind_the_dict_watch():
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = Config()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x) * self.cfg.__dict__["scale"]

    m = Block()
    compiled = capture.compile(m, backend="eager")
    x = torch.randn(2, 3)
    torch.testing.assert_close(compiled(x), m(x))
    from helpers_modules import entries
    source = entries(m)[-1].guard.source
    body = source.split("checks on module state")[1].split(".rearm(")[0]
    assert "'scale'" in body
    m.cfg.scale = 4.0
    torch.testing.assert_close(compiled(x), m(x))
    m.cfg.__dict__ = {"scale": -1.0, "name": "x"}    # a new dict object: caught outside the watch
    torch.testing.assert_close(compiled(x), m(x))


class Point:
    def __init__(self, v):
        self.v = v


def test_objects_built_in_the_frame_are_only_identical_to_themselves():
    # two instances of one class made while tracing: ``is`` and the default ``==`` are
    # identity (they used to compare the class and answer True)
    def f(x):
        a, b = Point(1), Point(2)
        c = a
        return (x + 1 if a is b else x - 1), (x * 2 if a == b else x * 3), (x + 5 if a != b else x - 5), \
            (x + 7 if a is c else x - 7)

    x = torch.randn(3)
    for got, want in zip(capture.compile(f, backend="eager")(x), f(x)):
        torch.testing.assert_close(got, want)


class BrokenHash:
    """An options object whose ``__hash__`` raises (a dataclass hash reading a field the
    instance lacks, as torch's own LinearCrossEntropyOptions did): looking it up among
    known functions must not run its hash."""

    def __init__(self, scale):
        self.scale = scale

    def __hash__(self):
        raise AttributeError("'BrokenHash' object has no attribute 'allow_retain_graph'")


def test_argument_whose_hash_raises_is_traced_without_hashing_it():
    def fn(x, opts):
        return x * opts.scale

    opts = BrokenHash(3.0)
    x = torch.randn(3)
    torch.testing.assert_close(capture.compile(fn, backend="eager")(x, opts), fn(x, opts))
    ex = capture.explain(fn, x, opts)
    assert ex.graph_count == 1 and not ex.all_breaks, [str(r) for r in ex.all_breaks]
