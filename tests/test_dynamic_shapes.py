"""Dynamic shapes in the front end: symbolic sizes, size guards, automatic dynamic,
mark_dynamic/mark_static, specializations and the report's advice.

Every compiled call is compared with eager on fresh inputs of the size under test, so
an entry reused for a size it does not cover gives a wrong answer and fails.
"""
from __future__ import annotations

import logging
import math

import pytest
import torch

import capture
import codegen.compile
from capture.state import FRAMES
from helpers_modules import assert_same, entries, n_entries


def check(cf, fn, *args):
    assert_same(cf(*args), fn(*args))


def mlp_like(x, w):
    y = x @ w
    n = x.shape[0]
    return torch.relu(y).sum(1) * n + y.view(n, -1).mean()


W = torch.randn(4, 3)


def test_twenty_batch_sizes_default_dynamic_two_graphs():
    cf = capture.compile(mlp_like, backend="eager")
    for b in range(2, 22):
        check(cf, mlp_like, torch.randn(b, 4), W)
    assert n_entries(mlp_like) == 2
    report = str(capture.report(cf))
    assert "L['x'].shape[0]: 2 then 3 -> dynamic" in report
    assert "L['x'].size()[0] >= 2" in report


def token_model(ids, mask):
    emb = EMB[ids] * mask.unsqueeze(-1)
    pos = torch.arange(ids.shape[1]).float().unsqueeze(-1)
    return torch.softmax(emb @ emb.transpose(1, 2), -1) @ (emb + pos)


EMB = torch.randn(50, 8)


def seq_major(batches, seqs):
    return [(b, s) for s in seqs for b in batches]


@pytest.mark.parametrize("order", ["batch varies first", "sequence varies first"])
def test_batch_and_sequence_sweep_costs_one_extra_compile_in_any_order(order):
    batches, seqs = (2, 4, 9), (3, 5, 8, 13)
    pairs = seq_major(batches, seqs) if order == "batch varies first" else [(b, s) for b in batches for s in seqs]
    cf = capture.compile(token_model, backend="eager")
    for b, s in pairs:
        check(cf, token_model, torch.randint(0, 50, (b, s)), torch.randint(0, 2, (b, s)).bool())
    assert n_entries(token_model) == 2
    assert "batch/sequence-like dims of every input vary together" in str(capture.report(cf))


def test_without_size_like_dims_each_dimension_costs_a_compile(monkeypatch):
    monkeypatch.setattr(capture.config, "dynamic_size_like_dims", False)
    cf = capture.compile(token_model, backend="eager")
    for b, s in seq_major((2, 4, 9), (3, 5)):
        check(cf, token_model, torch.randint(0, 50, (b, s)), torch.randint(0, 2, (b, s)).bool())
    assert n_entries(token_model) == 3


def hidden_fn(h):
    return torch.nn.functional.layer_norm(h, (6,)) * h.shape[1]


def test_float_inputs_keep_their_feature_dim_static_after_a_size_recompile():
    cf = capture.compile(hidden_fn, backend="eager")
    for b, s in seq_major((2, 3, 5), (4, 7)):
        check(cf, hidden_fn, torch.randn(b, s, 6))
    assert n_entries(hidden_fn) == 2
    tensor_guards = [g for g in entries(hidden_fn)[-1].guard.readable() if "L['h']: Tensor" in g]
    assert tensor_guards and "shape=(*, *, 6)" in tensor_guards[0]


def test_mark_dynamic_on_first_call_one_graph():
    cf = capture.compile(mlp_like, backend="eager")
    for b in range(2, 22):
        x = torch.randn(b, 4)
        capture.mark_dynamic(x, 0)
        check(cf, mlp_like, x, W)
    assert n_entries(mlp_like) == 1


def test_dynamic_false_is_static_per_size():
    cf = capture.compile(mlp_like, backend="eager", dynamic=False, options={"cache_limit": 64})
    for b in range(2, 8):
        check(cf, mlp_like, torch.randn(b, 4), W)
    assert n_entries(mlp_like) == 6
    assert all("size()" not in g for e in entries(mlp_like) for g in e.guard.readable())


def test_mark_static_overrides_dynamic_true():
    def f(x):
        return x * x.shape[1]
    cf = capture.compile(f, backend="eager", dynamic=True)
    for n in (3, 4, 5):
        x = torch.randn(n, 6)
        capture.mark_static(x, 0)
        check(cf, f, x)
    assert n_entries(f) == 3  # dim 0 static: one entry per size


