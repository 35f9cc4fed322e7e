"""Module state behind one dict watch, parameters held by identity, and leaf modules'
state: cheap hit paths that still never give a stale answer."""
import collections

import pytest
import torch
from torch import nn

import capture
from capture._C import DictWatch
from helpers_modules import assert_recompiled, check, entries, n_entries


# ---- capture._C.DictWatch ----

def test_dict_watch_sees_every_change_and_rearms():
    d, o = {"a": 1}, collections.OrderedDict(k=2)
    w = DictWatch((d, o))
    assert w() is True and w.size() == 2
    d["a"] = 1  # same object stored again: nothing changed
    assert w() is True
    o["k"] = 3
    assert w() is False
    w.rearm((d, o))
    assert w() is True
    del d["a"]
    assert w() is False


def test_dict_watch_starts_disarmed_and_rejects_non_dicts():
    assert DictWatch()() is False
    with pytest.raises(TypeError, match="item 1 is list"):
        DictWatch(({}, []))


# ---- generated guards ----

class Deep(nn.Module):
    def __init__(self, layers=6):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(layers)])
        self.act = nn.LeakyReLU(0.1)
        self.scale = 2.0

    def forward(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        return x * self.scale


def guard_source(module) -> str:
    return entries(module)[-1].guard.source


def test_module_tree_checks_sit_behind_one_watch():
    m = Deep()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    src = guard_source(m)
    watch_line = next(line for line in src.splitlines() if "checks on module state" in line)
    assert "skipped while" in watch_line
    body = src.split(watch_line)[1].split(".rearm(")[0]
    # identities of submodules and parameters, hooks, attributes all inside the block
    for needle in ("_modules['layers']", "_parameters['weight']", "_forward_hooks", "negative_slope", "scale"):
        assert needle in body, needle
    # the tensor argument is checked on every call, outside the block
    assert "x.shape" in src.split(".rearm(")[1]


@pytest.mark.parametrize("change, needle", [
    (lambda m: setattr(m, "scale", 3.0), "L['self'].scale"),
    (lambda m: setattr(m.act, "negative_slope", 0.5), "negative_slope"),
    (lambda m: m.layers[2].register_forward_hook(lambda mod, i, o: o + 1), "hooks"),
    (lambda m: setattr(m.layers[1], "weight", nn.Parameter(torch.randn(4, 4))), "L['self'].layers.1.weight"),
    (lambda m: m.layers.append(nn.Linear(4, 4)), "L['self'].layers._modules"),
])
def test_change_behind_the_watch_recompiles_with_its_reason(change, needle):
    m = Deep()
    cm = capture.compile(m, backend="eager")
    for _ in range(3):
        check(cm, m, torch.randn(2, 4))
    change(m)
    for _ in range(2):
        check(cm, m, torch.randn(2, 4))
    assert_recompiled(m, 1, needle)


def test_unrelated_module_change_rearms_without_recompiling():
    m = Deep()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    for i in range(4):
        m.step_count = i                # a new attribute nothing reads
        m.layers[0].note = f"seen {i}"
        check(cm, m, torch.randn(2, 4))
    assert n_entries(m) == 1


def test_attribute_written_every_call_inside_forward():
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.calls = 0

        def forward(self, x):
            self.calls = 1  # written each call: the watch fails, the full checks pass, rearm
            return self.fc(x)

    m, ref = Counting(), Counting()
    ref.load_state_dict(m.state_dict())
    cm = capture.compile(m, backend="eager")
    for _ in range(4):
        x = torch.randn(2, 4)
        torch.testing.assert_close(cm(x), ref(x))
    assert m.calls == 1 and n_entries(m) == 1


# ---- parameters held by identity ----

def test_parameters_reach_the_graph_as_the_objects_themselves():
    m = Deep(layers=2)
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    with torch.no_grad():                       # optimizer-style in-place update
        for p in m.parameters():
            p.mul_(-0.5)
    check(cm, m, torch.randn(2, 4))
    assert n_entries(m) == 1


def test_model_double_keeps_parameter_objects_but_recompiles():
    m = Deep(layers=2)
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    m.double()                                  # same Parameter objects, new dtype
    check(cm, m, torch.randn(2, 4, dtype=torch.float64))
    m.float()
    check(cm, m, torch.randn(2, 4))
    assert n_entries(m) == 2


def test_parameter_data_replaced_with_a_new_shape():
    lin = nn.Linear(4, 4)

    def f(x):
        y = lin(x)
        return y.reshape(y.shape[0] * y.shape[1])

    cf = capture.compile(f, backend="eager")
    check(cf, f, torch.randn(2, 4))
    with torch.no_grad():
        lin.weight.data = torch.randn(6, 4)     # identity kept, shape changed
        lin.bias.data = torch.randn(6)
    check(cf, f, torch.randn(2, 4))
    assert_recompiled(f, 1, "['lin']", "shape")


def test_reading_parameter_dtype_guards_it():
    lin = nn.Linear(4, 4)

    def f(x):
        return lin(x.to(lin.weight.dtype))

    cf = capture.compile(f, backend="eager")
    check(cf, f, torch.randn(2, 4))
    lin.double()
    out = check(cf, f, torch.randn(2, 4))
    assert out.dtype == torch.float64
    assert_recompiled(f, 1, "dtype")


def test_requires_grad_toggled_on_a_parameter():
    m = Deep(layers=2)
    cm = capture.compile(m, backend="eager")
    x = torch.randn(2, 4)
    assert cm(x).requires_grad
    for p in m.parameters():
        p.requires_grad_(False)
    out = check(cm, m, x)
    assert not out.requires_grad
    assert_recompiled(m, 1, "requires_grad")
    with torch.no_grad():
        check(cm, m, x)


# ---- leaf modules: forward runs on the live module, the graph was traced on its state ----

def test_leaf_module_parameter_replaced_with_a_new_shape():
    prelu = nn.PReLU(4)

    def f(x):
        y = prelu(x)
        return y.sum(dim=-1, keepdim=True).expand(-1, y.shape[-1] + 1)

    cf = capture.compile(f, backend="eager")
    check(cf, f, torch.randn(3, 4))
    prelu.weight = nn.Parameter(torch.rand(1))  # broadcasts: eager still works
    check(cf, f, torch.randn(3, 4))
    assert_recompiled(f, 1, "['prelu'].weight")


@pytest.mark.parametrize("change", [
    lambda bn: bn.train(),
    lambda bn: setattr(bn, "eps", 0.5),
    lambda bn: setattr(bn, "momentum", 0.9),
    lambda bn: setattr(bn, "track_running_stats", False),
])
def test_leaf_module_settings_changed(change):
    bn, ref = nn.BatchNorm1d(4).eval(), nn.BatchNorm1d(4).eval()

    def f(x, norm):
        return norm(x) * 2

    cf = capture.compile(f, backend="eager")
    x = torch.randn(8, 4)
    torch.testing.assert_close(cf(x, bn), f(x, ref))
    change(bn)
    change(ref)
    for _ in range(2):
        x = torch.randn(8, 4)
        torch.testing.assert_close(cf(x, bn), f(x, ref))
        torch.testing.assert_close(bn.running_mean, ref.running_mean)


def test_leaf_lstm_eval_and_buffers():
    lstm = nn.LSTM(4, 5, batch_first=True, dropout=0.0, num_layers=2)

    def f(x):
        out, (h, c) = lstm(x)
        return out.reshape(-1, out.shape[-1]) + h.sum()

    cf = capture.compile(f, backend="eager")
    check(cf, f, torch.randn(2, 3, 4))
    lstm.eval()
    check(cf, f, torch.randn(2, 3, 4))
    lstm.flatten_parameters()
    check(cf, f, torch.randn(2, 3, 4))


@pytest.mark.parametrize("module, shape", [
    (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (2, 3, 6, 6)),
    (nn.Conv1d(3, 4, 3, padding="same"), (2, 3, 7)),
    (nn.GroupNorm(2, 4), (2, 4, 3)),
    (nn.Embedding(10, 3, padding_idx=0), None),
    (nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 8, 8)),
    (nn.Hardtanh(-0.5, 0.5), (2, 4)),
])
def test_inlined_torch_modules_are_one_graph_of_functional_ops(module, shape):
    x = torch.tensor([[0, 3, 9], [1, 2, 0]]) if shape is None else torch.randn(*shape)
    explanation = capture.explain(module, x)
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
    gm = explanation.graphs[0]
    assert not any(getattr(n.target, "__module__", None) == "leaf" for n in gm.graph.nodes)
    cm = capture.compile(module, backend="eager")
    check(cm, module, x)


