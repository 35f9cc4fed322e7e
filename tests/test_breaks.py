"""Graph breaks (issue 3): every break kind compiled with backend="eager" against eager.

Each case calls the eager function and the compiled one on deep copies of the same
inputs, several times with fresh inputs (first call compiles, later calls hit the cache
or take the other branch), and compares: the outputs (nested structures included), the
inputs afterwards (in-place mutations), the printed text (stdout and stderr), raised
exceptions (same type and message), and, where the program has side effects on objects
that existed before the call, the state of those objects.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import logging
import math
import os
import random
import sys
import time

import numpy as np
import pytest
import torch

import capture
from helpers_compare import assert_same

THIS_FILE = os.path.basename(__file__)


# ------------------------------------------------------------------ helpers

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


# ================================================================== print and other I/O

def test_print_between_ops_two_graphs(capsys):
    def f(x):
        y = x.sin() + 1
        print("between", y.shape)
        return y * 2

    same(capsys, f, (t(3),), (t(3),), (t(3),))
    ex = explain(f, t(3))
    assert ex.graph_count == 2 and ex.graph_break_count == 1, str(ex)
    assert "print" in ex.break_reasons[0].reason
    assert ex.break_reasons[0].where.endswith(f"{THIS_FILE}:{line_of(f, 'print(')}")
    assert ex.ops_per_graph[0] and ex.ops_per_graph[1]


def test_print_tensor_repr_and_fstring_of_item(capsys):
    def f(x):
        y = x.relu()
        print("act:", y)
        print(f"mean={y.mean().item():.3f}")
        return y.sum(0)

    same(capsys, f, (t(2, 3),), (t(2, 3),))


def test_print_to_stderr_with_sep_end(capsys):
    def f(x, y):
        z = x @ y
        print("z", tuple(z.shape), sep="|", end="!\n", file=sys.stderr)
        return z.tanh()

    same(capsys, f, (t(2, 3), t(3, 4)), (t(2, 3), t(3, 4)))


def test_sys_stdout_write(capsys):
    def f(x):
        y = x + 1
        sys.stdout.write("written\n")
        return y * 2

    same(capsys, f, (t(3),), (t(3),))


def test_logging_call_in_compiled_function(capsys):
    records = []

    class ListHandler(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("test_breaks.user")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = ListHandler()
    logger.addHandler(handler)
    try:
        def f(x):
            y = x * 2
            logger.info("sum is positive: %s", bool(y.sum() > 0))
            return y + 1

        same(capsys, f, (torch.ones(3),), (-torch.ones(3),), (torch.ones(3),), state=lambda: list(records),
             setup=records.clear)
    finally:
        logger.removeHandler(handler)


# ================================================================== .item() / .tolist() / bool()

def test_item_then_python_if_both_ways(capsys):
    def f(x):
        m = x.mean()
        if m.item() > 0:
            out = x - m
        else:
            out = x + m
        return out * 2

    same(capsys, f, (torch.ones(4),), (-torch.ones(4),), (t(4),), (t(4),))


def test_item_in_python_arithmetic(capsys):
    def f(x):
        s = x.abs().sum().item()
        scale = 1.0 / (s + 1.0)
        n = int(s) % 3
        return x * scale + n, n, round(scale, 6)

    same(capsys, f, (t(5),), (t(5),))


def test_tolist_then_python_loop(capsys):
    def f(x, idx):
        picked = []
        for i in idx.tolist():
            picked.append(x[i] * 2)
        return torch.stack(picked).sum(), len(picked)

    same(capsys, f, (t(5), torch.tensor([0, 3])), (t(5), torch.tensor([4, 1, 2])))


def test_bool_of_tensor_then_control_flow(capsys):
    def f(x):
        flag = bool((x > 0).all())
        y = x * 3
        if flag:
            return y.exp()
        return y.neg()

    same(capsys, f, (torch.ones(3),), (-torch.ones(3),), (torch.ones(3),))


def test_int_and_float_of_tensor(capsys):
    def f(x):
        k = int(x.argmax())
        v = float(x.max())
        return x[k] * v + k

    same(capsys, f, (t(6),), (t(6),))


# ================================================================== data-dependent control flow

def test_data_dependent_if_else_both_branches(capsys):
    def f(x, y):
        a = x * y
        if a.sum() > 0:
            b = a + 1
        else:
            b = a - 1
        return b.relu(), a

    pos = (torch.ones(3), torch.ones(3))
    neg = (torch.ones(3), -torch.ones(3))
    same(capsys, f, pos, neg, pos, neg)
    ex = explain(f, *pos)
    assert ex.graph_break_count == 1, str(ex)


def test_data_dependent_elif_chain(capsys):
    def f(x):
        s = x.sum()
        if s > 2:
            r = x * 10
        elif s > -2:
            r = x * 0.5
        else:
            r = -x
        return r + s

    same(capsys, f, (torch.full((3,), 3.0),), (torch.zeros(3),), (torch.full((3,), -3.0),), (torch.zeros(3),))


def test_data_dependent_and_or_ternary(capsys):
    def f(x, y):
        out = x + y if (x.max() > 0 and y.min() < 0) or x.sum() > 5 else x - y
        return out

    cases = [(torch.ones(2), -torch.ones(2)), (-torch.ones(2), torch.ones(2)),
             (torch.full((2,), 3.0), torch.ones(2)), (torch.ones(2), torch.ones(2))]
    same(capsys, f, *cases)


def test_data_dependent_while_loop(capsys):
    def f(x):
        steps = 0
        while x.abs().max() > 1:
            x = x / 2
            steps += 1
        return x, steps

    same(capsys, f, (torch.full((2,), 0.5),), (torch.full((2,), 3.0),), (torch.full((2,), 100.0),),
         (torch.full((2,), 0.5),))


def test_data_dependent_while_loop_no_internal_error(caplog):
    """A break at the loop's backward conditional jump must not be an internal error."""
    def f(x):
        while x.sum() < 10:
            x = x * 2 + 1
        return x

    with caplog.at_level(logging.WARNING, logger="capture"):
        ex = explain(f, torch.ones(3))
    internal = [r for r in ex.break_reasons if "internal error" in r.reason]
    assert not internal, [r.reason for r in internal]
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]


