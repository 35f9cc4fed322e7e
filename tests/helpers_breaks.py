"""Helpers of the graph-break tests: run a program eagerly and compiled, compare all
that is observable (outputs, inputs after the call, printed text, exceptions, state)."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect

import torch

import capture
from helpers_compare import assert_same


@dataclasses.dataclass
class Outcome:
    out: object
    exc: tuple | None  # (type, message)
    stdout: str
    stderr: str


def outcome(capsys, fn, args, kwargs=None) -> Outcome:
    capsys.readouterr()
    try:
        out, exc = fn(*args, **(kwargs or {})), None
    except Exception as e:  # noqa: BLE001 - the exception is what we compare
        out, exc = None, (type(e), str(e))
    text = capsys.readouterr()
    return Outcome(out, exc, text.out, text.err)


def same(capsys, fn, *calls, compiled=None, setup=None, state=None, kwargs=None):
    """Run eager ``fn`` and compiled ``fn`` on a deep copy of each argument tuple in
    ``calls``; compare everything observable. ``setup()`` resets global state before
    each run, ``state()`` snapshots it afterwards. Returns the compiled function."""
    if compiled is None:
        compiled = capture.compile(fn, backend="eager")
    for i, args in enumerate(calls):
        e_args, c_args = copy.deepcopy(args), copy.deepcopy(args)
        if setup:
            setup()
        e = outcome(capsys, fn, e_args, kwargs)
        e_state = copy.deepcopy(state()) if state else None
        if setup:
            setup()
        c = outcome(capsys, compiled, c_args, kwargs)
        c_state = copy.deepcopy(state()) if state else None
        where = f"call {i}"
        assert c.exc == e.exc, f"{where}: exception {c.exc} != eager {e.exc}"
        assert c.stdout == e.stdout, f"{where}: stdout {c.stdout!r} != eager {e.stdout!r}"
        assert c.stderr == e.stderr, f"{where}: stderr {c.stderr!r} != eager {e.stderr!r}"
        assert_same(c.out, e.out, f"{where}: out")
        assert_same(c_args, e_args, f"{where}: inputs after the call")
        if state:
            assert_same(c_state, e_state, f"{where}: state after the call")
    return compiled


def t(*shape, requires_grad=False):
    return torch.randn(*shape, requires_grad=requires_grad)


def line_of(fn, marker: str, nth: int = 0) -> int:
    """Line number (in this file) of the ``nth`` source line of ``fn`` containing ``marker``."""
    lines, start = inspect.getsourcelines(fn)
    hits = [start + i for i, line in enumerate(lines) if marker in line]
    return hits[nth]


def explain(fn, *args):
    return capture.explain(fn)(*copy.deepcopy(args))


def break_lines(ex) -> list[int]:
    return [int(r.where.rsplit(":", 1)[1]) for r in ex.break_reasons]


@contextlib.contextmanager
def scaled(factor):
    """A user context manager that prints on entry and exit."""
    print("scaled enter", factor)
    try:
        yield factor * 2
    finally:
        print("scaled exit", factor)
