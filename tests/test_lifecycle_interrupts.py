"""Interrupts, recursion and exceptions inside compiled code behave as in eager: they
propagate unchanged, leave grad mode and the default dtype as eager leaves them, leave
no frame hook installed, and later calls still run compiled."""
import sys

import pytest
import torch

import capture
from capture import _C


def _state():
    return torch.is_grad_enabled(), torch.get_default_dtype(), _C.get_callback(), _C._active_threads()


def _raise(exc):
    raise exc


def interrupted(x, exc):
    y = x * 2
    with torch.no_grad():
        z = y + 1
        print("", end="")  # graph break inside the no_grad block
        _raise(exc)  # called natively after the break
    return z


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), ValueError("boom")], ids=type)
def test_interrupt_after_a_break_inside_no_grad_propagates_and_restores_grad_mode(exc):
    compiled = capture.compile(interrupted, backend="eager")
    before = _state()
    for _ in range(2):  # the compiling call and a cached one
        with pytest.raises(type(exc)):
            compiled(torch.ones(2, requires_grad=True), exc)
        assert _state() == before
    with pytest.raises(type(exc)):
        interrupted(torch.ones(2, requires_grad=True), exc)
    assert _state() == before


def test_keyboard_interrupt_from_a_backend_leaves_nothing_installed_and_the_next_call_compiles():
    calls = []

    def interrupt_once(gm, example_inputs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return gm.forward
    f = capture.compile(lambda x: x.sin() + 1, backend=interrupt_once)
    before = _state()
    with pytest.raises(KeyboardInterrupt):
        f(torch.ones(3))
    assert _state() == before
    torch.testing.assert_close(f(torch.ones(3)), torch.ones(3).sin() + 1)
    assert len(calls) == 2


def _depth(n, x):
    return x if n == 0 else _depth(n - 1, x + 1)


# ``n`` is an int: each depth is its own entry until the cache limit (then eagerly)
CACHE_LIMIT_WARNING = "ignore:capture.*hit the cache limit:UserWarning"


@pytest.mark.filterwarnings(CACHE_LIMIT_WARNING)
def test_deep_recursion_of_a_compiled_function_equals_eager():
    compiled = capture.compile(_depth, backend="eager")
    x = torch.zeros(2)
    torch.testing.assert_close(compiled(200, x), _depth(200, x))
    torch.testing.assert_close(compiled(200, x), x + 200)


def _forever(n, x):
    return _forever(n + 1, x * 1.0)


@pytest.mark.filterwarnings(CACHE_LIMIT_WARNING)
def test_unbounded_recursion_raises_recursion_error_and_the_function_still_works_after():
    compiled = capture.compile(_forever, backend="eager")
    before = _state()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        with pytest.raises(RecursionError):
            compiled(0, torch.ones(2))
    finally:
        sys.setrecursionlimit(limit)
    assert _state() == before
    depth = capture.compile(_depth, backend="eager")
    torch.testing.assert_close(depth(20, torch.zeros(1)), torch.full((1,), 20.0))


def switches_dtype(x, fail):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        y = torch.ones(2) + x
        print("", end="")  # graph break
        if fail:
            raise RuntimeError("after the break")
        return y
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("fail", [False, True])
def test_exception_after_a_break_leaves_the_default_dtype_as_eager_does(fail):
    compiled = capture.compile(switches_dtype, backend="eager")
    x = torch.ones(2, dtype=torch.float64)
    for fn in (switches_dtype, compiled, compiled):
        if fail:
            with pytest.raises(RuntimeError, match="after the break"):
                fn(x, fail)
        else:
            out = fn(x, fail)
            assert out.dtype == torch.float64
        assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()


def test_exception_in_enable_grad_inside_no_grad_restores_both_modes():
    def f(x):
        with torch.no_grad():
            a = x * 2
            with torch.enable_grad():
                b = x * 3
                print("", end="")
                if b.sum() > 0:
                    raise ValueError("inner")
            return a + b

    compiled = capture.compile(f, backend="eager")
    for fn in (f, compiled, compiled):
        with pytest.raises(ValueError, match="inner"):
            fn(torch.ones(2, requires_grad=True))
        assert torch.is_grad_enabled()
        with torch.no_grad():
            with pytest.raises(ValueError, match="inner"):
                fn(torch.ones(2, requires_grad=True))
            assert not torch.is_grad_enabled()