# ================================================================== untraceable calls

def test_time_time_call(capsys):
    def f(x):
        start = time.time()
        y = x.cos() * 2
        elapsed = time.time() - start
        return y + 1, elapsed >= 0, isinstance(start, float)

    same(capsys, f, (t(3),), (t(3),))


def test_numpy_function_on_tensor_numpy(capsys):
    def f(x):
        y = x + 1
        a = np.sin(y.numpy())
        z = torch.from_numpy(a) * 2
        return z, float(np.sum(a))

    same(capsys, f, (t(4),), (t(4),))


def test_generator_argument_consumed_lazily_by_next(capsys):
    def counter():
        i = 0
        while True:
            print("gen yields", i)
            yield i
            i += 1

    def f(x, g):
        a = x + next(g)
        b = a * next(g)
        return b

    compiled = capture.compile(f, backend="eager")
    g_e, g_c = counter(), counter()
    for _ in range(3):
        x = t(3)
        e = outcome(capsys, f, (x.clone(), g_e))
        c = outcome(capsys, compiled, (x.clone(), g_c))
        assert c.exc == e.exc and c.stdout == e.stdout
        assert_same(c.out, e.out)
    assert next(g_e) == next(g_c) == 6  # both generators advanced exactly the same


def test_generator_created_inside_function(capsys):
    def squares(n):
        for i in range(n):
            print("sq", i)
            yield i * i

    def f(x):
        g = squares(4)
        y = x + next(g)
        y = y * next(g)
        rest = list(g)
        return y + sum(rest), rest

    same(capsys, f, (t(3),), (t(3),))


def test_id_builtin(capsys):
    def f(x, y):
        same_obj = id(x) == id(y)
        z = x * 2
        return z + 1 if same_obj else z - 1

    a = t(3)
    compiled = capture.compile(f, backend="eager")
    for args in ((a, a), (a, t(3)), (a, a)):
        torch.testing.assert_close(compiled(*args), f(*args))


def test_random_module_draw_happens_once(capsys):
    def f(x):
        y = x + 1
        r = random.random()
        return y * r, r

    def seed():
        random.seed(1234)

    same(capsys, f, (t(3),), (t(3),), setup=seed, state=lambda: random.random())


def test_c_function_raising_after_graph(capsys):
    def f(x):
        y = x * 2
        v = math.sqrt(float(y.sum()))  # ValueError: math domain error when negative
        return y + v

    same(capsys, f, (torch.ones(3),), (-torch.ones(3),), (torch.ones(3),))


# ================================================================== unsupported opcodes

def test_raise_inside_branch(capsys):
    def f(x, n):
        y = x + 1
        if n > 2:
            raise ValueError(f"n too large: {n}")
        return y * n

    same(capsys, f, (t(3), 1), (t(3), 5), (t(3), 2), (t(3), 7))


def test_try_except_in_function(capsys):
    def f(x, d):
        y = x * 2
        try:
            v = d["k"]
        except KeyError as e:
            print("missing", e)
            v = 0
        return y + v

    same(capsys, f, (t(3), {"k": 1.5}), (t(3), {}), (t(3), {"k": 2.0}))


def test_class_definition_inside_function(capsys):
    def f(x):
        y = x.relu()

        class Box:
            def __init__(self, v):
                self.v = v

            def doubled(self):
                return self.v * 2

        b = Box(y + 1)
        return b.doubled(), type(b).__name__

    same(capsys, f, (t(3),), (t(3),))


def test_import_inside_function(capsys):
    def f(x):
        import math as m
        return x * m.pi + m.e

    same(capsys, f, (t(3),), (t(3),))


# ================================================================== break inside an inlined call

def _helper_prints(v):
    v = v * 3
    print("helper", tuple(v.shape))
    return v + 1


