"""The compiled path's boundary, case by case (``backend="triton"``, kernels in Triton's
interpreter): every check compares with eager through ``helpers_compare.check`` —
values, ``out is x``, ``_base``, storage sharing, strides, storage offset,
``requires_grad``, inputs afterwards, grad mode — on the first call and on a cache hit.
The generated-program version of these is ``test_compiled_path_hypothesis.py``."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import capture
import codegen
import fx_graph
from helpers_compare import assert_same_aliasing, check, define, run_both

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"),   # masked-off lanes divide by zero
              pytest.mark.usefixtures("fresh_codegen")]


def triton(fn, *args, **kwargs):
    return check(fn, *args, backend="triton", expect_graphs=None, **kwargs)


def compiled_graphs() -> list:
    return [g for g in codegen.COMPILED if not g.runs_eagerly]


# --------------------------------------------------------------------------- outputs aliasing inputs

@pytest.mark.parametrize("returned", ["x", "x[0]", "x.view(-1)", "x.t()", "x.flatten()", "x[:, 1:]", "x.add_(1)",
                                      "(x, x[1], x.t())", "x.unsqueeze(0).expand(2, 3, 4)"])
def test_returned_inputs_and_views_of_inputs_are_eagers(returned):
    fn = define(f"def f(x, y):\n    z = x * y\n    return {returned}, z\n", "f")
    triton(fn, torch.randn(3, 4), torch.randn(3, 4))
    assert compiled_graphs()


def test_outputs_viewing_an_intermediate_share_its_storage():
    def f(x):
        y = x * 2
        return y, y[0], y.t(), y.sum(0, keepdim=True).expand(3, 4)
    triton(f, torch.randn(3, 4))


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_detached_outputs_share_memory_with_the_tensor_they_detach_as_eager(backend):
    """``h.detach()`` beside ``h`` (or a view of it) is eager's tensor of its own over h's
    memory: it came back as h itself, or as a copy sharing nothing."""
    def f(x, y):
        h, g = x * y, x + y
        return h.detach(), h, g[0], g.detach(), x.detach()
    check(f, torch.randn(3, 4), torch.randn(3, 4), backend=backend, expect_graphs=None)
    assert compiled_graphs()


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_a_view_of_a_detached_input_keeps_eagers_base_and_requires_grad(backend):
    """``x.detach().t()``: eager's ``_base`` is the detached tensor (made inside, no grad);
    rebuilt as a view of x it required grad. The graph runs as captured (the reason in explain)."""
    def f(x):
        return x.detach().squeeze(), x * 2
    check(f, torch.randn(3, 4, requires_grad=True), backend=backend, expect_graphs=None)
    fallbacks = capture.explain(f)(torch.randn(3, 4, requires_grad=True)).compiled_path_fallbacks()
    assert fallbacks and "x.detach()" in fallbacks[0][1]


def _two_equal_topks(x):
    return x.topk(2, 1).values, x.topk(2, 1).values


def _one_topk_twice(x):
    v = x.topk(2, 1)
    return v.values, v.values


def _two_sorts(x):
    a, b = x.sort(1)
    c, d = x.sort(1)
    return a, c, b.t(), d


def _an_output_and_its_clone(x):
    y = x.sin()
    return y, y.clone()


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("fn", [_two_equal_topks, _one_topk_twice, _two_sorts, _an_output_and_its_clone])
def test_equal_ops_returning_several_tensors_give_outputs_of_their_own(fn, grad, dynamic, backend):
    """Two equal ``topk``s are merged by common-subexpression passes (ours, and the
    min-cut partitioner's, which keeps single tensors aliasing outputs but not tuples):
    both outputs came back as one tensor (``a is b``), a write to one changed the other.
    The same ``topk`` returned twice is one tensor in eager and stays one."""
    x = torch.randn(3, 5, requires_grad=grad)
    ours = capture.compile(fn, backend=backend, dynamic=dynamic)(x)
    theirs = fn(x)
    torch.testing.assert_close(ours, theirs)
    assert_same_aliasing(ours, (x,), theirs, (x,))


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_a_clone_of_another_output_is_a_tensor_of_its_own(backend):
    """``h1 = h0.clone()`` beside ``h0``: the clone lowered to h0's realized buffer, so one
    tensor came back for both (``h1.t()._base`` was h0)."""
    def f(x, y):
        h0 = torch.where(y > 0, x, x.flip(0))
        h1 = h0.clone()
        return h1.t(), h0, h1
    check(f, torch.randn(2, 4), torch.randn(2, 4), backend=backend, expect_graphs=None)
    assert compiled_graphs()


def test_view_of_an_input_that_is_itself_a_view():
    base = torch.randn(4, 6)
    triton(lambda x: (x.t(), x[1:] * 2), base[1:, ::2], fresh_args=(torch.randn(4, 6)[1:, ::2],))


# --------------------------------------------------------------------------- mutations

def test_mutations_through_views_of_inputs_are_applied_once_in_order():
    def f(x, y):
        x.div_(2)
        t = x[..., 0]
        t.mul_(3)
        for _ in range(3):
            y += 1
        y.add_(2)
        return x.sum() + y.sum()
    triton(f, torch.randn(3, 4), torch.randn(4))


@pytest.mark.parametrize("change", ["x.t_()", "x.unsqueeze_(0)", "x.resize_(6)", "x.resize_(20); x.fill_(1.0)"])
def test_metadata_mutation_of_an_input(change):
    fn = define(f"def f(x):\n    x.mul_(2)\n    {change}\n    return x + 1\n", "f")
    triton(fn, torch.randn(3, 4))


@pytest.mark.parametrize("aliasing", ["same", "overlapping", "disjoint"])
def test_aliased_inputs_that_are_written(aliasing):
    def f(x, y):
        x.mul_(2)
        y.add_(1)
        return x + y, y[0]

    def inputs():
        base = torch.randn(4, 3)
        return {"same": (base, base), "overlapping": (base[:2], base[1:3]), "disjoint": (base[:2], base[2:])}[aliasing]
    triton(f, *inputs(), fresh_args=inputs())


@pytest.mark.parametrize("backend", ["triton", "cpu"])
@pytest.mark.parametrize("write", ["x.mul_(2)", "x *= 2", "x.mul_(torch.ones(4))"])
def test_in_place_op_whose_result_type_cannot_be_written_back_raises_like_eager(write, backend):
    """``bool_x.mul_(2)``: eager refuses to cast the int64 product back into x; the fake
    kernel does not check it, and functionalized the graph computed it silently."""
    fn = define(f"def f(x):\n    {write}\n    return x\n", "f")
    x = torch.rand(3, 4) > 0.5 if "ones" not in write else torch.arange(4)
    with pytest.raises(RuntimeError, match="can't be cast"):
        fn(x.clone())
    with pytest.raises(RuntimeError, match="can't be cast"):
        capture.compile(fn, backend=backend)(x.clone())


@pytest.mark.parametrize("backend", ["triton", "cpu"])
@pytest.mark.parametrize("grad", [False, True])
def test_generated_code_raising_where_eager_raises_raises_eagers_error(grad, backend):
    """``as_strided`` past the end of the storage: eager's error, no internal error (the
    captured graph raises too), and a later call whose storage is long enough runs the
    generated code."""
    def f(x):
        return x.as_strided((2, 4), (4, 1)) * 2

    short, long = torch.randn(4, requires_grad=grad), torch.randn(8, requires_grad=grad)
    for fn in (f, capture.compile(f, backend=backend)):
        with pytest.raises(RuntimeError, match="out of bounds for storage"):
            fn(short * 1)
    triton_or_cpu = capture.compile(f, backend=backend)
    assert torch.equal(triton_or_cpu((long * 1)[:4]), f((long * 1)[:4]))
    graphs = compiled_graphs()
    assert graphs and all(g.generated_calls for g in graphs)


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("write", ["a.zero_()", "a[[0, 1]] = 0", "a.masked_fill_(a > 0, 2.0)", "a.fill_(2)",
                                   "a[0].mul_(2)"])
def test_writes_through_a_broadcast_view_reach_the_input_as_in_eager(write, dynamic):
    """Eager writes an expanded tensor's memory (fills, index_put_); functionalization
    wrote the sum of the broadcast copies back (x[0] became -2 * x[0])."""
    fn = define(f"def f(x):\n    a = torch.broadcast_to(x[:1], x.shape)\n    {write}\n    return x, a + 0\n", "f")
    compiled = capture.compile(fn, backend="cpu", dynamic=dynamic)
    for rows in (3, 5):
        run_both(fn, compiled, (torch.randn(rows, 4),), {})


@pytest.mark.parametrize("backend", ["triton", "cpu"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_a_written_input_with_a_broadcast_dimension_is_written_as_in_eager(dynamic, backend):
    fn = define("def f(y):\n    y[0].add_(1)\n    return y * 2\n", "f")
    compiled = capture.compile(fn, backend=backend, dynamic=dynamic)
    for rows in (3, 5):
        run_both(fn, compiled, (torch.randn(4).expand(rows, 4),), {})


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("write", ["a.mul_(2)", "a += 1", "torch.add(x, 1, out=a)", "a.copy_(x)", "a[:, 1:] *= 2",
                                   "torch.relu_(a)", "a[:, 0] = 0"])
def test_in_place_op_writing_a_broadcast_view_raises_like_eager(write, dynamic):
    fn = define(f"def f(x):\n    a = x[0].expand(3, 4)\n    {write}\n    return a + 0\n", "f")
    for f in (fn, capture.compile(fn, backend="cpu", dynamic=dynamic)):
        with pytest.raises(RuntimeError, match="single memory location"):
            f(torch.randn(3, 4))


@pytest.mark.filterwarnings("ignore:An output with one or more elements was resized")
@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("op", ["torch.sum(x, 0, out=z)", "torch.add(x[0], 1, out=z)"])
def test_out_argument_resizing_an_input_resizes_it_as_eager(op, dynamic):
    """An input given as ``out=`` of another size is resized in eager; the compiled path
    left it (3, 4) and copied the result broadcast into it (the front end traced on with
    the input's fake resized)."""
    fn = define(f"def f(x, z):\n    {op}\n    return x + 1, z * 2\n", "f")
    compiled = capture.compile(fn, backend="cpu", dynamic=dynamic)
    for rows in (3, 5):
        run_both(fn, compiled, (torch.randn(rows, 4), torch.randn(rows, 4)), {})


class ScaleInPlace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        ctx.mark_dirty(t)
        return t.mul_(3)

    @staticmethod
    def backward(ctx, grad):
        return grad * 3


@pytest.mark.parametrize("dynamic", [False, True])
def test_in_place_cast_refused_inside_a_custom_function_raises_like_eager(dynamic):
    """``bool_x.mul_(3)`` inside an autograd.Function's forward (one opaque node for the
    front end): the fake kernel skips eager's cast check, the compiled path computed it."""
    def f(x):
        return ScaleInPlace.apply(x) * 1

    compiled = capture.compile(f, backend="cpu", dynamic=dynamic)
    for fn in (f, compiled):
        with pytest.raises(RuntimeError, match="can't be cast"):
            fn(torch.ones(3, dtype=torch.bool))
    run_both(f, compiled, (torch.randn(3),), {})


@pytest.mark.parametrize("op, dtype", [("x.abs()", torch.bool), ("x.frac()", torch.int64), ("x.softmax(0)", torch.int32),
                                       ("x.relu()", torch.bool), ("torch.lerp(x, x, 0.5)", torch.int64),
                                       ("x.cumsum_(0)", torch.bool), ("x & 3", torch.float32)])
def test_op_without_an_eager_kernel_for_its_dtype_raises_like_eager(op, dtype):
    """Fake kernels answer for any dtype and generated code computes ``bool_x.abs()``;
    eager has no kernel for it (also where the result is unused)."""
    fn = define(f"def f(x):\n    y = {op}\n    return x * 2\n", "f")
    for f in (fn, capture.compile(fn, backend="cpu")):
        with pytest.raises((NotImplementedError, RuntimeError), match="not (implemented|supported) for"):
            f(torch.ones(3, dtype=dtype))


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_custom_function_writing_its_input_gives_eagers_gradients(backend):
    """A forward doing ``t.mul_(3)`` with ``ctx.mark_dirty(t)``: through AOT autograd the
    write's gradient was lost (leaf.grad 1 where eager's is 3)."""
    def f(y):
        a = ScaleInPlace.apply(y)
        return ScaleInPlace.apply(a) * 1, y

    results = []
    for fn in (f, capture.compile(f, backend=backend)):
        leaf = torch.randn(2, 3, requires_grad=True)
        with torch.no_grad():
            leaf.copy_(torch.arange(6.0).view(2, 3))
        out, y = fn(leaf * 1)
        (out.sum() + y[0].sum()).backward()
        results.append((out.detach(), y.detach(), leaf.grad))
    for compiled, eager in zip(*reversed(results)):
        assert torch.equal(compiled, eager)


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_an_intermediate_written_in_place_keeps_eagers_layout(backend):
    """``a.masked_fill_`` keeps a's transposed layout in eager; functionalized, a was the
    result of ``masked_fill``, which is contiguous."""
    def f(y):
        a = y.to(torch.float64)
        a.masked_fill_(a > 0, 1)
        return a, a.sum()

    check(f, torch.randn(3, 4).t(), backend=backend, expect_graphs=None, fresh_args=(torch.randn(3, 4).t(),))


@pytest.mark.parametrize("backend", ["triton", "cpu"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_an_op_returning_its_argument_returns_one_object_as_eager(dynamic, backend):
    """``h.to(h.dtype)`` is h itself in eager: returned twice, one object (symbolic graphs
    returned two views of the input; found by the aliasing family)."""
    def f(x):
        h = x[:1].expand(x.shape[0], -1)
        return h.to(h.dtype), h.to(h.dtype), x.contiguous()

    compiled = capture.compile(f, backend=backend, dynamic=dynamic)
    for rows in (3, 5):
        run_both(f, compiled, (torch.randn(rows, 4),), {})


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_a_reduction_into_an_out_of_another_dtype_computes_in_its_dtype(backend):
    """``torch.sum(float_z, 0, out=int_o)`` sums truncated values in eager (0 + 0 for
    0.6 + 0.6); functionalized, the float sum was truncated after (1)."""
    def f(z, o):
        torch.sum(z, 0, out=o)
        return o + 0

    run_both(f, capture.compile(f, backend=backend), (torch.tensor([[0.6, 0.7], [0.6, 0.7]]),
                                                      torch.zeros(2, dtype=torch.int32)), {})


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_bool_add_is_eagers_or(backend):
    """True + True is True in eager; generated kernels added integers (2 in C, 0 in
    Triton's int1), visible once cast (found by the boundary fuzzer)."""
    def f(y):
        return (y + y) * 1, (y + ~y).to(torch.float32)

    check(f, torch.tensor([True, False, True, True]), backend=backend, expect_graphs=None,
          fresh_args=(torch.tensor([False, True, True, False]),))


def test_partially_overlapping_in_place_op_raises_like_eager():
    def f(x, y):
        y += x
        return y

    def inputs():
        base = torch.randn(4, 3)
        return base[:2], base[1:3]
    with pytest.raises(RuntimeError, match="single memory location"):
        f(*inputs())
    with pytest.raises(RuntimeError, match="single memory location"):
        capture.compile(f, backend="triton")(*inputs())


def test_batchnorm_buffers_and_parameters_updated_under_no_grad():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6)).train()
    triton(model, torch.randn(5, 4))

    def sgd_step(w, g):
        with torch.no_grad():
            w.sub_(0.1 * g)
        return w

    triton(sgd_step, torch.randn(3, requires_grad=True), torch.randn(3))


# --------------------------------------------------------------------------- grad mode, requires_grad

def test_grad_mode_set_inside_the_graph_stays_set():
    def f(x):
        y = x * 2
        torch.set_grad_enabled(False)
        return y + 1, x.exp()
    try:
        triton(f, torch.randn(3, requires_grad=True))
    finally:
        torch.set_grad_enabled(True)


def test_requires_grad_of_outputs_under_no_grad_blocks():
    def f(x):
        with torch.no_grad():
            a = x * 2
            v = x[0]
        return a, v, x * 3
    triton(f, torch.randn(3, 4, requires_grad=True))


# --------------------------------------------------------------------------- what runs as captured

def test_view_as_another_dtype_reinterprets_the_bits():
    def f(x):
        y = x * 2
        return y.view(torch.int32), y
    triton(f, torch.randn(4))


def test_a_graph_the_path_cannot_take_runs_as_captured_with_the_reason_in_explain_and_log(caplog):
    def f(x, y):
        x.add_(1)                # y shares x's storage without being a view of it
        return y * 2

    def inputs():
        t = torch.randn(4)
        return t, t.detach()
    with caplog.at_level(logging.INFO, logger="capture.output_code"):
        triton(f, *inputs(), fresh_args=inputs())
    assert not compiled_graphs()
    assert any("without being views of one tensor" in r.getMessage() for r in caplog.records)
    fallbacks = capture.explain(f)(*inputs()).compiled_path_fallbacks()
    assert len(fallbacks) == 1 and "without being views of one tensor" in fallbacks[0][1]
    assert capture.explain(lambda x: x * 2)(torch.randn(4)).compiled_path_fallbacks() == []


def test_a_view_made_under_no_grad_whose_base_changes_later_runs_as_captured(caplog):
    # Autograd forbids reading v after x.add_ (eager raises only if the program reads
    # it): the graph returning v for the code after the break runs as captured, and the
    # resumed frame, which receives v, runs as is.
    def f(x):
        with torch.no_grad():
            v = x.view(-1)
            v.mul_(1.5)
        x.add_(1)
        print("break")
        return x * 2

    def run(fn):
        leaf = torch.arange(6.0).reshape(2, 3).requires_grad_()
        x = leaf * 1.0
        out = fn(x)
        out.sum().backward()
        return out, x, leaf.grad

    expected = run(f)
    with caplog.at_level(logging.INFO, logger="capture.output_code"):
        actual = run(capture.compile(f, backend="triton"))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e)
    assert any("view made under no_grad" in r.getMessage() for r in caplog.records)


