"""Graph breaks and the state they hand over: locals, the stack, closure cells,
containers and objects built before the break, read and changed after it. Compiled
with backend="eager" and compared against eager (see tests/helpers_breaks.py)."""
from __future__ import annotations

import torch

import capture
from helpers_breaks import same, t

EVENTS: list = []  # a global list traced code appends to


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