def test_break_inside_inlined_helper(capsys):
    def f(x):
        y = x + 1
        z = _helper_prints(y)
        return z.sigmoid()

    same(capsys, f, (t(3),), (t(3),), (t(2),))
    ex = explain(f, t(3))
    helper_line = line_of(_helper_prints, "print(")
    assert helper_line in break_lines(ex), str(ex)
    # the helper is captured on its own: its mul and add are in graphs
    flat = [op for ops in ex.ops_per_graph for op in ops]
    assert "mul" in flat and "sigmoid" in flat, ex.ops_per_graph
    assert ex.graph_count >= 3, str(ex)


def test_break_inside_two_level_inlined_helper(capsys):
    def inner(v):
        if v.sum() > 0:
            return v * 2
        return v * -2

    def middle(v):
        return inner(v + 1) - 1

    def f(x):
        return middle(x) + middle(x * 2)

    same(capsys, f, (torch.ones(3),), (-torch.full((3,), 5.0),), (t(3),))


def test_break_inside_submodule_forward(capsys):
    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            h = self.lin(x)
            print("noisy", h.shape)
            return h.relu()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Noisy()
            self.b = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.b(self.a(x) + x)

    torch.manual_seed(0)
    net = Net()
    compiled = capture.compile(net, backend="eager")
    same(capsys, net, (t(2, 4),), (t(2, 4),), compiled=compiled)


# ================================================================== nested / repeated breaks

def test_three_breaks_in_one_function(capsys):
    def f(x):
        a = x + 1
        print("one")
        b = a * 2
        print("two", b.shape)
        c = b - a
        if c.sum() > 0:
            c = c * 10
        print("three")
        return a, b, c

    same(capsys, f, (torch.ones(3),), (-torch.ones(3),), (t(3),))
    ex = explain(f, torch.ones(3))
    assert len(ex.break_reasons) >= 4, str(ex)
    assert len(set(break_lines(ex))) == 4, str(ex)


def test_resume_function_breaks_again_with_item(capsys):
    def f(x):
        y = x.exp()
        print("first")
        k = y.max().item()
        z = y / k
        if k > 2:
            print("big")
            z = z + 1
        return z

    same(capsys, f, (torch.zeros(3),), (torch.full((3,), 2.0),), (t(3),))


def test_many_breaks_in_straight_line(capsys):
    def f(x):
        acc = x
        for_print = []
        acc = acc + 1
        print(1)
        acc = acc * 2
        print(2)
        acc = acc - 3
        print(3)
        acc = acc / 4
        print(4)
        for_print.append(acc.sum())
        return acc, for_print

    same(capsys, f, (t(3),), (t(3),))
    ex = explain(f, t(3))
    assert ex.graph_break_count == 4 and ex.graph_count == 5, str(ex)


# ================================================================== breaks inside loops

def test_print_in_for_loop(capsys):
    def f(x):
        for i in range(3):
            x = x * 2 + i
            print("step", i)
        return x

    same(capsys, f, (t(3),), (t(3),))


def test_item_in_while_loop(capsys):
    def f(x):
        total = 0.0
        i = 0
        while i < x.shape[0]:
            total += x[i].item()
            i += 1
        return x * total, total

    same(capsys, f, (t(4),), (t(4),))


def _double(v):
    return v * 2 + 1


def test_break_in_loop_still_captures_called_functions(capsys):
    def f(x):
        for i in range(2):
            x = _double(x)
            print("iter", i)
        return x

    same(capsys, f, (t(3),), (t(3),))
    ex = explain(f, t(3))
    assert ex.graph_count >= 1, f"functions called from an eager loop frame must still be captured: {ex}"


def test_break_in_loop_over_list_of_tensors(capsys):
    def f(xs):
        out = []
        for v in xs:
            if v.sum() > 0:
                out.append(v * 2)
            else:
                out.append(-v)
        return out

    same(capsys, f, ([torch.ones(2), -torch.ones(2), t(2)],), ([t(2), t(2)],))


# ================================================================== breaks inside with-blocks

def test_print_inside_no_grad(capsys):
    def f(x, w):
        y = x * w
        with torch.no_grad():
            z = y * 2
            print("inside no_grad", torch.is_grad_enabled())
            z = z + 1
        return y + z, z.requires_grad, torch.is_grad_enabled()

    same(capsys, f, (t(3), t(3, requires_grad=True)), (t(3), t(3, requires_grad=True)))


def test_break_inside_enable_grad_nested_in_no_grad(capsys):
    def f(x):
        with torch.no_grad():
            a = x * 2
            with torch.enable_grad():
                b = x * 3
                print("enable_grad", torch.is_grad_enabled())
                c = b.sum()
            d = a + 1
        return a.requires_grad, b.requires_grad, c.requires_grad, d.requires_grad, c + d

    same(capsys, f, (t(3, requires_grad=True),), (t(3, requires_grad=True),))