def test_size_zero_and_one_specialize_and_stay_correct():
    def f(x):
        return x.sum(0) + x.shape[0]
    cf = capture.compile(f, backend="eager", dynamic=True)
    for b in (4, 7, 1, 9, 0, 1, 5):
        check(cf, f, torch.randn(b, 3))
    assert n_entries(f) == 3  # >= 2, 1, 0


def shape_code(x, y):
    n = x.shape[0]
    z = x[: n // 2] + y[1: n // 2 + 1]
    if n > 4:
        z = z * 2
    return z.reshape(-1), n * 3, x.size(), x.numel(), len(x), x.size(1) - n


def test_shape_arithmetic_views_slices_and_returned_sizes():
    cf = capture.compile(shape_code, backend="eager", dynamic=True)
    for b in (6, 8, 11, 12):
        check(cf, shape_code, torch.randn(b, 3), torch.randn(b, 3))
    assert n_entries(shape_code) == 1
    guards = entries(shape_code)[0].guard.readable()
    assert "L['x'].size()[0] >= 5" in guards  # from `if n > 4`
    assert "L['x'].size()[0] // 2 + 1 <= L['y'].size()[0]" in guards  # y[1:n//2+1] is n//2 long
    assert "L['y'].size()[1] == L['x'].size()[1]" in guards  # the add


def sdpa(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_a_symbolic_head_width_is_pinned_with_a_readable_guard():
    """SDPA's default scale is 1 / sqrt(head size): with ``dynamic=True`` a float of a
    symbolic size. The code generator pins the head width (fx_graph/lifting.py
    ``_pinned_head_sizes``), guarded and printed: rows vary in one entry, another head
    width is a new one (before: the float's relation was guarded, and the graph ran as
    captured)."""
    cf = capture.compile(sdpa, backend="cpu", dynamic=True)
    for rows, dim in ((5, 8), (7, 8), (7, 12)):
        q, k, v = (torch.randn(2, rows, dim) for _ in range(3))
        check(cf, sdpa, q, k, v)
    assert n_entries(sdpa) == 2
    assert "L['q'].size()[2] == 8" in entries(sdpa)[0].guard.readable()
    advice = [line for line in str(capture.report(cf)).splitlines() if "advice:" in line]
    assert len(advice) == 1 and "is a pinned size (attention head width" in advice[0], advice


def test_a_call_breaking_a_slice_relation_fails_like_eager():
    cf = capture.compile(shape_code, backend="eager", dynamic=True)
    check(cf, shape_code, torch.randn(8, 3), torch.randn(8, 3))
    x, y = torch.randn(8, 3), torch.randn(4, 3)  # y[1:5] has 3 rows, x[:4] has 4
    with pytest.raises(RuntimeError) as eager:
        shape_code(x, y)
    with pytest.raises(RuntimeError) as compiled:
        cf(x, y)
    assert str(compiled.value).split("\n")[0] == str(eager.value).split("\n")[0]


def test_relation_used_by_a_branch_recompiles_when_broken():
    cf = capture.compile(shape_code, backend="eager", dynamic=True)
    check(cf, shape_code, torch.randn(8, 3), torch.randn(8, 3))
    check(cf, shape_code, torch.randn(3, 3), torch.randn(3, 3))  # n > 4 no longer holds
    assert n_entries(shape_code) == 2
    text = str(capture.report(cf))
    assert "expected L['x'].size()[0] >= 5, got L['x'].size()[0] = 3" in text


def test_equal_sizes_are_tied_only_where_an_op_relies_on_it():
    def sliced(x, y):
        return x[: y.shape[0]] * 2
    cf = capture.compile(sliced, backend="eager", dynamic=True)
    check(cf, sliced, torch.randn(5), torch.randn(5))
    check(cf, sliced, torch.randn(7), torch.randn(4))  # 4 <= 7: the slice stays valid
    check(cf, sliced, torch.randn(9), torch.randn(9))
    assert n_entries(sliced) == 1

    def added(x, y):
        return x + y
    cf = capture.compile(added, backend="eager", dynamic=True)
    check(cf, added, torch.randn(5), torch.randn(5))
    check(cf, added, torch.randn(8), torch.randn(8))
    assert n_entries(added) == 1
    guards = entries(added)[0].guard.readable()
    assert {"L['y'].size()[0] == L['x'].size()[0]", "L['x'].size()[0] == L['y'].size()[0]"} & set(guards)
    check(cf, added, torch.randn(8), torch.randn(1))  # broadcasting: a new entry, right result
    assert n_entries(added) == 2


def test_non_contiguous_inputs_keep_their_strides_guarded():
    def f(x):
        return x * 2 + x.shape[0]
    cf = capture.compile(f, backend="eager", dynamic=True)
    check(cf, f, torch.randn(6, 5).t())
    check(cf, f, torch.randn(9, 5).t())
    check(cf, f, torch.randn(5, 9))  # contiguous: other strides
    assert all(torch.equal(cf(t), f(t)) for t in (torch.randn(4, 8).t(), torch.randn(8, 4)))


def loop_over_rows(x):
    out = x
    for i in range(x.shape[0]):
        out = out + i
    return out


def test_range_over_a_size_specializes_with_the_line():
    x = torch.randn(5, 2)
    capture.mark_dynamic(x, 0)
    ex = capture.explain(loop_over_rows)(x)
    assert ex.graph_count == 1
    assert len(ex.specializations) == 1
    text = str(ex.specializations[0])
    assert "L['x'].size()[0] specialized to 5" in text and "test_dynamic_shapes.py" in text and "range()" in text
    assert "Specialized sizes:" in str(ex)


def test_specialization_is_logged_and_stays_correct(caplog):
    cf = capture.compile(loop_over_rows, backend="eager", dynamic=True)
    with caplog.at_level(logging.DEBUG, logger="capture.dynamic"):
        for b in (3, 4):
            check(cf, loop_over_rows, torch.randn(b, 2))
    assert n_entries(loop_over_rows) == 2
    assert any("specialized to 3" in r.getMessage() for r in caplog.records)


def test_mark_dynamic_misuse_errors():
    with pytest.raises(TypeError, match="expected a tensor, got int"):
        capture.mark_dynamic(3, 0)
    with pytest.raises(IndexError, match="dim 2 is out of range for a tensor with 2"):
        capture.mark_dynamic(torch.randn(2, 3), 2)
    with pytest.raises(TypeError, match="dim must be an int"):
        capture.mark_static(torch.randn(2), "0")
    with pytest.raises(TypeError, match="dynamic must be None, True or False"):
        capture.compile(lambda x: x, dynamic="yes")
    x = torch.randn(2, 3)
    capture.mark_dynamic(x, -1)
    assert x._capture_dynamic_dims == {1}


SCALE = 2.0


def uses_global(x):
    return x * SCALE


def test_report_advice_for_sizes_and_constants():
    global SCALE
    cf = capture.compile(uses_global, backend="eager", dynamic=False)
    check(cf, uses_global, torch.randn(3))
    check(cf, uses_global, torch.randn(4))
    SCALE = 3.0
    try:
        check(cf, uses_global, torch.randn(4))
    finally:
        SCALE = 2.0
    text = str(capture.report(cf))
    assert "advice: L['x'].shape[0] varies (3 then 4) and dynamic=False" in text
    assert "G['SCALE'] is a Python number read from a global" in text and "argument" in text
    page = capture.report(cf).to_html()
    assert "class='advice'" in page and "return x * <span class='changed'>SCALE</span>" in page
    assert "guards that differ between entries" in page


def test_report_advice_for_an_int_argument_and_a_new_module():
    def f(x, n):
        return x * n
    cf = capture.compile(f, backend="eager")
    check(cf, f, torch.randn(3), 2)
    check(cf, f, torch.randn(3), 5)
    assert "pass it as a tensor (torch.tensor(5))" in str(capture.report(cf))


def test_guard_function_reads_each_shape_once():
    cf = capture.compile(shape_code, backend="eager", dynamic=True)
    check(cf, shape_code, torch.randn(6, 3), torch.randn(6, 3))
    source = entries(shape_code)[0].guard.source
    assert source.count("x.shape") == 1 and source.count("y.shape") == 1
    assert "size relations" in source


def test_symbolic_graph_runs_generated_kernels_in_codegen():
    fn = capture.compile(mlp_like, backend="triton")
    for b in (2, 3, 5):
        check(fn, mlp_like, torch.randn(b, 4), W)
    assert len(FRAMES) >= 1
    graphs = list(codegen.compile.COMPILED)
    assert len(graphs) == 2 and not any(g.runs_eagerly for g in graphs)   # static, then symbolic
    assert graphs[1].generated_calls == 2


def test_relations_a_backend_asks_about_are_guarded():
    """A backend sees symbolic sizes in the placeholders' fake values; what it decides on
    them (here: a variant for rows of at most 64) is guarded like the trace's own."""
    chosen = []

    def picky_backend(gm, example_inputs):
        fake = next(n for n in gm.graph.nodes if n.op == "placeholder").meta["val"]
        chosen.append("short" if fake.shape[1] <= 64 else "long")
        return gm.forward

    def f(x):
        return torch.softmax(x, -1)
    cf = capture.compile(f, backend=picky_backend, dynamic=True)
    for cols in (10, 30, 64, 100, 2000):
        check(cf, f, torch.randn(3, cols))
    assert chosen == ["short", "long"]
    assert "L['x'].size()[1] <= 64" in entries(f)[0].guard.readable()
    assert "L['x'].size()[1] >= 65" in entries(f)[1].guard.readable()


def _shape_equal(x, y):
    return x * 2 if x.shape == y.shape else x


def _scaled_by_root(x, y):
    return x / math.sqrt(x.shape[-1])


def _mean_by_float(x, y):
    return x.sum(0) / float(x.shape[0])


def _labelled(x, y):
    return x + 1, f"rows={x.shape[0]}"


def _reshaped_when_even(x, y):
    return x.reshape(x.shape[0] // 2, -1) if x.shape[0] % 2 == 0 else x


# (function, entries over the sizes 4, 6, 8 with dynamic=True, text of a specialization or None)
SIZE_USES = [
    (_shape_equal, 1, None),  # x.shape == y.shape: compared size by size, guarded
    (_scaled_by_root, 1, "L['x'].size()[1] specialized to 4"),  # math.sqrt needs a number
    (_mean_by_float, 1, None),  # float(n) stays symbolic
    (_labelled, 3, "formatting a size into a string"),
    (_reshaped_when_even, 1, None),  # n % 2 == 0 is a guarded relation, not a specialization
]


@pytest.mark.parametrize("fn,n,special", SIZE_USES, ids=[f.__name__.strip("_") for f, _, _ in SIZE_USES])
def test_uses_of_sizes_stay_symbolic_or_specialize_with_a_reason(fn, n, special):
    cf = capture.compile(fn, backend="eager", dynamic=True)
    for b in (4, 6, 8):
        check(cf, fn, torch.randn(b, 4), torch.randn(b, 4))
    assert n_entries(fn) == n
    texts = [str(s) for e in entries(fn) for s in e.specializations]
    if special is None:
        assert texts == []
    else:
        assert any(special in t for t in texts), texts


# Ops whose C++ composite kernels take only concrete sizes when an input requires grad
# (Bloom's alibi attention is `alibi.baddbmm(q, k)`): traced with the Python dispatcher.
COMPOSITE_WITH_GRAD = {
    "baddbmm": lambda a, q, k: a.baddbmm(q, k, alpha=0.5),
    "addbmm": lambda a, q, k: torch.addbmm(a[0, :, :1].expand(-1, k.shape[2]).contiguous(), q, k),
    "lerp": lambda a, q, k: torch.lerp(a, q[:, :1, :1], 0.3),
    "addcmul": lambda a, q, k: torch.addcmul(a, q[:, :1, :1], a, value=0.5),
    "bilinear": lambda a, q, k: torch.nn.functional.bilinear(q, q, k[:1, :, :4].contiguous()),
    # the fallback is per op: SDPA beside it keeps eager's fresh output (under the Python
    # dispatcher its fake output would be a view of the math form's product)
    "baddbmm+sdpa": lambda a, q, k: (a.baddbmm(q, k), torch.nn.functional.scaled_dot_product_attention(q, q, q)),
}


@pytest.fixture
def torch_fake_logs():
    """Records torch's fake-tensor logger emits (it does not propagate to caplog)."""
    records, handler = [], logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("torch._subclasses.fake_tensor")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("name", list(COMPOSITE_WITH_GRAD))
def test_composite_ops_with_grad_inputs_trace_over_symbolic_sizes(name, backend, torch_fake_logs):
    fn = COMPOSITE_WITH_GRAD[name]
    cf = capture.compile(fn, backend=backend, fullgraph=True)
    codegen.compile.reset()
    for s in (5, 7, 9):
        a, q, k = torch.randn(8, 1, s), torch.randn(8, s, 4, requires_grad=True), torch.randn(8, 4, s)
        q2 = q.detach().clone().requires_grad_()
        got, want = cf(a, q, k), fn(a, q2, k)
        assert_same(got, want)
        for g, w in zip(*((x,) if torch.is_tensor(x) else x for x in (got, want))):
            assert (g._base is None) == (w._base is None)
        sum(x.sum() for x in ((got,) if torch.is_tensor(got) else got)).backward()
        sum(x.sum() for x in ((want,) if torch.is_tensor(want) else want)).backward()
        torch.testing.assert_close(q.grad, q2.grad)
    assert n_entries(fn) == 2
    graphs = list(codegen.compile.COMPILED)
    assert graphs and not any(g.runs_eagerly for g in graphs), [g.stats.eager_reason for g in graphs]
    # the failed first try is handled: no error log with a traceback for the user
    assert not [r for r in torch_fake_logs if "failed while attempting to run meta" in r.getMessage()]
