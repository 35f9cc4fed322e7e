"""Cache limit, threads, capture.reset, and compiled code calling compiled code."""
import threading
import warnings

import pytest
import torch
from torch import nn

import capture
from capture import _C
from capture.state import FRAMES
from helpers_modules import assert_one_graph, assert_same, check, check_fresh, code_of, entries, n_entries, reasons


pytestmark = pytest.mark.usefixtures("seeded")  # capture.reset() runs around every test (conftest)


def _cache_warnings(records):
    return [w for w in records if "cache limit" in str(w.message)]


# --------------------------------------------------------------------------- cache limit


def f_limit(x):
    return torch.cos(x) * x.shape[0] + x.mean()


def test_cache_limit_warns_once_and_stays_correct():
    cf = capture.compile(f_limit, backend="eager", dynamic=False, options={"cache_limit": 2})
    check(cf, f_limit, torch.randn(1))
    check(cf, f_limit, torch.randn(2))
    assert n_entries(f_limit) == 2
    with pytest.warns(UserWarning, match="cache limit") as rec:
        check(cf, f_limit, torch.randn(3))
    assert len(_cache_warnings(rec)) == 1
    msg = str(_cache_warnings(rec)[0].message)
    assert "f_limit" in msg and "L['x']" in msg
    with warnings.catch_warnings(record=True) as rec2:
        warnings.simplefilter("always")
        check(cf, f_limit, torch.randn(4))
        check(cf, f_limit, torch.randn(5))
        check(cf, f_limit, torch.randn(1))  # a shape it had compiled
        check(cf, f_limit, torch.randn(2))
    assert _cache_warnings(rec2) == []
    assert n_entries(f_limit) == 2  # later calls ran eagerly, nothing new compiled
    assert FRAMES[code_of(f_limit)].limit_hit


def test_cache_limit_default_with_python_ints():
    def f(x, n):
        return x * n + n
    cf = capture.compile(f, backend="eager")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for n in range(12):
            check(cf, f, torch.randn(3), n)
    assert len(_cache_warnings(rec)) == 1
    assert n_entries(f) == 8


def test_cache_limit_per_code_object():
    def f(x):
        return x + x.shape[0]

    def g(x):
        return x - x.shape[0]
    cf = capture.compile(f, backend="eager", options={"cache_limit": 2})
    cg = capture.compile(g, backend="eager", options={"cache_limit": 2})
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for n in range(1, 5):
            check(cf, f, torch.randn(n))
    for n in (1, 2):
        check(cg, g, torch.randn(n))
    assert n_entries(g) == 2


def test_cache_limit_with_fullgraph_raises():
    cf = capture.compile(f_limit, backend="eager", fullgraph=True, options={"cache_limit": 1})
    check(cf, f_limit, torch.randn(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(capture.Unsupported, match="cache limit"):
            cf(torch.randn(3))


def test_bad_options_rejected():
    with pytest.raises(ValueError):
        capture.compile(f_limit, options={"cache_limt": 2})
    with pytest.raises(TypeError):
        capture.compile(f_limit, options=[("cache_limit", 2)])


# --------------------------------------------------------------------------- threads


def f_threads(x, w):
    h = torch.tanh(x @ w)
    return h.softmax(-1) + h.shape[0]


def test_threads_same_function_different_shapes():
    cf = capture.compile(f_threads, backend="eager")
    n_threads, iters = 4, 6
    barrier = threading.Barrier(n_threads)
    errors = []

    def worker(tid):
        try:
            g = torch.Generator().manual_seed(tid)
            rows = tid + 2
            barrier.wait()
            for _ in range(iters):
                x = torch.randn(rows, 5, generator=g)
                w = torch.randn(5, 3 + tid, generator=g)
                expected = f_threads(x, w)
                got = cf(x, w)
                assert_same(got, expected)
        except BaseException as e:  # noqa: BLE001
            errors.append((tid, e))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    assert 1 <= n_entries(f_threads) <= n_threads + 1
    kinds = {e.kind for e in entries(f_threads)}
    assert kinds == {"graph"}, kinds


def test_threads_compiled_module():
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2)).eval()
    cm = capture.compile(model, backend="eager")
    # inputs and eager answers prepared up front: the threads only run compiled code
    work = {tid: [torch.randn(tid + 1 + i % 2, 8) for i in range(5)] for tid in range(4)}
    with torch.no_grad():
        expected = {tid: [model(x) for x in xs] for tid, xs in work.items()}
    errors = []
    barrier = threading.Barrier(4)

    def worker(tid):
        try:
            barrier.wait()
            for x, e in zip(work[tid], expected[tid]):
                with torch.no_grad():
                    got = cm(x)
                assert_same(got, e)
        except BaseException as e:  # noqa: BLE001
            errors.append((tid, repr(e)[:200]))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_eager_module_use_in_other_thread_while_tracing():
    lin = nn.Linear(32, 32)
    cm = capture.compile(nn.Sequential(lin, nn.ReLU()), backend="eager")
    stop = threading.Event()
    errors = []

    def eager_loop():
        while not stop.is_set():
            try:
                x = torch.randn(2, 32)
                assert_same(lin(x), x @ lin.weight.t() + lin.bias, atol=1e-5)
            except BaseException as e:  # noqa: BLE001
                errors.append(repr(e)[:200])
                return
    t = threading.Thread(target=eager_loop)
    t.start()
    try:
        for _ in range(30):
            capture.reset()  # every call traces again
            x = torch.randn(3, 32)
            assert_same(cm(x), torch.relu(lin(x)))
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors, errors