def test_no_grad_grad_mode_restored_after_exception(capsys):
    def f(x):
        with torch.no_grad():
            y = x * 2
            if y.sum() > 0:
                raise RuntimeError("positive")
        return y

    compiled = same(capsys, f, (torch.ones(2, requires_grad=True),), (torch.full((2,), -1.0, requires_grad=True),))
    with pytest.raises(RuntimeError, match="positive"):
        compiled(torch.ones(2, requires_grad=True))
    assert torch.is_grad_enabled()


class Tracker:
    """A user context manager that records enter/exit in a global log and prints."""
    events: list = []

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        print("enter", self.name)
        Tracker.events.append(("enter", self.name))
        return self

    def __exit__(self, exc_type, exc, tb):
        print("exit", self.name, exc_type.__name__ if exc_type else None)
        Tracker.events.append(("exit", self.name))
        return False


def test_user_context_manager_class(capsys):
    def f(x):
        y = x + 1
        with Tracker("blk") as tr:
            y = y * 2
            print("body", tr.name)
        return y - 1

    same(capsys, f, (t(3),), (t(3),), setup=Tracker.events.clear, state=lambda: list(Tracker.events))


def test_user_context_manager_sees_exception(capsys):
    def f(x):
        with Tracker("exc"):
            y = x * 2
            if y.sum() > 0:
                raise ValueError("boom")
        return y

    same(capsys, f, (torch.ones(2),), (-torch.ones(2),), setup=Tracker.events.clear,
         state=lambda: list(Tracker.events))


@contextlib.contextmanager
def scaled(factor):
    print("scaled enter", factor)
    try:
        yield factor * 2
    finally:
        print("scaled exit", factor)


def test_contextlib_contextmanager(capsys):
    def f(x):
        y = x + 1
        with scaled(3) as k:
            y = y * k
        return y.relu()

    same(capsys, f, (t(3),), (t(3),))


# ================================================================== try / except / finally

def test_exception_in_captured_code_caught_by_user_except(capsys):
    def f(x):
        y = x + 1
        try:
            z = y.view(7, 7)  # RuntimeError from a torch op in the graph region
        except RuntimeError as e:
            print("caught", type(e).__name__)
            z = y * 2
        return z

    same(capsys, f, (t(3),), (t(3),))


def test_try_finally_with_print(capsys):
    def f(x, fail):
        out = []
        try:
            out.append(x + 1)
            print("body")
            if fail:
                raise KeyError("fail")
            out.append(x * 2)
        finally:
            print("finally", len(out))
        return out

    same(capsys, f, (t(2), False), (t(2), True), (t(2), False))


def test_try_except_else_finally_order(capsys):
    def f(x):
        try:
            y = x.sum()
            print("try")
            if y > 0:
                raise ArithmeticError("pos")
        except ArithmeticError as e:
            print("except", e)
            r = x - 1
        else:
            print("else")
            r = x + 1
        finally:
            print("finally")
        return r

    same(capsys, f, (torch.ones(2),), (-torch.ones(2),), (torch.ones(2),))


def test_exception_from_resumed_code_caught_in_caller(capsys):
    def inner(x):
        print("inner")
        return x.view(5, 5)

    def f(x):
        try:
            return inner(x) * 2
        except RuntimeError:
            print("fallback")
            return x + 1

    same(capsys, f, (t(3),), (t(25),), (t(3),))


# ================================================================== exceptions (not caught)

def test_exception_in_captured_code_before_break(capsys):
    def f(x, y):
        z = x + y  # size mismatch on the second call
        print("after add")
        return z

    same(capsys, f, (t(3), t(3)), (t(3), t(4)), (t(3), t(3)))


def test_exception_in_resumed_code(capsys):
    def f(x, y):
        a = x * 2
        print("before matmul")
        return a @ y  # shape error only after the break

    same(capsys, f, (t(2, 3), t(3, 2)), (t(2, 3), t(2, 2)), (t(2, 3), t(3, 2)))


def test_user_raise_after_break_has_same_message(capsys):
    def f(x):
        m = x.max().item()
        print("max", round(m, 4))
        if m > 0:
            raise ValueError(f"positive max {m:.3f}")
        return x

    same(capsys, f, (torch.ones(2),), (-torch.ones(2),))


def test_assertion_error_from_data_dependent_check(capsys):
    def f(x):
        y = x.abs()
        if not bool((y >= 0).all()):
            raise AssertionError("abs negative?")
        if y.sum() > 100:
            raise OverflowError("too big: %.1f" % y.sum().item())
        return y

    same(capsys, f, (t(3),), (torch.full((3,), 50.0),))


# ================================================================== side effects on pre-existing objects

EVENTS: list = []


def test_global_list_append_once_and_in_order_with_prints(capsys):
    def f(x):
        EVENTS.append("start")
        y = x + 1
        EVENTS.append(y)
        print("events so far", len(EVENTS))
        EVENTS.append(y * 2)
        print("events after", len(EVENTS))
        return y

    same(capsys, f, (t(2),), (t(2),), (t(2),), setup=EVENTS.clear, state=lambda: list(EVENTS))


