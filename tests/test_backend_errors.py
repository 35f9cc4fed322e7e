"""A user backend that fails reaches the user as a named error (capture.BackendCompilerFailed
and its kinds), never as our internal error or a silently eager frame; suppress_errors
runs the frame eagerly with a warning instead."""
import re
import warnings

import pytest
import torch

import capture


def raising_backend(gm, example_inputs):
    raise ValueError("no kernels today")


def add_and_scale(x):
    return x.sin() + 1, x * 2


def test_raising_backend_raises_backend_compiler_failed_naming_it_with_the_cause_chained():
    f = capture.compile(add_and_scale, backend=raising_backend)
    with pytest.raises(capture.BackendCompilerFailed) as info:
        f(torch.randn(3))
    err = info.value
    assert err.backend == "raising_backend"
    assert isinstance(err.__cause__, ValueError) and str(err.__cause__) == "no kernels today"
    assert "raising_backend" in str(err) and "no kernels today" in str(err)
    assert "test_backend_errors.py" in str(err) and err.where.endswith(f":{add_and_scale.__code__.co_firstlineno}")
    assert type(err) is capture.BackendCompilerFailed


def test_raising_backend_is_asked_again_on_the_next_call_not_replaced_by_eager():
    calls = []

    def flaky(gm, example_inputs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first time fails")
        return gm.forward
    f = capture.compile(add_and_scale, backend=flaky)
    x = torch.randn(3)
    with pytest.raises(capture.BackendCompilerFailed):
        f(x)
    out = f(x)
    assert len(calls) == 2
    torch.testing.assert_close(out, add_and_scale(x))
    report = capture.report(add_and_scale)
    assert [e.kind for e in report.frames[0].entries] == ["graph"]


def test_backend_returning_a_non_callable_raises_backend_returned_non_callable():
    f = capture.compile(add_and_scale, backend=lambda gm, example_inputs: 42)
    with pytest.raises(capture.BackendReturnedNonCallable, match="returned int, not a callable") as info:
        f(torch.randn(3))
    assert isinstance(info.value, capture.BackendCompilerFailed)
    assert info.value.backend == "<lambda>"


class OneOutputBackend:
    """A backend object (no __name__) whose callable drops the graph's second output."""

    def __call__(self, gm, example_inputs):
        return lambda *inputs: gm.forward(*inputs)[:1]


@pytest.mark.parametrize("make_callable, message", [
    (lambda gm: (lambda *a: gm.forward(*a)[:1]), "gave 1 output(s); the graph has 2"),
    (lambda gm: (lambda *a: gm.forward(*a) + (a[0],)), "gave 3 output(s); the graph has 2"),
    (lambda gm: (lambda *a: gm.forward(*a)[0]), "gave Tensor, not a tuple or list"),
    (lambda gm: (lambda *a: (gm.forward(*a)[0], 1.0)), "gave float as output 1"),
])
def test_backend_callable_with_the_wrong_outputs_raises_backend_output_mismatch(make_callable, message):
    f = capture.compile(add_and_scale, backend=lambda gm, example_inputs: make_callable(gm))
    with pytest.raises(capture.BackendOutputMismatch, match=re.escape(message)) as info:
        f(torch.randn(3))
    assert isinstance(info.value, capture.BackendCompilerFailed)
    assert "test_backend_errors.py" in str(info.value)


def test_backend_object_without_a_name_is_named_by_its_class():
    f = capture.compile(add_and_scale, backend=OneOutputBackend())
    with pytest.raises(capture.BackendOutputMismatch) as info:
        f(torch.randn(3))
    assert info.value.backend == "OneOutputBackend"


def test_backend_returning_a_list_of_the_right_outputs_is_accepted():
    f = capture.compile(add_and_scale, backend=lambda gm, ex: (lambda *a: list(gm.forward(*a))))
    x = torch.randn(4)
    for got, want in zip(f(x), add_and_scale(x)):
        torch.testing.assert_close(got, want)


def test_suppress_errors_warns_once_and_runs_the_frame_eagerly():
    calls = []

    def failing(gm, example_inputs):
        calls.append(1)
        raise ValueError("broken backend")
    f = capture.compile(add_and_scale, backend=failing, options={"suppress_errors": True})
    x = torch.randn(3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = f(x), f(x)
    fallbacks = [w for w in caught if issubclass(w.category, capture.BackendFallbackWarning)]
    assert len(fallbacks) == 1 and "broken backend" in str(fallbacks[0].message)
    assert fallbacks[0].filename == add_and_scale.__code__.co_filename
    assert len(calls) == 1
    for out in (first, second):
        for got, want in zip(out, add_and_scale(x)):
            torch.testing.assert_close(got, want)
    entries = capture.report(add_and_scale).frames[0].entries
    assert [e.kind for e in entries] == ["eager"] and "backend failed" in entries[0].reason


def test_suppress_errors_does_not_hide_a_failure_under_fullgraph():
    f = capture.compile(add_and_scale, backend=raising_backend, fullgraph=True, options={"suppress_errors": True})
    with pytest.raises(capture.BackendCompilerFailed):
        f(torch.randn(3))


def test_suppress_errors_does_not_apply_to_wrong_outputs_at_run_time():
    f = capture.compile(add_and_scale, backend=lambda gm, ex: (lambda *a: ()), options={"suppress_errors": True})
    with pytest.raises(capture.BackendOutputMismatch):
        f(torch.randn(3))


def test_backend_raising_keyboard_interrupt_is_not_wrapped():
    def interrupted(gm, example_inputs):
        raise KeyboardInterrupt
    f = capture.compile(add_and_scale, backend=interrupted)
    with pytest.raises(KeyboardInterrupt):
        f(torch.randn(3))


def test_backend_failing_on_the_graph_after_a_break_raises_too():
    seen = []

    def second_fails(gm, example_inputs):
        seen.append(gm)
        if len(seen) == 2:
            raise RuntimeError("second graph")
        return gm.forward

    def broken(x):
        y = x.cos()
        print("", end="")
        return y + 1
    f = capture.compile(broken, backend=second_fails)
    with pytest.raises(capture.BackendCompilerFailed, match="second graph"):
        f(torch.randn(3))


def test_failing_backend_on_a_module_raises_and_module_still_runs_eagerly_without_compile():
    m = torch.nn.Linear(3, 2)
    compiled = capture.compile(m, backend=raising_backend)
    x = torch.randn(2, 3)
    with pytest.raises(capture.BackendCompilerFailed):
        compiled(x)
    torch.testing.assert_close(m(x), torch.nn.functional.linear(x, m.weight, m.bias))


def test_unknown_option_lists_the_known_ones():
    with pytest.raises(ValueError, match="suppress_errors"):
        capture.compile(add_and_scale, options={"supress_errors": True})
