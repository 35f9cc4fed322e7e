"""Patterns real model libraries use, each as a small program (issue 13's classes).

The real-model tier (test_real_models.py) meets them inside transformers, timm and
torchvision; these tests pin each class down without the libraries.
"""
from __future__ import annotations

import contextvars
import warnings

import pytest
import torch

import capture
from helpers_compare import check

# ------------------------------------------- an instance's attribute lookup


class Func(torch.nn.Module):
    """Like kernels' hub wrapper: a module standing in for a function."""

    kernel_layer_name = "Func"

    def forward(self, x):
        return x * 2


FUNC = Func()


def test_getattr_dunder_name_of_a_module_instance_is_missing_as_in_eager():
    """``type``'s __name__ descriptor is not an instance attribute."""
    def f(x):
        name = getattr(FUNC, "__name__", None) or getattr(FUNC, "kernel_layer_name", None)
        return FUNC(x) + len(name)
    check(f, torch.randn(3))


class CompileableContextVar:
    """kernels' wrapper: a plain attribute while compiling, a ContextVar otherwise."""

    def __init__(self, name):
        self.context_var = contextvars.ContextVar(name, default=None)
        self.global_var = None
        self.uses_global_var = False

    def get(self):
        if self.uses_global_var or torch.compiler.is_compiling():
            return self.global_var
        return self.context_var.get()

    def set(self, value):
        if self.uses_global_var or torch.compiler.is_compiling():
            previous, self.global_var, self.uses_global_var = self.global_var, value, True
            return previous
        return self.context_var.set(value)

    def reset(self, token):
        if self.uses_global_var:
            self.global_var, self.uses_global_var = token, token is not None
        else:
            self.context_var.reset(token)


_ACTIVE = CompileableContextVar("_ACTIVE")


def _decorate(*fns):
    """kernels' use_kernelized_func: per-instance wrappers built with ``type(fn)()``,
    forward's closure holds the functions, a context variable maps id(fn) to them."""
    def decorator(cls):
        orig_init, orig_forward = cls.__init__, cls.forward

        def new_init(self, *args):
            orig_init(self, *args)
            self.__dict__.setdefault("_kernel_funcs", {})
            for fn in fns:
                self._kernel_funcs[getattr(fn, "__name__", None) or fn.kernel_layer_name] = type(fn)()

        def new_forward(self, *args):
            active = dict(_ACTIVE.get() or {})
            for fn in fns:
                active[id(fn)] = self._kernel_funcs[getattr(fn, "__name__", None) or fn.kernel_layer_name]
            token = _ACTIVE.set(active)
            try:
                return orig_forward(self, *args) + len(active)
            finally:
                _ACTIVE.reset(token)
        cls.__init__, cls.forward = new_init, new_forward
        return cls
    return decorator


@_decorate(FUNC)
class Layer(torch.nn.Module):
    def forward(self, x):
        return FUNC(x)


def test_id_of_a_module_in_forwards_closure_is_guarded_and_traced():
    check(Layer(), torch.randn(3))


# ------------------------------------------------------- class attributes


class Scaled(torch.nn.Module):
    SCALE = 2.0

    @classmethod
    def factor(cls):
        return cls.SCALE

    def forward(self, x):
        return x * self.factor() + type(self).SCALE + self.__class__.SCALE


def test_class_attribute_read_through_cls_or_type_self_is_guarded():
    m = Scaled()
    compiled = capture.compile(m, backend="eager")
    x = torch.ones(2)
    assert torch.equal(compiled(x), m(x))
    try:
        Scaled.SCALE = 5.0
        assert torch.equal(compiled(x), m(x)), "a class attribute changed: the old graph must not run"
    finally:
        Scaled.SCALE = 2.0


class Plain:
    K = 1.0

    @classmethod
    def k(cls):
        return cls.K

    def get(self):
        return self.K


def test_class_attribute_of_an_object_made_in_the_frame_is_guarded():
    def f(x):
        p = Plain()
        return x * p.k() + p.get()
    compiled = capture.compile(f, backend="eager")
    x = torch.ones(2)
    assert torch.equal(compiled(x), f(x))
    try:
        Plain.K = 3.0
        assert torch.equal(compiled(x), f(x))
    finally:
        Plain.K = 1.0


# ------------------------------------------- tensors moved around in lists


def test_tensor_mutated_then_popped_from_an_input_list_is_the_live_one():
    def f(xs):
        xs.append(xs[0] * 2)
        xs[0].add_(1)
        return xs.pop(0)
    check(f, [torch.ones(2), torch.zeros(2)])


def test_tensor_popped_then_inserted_into_an_input_list():
    def f(xs, y):
        t = xs.pop()
        t.mul_(3)
        xs.insert(0, t)
        return xs[0] + y, xs.pop(0)
    check(f, [torch.ones(2), torch.full((2,), 2.0)], torch.ones(2))


# --------------------------------------------- augmented assignment from literals