def test_global_list_append_without_break(capsys):
    def f(x):
        y = x.relu()
        EVENTS.append(y.sum())
        EVENTS.append("tag")
        return y * 2

    same(capsys, f, (t(3),), (t(3),), setup=EVENTS.clear, state=lambda: list(EVENTS))


class Config:
    def __init__(self):
        self.scale = 1.0
        self.calls = 0
        self.last = None


CFG = Config()
GLOBAL_MOD = torch.nn.Linear(2, 2)


def _reset_globals():
    CFG.scale, CFG.calls, CFG.last = 1.0, 0, None
    GLOBAL_MOD.tag = "initial"
    GLOBAL_MOD.seen = 0


def _global_state():
    return {"scale": CFG.scale, "calls": CFG.calls, "last": CFG.last, "tag": GLOBAL_MOD.tag,
            "seen": GLOBAL_MOD.seen}


def test_module_attribute_set_on_global_module(capsys):
    def f(x):
        y = GLOBAL_MOD(x)
        GLOBAL_MOD.tag = "ran"
        GLOBAL_MOD.seen = GLOBAL_MOD.seen + 1
        print("tag", GLOBAL_MOD.tag, GLOBAL_MOD.seen)
        return y.relu()

    same(capsys, f, (t(1, 2),), (t(1, 2),), setup=_reset_globals, state=_global_state)


def test_object_attribute_set_global_object(capsys):
    def f(x):
        CFG.calls += 1
        y = x * CFG.scale
        CFG.last = y
        print("calls", CFG.calls)
        CFG.scale = CFG.scale * 2
        return y + CFG.scale

    same(capsys, f, (t(2),), (t(2),), setup=_reset_globals, state=_global_state)


def test_object_attribute_set_on_argument(capsys):
    class Acc:
        def __init__(self):
            self.total = torch.zeros(2)
            self.n = 0

    def f(acc, x):
        acc.total = acc.total + x
        acc.n += 1
        print("n =", acc.n)
        acc.mean = acc.total / acc.n
        return acc.mean * 2

    same(capsys, f, (Acc(), t(2)), (Acc(), t(2)))
    # the same object over several calls
    compiled = capture.compile(f, backend="eager")
    a_e, a_c = Acc(), Acc()
    for _ in range(3):
        x = t(2)
        e = outcome(capsys, f, (a_e, x.clone()))
        c = outcome(capsys, compiled, (a_c, x.clone()))
        assert c.stdout == e.stdout
        assert_same(c.out, e.out)
        assert_same(vars(a_c), vars(a_e), "acc")


def test_dict_argument_mutated(capsys):
    def f(d, x):
        d["y"] = x * 2
        d["count"] = d.get("count", 0) + 1
        print("keys", sorted(d))
        d.pop("tmp", None)
        d["z"] = d["y"] + 1
        return d["z"]

    same(capsys, f, ({"tmp": 1}, t(2)), ({"count": 5}, t(2)))


def test_dict_argument_mutated_without_break(capsys):
    def f(d, x):
        d["out"] = x.relu()
        d["n"] = d.get("n", 0) + 1
        return x + 1

    same(capsys, f, ({}, t(3)), ({"n": 3}, t(3)))


def test_self_counter_in_forward(capsys):
    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)
            self.counter = 0
            self.history = []

        def forward(self, x):
            self.counter += 1
            h = self.lin(x)
            self.history.append(self.counter)
            print("forward", self.counter)
            return h * self.counter

    torch.manual_seed(0)
    m_e = Counting()
    m_c = copy.deepcopy(m_e)
    compiled = capture.compile(m_c, backend="eager")
    for _ in range(3):
        x = t(2, 3)
        e = outcome(capsys, m_e, (x.clone(),))
        c = outcome(capsys, compiled, (x.clone(),))
        assert c.stdout == e.stdout
        assert_same(c.out, e.out)
        assert m_c.counter == m_e.counter
        assert m_c.history == m_e.history


def test_side_effects_before_exception_are_kept(capsys):
    def f(x):
        EVENTS.append("before")
        y = x * 2
        EVENTS.append("computed")
        if y.sum() > 0:
            raise ValueError("positive")
        EVENTS.append("after")
        return y

    same(capsys, f, (torch.ones(2),), (-torch.ones(2),), setup=EVENTS.clear, state=lambda: list(EVENTS))


def test_side_effect_in_inlined_helper_with_break(capsys):
    def record(v):
        EVENTS.append(v.shape[0])
        print("recorded", len(EVENTS))
        return v + 1

    def f(x):
        EVENTS.append("f")
        return record(x * 2) * 3

    same(capsys, f, (t(2),), (t(3),), setup=EVENTS.clear, state=lambda: list(EVENTS))


# ================================================================== reruns with breaks present

def test_rerun_after_shape_change(capsys):
    def f(x):
        y = x.sum(0)
        print("shape", tuple(x.shape))
        return y * 2

    same(capsys, f, (t(2, 3),), (t(4, 3),), (t(2, 5),), (t(2, 3),))