def test_callback_not_leaked_to_other_thread():
    seen = []

    def plain(x):
        return x + 1

    def f(x):
        t = threading.Thread(target=lambda: seen.append(plain(torch.ones(1))))
        t.start()
        t.join()
        return x * 2
    cf = capture.compile(f, backend="eager")
    check(cf, f, torch.randn(2))
    assert code_of(plain) not in FRAMES


# --------------------------------------------------------------------------- reset


def test_reset_retraces():
    def f(x):
        return x.exp() - 1
    cf = capture.compile(f, backend="eager")
    check(cf, f, torch.randn(3))
    check(cf, f, torch.randn(4))
    code = code_of(f)
    assert n_entries(f) == 2
    first = entries(f)[0]
    capture.reset()
    assert code not in FRAMES
    assert not _C.get_cache(code)
    check(cf, f, torch.randn(4))
    assert n_entries(f) == 1
    assert entries(f)[0] is not first
    assert reasons(f) == []
    assert len(_C.get_cache(code)) == 1


def test_reset_clears_cache_limit():
    cf = capture.compile(f_limit, backend="eager", options={"cache_limit": 1})
    check(cf, f_limit, torch.randn(1))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        check(cf, f_limit, torch.randn(2))
    assert len(_cache_warnings(rec)) == 1
    capture.reset()
    check(cf, f_limit, torch.randn(2))
    assert n_entries(f_limit) == 1
    assert entries(f_limit)[0].kind == "graph"


def test_reset_picks_up_changed_state_without_guard_failure():
    scale = {"v": 2.0}

    def f(x):
        return x * scale["v"]
    cf = capture.compile(f, backend="eager")
    check(cf, f, torch.randn(3))
    capture.reset()
    scale["v"] = 5.0
    check(cf, f, torch.randn(3))
    assert n_entries(f) == 1


# --------------------------------------------------------------------------- nesting


def test_compiled_function_called_from_compiled_function():
    def inner(x):
        return torch.sigmoid(x) * 3

    c_inner = capture.compile(inner, backend="eager")

    def outer(x):
        return c_inner(x + 1) - x

    c_outer = capture.compile(outer, backend="eager")
    check_fresh(c_outer, lambda x: inner(x + 1) - x, lambda: (torch.randn(4),))
    check_fresh(c_inner, inner, lambda: (torch.randn(4),))
    assert_one_graph(c_outer, torch.randn(4))


def test_compiled_function_with_other_backend_inside():
    seen = []

    def counting_backend(gm, example_inputs):
        seen.append(len(example_inputs))
        return gm.forward

    def inner(x):
        return x * 2

    c_inner = capture.compile(inner, backend=counting_backend)

    def outer(x):
        return c_inner(x).sum()

    c_outer = capture.compile(outer, backend="eager")
    check(c_outer, lambda x: (x * 2).sum(), torch.randn(3))
    check(c_inner, inner, torch.randn(3))


def test_compiled_module_used_as_submodule_and_standalone():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x).relu()

    class Outer(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.fc = nn.Linear(4, 1)

        def forward(self, x):
            return self.fc(self.inner(x) + x)

    inner = Inner()
    c_inner = capture.compile(inner, backend="eager")
    outer = Outer(c_inner)
    c_outer = capture.compile(outer, backend="eager")

    def reference(x):
        return outer.fc(inner(x) + x)
    check_fresh(c_outer, reference, lambda: (torch.randn(3, 4),))
    check_fresh(c_inner, inner, lambda: (torch.randn(3, 4),))
    check_fresh(outer, reference, lambda: (torch.randn(3, 4),))  # eager outer calling compiled inner


def test_custom_backend_receives_graph_and_examples():
    captured = []

    def backend(gm, example_inputs):
        captured.append((gm, [tuple(t.shape) for t in example_inputs]))
        return gm.forward

    def f(x, y):
        return (x + y).relu()
    cf = capture.compile(f, backend=backend)
    check(cf, f, torch.randn(2, 3), torch.randn(2, 3))
    check(cf, f, torch.randn(2, 3), torch.randn(2, 3))
    assert len(captured) == 1
    assert captured[0][1] == [(2, 3), (2, 3)]
    check(cf, f, torch.randn(5), torch.randn(5))
    assert len(captured) == 2