# ---- global state read by traced code ----

@pytest.mark.parametrize("enter", [
    lambda: torch.inference_mode(),
    lambda: torch.autocast("cpu"),
])
def test_state_read_inside_the_function_is_guarded(enter):
    def f(x):
        if torch.is_inference_mode_enabled():
            x = x * 10
        if torch.is_autocast_enabled("cpu"):
            x = x - 100
        return x + 1

    cf = capture.compile(f, backend="eager")
    x = torch.zeros(3)
    torch.testing.assert_close(cf(x), f(x))
    with enter():
        torch.testing.assert_close(cf(x), f(x))
    torch.testing.assert_close(cf(x), f(x))


def test_deterministic_algorithms_flag_is_guarded():
    def f(x):
        return x + 1 if torch.are_deterministic_algorithms_enabled() else x - 1

    cf = capture.compile(f, backend="eager")
    x = torch.zeros(3)
    torch.testing.assert_close(cf(x), f(x))
    torch.use_deterministic_algorithms(True)
    try:
        torch.testing.assert_close(cf(x), f(x))
    finally:
        torch.use_deterministic_algorithms(False)
    assert_recompiled(f, 1, "are_deterministic_algorithms_enabled()", "expected False, got True")


def test_globals_of_other_python_modules_behind_the_watch():
    import sys
    import types
    lib = types.ModuleType("capture_test_lib")
    lib.scale = 2.0
    lib.act = torch.relu
    sys.modules[lib.__name__] = lib
    try:
        exec("def f(x):\n    return lib.act(x) * lib.scale\n", globs := {"lib": lib})
        f = globs["f"]
        cf = capture.compile(f, backend="eager")
        check(cf, f, torch.randn(5))
        assert "checks on module state" in entries(f)[-1].guard.source
        lib.act = torch.tanh
        check(cf, f, torch.randn(5))
        lib.scale = -1.0
        check(cf, f, torch.randn(5))
        assert n_entries(f) == 3
    finally:
        del sys.modules[lib.__name__]