def test_rerun_after_dtype_change(capsys):
    def f(x):
        y = x * 2
        if y.sum() > 0:
            return y + 1, y.dtype
        return y - 1, y.dtype

    same(capsys, f, (t(3),), (torch.ones(3, dtype=torch.float64),), (torch.tensor([1, -5, 2]),),
         (-torch.ones(3, dtype=torch.float64),))


SCALE = 2.0


def test_rerun_after_global_change(capsys):
    global SCALE

    def f(x):
        y = x * SCALE
        print("scale", SCALE)
        return y + SCALE

    compiled = capture.compile(f, backend="eager")
    try:
        for value in (2.0, 3.0, 2.0, -1.0):
            SCALE = value
            same(capsys, f, (t(3),), compiled=compiled)
    finally:
        SCALE = 2.0


# ================================================================== fullgraph=True

def test_fullgraph_print_raises_unsupported_with_location():
    def f(x):
        y = x + 1
        print("nope")
        return y

    compiled = capture.compile(f, backend="eager", fullgraph=True)
    with pytest.raises(capture.Unsupported) as info:
        compiled(t(3))
    assert "print" in info.value.reason
    assert info.value.where.endswith(f"{THIS_FILE}:{line_of(f, 'print(')}"), info.value.where
    assert f"{THIS_FILE}:{line_of(f, 'print(')}" in str(info.value)


def test_fullgraph_item_raises_unsupported():
    def f(x):
        y = x * 2
        if y.sum().item() > 0:
            return y
        return -y

    with pytest.raises(capture.Unsupported) as info:
        capture.compile(f, backend="eager", fullgraph=True)(t(3))
    assert "item" in info.value.reason
    assert info.value.where.endswith(f"{THIS_FILE}:{line_of(f, '.item()')}")


def test_fullgraph_data_dependent_branch_raises_unsupported():
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(capture.Unsupported) as info:
        capture.compile(f, backend="eager", fullgraph=True)(t(3))
    assert info.value.where.endswith(f"{THIS_FILE}:{line_of(f, 'if x.sum()')}")


def test_fullgraph_break_inside_helper_names_helper_line():
    def f(x):
        return _helper_prints(x) * 2

    with pytest.raises(capture.Unsupported) as info:
        capture.compile(f, backend="eager", fullgraph=True)(t(3))
    assert info.value.where.endswith(f"{THIS_FILE}:{line_of(_helper_prints, 'print(')}")


def test_fullgraph_no_break_runs(capsys):
    def f(x):
        y = x.sin()
        EVENTS.append(1) if False else None
        return y * 2

    compiled = capture.compile(f, backend="eager", fullgraph=True)
    x = t(3)
    torch.testing.assert_close(compiled(x), f(x))


# ================================================================== CAPTURE_LOGS=graph_breaks

def test_graph_breaks_logged_once(caplog, capsys):
    def f(x):
        y = x + 1
        print("logged break")
        if y.sum() > 0:
            return y
        return -y

    compiled = capture.compile(f, backend="eager")
    caplog.set_level(logging.DEBUG, logger="capture.graph_breaks")
    x = torch.ones(3)
    compiled(x)
    first = [r.getMessage() for r in caplog.records if r.name == "capture.graph_breaks"]
    assert len(first) == 2, first
    assert any("print" in m and f"{THIS_FILE}:{line_of(f, 'print(')}" in m for m in first), first
    assert any(f"{THIS_FILE}:{line_of(f, 'if y.sum()')}" in m for m in first), first
    caplog.clear()
    compiled(torch.ones(3))
    again = [r.getMessage() for r in caplog.records if r.name == "capture.graph_breaks"]
    assert again == [], again


def test_capture_logs_env_configures_graph_breaks_logger(monkeypatch, caplog, capsys):
    logger = logging.getLogger("capture.graph_breaks")
    old_level, old_handlers = logger.level, list(logger.handlers)
    monkeypatch.setenv("CAPTURE_LOGS", "graph_breaks")
    try:
        capture.logs.configure_from_env()
        assert logger.isEnabledFor(logging.DEBUG)

        def f(x):
            y = x * 3
            print("env break")
            return y

        compiled = capture.compile(f, backend="eager")
        with caplog.at_level(logging.DEBUG, logger="capture.graph_breaks"):
            compiled(t(2))
            compiled(t(2))
        msgs = [r.getMessage() for r in caplog.records if r.name == "capture.graph_breaks"]
        assert len(msgs) == 1 and "print" in msgs[0], msgs
    finally:
        logger.setLevel(old_level)
        for h in list(logger.handlers):
            if h not in old_handlers:
                logger.removeHandler(h)


# ================================================================== state carried across a break

def test_aliased_local_lists_stay_aliased_across_break(capsys):
    def f(x):
        a = []
        b = a
        a.append(x + 1)
        print("break")
        a.append(x * 2)
        return b, len(b), a is b

    same(capsys, f, (t(2),), (t(2),))


