"""Backends, bad inputs, fullgraph, exceptions from user code, print() inside a frame."""
import inspect
import os
import warnings

import pytest
import torch

import capture
from helpers_compare import check, define


def t(*shape):
    return torch.randn(*shape)


def _line_of(fn, text):
    """Absolute line number of the first line of fn's source containing text."""
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return start + i
    raise AssertionError(f"{text!r} not in {fn.__name__}")


# ------------------------------------------------------------------ custom backends

class CountingBackend:
    def __init__(self):
        self.compiles = []
        self.runs = 0

    def __call__(self, gm, example_inputs):
        self.compiles.append((gm, example_inputs))

        def run(*args):
            self.runs += 1
            return gm.forward(*args)
        return run


def test_custom_backend_gets_graph_module_and_example_tensors():
    backend = CountingBackend()

    def f(x, y):
        return (x @ y).relu() + 1

    c = check(f, t(2, 3), t(3, 4), backend=backend, expect_graphs=None)  # (explain would reset caches)
    assert len(backend.compiles) == 1
    gm, example_inputs = backend.compiles[0]
    assert isinstance(gm, torch.fx.GraphModule)
    assert isinstance(example_inputs, list)
    assert [tuple(e.shape) for e in example_inputs] == [(2, 3), (3, 4)]
    assert all(isinstance(e, torch.Tensor) for e in example_inputs)
    targets = {n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method")}
    assert targets, gm.graph
    assert backend.runs == 2  # first call and the fresh-input call (cache hit)
    c(t(2, 3), t(3, 4))
    assert backend.runs == 3 and len(backend.compiles) == 1


def test_custom_backend_result_is_what_runs():
    def backend(gm, example_inputs):
        def run(*args):
            out = gm.forward(*args)
            return tuple(o * 0 for o in out) if isinstance(out, (tuple, list)) else out * 0
        return run

    def f(x):
        return x + 1

    out = capture.compile(f, backend=backend)(torch.ones(3))
    torch.testing.assert_close(out, torch.zeros(3))


def test_custom_backend_not_called_when_no_ops():
    backend = CountingBackend()

    def f(x, n):
        return x, n * 2

    x = t(2)
    out = capture.compile(f, backend=backend)(x, 3)
    assert out[0] is x and out[1] == 6
    assert backend.compiles == []


def test_custom_backend_recompiles_on_new_shape():
    backend = CountingBackend()

    def f(x):
        return x * 2

    c = capture.compile(f, backend=backend)
    for shape in [(2,), (2,), (3,), (3,), (2,)]:
        x = t(*shape)
        torch.testing.assert_close(c(x), x * 2)
    assert len(backend.compiles) == 2
    assert backend.runs == 5


def test_backend_returning_non_callable_with_fullgraph_raises():
    def backend(gm, example_inputs):
        return 42

    def f(x):
        return x + 1

    with pytest.raises(capture.BackendReturnedNonCallable, match="backend"):
        capture.compile(f, backend=backend, fullgraph=True)(t(2))


def test_backend_returning_non_callable_runs_eagerly_only_with_suppress_errors():
    def backend(gm, example_inputs):
        return None

    def f(x):
        return x + 1

    x = t(2)
    with pytest.raises(capture.BackendReturnedNonCallable):
        capture.compile(f, backend=backend)(x)
    with pytest.warns(capture.BackendFallbackWarning):
        out = capture.compile(f, backend=backend, options={"suppress_errors": True})(x)
    torch.testing.assert_close(out, x + 1)


def test_reset_drops_compiled_entries():
    backend = CountingBackend()

    def f(x):
        return x - 1

    c = capture.compile(f, backend=backend)
    c(t(2))
    c(t(2))
    capture.reset()
    c(t(2))
    assert len(backend.compiles) == 2


def test_triton_default_backend_runs_and_matches():
    def f(x):
        return x.exp() * 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = capture.compile(f)
        x = t(3)
        torch.testing.assert_close(c(x), f(x))


def test_decorator_forms():
    @capture.compile(backend="eager")
    def f(x):
        return x * 3

    x = t(2)
    torch.testing.assert_close(f(x), x * 3)
    assert f.__name__ == "f"


# ------------------------------------------------------------------ bad inputs

def test_unknown_backend_name_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="no_such_backend"):
        capture.compile(lambda x: x, backend="no_such_backend")


def test_backend_of_wrong_type_raises_type_error():
    with pytest.raises(TypeError):
        capture.compile(lambda x: x, backend=3)


def test_unknown_option_raises_value_error():
    with pytest.raises(ValueError, match="bogus"):
        capture.compile(lambda x: x, backend="eager", options={"bogus": 1})


def test_fullgraph_print_raises_unsupported_with_reason_and_location():
    def f(x):
        y = x + 1
        print("hello")
        return y

    line = _line_of(f, 'print("hello")')
    c = capture.compile(f, backend="eager", fullgraph=True)
    with pytest.raises(capture.Unsupported) as info:
        c(t(2))
    msg = str(info.value)
    assert "print" in msg
    assert f"{os.path.basename(__file__)}:{line}" in msg, msg
    assert info.value.where is not None and info.value.where.endswith(f"{os.path.basename(__file__)}:{line}")