def test_tuple_attribute_items_behind_the_watch():
    class Pad(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.pads = (1, 2)

        def forward(self, x):
            return nn.functional.pad(self.lin(x), self.pads)

    m = Pad()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    body = entries(m)[-1].guard.source.split("checks on module state")[1].split(".rearm(")[0]
    assert "pads" in body
    m.pads = (0, 3)
    check(cm, m, torch.randn(2, 4))
    assert_recompiled(m, 1, "pads")


def test_environment_variables_read_by_traced_code_are_guarded(monkeypatch):
    import os

    def f(x):
        if os.environ.get("CAPTURE_TEST_FLAG", "0") == "1":
            x = x * 10
        if "CAPTURE_TEST_OTHER" in os.environ:
            x = x + float(os.environ["CAPTURE_TEST_OTHER"])
        return x + 1

    monkeypatch.delenv("CAPTURE_TEST_FLAG", raising=False)
    monkeypatch.delenv("CAPTURE_TEST_OTHER", raising=False)
    cf = capture.compile(f, backend="eager")
    x = torch.randn(3)
    torch.testing.assert_close(cf(x), f(x))
    monkeypatch.setenv("CAPTURE_TEST_FLAG", "1")
    torch.testing.assert_close(cf(x), f(x))
    monkeypatch.setenv("CAPTURE_TEST_OTHER", "2.5")
    torch.testing.assert_close(cf(x), f(x))
    assert_recompiled(f, 2, "os.environ.get('CAPTURE_TEST_OTHER')", "expected None, got '2.5'")
    ex = capture.explain(f, x)
    assert ex.graph_count == 1 and not ex.all_breaks
