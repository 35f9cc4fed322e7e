"""Graph breaks with side effects on objects that existed before the call (globals,
lists, dicts, attributes, cells): each mutation happens once, as in eager, whatever
breaks surround it. Compiled with backend="eager" and compared against eager (see
tests/helpers_breaks.py)."""
from __future__ import annotations

import copy

import torch

import capture
from helpers_breaks import outcome, same, t
from helpers_compare import assert_same


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
