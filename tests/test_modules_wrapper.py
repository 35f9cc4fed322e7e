"""capture.compile(module) returns a wrapper that behaves like the module."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import capture
from helpers_modules import (assert_one_graph, assert_recompiled, assert_same, check, check_fresh, entries,
                             n_entries)


pytestmark = pytest.mark.usefixtures("seeded")  # capture.reset() runs around every test (conftest)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.norm = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(6, 2)
        self.register_buffer("shift", torch.arange(6.0))
        self.scale = 2.0

    def forward(self, x):
        x = self.drop(F.relu(self.norm(self.fc(x) + self.shift)))
        return self.out(x) * self.scale


def test_isinstance_and_repr():
    model = Net()
    compiled = capture.compile(model, backend="eager")
    assert isinstance(compiled, nn.Module)
    assert compiled._orig_mod is model
    assert "Net" in repr(compiled)


def test_attribute_get_passes_through():
    model = Net()
    compiled = capture.compile(model, backend="eager")
    assert compiled.fc is model.fc
    assert compiled.scale == 2.0
    assert compiled.shift is model.shift
    assert compiled.fc.weight is model.fc.weight
    assert compiled.training is model.training


def test_attribute_set_passes_through_and_is_used():
    model = Net().eval()
    compiled = capture.compile(model, backend="eager")
    check(compiled, model, torch.randn(4, 6))
    compiled.scale = 5.0
    assert model.scale == 5.0
    assert "scale" not in vars(compiled)
    check(compiled, model, torch.randn(4, 6))
    new_out = nn.Linear(6, 2)
    compiled.out = new_out
    assert model.out is new_out
    assert model._modules["out"] is new_out
    check(compiled, model, torch.randn(4, 6))


def test_delattr_passes_through():
    model = Net()
    compiled = capture.compile(model, backend="eager")
    compiled.extra = 1
    assert model.extra == 1
    del compiled.extra
    assert not hasattr(model, "extra")


def test_state_dict_keys_identical():
    model = Net()
    compiled = capture.compile(model, backend="eager")
    sd, sd_ref = compiled.state_dict(), model.state_dict()
    assert list(sd.keys()) == list(sd_ref.keys())
    for k in sd_ref:
        assert torch.equal(sd[k], sd_ref[k])


def test_load_state_dict_changes_original_and_compiled_output():
    model = Net().eval()
    compiled = capture.compile(model, backend="eager")
    check(compiled, model, torch.randn(3, 6))
    other = Net()
    with torch.no_grad():
        for p in other.parameters():
            p.uniform_(-1, 1)
        other.norm.running_mean.uniform_(-1, 1)
    result = compiled.load_state_dict(other.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.fc.weight, other.fc.weight)
    assert torch.equal(model.norm.running_mean, other.norm.running_mean)
    other.eval()
    x = torch.randn(3, 6)
    assert_same(compiled(x), other(x))


def test_load_state_dict_strict_error_passes_through():
    compiled = capture.compile(Net(), backend="eager")
    with pytest.raises(RuntimeError, match="Missing key"):
        compiled.load_state_dict({})


def test_parameters_same_objects():
    model = Net()
    compiled = capture.compile(model, backend="eager")
    assert [id(p) for p in compiled.parameters()] == [id(p) for p in model.parameters()]
    assert [n for n, _ in compiled.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert [id(b) for b in compiled.buffers()] == [id(b) for b in model.buffers()]
    assert [n for n, _ in compiled.named_modules()] == [n for n, _ in model.named_modules()]


def test_optimizer_over_wrapper_parameters_updates_original():
    model = Net().eval()
    ref = copy.deepcopy(model)
    compiled = capture.compile(model, backend="eager")
    opt = torch.optim.SGD(compiled.parameters(), lr=0.1)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.randn(4, 6)
        opt.zero_grad()
        opt_ref.zero_grad()
        compiled(x).square().mean().backward()
        ref(x).square().mean().backward()
        opt.step()
        opt_ref.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


def test_train_eval_toggle_original_and_return_wrapper():
    model = Net()
    compiled = capture.compile(model, backend="eager")
    assert compiled.eval() is compiled
    assert not model.training and not model.norm.training and not compiled.training
    assert compiled.train() is compiled
    assert model.training and model.drop.training
    assert compiled.train(False) is compiled
    assert not model.training
    assert compiled.requires_grad_(False) is compiled
    assert not any(p.requires_grad for p in model.parameters())


def test_to_dtype_returns_wrapper_and_recompiles():
    model = Net().eval()
    compiled = capture.compile(model, backend="eager")
    check(compiled, model, torch.randn(3, 6))
    assert compiled.to(torch.float64) is compiled
    assert model.fc.weight.dtype == torch.float64
    before = n_entries(model)
    check(compiled, model, torch.randn(3, 6, dtype=torch.float64))
    assert_recompiled(model, before, "L['x']", "dtype")


def test_forward_hook_on_wrapper_runs():
    model = Net().eval()
    compiled = capture.compile(model, backend="eager")
    seen = []

    def hook(mod, inputs, output):
        seen.append(mod)
        return output + 100.0
    handle = compiled.register_forward_hook(hook)
    try:
        x = torch.randn(3, 6)
        out = compiled(x)
        assert seen and seen[-1] is model
        assert_same(out, model(x))  # model(x) runs the same hook
        assert len(seen) == 2
        torch.testing.assert_close(out - 100.0, model.forward(x))
    finally:
        handle.remove()
    x = torch.randn(3, 6)
    assert_same(compiled(x), model(x))


def test_forward_pre_hook_on_original_runs():
    model = Net().eval()
    compiled = capture.compile(model, backend="eager")
    check(compiled, model, torch.randn(3, 6))
    handle = model.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    try:
        x = torch.randn(3, 6)
        out = compiled(x)
        assert_same(out, model.forward(torch.zeros(3, 6)))
    finally:
        handle.remove()


def test_forward_hook_on_submodule_added_after_compile():
    model = Net().eval()
    compiled = capture.compile(model, backend="eager")
    check(compiled, model, torch.randn(3, 6))
    calls = []

    def hook(mod, inputs, output):
        calls.append(1)
        return output * 0 + 7.0
    handle = model.fc.register_forward_hook(hook)
    try:
        x = torch.randn(3, 6)
        out = compiled(x)
        assert calls, "hook on a submodule did not run under the compiled module"
        assert_same(out, model(x))
    finally:
        handle.remove()
    n = len(calls)
    x = torch.randn(3, 6)
    assert_same(compiled(x), model(x))
    assert len(calls) == n


def test_forward_method_and_call_agree():
    model = Net().eval()
    compiled = capture.compile(model, backend="eager")
    x = torch.randn(3, 6)
    assert_same(compiled.forward(x), model(x))
    assert_same(compiled(x), model(x))


def test_wrapper_container_protocols():
    seq = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    compiled = capture.compile(seq, backend="eager")
    assert len(compiled) == 2
    assert compiled[0] is seq[0]
    assert list(compiled) == list(seq)
    check_fresh(compiled, seq, lambda: (torch.randn(2, 3),))


def test_compile_module_decorator_form():
    model = Net().eval()
    compiled = capture.compile(backend="eager")(model)
    assert isinstance(compiled, nn.Module)
    check_fresh(compiled, model, lambda: (torch.randn(2, 6),))


def test_two_wrappers_of_same_module_class():
    a, b = Net().eval(), Net().eval()
    ca, cb = capture.compile(a, backend="eager"), capture.compile(b, backend="eager")
    for _ in range(2):
        x = torch.randn(2, 6)
        assert_same(ca(x), a(x))
        assert_same(cb(x), b(x))
    # same forward code, different self: identity guard must separate them
    assert n_entries(a) == 2


def test_compiled_module_as_submodule_of_compiled_module():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.relu(self.fc(x)) + 1

    class Outer(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.inner(x) * 2)
    inner = Inner()
    outer = Outer(capture.compile(inner, backend="eager"))
    ref = Outer(inner)
    ref.head = outer.head
    compiled = capture.compile(outer, backend="eager")
    assert list(outer.state_dict().keys()) == list(ref.state_dict().keys())
    assert list(compiled.state_dict().keys()) == list(ref.state_dict().keys())
    for _ in range(3):
        x = torch.randn(3, 4)
        assert_same(compiled(x), ref(x))
    assert_one_graph(compiled, torch.randn(3, 4))