def test_a_program_overwriting_a_value_its_backward_reads_runs_as_captured():
    # Eager raises only in backward(); the joint trace would raise at compile time.
    def f(x, y):
        a = x * y
        x.add_(1)
        return a

    def run(fn):
        x = torch.randn(3, requires_grad=True) * 1.0
        out = fn(x, torch.randn(3, requires_grad=True))
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()
        return out, x

    torch.manual_seed(0)
    expected = run(f)
    torch.manual_seed(0)
    actual = run(capture.compile(f, backend="triton"))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e)
    x = torch.randn(3, requires_grad=True) * 1.0
    fallbacks = capture.explain(f)(x, torch.randn(3, requires_grad=True)).compiled_path_fallbacks()
    assert len(fallbacks) == 1 and "backward reads a value it overwrites" in fallbacks[0][1]


FAST_PATH_CASES = {   # program, whether the weight requires grad, grad mode -> takes the fast path
    "inference": ("(x @ w).relu()", False, True, True),
    "under no_grad, weight requiring grad": ("(x @ w).relu()", True, False, True),
    "no output requires grad": ("x.detach() * w.detach()", True, True, True),
    "training": ("(x @ w).relu()", True, True, False),
    "input written": ("x.add_(1) @ w", False, True, False),
    "view of an input returned": ("x[0]", False, True, False),
    "output viewing another": ("(lambda y: (y, y.t()))(x @ w)", False, True, False),
}


@pytest.mark.parametrize("case", FAST_PATH_CASES)
def test_fast_path_only_where_there_is_nothing_to_put_back(case):
    body, w_grad, grad_mode, fast = FAST_PATH_CASES[case]
    fn = define(f"def f(x, w):\n    return {body}\n", "f")
    gm = torch.fx.symbolic_trace(fn)

    def inputs():
        return torch.randn(3, 3), torch.randn(3, 3, requires_grad=w_grad)
    with torch.set_grad_enabled(grad_mode):
        compiled = fx_graph.compile_captured(gm, list(inputs()), lambda functional_gm, example: functional_gm)
        assert compiled.fast_path is fast
        for _ in range(2):
            args = inputs()
            e_args = [a.detach().clone().requires_grad_(a.requires_grad) for a in args]
            out, expected = compiled(*args), fn(*e_args)
            assert torch.is_grad_enabled() is grad_mode
            for o, e in zip(out if isinstance(out, tuple) else (out,), expected if isinstance(expected, tuple) else (expected,)):
                torch.testing.assert_close(o, e)
                assert o.requires_grad == e.requires_grad and (o._base is None) == (e._base is None)
            torch.testing.assert_close(args[0], e_args[0])
