"""Frames with a graph break (print, data-dependent branches, .item()): whatever capture
does at the break (run eagerly, or graph + resume function), results, printed text and
effects on inputs must be eager's, on the first call and on cached calls."""
import collections
import copy
import dataclasses

import pytest
import torch

import capture
from helpers_compare import assert_same, check

Pt = collections.namedtuple("Pt", ["a", "b"])


@dataclasses.dataclass
class Acc:
    total: torch.Tensor
    count: int = 0


def t(*shape):
    return torch.randn(*shape)


def same_as_eager(capsys, fn, *inputs_per_call):
    """Call eager and compiled fn on each argument tuple; compare outputs, prints, inputs."""
    compiled = capture.compile(fn, backend="eager")
    capsys.readouterr()
    for args in inputs_per_call:
        e_args, c_args = copy.deepcopy(args), copy.deepcopy(args)
        e_out = fn(*e_args)
        e_text = capsys.readouterr().out
        c_out = compiled(*c_args)
        c_text = capsys.readouterr().out
        assert c_text == e_text
        assert_same(c_out, e_out)
        assert_same(c_args, e_args, "inputs after the call")
    return compiled


def test_break_with_pending_stack_values(capsys):
    def f(x):
        return x * 2 + (print("mid") or 1) * x.sum()

    same_as_eager(capsys, f, (t(3),), (t(3),))


def test_break_keeps_closure_cells_shared(capsys):
    def f(x):
        k = 2
        g = lambda v: v * k
        print("break")
        k = 3
        return g(x)

    same_as_eager(capsys, f, (t(3),), (t(3),))


def test_break_inside_while_loop(capsys):
    def f(x):
        i = 0
        while i < 3:
            x = x + i
            print("i =", i)
            i += 1
        return x

    same_as_eager(capsys, f, (t(2),), (t(2),))


def test_break_inside_loop_over_dict_items(capsys):
    def f(d):
        out = 0
        for k, v in d.items():
            print(k)
            out = out + v
        return out

    same_as_eager(capsys, f, ({"a": t(2), "b": t(2)},), ({"a": t(2), "b": t(2)},))


def test_break_with_varargs_kwargs_and_kwonly(capsys):
    def f(x, *args, scale=2.0, **kwargs):
        y = x * scale
        print(len(args), sorted(kwargs))
        return y + sum(args) + kwargs["bias"]

    c = capture.compile(f, backend="eager")
    for _ in range(2):
        x, a, b = t(2), t(2), t(2)
        e = f(x, a, a, scale=3.0, bias=b)
        e_text = capsys.readouterr().out
        torch.testing.assert_close(c(x, a, a, scale=3.0, bias=b), e)
        assert capsys.readouterr().out == e_text


def test_break_with_namedtuple_and_dataclass_locals(capsys):
    def f(x):
        p = Pt(x, x + 1)
        acc = Acc(x * 0)
        print("break")
        acc.total = acc.total + p.a * p.b
        acc.count += 1
        return acc, p

    same_as_eager(capsys, f, (t(2),), (t(2),))


def test_two_breaks_in_a_row(capsys):
    def f(x):
        a = x + 1
        print("one")
        b = a * 2
        print("two")
        return a, b, a + b

    same_as_eager(capsys, f, (t(2),), (t(2),))


def test_break_in_nested_inlined_calls(capsys):
    def inner(v):
        print("inner", v.shape)
        return v * 3

    def middle(v):
        return inner(v + 1) - 1

    def f(x):
        return middle(x) + middle(x * 2)

    same_as_eager(capsys, f, (t(2),), (t(2),))


def test_break_returns_input_object_identity(capsys):
    def f(x, y):
        x.add_(y)
        print("mutated")
        return x

    c = same_as_eager(capsys, f, (t(2), t(2)), (t(2), t(2)))
    x = t(2)
    assert c(x, t(2)) is x
    capsys.readouterr()


def test_break_in_module_forward(capsys):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            h = self.lin(x)
            print("hidden", h.shape)
            return self.lin(h.relu())

    torch.manual_seed(0)
    m = M()
    c = capture.compile(m, backend="eager")
    for _ in range(2):
        x = t(2, 3)
        e = m(x)
        e_text = capsys.readouterr().out
        out = c(x)
        assert capsys.readouterr().out == e_text
        torch.testing.assert_close(out, e)


# ------------------------------------------------------------------ data-dependent control flow

def test_data_dependent_branch_both_ways():
    def f(x):
        y = x * 2
        if y.sum() > 0:
            return y + 1
        return y - 1

    c = capture.compile(f, backend="eager")
    pos, neg = torch.ones(3), -torch.ones(3)
    for x in (pos, neg, pos, neg, t(3), t(3)):
        torch.testing.assert_close(c(x), f(x))


def test_data_dependent_loop_exit():
    def f(x):
        n = 0
        while x.abs().max() > 1:
            x = x / 2
            n += 1
        return x, n

    c = capture.compile(f, backend="eager")
    for scale in (0.5, 3.0, 10.0, 100.0, 3.0):
        x = torch.full((2,), scale)
        assert_same(c(x), f(x))


def test_item_used_in_python_arithmetic_then_tensor_ops():
    def f(x):
        m = x.max().item()
        scale = 1.0 / (abs(m) + 1)
        return x * scale, m > 0

    check(f, t(4), expect_graphs=None, expect_entries=None)


def test_tolist_then_python_loop():
    def f(x, idx):
        out = []
        for i in idx.tolist():
            out.append(x[i] * 2)
        return torch.stack(out)

    c = capture.compile(f, backend="eager")
    x = t(5)
    for idx in (torch.tensor([0, 2]), torch.tensor([4, 1, 3])):
        torch.testing.assert_close(c(x, idx), f(x, idx))


def test_bool_of_tensor_in_and_or():
    def f(x, y):
        if (x > 0).all() or (y > 0).any():
            return x + y
        return x - y

    c = capture.compile(f, backend="eager")
    for x, y in ((torch.ones(2), -torch.ones(2)), (-torch.ones(2), torch.ones(2)),
                 (-torch.ones(2), -torch.ones(2)), (torch.ones(2), torch.ones(2))):
        torch.testing.assert_close(c(x, y), f(x, y))


class _Doubling(torch.nn.Module):
    def forward(self, x):
        return x * 2


class _KeepsSuper(_Doubling):
    def forward(self, x):
        parent = super()
        y = x.sin()
        print("between")
        return parent.forward(y) + 1


def test_super_object_kept_across_a_break_resumes_in_a_second_graph(capsys):
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    module, x = _KeepsSuper(), t(3)
    compiled = capture.compile(module, backend=backend)
    for _ in range(2):
        torch.testing.assert_close(compiled(x), module(x))
    ops = [n.target for g in graphs for n in g.graph.nodes if n.op in ("call_function", "call_method")]
    assert len(graphs) == 2 and len(ops) == 3  # sin | x * 2 and + 1 traced through the kept super
    assert capsys.readouterr().out.count("between") == 4
