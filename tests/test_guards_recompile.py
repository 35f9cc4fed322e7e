"""Guards: after every change a compiled function must still give eager's answer,
recompiling where the old entry no longer applies (and saying why)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import capture
from helpers_modules import assert_recompiled, assert_same, check, entries, n_entries, reasons


pytestmark = pytest.mark.usefixtures("seeded")  # capture.reset() runs around every test (conftest)


def compiled(fn):
    return capture.compile(fn, backend="eager")


# --------------------------------------------------------------------------- tensor metadata


def f_pointwise(x):
    return torch.sin(x) * 2 + x.sum(-1, keepdim=True)


def test_shape_change_recompiles():
    cf = compiled(f_pointwise)
    check(cf, f_pointwise, torch.randn(3, 4))
    check(cf, f_pointwise, torch.randn(3, 4))
    assert n_entries(f_pointwise) == 1
    check(cf, f_pointwise, torch.randn(5, 4))
    assert_recompiled(f_pointwise, 1, "L['x']", "shape")
    check(cf, f_pointwise, torch.randn(3, 4))  # old entry still serves the old shape
    assert n_entries(f_pointwise) == 2


def test_shape_baked_into_view_recompiles():
    def f(x):
        n = x.shape[0] * x.shape[1]
        return x.reshape(n) + torch.arange(n)
    cf = compiled(f)
    check(cf, f, torch.randn(2, 3))
    check(cf, f, torch.randn(4, 3))
    assert_recompiled(f, 1, "L['x']", "shape[0]")
    check(cf, f, torch.randn(4, 5))
    assert_recompiled(f, 2, "L['x']", "shape[1]")


def test_rank_change_recompiles():
    cf = compiled(f_pointwise)
    check(cf, f_pointwise, torch.randn(3, 4))
    check(cf, f_pointwise, torch.randn(2, 3, 4))
    assert_recompiled(f_pointwise, 1, "L['x']", "shape")


def test_dtype_change_recompiles():
    cf = compiled(f_pointwise)
    check(cf, f_pointwise, torch.randn(3, 4))
    out = check(cf, f_pointwise, torch.randn(3, 4, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert_recompiled(f_pointwise, 1, "L['x']", "dtype")


def test_integer_dtype_promotion():
    def f(x):
        return x / 2 + x // 3
    cf = compiled(f)
    check(cf, f, torch.arange(6).reshape(2, 3))
    check(cf, f, torch.randn(2, 3))
    assert_recompiled(f, 1, "L['x']", "dtype")


def test_requires_grad_change_recompiles_and_backward_works():
    def f(x, w):
        return (x @ w).tanh().sum()
    cf = compiled(f)
    w = torch.randn(4, 2)
    check(cf, f, torch.randn(3, 4), w)
    wg = w.clone().requires_grad_()
    out = cf(torch.ones(3, 4), wg)
    assert out.requires_grad
    wg2 = w.clone().requires_grad_()
    ref = f(torch.ones(3, 4), wg2)
    assert_same(out, ref)
    out.backward()
    ref.backward()
    torch.testing.assert_close(wg.grad, wg2.grad)
    assert_recompiled(f, 1, "L['w']", "requires_grad")


def test_non_contiguous_transposed_input():
    def f(x):
        return x.view(-1)[:5] * 2  # view() of a transposed tensor fails eagerly
    cf = compiled(f)
    check(cf, f, torch.randn(4, 4))
    xt = torch.randn(4, 4).t()
    with pytest.raises(RuntimeError):
        f(xt)
    with pytest.raises(RuntimeError):
        cf(xt)


def test_non_contiguous_input_recompiles_on_stride():
    def f(x):
        return x.contiguous().flatten()[1:5] + x[0]
    cf = compiled(f)
    check(cf, f, torch.randn(4, 4))
    check(cf, f, torch.randn(4, 4).t())
    assert_recompiled(f, 1, "L['x']", "stride")
    check(cf, f, torch.randn(4, 4).t())
    assert n_entries(f) == 2


def test_sliced_input_with_storage_offset():
    def f(x):
        return x * 3 + 1
    cf = compiled(f)
    base = torch.randn(10)
    check(cf, f, base[:4])
    check(cf, f, torch.randn(10)[6:])  # same shape/stride, different offset: same answer either way
    check(cf, f, torch.randn(10)[::2][:4])
    assert_recompiled(f, 1, "L['x']", "stride")


# --------------------------------------------------------------------------- Python arguments


def test_int_argument_change():
    def f(x, n):
        return x.repeat(n, 1) * n
    cf = compiled(f)
    check(cf, f, torch.randn(2, 3), 2)
    check(cf, f, torch.randn(2, 3), 2)
    assert n_entries(f) == 1
    check(cf, f, torch.randn(2, 3), 3)
    assert_recompiled(f, 1, "L['n']")


def test_float_argument_change():
    def f(x, alpha):
        return x * alpha + alpha ** 2
    cf = compiled(f)
    check(cf, f, torch.randn(3), 0.5)
    check(cf, f, torch.randn(3), 1.5)
    assert_recompiled(f, 1, "L['alpha']")


def test_int_vs_float_argument_same_value():
    def f(x, k):
        return torch.full((2,), k), x * k
    cf = compiled(f)
    check(cf, f, torch.randn(2), 2)
    check(cf, f, torch.randn(2), 2.0)
    check(cf, f, torch.randn(2), True)


def test_bool_argument_change():
    def f(x, flag):
        if flag:
            return x.relu()
        return -x
    cf = compiled(f)
    check(cf, f, torch.randn(4), True)
    check(cf, f, torch.randn(4), False)
    assert_recompiled(f, 1, "L['flag']")
    check(cf, f, torch.randn(4), True)
    assert n_entries(f) == 2


def test_str_argument_change():
    def f(x, act):
        if act == "relu":
            return F.relu(x)
        elif act == "gelu":
            return F.gelu(x)
        return getattr(torch, act)(x)
    cf = compiled(f)
    for act in ["relu", "gelu", "tanh", "relu", "sigmoid"]:
        check(cf, f, torch.randn(5), act)
    assert n_entries(f) == 4
    assert_recompiled(f, 1, "L['act']")


def test_none_vs_tensor_argument():
    def f(x, bias=None):
        return x * 2 if bias is None else x * 2 + bias
    cf = compiled(f)
    check(cf, f, torch.randn(3))
    check(cf, f, torch.randn(3), torch.randn(3))
    check(cf, f, torch.randn(3), None)
    assert n_entries(f) == 2


def test_list_argument_different_length():
    def f(xs):
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out * len(xs)
    cf = compiled(f)
    check(cf, f, [torch.randn(3) for _ in range(2)])
    check(cf, f, [torch.randn(3) for _ in range(2)])
    assert n_entries(f) == 1
    check(cf, f, [torch.randn(3) for _ in range(4)])
    assert_recompiled(f, 1, "L['xs']", "len")


def test_list_of_ints_value_change():
    def f(x, dims):
        return x.permute(*dims).contiguous()
    cf = compiled(f)
    check(cf, f, torch.randn(2, 3, 4), [0, 2, 1])
    check(cf, f, torch.randn(2, 3, 4), [2, 1, 0])
    assert_recompiled(f, 1, "L['dims'][0]")


def test_tuple_argument_element_type_change():
    def f(pair):
        a, b = pair
        return a * b
    cf = compiled(f)
    check(cf, f, (torch.randn(3), 2.0))
    check(cf, f, (torch.randn(3), torch.randn(3)))
    check(cf, f, (torch.randn(3), 3))


def test_dict_argument_different_keys():
    def f(d):
        out = 0
        for k, v in d.items():
            out = out + v * len(k)
        return out
    cf = compiled(f)
    check(cf, f, {"a": torch.randn(3), "bb": torch.randn(3)})
    check(cf, f, {"a": torch.randn(3), "bb": torch.randn(3)})
    assert n_entries(f) == 1
    check(cf, f, {"a": torch.randn(3), "ccc": torch.randn(3)})
    assert_recompiled(f, 1, "L['d']", "keys")
    check(cf, f, {"bb": torch.randn(3), "a": torch.randn(3)})  # same keys, other order
    check(cf, f, {"a": torch.randn(3)})


def test_dict_argument_indexed_by_key():
    def f(d, x):
        return x * d["scale"] + d.get("shift", 0.0)
    cf = compiled(f)
    check(cf, f, {"scale": 2.0}, torch.randn(3))
    check(cf, f, {"scale": 2.0, "shift": 1.0}, torch.randn(3))
    check(cf, f, {"scale": 3.0, "shift": 1.0}, torch.randn(3))
    check(cf, f, {"scale": torch.randn(3), "shift": 1.0}, torch.randn(3))


def test_kwargs_change():
    def f(x, **kw):
        y = x * kw.get("a", 1.0)
        if "b" in kw:
            y = y - kw["b"]
        return y
    cf = compiled(f)
    check(cf, f, torch.randn(3), a=2.0)
    check(cf, f, torch.randn(3), a=2.0, b=1.0)
    check(cf, f, torch.randn(3), b=torch.randn(3))


# --------------------------------------------------------------------------- globals and closures

SCALE = 2.0
USE_RELU = True
OFFSET_T = torch.ones(3)


def g_scale(x):
    return x * SCALE + (1 if USE_RELU else 0)


def test_global_constant_change():
    cf = compiled(g_scale)
    check(cf, g_scale, torch.randn(3))
    try:
        globals()["SCALE"] = 3.0
        check(cf, g_scale, torch.randn(3))
        assert_recompiled(g_scale, 1, "G['SCALE']")
        globals()["USE_RELU"] = False
        check(cf, g_scale, torch.randn(3))
        assert_recompiled(g_scale, 2, "G['USE_RELU']")
    finally:
        globals()["SCALE"] = 2.0
        globals()["USE_RELU"] = True
    check(cf, g_scale, torch.randn(3))


def g_offset(x):
    return x + OFFSET_T * 2


def test_global_tensor_value_change_same_shape():
    global OFFSET_T
    cf = compiled(g_offset)
    saved = OFFSET_T
    try:
        check(cf, g_offset, torch.randn(3))
        OFFSET_T = torch.randn(3)  # rebound, same metadata: graph input read at run time
        check(cf, g_offset, torch.randn(3))
        OFFSET_T.mul_(5)  # mutated in place
        check(cf, g_offset, torch.randn(3))
    finally:
        OFFSET_T = saved


def test_global_tensor_shape_and_dtype_change():
    global OFFSET_T
    cf = compiled(g_offset)
    saved = OFFSET_T
    try:
        check(cf, g_offset, torch.randn(3))
        OFFSET_T = torch.randn(1)
        check(cf, g_offset, torch.randn(3))
        assert_recompiled(g_offset, 1, "G['OFFSET_T']", "shape")
        OFFSET_T = torch.randn(3, dtype=torch.float64)
        check(cf, g_offset, torch.randn(3))
        assert_recompiled(g_offset, 2, "G['OFFSET_T']", "dtype")
    finally:
        OFFSET_T = saved


def helper_act(x):
    return torch.relu(x)


def helper_other(x):
    return torch.tanh(x) - 1


def g_calls_helper(x):
    return helper_act(x) * 2


def test_global_function_rebound():
    cf = compiled(g_calls_helper)
    saved = globals()["helper_act"]
    try:
        check(cf, g_calls_helper, torch.randn(4))
        globals()["helper_act"] = helper_other
        check(cf, g_calls_helper, torch.randn(4))
        assert_recompiled(g_calls_helper, 1, "G['helper_act']")
        globals()["helper_act"] = lambda x: x * 10
        check(cf, g_calls_helper, torch.randn(4))
        assert n_entries(g_calls_helper) == 3
    finally:
        globals()["helper_act"] = saved


def test_global_torch_function_rebound():
    def f(x):
        return ACT(x) + 1
    cf = compiled(f)
    globals()["ACT"] = torch.sigmoid
    try:
        check(cf, f, torch.randn(4))
        globals()["ACT"] = torch.exp
        check(cf, f, torch.randn(4))
        assert_recompiled(f, 1, "G['ACT']")
    finally:
        del globals()["ACT"]


def test_global_defined_later_shadowing_builtin():
    def f(x):
        return x * abs(-2)
    cf = compiled(f)
    check(cf, f, torch.randn(3))
    globals()["abs"] = lambda v: 10
    try:
        check(cf, f, torch.randn(3))
    finally:
        del globals()["abs"]
    check(cf, f, torch.randn(3))


def test_closure_cell_changed():
    k = 2.0

    def f(x):
        return x * k

    def set_k(v):
        nonlocal k
        k = v
    cf = compiled(f)
    check(cf, f, torch.randn(3))
    set_k(3.0)
    check(cf, f, torch.randn(3))
    assert_recompiled(f, 1, "L['k']")
    set_k(torch.full((3,), 7.0))
    check(cf, f, torch.randn(3))
    set_k(torch.full((3,), -1.0))  # same metadata, new value
    check(cf, f, torch.randn(3))


def test_closure_over_function_changed():
    act = torch.relu

    def f(x):
        return act(x) + 1
    cf = compiled(f)
    check(cf, f, torch.randn(4))
    act = torch.neg  # noqa: F841 -- rebinding the cell
    check(cf, f, torch.randn(4))


def test_closure_cell_of_inlined_helper_changed():
    factor = 2

    def helper(x):
        return x * factor

    def f(x):
        return helper(x) + 1
    cf = compiled(f)
    check(cf, f, torch.randn(3))
    factor = 5  # noqa: F841
    check(cf, f, torch.randn(3))


def test_default_argument_changed():
    def f(x, scale=2.0):
        return x * scale
    cf = compiled(f)
    check(cf, f, torch.randn(3))
    f.__defaults__ = (4.0,)
    check(cf, f, torch.randn(3))


def test_mutable_global_list_contents():
    CFG = [1.0, 2.0]

    def f(x):
        return x * CFG[0] + CFG[1] * len(CFG)
    cf = compiled(f)
    check(cf, f, torch.randn(3))
    CFG[0] = 10.0
    check(cf, f, torch.randn(3))
    CFG.append(3.0)
    check(cf, f, torch.randn(3))


def test_object_attribute_changed():
    class Cfg:
        def __init__(self):
            self.alpha = 1.0

    cfg = Cfg()

    def f(x, c):
        return x * c.alpha
    cf = compiled(f)
    check(cf, f, torch.randn(3), cfg)
    cfg.alpha = 4.0
    check(cf, f, torch.randn(3), cfg)
    assert_recompiled(f, 1, "alpha")


# --------------------------------------------------------------------------- modules


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.w = nn.Parameter(torch.randn(4))
        self.scale = 2.0

    def forward(self, x):
        return self.fc(x) * self.scale + self.w


def test_module_attribute_scale_changed():
    m = Scaled()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    m.scale = 3.0
    check(cm, m, torch.randn(2, 4))
    assert_recompiled(m, 1, "L['self'].scale")
    cm.scale = 0.5  # through the wrapper
    check(cm, m, torch.randn(2, 4))
    assert n_entries(m) == 3


def test_submodule_replaced():
    m = Scaled()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    m.fc = nn.Linear(4, 4)  # same type and shapes, different object and weights
    check(cm, m, torch.randn(2, 4))
    assert_recompiled(m, 1, "L['self'].fc")
    m.fc = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    check(cm, m, torch.randn(2, 4))


def test_leaf_parameter_replaced():
    m = Scaled()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    m.fc.weight = nn.Parameter(torch.randn(4, 4))
    check(cm, m, torch.randn(2, 4))
    m.fc.bias = None
    check(cm, m, torch.randn(2, 4))


def test_own_parameter_replaced():
    m = Scaled()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    m.w = nn.Parameter(torch.randn(4))  # same metadata: the graph reads it at run time
    check(cm, m, torch.randn(2, 4))
    m.w = nn.Parameter(torch.randn(1))  # broadcasting shape: must recompile
    check(cm, m, torch.randn(2, 4))
    assert_recompiled(m, 1, "L['self'].w", "shape")
    m.w = nn.Parameter(torch.randn(4), requires_grad=False)
    check(cm, m, torch.randn(2, 4))


def test_parameter_updated_in_place():
    m = Scaled()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 4))
    with torch.no_grad():
        m.w.add_(3.0)
        m.fc.weight.mul_(-1)
    check(cm, m, torch.randn(2, 4))
    assert n_entries(m) == 1


class TrainAware(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(p=1.0)

    def forward(self, x):
        y = self.drop(self.bn(self.fc(x)))
        if self.training:
            y = y + 100.0
        return y


def test_eval_train_toggle_dropout_and_batchnorm():
    m = TrainAware().eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(5, 6))
    cm.train()
    # p=1.0 dropout: all zeros in train mode, so a stale eval graph shows up at once
    out = cm(torch.randn(5, 6))
    assert torch.equal(out, torch.full((5, 6), 100.0))
    assert_recompiled(m, 1, "L['self'].training")
    cm.eval()
    check(cm, m, torch.randn(5, 6))


def test_eval_toggle_on_leaf_only():
    m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.9))
    cm = capture.compile(m, backend="eager")
    torch.manual_seed(1)
    x = torch.randn(8, 4)
    torch.manual_seed(2)
    out_train = cm(x)
    assert (out_train == 0).float().mean() > 0.5
    m[1].eval()
    m[2].eval()
    check(cm, m, torch.randn(8, 4))


def test_batchnorm_train_then_eval_stats():
    import copy
    m = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ref = copy.deepcopy(m)
    cm = capture.compile(m, backend="eager")
    for train in (True, True, False, True, False):
        m.train(train)
        ref.train(train)
        check(cm, ref, torch.randn(6, 3) * 2, atol=1e-5)
        assert_same(m[1].running_mean, ref[1].running_mean)
        assert_same(m[1].running_var, ref[1].running_var)
        assert_same(m[1].num_batches_tracked, ref[1].num_batches_tracked)


def test_module_passed_as_argument_changed():
    def f(mod, x):
        return mod(x) + 1
    cf = compiled(f)
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    check(cf, f, a, torch.randn(2, 3))
    check(cf, f, b, torch.randn(2, 3))
    assert_recompiled(f, 1, "L['mod']")
    check(cf, f, nn.Tanh(), torch.randn(2, 3))


def test_module_list_appended():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(3, 3)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x
    m = M()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2, 3))
    m.layers.append(nn.Linear(3, 3))
    check(cm, m, torch.randn(2, 3))
    m.layers[0] = nn.Identity()
    check(cm, m, torch.randn(2, 3))


def test_sequential_appended():
    seq = nn.Sequential(nn.Linear(3, 3))

    def f(x):
        return seq(x)
    cf = compiled(f)
    check(cf, f, torch.randn(2, 3))
    seq.append(nn.ReLU())
    check(cf, f, torch.randn(2, 3))


def test_module_dict_key_added():
    d = nn.ModuleDict({"a": nn.Linear(3, 3)})

    def f(x):
        for k in d:
            x = d[k](x)
        return x
    cf = compiled(f)
    check(cf, f, torch.randn(2, 3))
    d["b"] = nn.Sigmoid()
    check(cf, f, torch.randn(2, 3))


def test_parameter_list_appended():
    pl = nn.ParameterList([nn.Parameter(torch.ones(3))])

    def f(x):
        for p in pl:
            x = x + p
        return x
    cf = compiled(f)
    check(cf, f, torch.randn(3))
    pl.append(nn.Parameter(torch.full((3,), 2.0)))
    check(cf, f, torch.randn(3))


# --------------------------------------------------------------------------- global state


def test_no_grad_between_calls():
    w = torch.randn(3, 3, requires_grad=True)

    def f(x):
        return (x @ w).sin()
    cf = compiled(f)
    out = check(cf, f, torch.randn(2, 3))
    assert out.requires_grad
    with torch.no_grad():
        out = check(cf, f, torch.randn(2, 3))
        assert not out.requires_grad
    assert_recompiled(f, 1, "grad")
    out = check(cf, f, torch.randn(2, 3))
    assert out.requires_grad
    with torch.inference_mode():
        check(cf, f, torch.randn(2, 3))


def test_enable_grad_inside_no_grad_function():
    def f(x):
        with torch.no_grad():
            y = x * 2
        return y + x
    cf = compiled(f)
    x = torch.randn(3, requires_grad=True)
    out = check(cf, f, x)
    assert out.requires_grad


def test_set_default_dtype_changed():
    def f(x):
        return torch.ones(3) + torch.arange(3.0) + x.sum()
    cf = compiled(f)
    check(cf, f, torch.randn(2))
    old = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        out = check(cf, f, torch.randn(2))
        assert out.dtype == torch.float64
        assert_recompiled(f, 1, "default_dtype")
    finally:
        torch.set_default_dtype(old)
    out = check(cf, f, torch.randn(2))
    assert out.dtype == torch.float32


def test_autocast_toggled():
    def f(a, b):
        return a @ b
    cf = compiled(f)
    check(cf, f, torch.randn(4, 4), torch.randn(4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = torch.randn(4, 4), torch.randn(4, 4)
        expected = f(a, b)
        got = cf(a, b)
    assert got.dtype == expected.dtype == torch.bfloat16
    assert_same(got, expected)


def test_reasons_are_readable():
    cf = compiled(f_pointwise)
    cf(torch.randn(3, 4))
    cf(torch.randn(3, 7))
    rs = reasons(f_pointwise)
    assert any("L['x']" in r and "shape[1]" in r and "4" in r and "7" in r for r in rs), rs
    guard = entries(f_pointwise)[0].guard
    text = "\n".join(guard.readable())
    assert "L['x']" in text and "(3, 4)" in text
    assert "def " in guard.source


def test_global_of_other_module_changed():
    import helpers_modules

    def f(x):
        return helpers_modules.helper_scaled(x) + 1
    cf = compiled(f)
    check(cf, f, torch.randn(3))
    saved = helpers_modules.HELPER_SCALE
    try:
        helpers_modules.HELPER_SCALE = -4.0
        check(cf, f, torch.randn(3))
        assert_recompiled(f, 1, "HELPER_SCALE")
    finally:
        helpers_modules.HELPER_SCALE = saved


def test_autocast_dtype_changed():
    def f(a, b):
        y = a @ b
        return y.float() if y.dtype == torch.bfloat16 else y * 2
    cf = compiled(f)
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        check(cf, f, a, b)
    with torch.autocast("cpu", dtype=torch.float16):
        check(cf, f, a, b, rtol=1e-3, atol=1e-3)


class _Sub(nn.Module):
    def forward(self, x):
        return x + 1


class _WithSub(nn.Module):
    def __init__(self):
        super().__init__()
        self.sub = _Sub()

    def forward(self, x):
        return self.sub(x) * 2


def test_global_forward_hook_registered_after_compile():
    m = _WithSub()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(2))
    handle = nn.modules.module.register_module_forward_hook(
        lambda mod, inputs, out: out + 100 if isinstance(mod, _Sub) else None)
    try:
        check(cm, m, torch.randn(2))
    finally:
        handle.remove()
    check(cm, m, torch.randn(2))


def test_backward_hook_on_inlined_submodule_registered_after_compile():
    m = _WithSub()
    cm = capture.compile(m, backend="eager")
    cm(torch.randn(2, requires_grad=True)).sum().backward()
    calls = []
    m.sub.register_full_backward_hook(lambda mod, grad_in, grad_out: calls.append(1))
    cm(torch.randn(2, requires_grad=True)).sum().backward()
    assert calls == [1], "backward hook of a submodule did not run under the compiled module"


def test_in_place_mutation_of_input_and_aliasing():
    def f(a, b):
        a.add_(1)
        return b * 2
    cf = compiled(f)
    check(cf, f, torch.zeros(3), torch.zeros(3))
    t = torch.zeros(3)
    out = cf(t, t)
    assert torch.equal(t, torch.ones(3))
    assert torch.equal(out, torch.full((3,), 2.0))


def test_returns_input_object_itself():
    def f(x, y):
        return x, y + 0
    cf = compiled(f)
    x, y = torch.randn(2), torch.randn(2)
    out = cf(x, y)
    assert out[0] is x and out[1] is not y
    assert_same(out[1], y)


def test_float_argument_negative_zero():
    def f(x, k):
        return x / k
    cf = compiled(f)
    check(cf, f, torch.ones(2), 0.0)
    check(cf, f, torch.ones(2), -0.0)  # 0.0 == -0.0, but x / -0.0 is -inf


def test_float_argument_nan_does_not_recompile():
    def f(x, k):
        return x + k
    cf = compiled(f)
    check(cf, f, torch.randn(2), float("nan"))
    check(cf, f, torch.randn(2), float("nan"))
    assert n_entries(f) == 1
    check(cf, f, torch.randn(2), 1.0)


def test_global_deleted_raises_name_error():
    def f(x):
        return x * LATER_DELETED
    globals()["LATER_DELETED"] = 2.0
    cf = compiled(f)
    check(cf, f, torch.randn(2))
    del globals()["LATER_DELETED"]
    with pytest.raises(NameError):
        cf(torch.randn(2))


def test_varargs_length_change():
    def f(*xs):
        return sum(xs) * len(xs)
    cf = compiled(f)
    check(cf, f, torch.randn(2), torch.randn(2))
    check(cf, f, torch.randn(2), torch.randn(2), torch.randn(2))
    assert_recompiled(f, 1, "xs")


def test_keyword_only_argument_change():
    def f(x, *, mode="add"):
        return x + 1 if mode == "add" else x * 3
    cf = compiled(f)
    check(cf, f, torch.randn(2))
    check(cf, f, torch.randn(2), mode="mul")
    assert_recompiled(f, 1, "L['mode']")
    check(cf, f, torch.randn(2), mode="add")


def test_namedtuple_field_change():
    import collections
    P = collections.namedtuple("P", "t k")

    def f(p):
        return p.t * p.k
    cf = compiled(f)
    check(cf, f, P(torch.randn(2), 2))
    check(cf, f, P(torch.randn(2), 3))
    check(cf, f, P(torch.randn(3), torch.randn(3)))


class Configurable(nn.Module):
    factor = 2.0

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.w = nn.Parameter(torch.ones(2))
        self.act = torch.relu
        self.mask = torch.ones(2)  # plain tensor attribute, not a buffer

    def forward(self, x):
        return self.act(self.fc(x) * self.w) * self.factor * self.mask


def test_module_function_attribute_changed():
    m = Configurable()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(3, 2))
    m.act = torch.neg
    check(cm, m, torch.randn(3, 2))
    assert_recompiled(m, 1, "L['self'].act")


def test_module_class_attribute_changed_and_shadowed():
    m = Configurable()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(3, 2))
    try:
        Configurable.factor = 5.0
        check(cm, m, torch.randn(3, 2))
        m.factor = 7.0
        check(cm, m, torch.randn(3, 2))
        del m.factor
        check(cm, m, torch.randn(3, 2))
    finally:
        Configurable.factor = 2.0


def test_module_plain_tensor_attribute_changed():
    m = Configurable()
    cm = capture.compile(m, backend="eager")
    check(cm, m, torch.randn(3, 2))
    m.mask = torch.zeros(2)
    check(cm, m, torch.randn(3, 2))
    m.mask = torch.tensor([[1.0, -1.0], [2.0, 0.0], [0.5, 3.0]])
    check(cm, m, torch.randn(3, 2))
    assert_recompiled(m, 1, "mask", "shape")


def test_parameters_frozen_after_compile():
    m = Configurable()
    cm = capture.compile(m, backend="eager")
    out = check(cm, m, torch.randn(3, 2))
    assert out.requires_grad
    m.requires_grad_(False)
    out = check(cm, m, torch.randn(3, 2))
    assert not out.requires_grad
    m.fc.requires_grad_(True)
    check(cm, m, torch.randn(3, 2))