def test_local_list_stored_in_global_then_mutated_after_break(capsys):
    def f(x):
        lst = [x + 1]
        EVENTS.append(lst)
        print("stored")
        lst.append(x * 2)
        return len(EVENTS[-1]), EVENTS[-1] is lst

    same(capsys, f, (t(2),), (t(2),), setup=EVENTS.clear, state=lambda: list(EVENTS))


def test_view_of_input_mutated_after_break(capsys):
    def f(x):
        v = x.view(-1)
        x.add_(1)
        print("mutated once")
        v.mul_(2)
        return v.sum(), x

    same(capsys, f, (t(2, 2),), (t(2, 2),))


def test_inplace_input_mutation_on_both_sides_of_break(capsys):
    def f(x, y):
        x.add_(y)
        print("mid")
        y.mul_(x)
        return x

    compiled = same(capsys, f, (t(3), t(3)), (t(3), t(3)))
    x = t(3)
    assert compiled(x, t(3)) is x


def test_pending_method_call_and_kwargs_at_break(capsys):
    def f(x):
        y = x.add(x, alpha=(print("in arg", end="") or 2))
        return torch.cat([y, (print("!") or y) * 2], dim=0)

    same(capsys, f, (t(2),), (t(2),))


def test_nonlocal_closure_updated_across_break(capsys):
    def f(x):
        count = 0

        def bump(v):
            nonlocal count
            count += 1
            return v * count

        y = bump(x)
        print("count", count)
        y = bump(y)
        return y, count

    same(capsys, f, (t(2),), (t(2),))


def test_unbound_local_after_break(capsys):
    def f(x, n):
        if n > 0:
            y = x * n
        print("n", n)
        return y + 1

    same(capsys, f, (t(2), 2), (t(2), 0), (t(2), 3))


def test_missing_global_after_break_raises_name_error(capsys):
    def f(x):
        y = x + 1
        print("then missing global")
        return y * NOT_DEFINED_ANYWHERE  # noqa: F821

    same(capsys, f, (t(2),), (t(2),))


def test_super_call_in_module_forward_after_break(capsys):
    class Base(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x)

    class Child(Base):
        def forward(self, x):
            print("child")
            h = super().forward(x)
            if h.sum() > 0:
                return h.relu()
            return super().forward(h)

    torch.manual_seed(0)
    m = Child()
    compiled = capture.compile(m, backend="eager")
    same(capsys, m, (t(2, 3),), (t(2, 3),), (t(2, 3),), compiled=compiled)


def test_autograd_through_graph_break():
    def f(x, w):
        h = (x @ w).tanh()
        print("hidden", tuple(h.shape))
        if h.sum() > 0:
            h = h * 2
        return (h ** 2).sum()

    compiled = capture.compile(f, backend="eager")
    for _ in range(3):
        x, w = t(2, 3), t(3, 4)
        we, wc = w.clone().requires_grad_(), w.clone().requires_grad_()
        le, lc = f(x, we), compiled(x, wc)
        le.backward()
        lc.backward()
        torch.testing.assert_close(lc, le)
        torch.testing.assert_close(wc.grad, we.grad)


def test_returned_tensor_aliasing_after_break(capsys):
    def f(x):
        y = x * 2
        print("alias")
        return y, y, x

    compiled = capture.compile(f, backend="eager")
    x = t(2)
    a, b, c = compiled(x)
    assert a is b and c is x
    capsys.readouterr()


def test_mutable_default_argument_with_break(capsys):
    def f(x, seen=[]):  # noqa: B006 - the shared default is the point
        seen.append(x.shape[0])
        print("seen", len(seen))
        return x * len(seen)

    e_out = [f(t(2)) for _ in range(2)]
    e_text = capsys.readouterr().out
    f.__defaults__[0].clear()
    compiled = capture.compile(f, backend="eager")
    c_out = [compiled(t(2)) for _ in range(2)]
    assert capsys.readouterr().out == e_text
    assert [o.shape for o in c_out] == [o.shape for o in e_out]
    assert f.__defaults__[0] == [2, 2]


def test_stop_iteration_from_next_on_exhausted_iterator(capsys):
    def f(x, items):
        it = iter(items)
        a = next(it)
        b = next(it)  # StopIteration when there is only one item
        return x * a + b

    same(capsys, f, (t(2), [1, 2]), (t(2), [3]), (t(2), [4, 5, 6]))


def test_break_in_recursive_function(capsys):
    def f(x, depth):
        if depth == 0:
            print("bottom")
            return x
        return f(x * 2, depth - 1) + 1

    same(capsys, f, (t(2), 3), (t(2), 3), (t(2), 1))


def test_break_inside_lambda_and_nested_def(capsys):
    def f(x):
        show = lambda v: print("lambda sees", tuple(v.shape)) or v  # noqa: E731

        def scaled(v, k=3):
            if v.sum() > 0:
                return v * k
            return v / k

        return scaled(show(x + 1)) - 1

    same(capsys, f, (torch.ones(2),), (-torch.full((2,), 4.0),))


