"""capture._C's calls that switch the thread's callback around them: ``call_with_callback``
(what a compiled function's wrapper runs) and ``HookOff`` (how a rewritten frame calls its
compiled graph). The hook itself is tests/test_eval_frame.py's."""
import pytest

import capture._C as C
from helpers_eval_frame import Recorder, reset_hook  # noqa: F401 - reset_hook: an autouse fixture


def plain(a, b):
    return a + b


def test_call_with_callback_sets_and_restores_the_callback():
    rec, outer_cb = Recorder(only=("plain",)), Recorder()
    seen = []

    def body(a, b=0):
        seen.append(C.get_callback())
        return plain(a, b)
    assert C.call_with_callback(rec, body, (1,), {"b": 2}) == 3
    assert seen == [rec] and rec.names() == ["plain"]
    assert C.get_callback() is None and not C._hook_installed() and C._active_threads() == 0
    C.set_callback(outer_cb)
    assert C.call_with_callback(rec, body, (4,), None) == 4
    assert C.get_callback() is outer_cb and C._active_threads() == 1


def test_call_with_callback_restores_after_an_exception_and_nested_calls():
    rec, inner_cb = Recorder(), Recorder()

    def nested():
        assert C.call_with_callback(inner_cb, C.get_callback, (), None) is inner_cb
        assert C.get_callback() is rec        # each call restores its own previous callback
        raise KeyError("boom")
    with pytest.raises(KeyError, match="boom"):
        C.call_with_callback(rec, nested, (), None)
    assert C.get_callback() is None and C._active_threads() == 0
    with pytest.raises(TypeError):
        C.call_with_callback(None, plain, (1, 2), None)
    with pytest.raises(TypeError):
        C.call_with_callback(rec, plain, [1, 2], None)


def test_hook_off_calls_with_no_callback_and_restores_it():
    rec = Recorder(only=("graph", "plain"))
    seen = []

    def graph(a, *, b):
        seen.append(C.get_callback())
        if b == "raise":
            raise ValueError("graph failed")
        return plain(a, b)
    off = C.HookOff(graph)
    assert off.compiled is graph
    C.set_callback(rec)
    assert off(1, b=2) == 3
    with pytest.raises(ValueError, match="graph failed"):
        off(1, b="raise")
    assert seen == [None, None] and rec.calls == []          # nothing inside was hooked
    assert C.get_callback() is rec and C._active_threads() == 1
    C.set_callback(None)
    assert off(5, b=1) == 6 and C.get_callback() is None
    with pytest.raises(TypeError):
        C.HookOff(3)