@pytest.mark.parametrize("start", [0, 1.5, True])
def test_augmented_assignment_starting_from_a_number(start):
    def f(x, y):
        s = start
        s += x
        s *= y
        s -= 1
        return s
    check(f, torch.randn(3), torch.randn(3))


# ------------------------------------------------ custom autograd.Function


class GeLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3.0  # deliberately not the true derivative: the user's backward must run


class ScaleSetup(torch.autograd.Function):
    @staticmethod
    def forward(x, k):
        return x * k

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.k = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.k + 1.0, None


@pytest.mark.parametrize("fn_cls,extra", [(GeLU, ()), (ScaleSetup, (3.0,))], ids=["save_for_backward", "setup_context"])
def test_autograd_function_apply_is_one_graph_with_the_users_backward(fn_cls, extra):
    def f(x):
        return fn_cls.apply(x.sin(), *extra).cos()
    x = torch.randn(4, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    compiled = capture.compile(f, backend="eager", fullgraph=True)
    expected, actual = f(x), compiled(x2)
    torch.testing.assert_close(actual, expected)
    expected.sum().backward()
    actual.sum().backward()
    torch.testing.assert_close(x2.grad, x.grad)
    assert capture.explain(f)(x.detach()).graph_count == 1


# ----------------------------------------------------- telemetry calls


def test_log_api_usage_once_and_function_class_name_trace():
    """torchvision's _log_api_usage_once: reads __module__ / __class__.__name__."""
    def log_once(obj):
        module = obj.__module__
        name = obj.__class__.__name__
        if callable(obj) and type(obj).__name__ == "function":
            name = obj.__name__
        torch._C._log_api_usage_once(f"{module}.{name}")

    def f(x):
        log_once(f)
        return x + 1
    check(f, torch.randn(2))


# -------------------------------------------------- internal errors are loud


def test_internal_error_raises_under_tests_and_warns_for_users(monkeypatch):
    from capture.symbolic import output_graph

    def broken(*args, **kwargs):
        raise KeyError("a bug of ours")
    monkeypatch.setattr(output_graph.OutputGraph, "finish", broken)

    def f(x):
        return x + 1
    with pytest.raises(capture.InternalError, match="KeyError"):
        capture.compile(f, backend="eager")(torch.ones(1))
    capture.reset()
    monkeypatch.setattr(capture.config, "internal_errors", "warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = capture.compile(f, backend="eager")(torch.ones(1))
    assert torch.equal(out, torch.full((1,), 2.0)), "the frame still runs (eagerly)"
    assert any(issubclass(w.category, capture.InternalErrorWarning) and "KeyError" in str(w.message)
               for w in caught)


# ---------------------------------------------- loops and modes across breaks


class Stack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(3, 3) for _ in range(3)])

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == 1:
                print("between layers")  # a break inside the loop over the ModuleList
        return x


def test_modulelist_loop_with_a_break_inside_keeps_the_graph_before_it(capsys):
    m = Stack()
    compiled = capture.compile(m, backend="eager")
    x = torch.randn(2, 3)
    torch.testing.assert_close(compiled(x), m(x))
    ex = capture.explain(m)(x)
    assert ex.graph_count >= 1 and not any("no resume point" in r.reason for r in ex.all_breaks), \
        [str(r) for r in ex.all_breaks]


def test_inference_mode_false_after_a_break_is_traced():
    def f(x):
        y = x * 2
        print("break")
        with torch.inference_mode(False):
            z = y + 1
        return z, torch.is_grad_enabled()
    x = torch.randn(3, requires_grad=True)
    torch.testing.assert_close(capture.compile(f, backend="eager")(x)[0], f(x)[0])
    ex = capture.explain(f)(x)
    assert ex.graph_count == 2, [str(r) for r in ex.all_breaks]


def test_inference_mode_false_enables_grad_inside_no_grad():
    def f(x):
        with torch.no_grad():
            with torch.inference_mode(False):
                y = x * 2
        return y
    check(f, torch.randn(3, requires_grad=True))


def test_lambda_defined_in_a_torch_module_is_traced_through():
    """A function of torch's that its module does not name (the lambdas of torch.testing's
    OpInfo entries) cannot be a graph node: the graph's code refers to a call_function
    target as ``<module>.<name>`` (here ``...common_methods_invocations.op``, an
    AttributeError on every call with the eager backend). It is traced through instead."""
    from torch.testing._internal.common_methods_invocations import op_db
    contiguous = next(op for op in op_db if op.name == "contiguous").op
    assert contiguous.__name__ == "<lambda>" and contiguous.__module__.startswith("torch.")

    def fn(x):
        return contiguous(x.t()) * 2

    x = torch.randn(3, 4)
    for backend in ("eager", "cpu"):
        capture.reset()
        got = capture.compile(fn, backend=backend)(x)
        assert torch.equal(got, fn(x)) and got.stride() == fn(x).stride()
    ex = capture.explain(fn, x)
    assert ex.graph_count == 1 and not ex.all_breaks, [str(r) for r in ex.all_breaks]