# ================================================================== more side effects

def test_side_effect_before_exception_in_captured_code(capsys):
    def f(x, y, log):
        log.append("start")
        z = x + y  # size mismatch on the second call: eager has already appended
        log.append("added")
        return z

    same(capsys, f, (t(3), t(3), []), (t(3), t(4), []), (t(3), t(3), ["old"]))


def test_module_counter_before_exception_in_captured_code(capsys):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return self.lin(x)

    torch.manual_seed(0)
    m_e = M()
    m_c = copy.deepcopy(m_e)
    compiled = capture.compile(m_c, backend="eager")
    for x in (t(2, 3), t(2, 4), t(2, 3)):
        e = outcome(capsys, m_e, (x,))
        c = outcome(capsys, compiled, (x,))
        assert c.exc == e.exc
        assert m_c.calls == m_e.calls


def test_list_argument_mixed_mutations_with_break(capsys):
    def f(lst, x):
        lst.append(x + 1)
        lst.insert(0, "head")
        lst.extend([x * 2, "tail"])
        print("len", len(lst))
        lst.pop(0)
        lst[0] = lst[0] * 10
        del lst[-1]
        return len(lst)

    same(capsys, f, ([], t(2)), (["a", "b"], t(2)))


def test_same_list_passed_twice(capsys):
    def f(a, b, x):
        a.append(x)
        b.append(x * 2)
        print("a is b", a is b, len(a))
        a.append(len(b))
        return x + len(a)

    compiled = capture.compile(f, backend="eager")
    for _ in range(2):
        x = t(2)
        le, lc = [], []
        e = outcome(capsys, f, (le, le, x))
        c = outcome(capsys, compiled, (lc, lc, x))
        assert c.stdout == e.stdout and c.exc == e.exc
        assert_same(c.out, e.out)
        assert_same(lc, le)


def test_appended_tensor_mutated_in_place_later(capsys):
    def f(x, log):
        y = x * 2
        log.append(y)
        y.add_(1)
        print("logged")
        y.mul_(3)
        return y

    compiled = capture.compile(f, backend="eager")
    for _ in range(2):
        x = t(3)
        le, lc = [], []
        e_out, c_out = f(x, le), compiled(x, lc)
        capsys.readouterr()
        torch.testing.assert_close(c_out, e_out)
        torch.testing.assert_close(lc[0], le[0])
        assert lc[0] is c_out


def test_attribute_write_then_read_in_same_frame(capsys):
    class Obj:
        pass

    def f(o, x):
        o.v = x + 1
        y = o.v * 2
        o.w = y.sum()
        print("w set")
        o.v = o.v + o.w
        del o.tmp
        return y, o.v

    def make():
        o = Obj()
        o.tmp = 1
        return o

    same(capsys, f, (make(), t(2)), (make(), t(2)))


def test_module_tensor_attribute_running_average(capsys):
    class Avg(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.running = torch.zeros(3)
            self.register_buffer("steps", torch.zeros(()))

        def forward(self, x):
            self.running = self.running * 0.9 + x.mean(0) * 0.1
            self.steps.add_(1)
            if self.steps > 1:
                print("warm")
            return x - self.running

    m_e = Avg()
    m_c = copy.deepcopy(m_e)
    compiled = capture.compile(m_c, backend="eager")
    for _ in range(3):
        x = t(2, 3)
        e = outcome(capsys, m_e, (x,))
        c = outcome(capsys, compiled, (x,))
        assert c.stdout == e.stdout and c.exc == e.exc
        assert_same(c.out, e.out)
        torch.testing.assert_close(m_c.running, m_e.running)
        torch.testing.assert_close(m_c.steps, m_e.steps)


GLOBAL_DICT: dict = {}


def test_global_dict_mutation_with_break(capsys):
    def f(x):
        GLOBAL_DICT["calls"] = GLOBAL_DICT.get("calls", 0) + 1
        GLOBAL_DICT["last"] = x * 2
        print("calls", GLOBAL_DICT["calls"])
        GLOBAL_DICT.setdefault("first", x)
        return GLOBAL_DICT["last"] + GLOBAL_DICT["calls"]

    same(capsys, f, (t(2),), (t(2),), (t(2),), setup=GLOBAL_DICT.clear, state=lambda: dict(GLOBAL_DICT))
    # and accumulating across calls without reset
    GLOBAL_DICT.clear()
    compiled = capture.compile(f, backend="eager")
    outs = [compiled(t(2)) for _ in range(3)]
    capsys.readouterr()
    assert GLOBAL_DICT["calls"] == 3 and len(outs) == 3


def test_side_effects_in_helper_called_from_eager_loop_frame(capsys):
    def step(x, i):
        EVENTS.append(i)
        return x + i

    def f(x):
        for i in range(3):
            x = step(x, i)
            print("i", i, len(EVENTS))
        return x

    same(capsys, f, (t(2),), (t(2),), setup=EVENTS.clear, state=lambda: list(EVENTS))


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
