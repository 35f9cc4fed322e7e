"""The user's tools keep working on compiled code: tracebacks name the user's function
after a graph break, a sys.settrace tracer (coverage) sees every user line, a bdb
breakpoint fires, a sys.setprofile profiler sees every user call, and every source we
exec is readable through linecache."""
import bdb
import linecache
import sys
import traceback

import pytest
import torch

import capture
from capture import _C
from capture.state import FRAMES


def double(y):
    return y * 2


def breaks_then_raises(x):
    y = x.sin()
    print("", end="")  # graph break
    z = double(y)
    if z.sum() > 1e9:  # graph break on a data-dependent branch
        return z
    raise ValueError("boom")


def straight(x):
    a = x + 1
    b = double(a)
    c = b.relu()
    return c - a


def with_break(x):
    a = x.cos()
    print("", end="")
    b = double(a)
    return b + 1


def _last_user_frames(exc: BaseException) -> list:
    return [fs for fs in traceback.extract_tb(exc.__traceback__) if fs.filename == __file__]


def test_traceback_after_a_graph_break_names_the_users_function():
    f = capture.compile(breaks_then_raises, backend="eager")
    with pytest.raises(ValueError) as info:
        f(torch.ones(3))
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert last.name == "breaks_then_raises"
    assert last.filename == __file__ and last.line == 'raise ValueError("boom")'
    names = {fs.name for fs in traceback.extract_tb(info.value.__traceback__)}
    assert not [n for n in names if n.startswith("__")], names


def test_rewritten_frames_and_guards_are_readable_through_linecache():
    f = capture.compile(breaks_then_raises, backend="eager")
    with pytest.raises(ValueError) as info:
        f(torch.ones(3))
    generated = [fs for fs in traceback.extract_tb(info.value.__traceback__) if fs.filename.startswith("<capture")]
    assert generated and all(fs.line for fs in generated)
    guard_files = {e.guard.fn.__code__.co_filename for r in FRAMES.values() for e in r.entries}
    assert guard_files and all(linecache.getlines(name) for name in guard_files)
    capture.reset()
    assert not any(linecache.cache.get(name) for name in guard_files)


def _line_events(fn, *args) -> list:
    """(function, event, line) of every event a settrace tracer sees in this file."""
    seen = []

    def tracer(frame, event, arg):
        if frame.f_code.co_filename == __file__:
            seen.append((frame.f_code.co_name, event, frame.f_lineno))
        return tracer
    sys.settrace(tracer)
    try:
        fn(*args)
    except ValueError:
        pass
    finally:
        sys.settrace(None)
    return seen


@pytest.mark.parametrize("fn", [straight, with_break, breaks_then_raises], ids=lambda f: f.__name__)
def test_settrace_tracer_sees_every_user_line_like_eager(fn):
    compiled = capture.compile(fn, backend="eager")
    x = torch.ones(3)
    try:
        compiled(x)  # compiled before the tracer starts: the cache holds an entry
    except ValueError:
        pass
    assert capture.report(fn).frames
    eager_events = _line_events(fn, x)
    compiled_events = _line_events(compiled, x)
    assert compiled_events == eager_events
    assert ("double", "line", double.__code__.co_firstlineno + 1) in compiled_events


def test_bdb_breakpoint_inside_a_compiled_function_fires():
    hits = []

    class Recorder(bdb.Bdb):
        def user_line(self, frame):
            if self.break_here(frame):
                hits.append((frame.f_code.co_name, frame.f_lineno, dict(frame.f_locals)))
            self.set_continue()
    compiled = capture.compile(straight, backend="eager")
    x = torch.ones(3)
    compiled(x)
    line = straight.__code__.co_firstlineno + 3  # c = b.relu()
    debugger = Recorder()
    debugger.set_break(__file__, line)
    try:
        out = debugger.runcall(compiled, x)
    finally:
        debugger.clear_all_breaks()
        sys.settrace(None)
    assert [(name, lineno) for name, lineno, _ in hits] == [("straight", line)]
    torch.testing.assert_close(hits[0][2]["b"], double(x + 1))
    torch.testing.assert_close(out, straight(x))


def test_setprofile_profiler_sees_every_user_call_like_eager():
    def calls(fn, *args):
        seen = []

        def profiler(frame, event, arg):
            if event == "call" and frame.f_code.co_filename == __file__:
                seen.append(frame.f_code.co_name)
        sys.setprofile(profiler)
        try:
            fn(*args)
        finally:
            sys.setprofile(None)
        return seen
    compiled = capture.compile(straight, backend="eager")
    x = torch.ones(3)
    compiled(x)
    assert calls(compiled, x) == calls(straight, x) == ["straight", "double"]


def test_tracing_switched_on_inside_a_compiled_function_sees_the_rest_of_its_lines():
    seen = []

    def tracer(frame, event, arg):
        if frame.f_code.co_filename == __file__:
            seen.append((frame.f_code.co_name, frame.f_lineno))
        return tracer

    def starts_tracing(x):
        a = x + 1
        sys.settrace(tracer)  # graph break: runs natively, then the rest is traced
        b = a * 2
        return b - 1
    f = capture.compile(starts_tracing, backend="eager")
    try:
        out = f(torch.ones(2))
    finally:
        sys.settrace(None)
    first = starts_tracing.__code__.co_firstlineno
    assert ("starts_tracing", first + 3) in seen and ("starts_tracing", first + 4) in seen
    torch.testing.assert_close(out, torch.full((2,), 3.0))


def test_calls_under_a_tracer_neither_compile_nor_spoil_the_cache():
    compiled = capture.compile(straight, backend="eager")
    x = torch.ones(3)
    _line_events(compiled, x)
    assert not capture.report(straight).frames  # ran as plain Python
    torch.testing.assert_close(compiled(x), straight(x))
    entries = capture.report(straight).frames[0].entries
    assert len(entries) == 1 and entries[0].hits == 1
    assert _C.get_callback() is None
