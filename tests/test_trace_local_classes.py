"""Classes and modules made inside a compiled function (LOAD_BUILD_CLASS, nn.Module
subclasses built in forward): they trace as one graph, and what could make the
compiled frame differ from eager is refused with a reason -- a class (or an instance
of it) leaving the frame (Python makes a new class on every call), parameters created
in the frame (fresh random values on every call), metaclasses and
``__init_subclass__`` hooks (code with effects when the class is made)."""
import pytest
import torch
from torch import nn

import capture
from tests.helpers_compare import check

REGISTRY: list = []


class Registered:
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        REGISTRY.append(cls.__name__)


def _fullgraph_reason(fn, *args) -> str:
    with pytest.raises(capture.Unsupported) as info:
        capture.compile(fn, backend="eager", fullgraph=True)(*args)
    capture.reset()
    return str(info.value)


def test_local_class_escaping_is_refused_and_each_call_gets_a_new_class():
    def make(x):
        class Holder:
            def __init__(self, t):
                self.t = t
        return Holder(x + 1)

    assert "defined inside the compiled frame, escaping it" in _fullgraph_reason(make, torch.ones(2))
    compiled = capture.compile(make, backend="eager")
    a, b = compiled(torch.ones(2)), compiled(torch.ones(2))
    assert type(a) is not type(b) and type(a).__name__ == "Holder"
    torch.testing.assert_close(a.t, torch.full((2,), 2.0))


def test_module_built_inside_escaping_is_refused():
    def make(x):
        return nn.ReLU()

    assert "NewModuleVariable(ReLU)" in _fullgraph_reason(make, torch.ones(2))
    out = capture.compile(make, backend="eager")(torch.ones(2))
    assert isinstance(out, nn.ReLU)


def test_module_with_parameters_built_inside_breaks_and_matches_eager():
    def fn(x):
        return nn.Linear(3, 2)(x)

    assert "Parameter" in _fullgraph_reason(fn, torch.ones(3))
    torch.manual_seed(0)
    expected = fn(torch.ones(3))
    torch.manual_seed(0)
    actual = capture.compile(fn, backend="eager")(torch.ones(3))
    torch.testing.assert_close(actual, expected)


def test_sequential_and_module_list_built_inside_are_one_graph():
    def fn(x):
        seq = nn.Sequential(nn.ReLU(), nn.Tanh())
        layers = nn.ModuleList([nn.Sigmoid(), seq])
        for layer in layers:
            x = layer(x)
        return x, len(seq), [type(m).__name__ for m in seq.children()]

    check(fn, torch.randn(4), expect_graphs=1)


def test_init_subclass_hook_is_refused_and_runs_once_per_call():
    def fn(x):
        class Child(Registered):
            pass
        return x * len(Child.__name__)

    REGISTRY.clear()
    assert "__init_subclass__" in _fullgraph_reason(fn, torch.ones(2))
    REGISTRY.clear()
    compiled = capture.compile(fn, backend="eager")
    compiled(torch.ones(2))
    compiled(torch.ones(2))
    assert REGISTRY == ["Child", "Child"]


def test_enum_defined_inside_is_refused_cleanly():
    def fn(x):
        import enum

        class Mode(enum.Enum):
            A = 1
        return x * Mode.A.value

    assert "metaclass" in _fullgraph_reason(fn, torch.ones(2))
    torch.testing.assert_close(capture.compile(fn, backend="eager")(torch.ones(2)), torch.ones(2))


def test_method_of_local_class_with_a_break_inside_matches_eager(capsys):
    def fn(x):
        class Noisy:
            def run(self, t):
                y = t * 2
                print("inside", tuple(y.shape))
                return y + 1
        return Noisy().run(x)

    check(fn, torch.randn(3), expect_graphs=None)
    assert "inside (3,)" in capsys.readouterr().out


def test_local_class_attribute_set_in_the_frame_is_seen_by_instances():
    def fn(x):
        class K:
            scale = 1

        K.scale = 4
        k = K()
        return x * k.scale + K.scale

    check(fn, torch.randn(3), expect_graphs=1)