def test_fullgraph_break_in_inlined_function_names_inner_line():
    def inner(x):
        print("inner")
        return x

    def f(x):
        return inner(x) * 2

    line = _line_of(inner, 'print("inner")')
    with pytest.raises(capture.Unsupported) as info:
        capture.compile(f, backend="eager", fullgraph=True)(t(2))
    assert f"{os.path.basename(__file__)}:{line}" in str(info.value)


def test_fullgraph_data_dependent_branch_raises_unsupported():
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    line = _line_of(f, "if x.sum() > 0")
    with pytest.raises(capture.Unsupported) as info:
        capture.compile(f, backend="eager", fullgraph=True)(t(3))
    assert f":{line}" in str(info.value)


def test_fullgraph_on_capturable_function_works():
    def f(x):
        return x.relu().sum(-1)

    x = t(2, 3)
    torch.testing.assert_close(capture.compile(f, backend="eager", fullgraph=True)(x), f(x))


def test_cache_limit_option_warns_and_stays_correct():
    def f(x):
        return x + 1

    c = capture.compile(f, backend="eager", dynamic=False, options={"cache_limit": 2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 6):
            x = t(n)
            torch.testing.assert_close(c(x), x + 1)
    limit_warnings = [w for w in caught if "cache limit" in str(w.message)]
    assert len(limit_warnings) == 1


# ------------------------------------------------------------------ exceptions from user code

def _raises_same(fn, *args):
    with pytest.raises(Exception) as eager:
        fn(*args)
    with pytest.raises(Exception) as compiled:
        capture.compile(fn, backend="eager")(*args)
    assert type(compiled.value) is type(eager.value)
    assert str(compiled.value) == str(eager.value)
    return compiled.value


def test_exception_shape_mismatch_in_torch_op():
    def f(x, y):
        return x @ y

    _raises_same(f, t(2, 3), t(4, 5))


def test_exception_broadcast_mismatch():
    def f(x, y):
        return x + y

    _raises_same(f, t(3), t(4))


def test_exception_keyerror_on_dict():
    def f(x, d):
        return x * d["missing"]

    _raises_same(f, t(2), {"present": 1})


def test_exception_indexerror_on_list():
    def f(xs):
        return xs[5]

    _raises_same(f, [t(2)])


def test_exception_zero_division_python():
    def f(x, n):
        return x * (1 / n)

    _raises_same(f, t(2), 0)


def test_exception_raised_explicitly():
    def f(x, mode):
        if mode not in ("a", "b"):
            raise ValueError(f"bad mode {mode}")
        return x

    _raises_same(f, t(2), "c")


def test_exception_failed_assert():
    f = define("""
        def f(x):
            assert x.dim() == 3, "expected 3-d input"
            return x
    """, "f", filename=__file__)
    _raises_same(f, t(2))


def test_exception_attribute_error():
    class Obj:
        pass

    def f(x, o):
        return x * o.missing

    _raises_same(f, t(2), Obj())


def test_exception_then_good_call_still_correct():
    def f(x, y):
        return x @ y

    c = capture.compile(f, backend="eager")
    with pytest.raises(RuntimeError):
        c(t(2, 3), t(4, 5))
    a, b = t(2, 3), t(3, 2)
    torch.testing.assert_close(c(a, b), a @ b)


def test_exception_in_inlined_helper_propagates():
    def helper(d, k):
        return d[k]

    def f(x, d):
        return x + helper(d, "nope")

    _raises_same(f, t(2), {})


# ------------------------------------------------------------------ print

def test_print_same_output_and_order(capsys):
    def f(x):
        print("start", x.shape)
        y = x * 2
        print("middle", y.dtype)
        return y + 1

    x = t(2, 3)
    print("before")
    e_out = f(x)
    print("after")
    eager_text = capsys.readouterr().out
    c = capture.compile(f, backend="eager")
    print("before")
    c_out = c(x)
    print("after")
    comp_text = capsys.readouterr().out
    assert comp_text == eager_text
    torch.testing.assert_close(c_out, e_out)
    # the cached path prints too
    c(x)
    assert capsys.readouterr().out == "start torch.Size([2, 3])\nmiddle torch.float32\n"


def test_print_tensor_values(capsys):
    def f(x):
        y = x + 1
        print(y)
        return y

    x = torch.arange(3.0)
    f(x)
    eager_text = capsys.readouterr().out
    capture.compile(f, backend="eager")(x)
    assert capsys.readouterr().out == eager_text


def test_print_in_inlined_function_and_loop(capsys):
    def log(i, v):
        print(f"step {i}: {v.shape[0]}")

    def f(x):
        for i in range(3):
            x = x * 2
            log(i, x)
        return x

    x = t(4)
    f(x)
    eager_text = capsys.readouterr().out
    out = capture.compile(f, backend="eager")(x)
    assert capsys.readouterr().out == eager_text
    torch.testing.assert_close(out, x * 8)


def test_explain_reports_print_break_location():
    def f(x):
        y = x.sin()
        print("side effect")
        return y

    line = _line_of(f, 'print("side effect")')
    ex = capture.explain(f)(t(2))
    assert len(ex.break_reasons) >= 1
    assert any("print" in r.reason for r in ex.break_reasons)
    assert any(r.where.endswith(f"{os.path.basename(__file__)}:{line}") for r in ex.break_reasons), ex.break_reasons


def test_explain_fields_on_capturable_function():
    def f(x, y):
        return (x + y).relu().sum()

    ex = capture.explain(f)(t(3), t(3))
    assert ex.graph_count == 1 and ex.graph_break_count == 0 and ex.break_reasons == []
    assert ex.op_count == 3
    assert all(isinstance(g, torch.fx.GraphModule) for g in ex.graphs)
    assert any("L['x']" in str(g) for g in ex.guards)


def test_exception_negative_step_slice_on_tensor():
    def f(x):
        return x[::-1]

    _raises_same(f, t(4))


def test_exception_wrong_view_shape():
    def f(x):
        return x.view(5, -1)

    _raises_same(f, t(2, 3))


def test_exception_type_error_bad_call_arguments():
    def helper(a, b):
        return a + b

    def f(x):
        return helper(x)

    _raises_same(f, t(2))


def test_exception_unpack_length_mismatch():
    def f(xs):
        a, b = xs
        return a + b

    _raises_same(f, [t(2), t(2), t(2)])


# ------------------------------------------------------------------ print: more placements

def _same_print_output(capsys, fn, *args, calls=2):
    """fn prints; compiled output and printed text equal eager's on every call (incl. cached ones)."""
    import copy
    for _ in range(calls):
        e_args = copy.deepcopy(args)
        e_out = fn(*e_args)
        eager_text = capsys.readouterr().out
        c_args = copy.deepcopy(args)
        c_out = capture.compile(fn, backend="eager")(*c_args)
        comp_text = capsys.readouterr().out
        assert comp_text == eager_text
        from helpers_compare import assert_same
        assert_same(c_out, e_out)
        assert_same(c_args, e_args, "inputs after the call")


def test_print_with_keyword_arguments(capsys):
    def f(x):
        y = x + 1
        print("a", "b", sep="-", end="!\n")
        return y * 2

    _same_print_output(capsys, f, t(2))


def test_print_in_branch_and_loop_with_tensor_state(capsys):
    def f(x, n):
        acc = x
        for i in range(n):
            acc = acc * 2
            if i % 2 == 1:
                print("odd", i)
        return acc + 1, n

    _same_print_output(capsys, f, t(3), 4)


def test_print_between_container_updates(capsys):
    def f(x):
        parts = [x]
        d = {"a": x + 1}
        print("building", len(parts))
        parts.append(x * 3)
        d["b"] = parts[-1] - 1
        return parts, d

    _same_print_output(capsys, f, t(2))


def test_print_then_inplace_on_input(capsys):
    def f(x):
        print("before", x.shape)
        x.add_(1)
        print("after")
        return x

    _same_print_output(capsys, f, t(2))


def test_print_inside_comprehension(capsys):
    def f(x):
        return [print(i) or x * i for i in range(3)]

    _same_print_output(capsys, f, t(2))


def test_print_flush_and_file(capsys):
    import sys

    def f(x):
        print("to stdout", file=sys.stdout, flush=True)
        return x - 1

    _same_print_output(capsys, f, t(2))


# ------------------------------------------------------------------ what can be compiled

def test_compile_lambda():
    f = lambda x, k=2: x * k + 1  # noqa: E731
    check(f, t(3))


def test_compile_bound_method():
    class Model:
        def __init__(self):
            self.w = torch.randn(3)

        def run(self, x):
            return x * self.w

    m = Model()
    c = capture.compile(m.run, backend="eager")
    x = t(3)
    torch.testing.assert_close(c(x), m.run(x))
    ex = capture.explain(m.run)(x)
    assert ex.graph_count == 1 and ex.graph_break_count == 0, ex.break_reasons


def test_compiled_function_calling_compiled_function():
    def g(x):
        return x.cos()

    cg = capture.compile(g, backend="eager")

    def f(x):
        return cg(x) + 1

    check(f, t(3))


def test_kwargs_in_different_order_hit_same_result():
    def f(x, *, a, b):
        return x * a - b

    c = capture.compile(f, backend="eager")
    x = t(3)
    torch.testing.assert_close(c(x, a=2.0, b=1.0), f(x, a=2.0, b=1.0))
    torch.testing.assert_close(c(x, b=1.0, a=2.0), f(x, a=2.0, b=1.0))
    torch.testing.assert_close(c(x, b=3.0, a=0.5), f(x, a=0.5, b=3.0))
