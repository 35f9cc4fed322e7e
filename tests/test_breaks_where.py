"""Where graph breaks land: a break names the user's file:line (not a library file the
tracer stepped into), the code after an untraceable call is still captured, and frames
that run eagerly keep their calling convention. Compared against eager (see
tests/helpers_breaks.py)."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

import pytest
import torch

import capture
from helpers_breaks import break_lines, explain, line_of, same, scaled, t

THIS_FILE = os.path.basename(__file__)


# ================================================================== where breaks land (user file:line, resume after them)
# A break must name the user's line (not a stdlib/torch file the tracer stepped into)
# and the code after a call it cannot trace must still be captured, as torch.compile does.

def test_logging_break_names_user_line_under_fullgraph():
    logger = logging.getLogger("test_breaks.fullgraph")

    def f(x):
        y = x * 2
        logger.info("value")
        return y

    with pytest.raises(capture.Unsupported) as info:
        capture.compile(f, backend="eager", fullgraph=True)(t(3))
    assert THIS_FILE in info.value.where, f"break located outside user code: {info.value.where} ({info.value.reason})"


def test_contextmanager_break_names_user_line():
    def f(x):
        with scaled(2) as k:
            y = x * k
        return y

    with contextlib.redirect_stdout(None):
        ex = explain(f, t(3))
    outside = [str(r) for r in ex.break_reasons if THIS_FILE not in r.where]
    assert not outside, f"breaks located outside user code: {outside}"


def test_c_function_call_break_resumes_after_the_call():
    from time import perf_counter as now

    def f(x):
        y = x.cos() * 2
        start = now()
        return y + 1, start > 0

    ex = explain(f, t(3))
    call_line = line_of(f, "now()")
    assert break_lines(ex) == [call_line], str(ex)
    assert ex.graph_count == 2 and ex.ops_per_graph[1] == ["add"], str(ex)


def test_module_function_call_break_resumes_after_the_call():
    def f(x):
        y = x.cos() * 2
        start = time.time()
        return y + 1, start > 0

    ex = explain(f, t(3))
    assert break_lines(ex) == [line_of(f, "time.time()")], str(ex)
    assert ex.graph_count == 2, str(ex)


def test_method_of_untraceable_object_resumes_after_the_call(capsys):
    def f(x):
        y = x + 1
        sys.stdout.write("written\n")
        return y * 2

    ex = explain(f, t(3))
    assert ex.graph_count == 2 and ex.graph_break_count == 1, str(ex)


# ================================================================== frames that run eagerly keep their calling convention

def test_break_in_loop_of_varargs_kwargs_function(capsys):
    def f(*args, **kwargs):
        out = 0
        for a in args:
            print("arg", tuple(a.shape))
            out = out + a
        return out * kwargs.get("scale", 1), len(args), sorted(kwargs)

    same(capsys, f, (t(2), t(2)), (t(2), t(2), t(2)))
    same(capsys, f, (t(2), t(2)), kwargs={"scale": 3.0})


def test_break_in_try_of_function_with_star_args(capsys):
    def f(x, *rest):
        try:
            print("in try", len(rest))
        finally:
            y = x * 2
        return y, rest

    same(capsys, f, (t(2), 1, 2), (t(2),))


def test_decorator_wrapper_with_break_in_loop(capsys):
    import functools

    def log_shapes(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for a in args:
                if isinstance(a, torch.Tensor):
                    print("arg", tuple(a.shape))
            return fn(*args, **kwargs)
        return wrapper

    @log_shapes
    def mlp(x, w, bias=None):
        y = x @ w
        return torch.relu(y + bias) if bias is not None else torch.relu(y)

    same(capsys, mlp, (t(2, 3), t(3, 4)), (t(2, 3), t(3, 4), t(4)))
