"""Indirect loads (gather, index_select, embedding, advanced indexing) and cat/stack
lowered to kernels — run in the interpreter against eager on contiguous, transposed,
broadcast and odd-sized inputs, fused with their producers and consumers."""
import pytest
import torch
import torch.nn.functional as F

import capture
import codegen
import helpers_codegen
from helpers_codegen import backend, check, compile_fn, count_loads, graph_of

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.usefixtures("emitter")]

torch.manual_seed(0)


def _idx(high, shape, low=0):
    return torch.randint(low, high, shape)


INDIRECT = {
    "gather_last": (lambda x, i: torch.gather(x, 1, i), lambda: (torch.randn(5, 37), _idx(37, (5, 9)))),
    "gather_first_transposed": (lambda x, i: torch.gather(x, 0, i),
                                lambda: (torch.randn(37, 5).t(), _idx(5, (7, 3, 2)).view(7, 6)[:, :5].t())),
    "index_select_rows_odd": (lambda x, i: torch.index_select(x, 0, i), lambda: (torch.randn(31, 37), _idx(31, (29,)))),
    "index_select_cols_transposed": (lambda x, i: torch.index_select(x, 1, i),
                                     lambda: (torch.randn(37, 5).t(), _idx(37, (11,)))),
    "embedding_2d_indices": (lambda w, i: F.embedding(i, w), lambda: (torch.randn(13, 24), _idx(13, (3, 7)))),
    "embedding_transposed_weight": (lambda w, i: F.embedding(i, w), lambda: (torch.randn(24, 13).t(), _idx(13, (9,)))),
    "index_negative": (lambda x, i: x[i], lambda: (torch.randn(9, 7), _idx(9, (5,), low=-9))),
    "index_two_broadcast": (lambda x, a, b: x[a, b], lambda: (torch.randn(9, 7), _idx(9, (4, 1), -9), _idx(7, (5,), -7))),
    "index_middle_dim": (lambda x, i: x[:, i], lambda: (torch.randn(5, 7, 3), _idx(7, (2, 4)))),
    "index_non_adjacent": (lambda x, a, b: x[a, :, b], lambda: (torch.randn(5, 6, 7), _idx(5, (3,)), _idx(7, (3,)))),
    "index_select_0d_index": (lambda x, i: torch.index_select(x, 1, i), lambda: (torch.randn(5, 7), torch.tensor(2))),
}


@pytest.mark.parametrize("name", sorted(INDIRECT))
def test_indirect_load_matches_eager(name):
    fn, make = INDIRECT[name]
    compiled = check(fn, *make())
    assert compiled.stats.n_kernels == 1


def test_gather_fuses_with_pointwise_producers_and_consumers(emitter):
    compiled = check(lambda x, i: ((x * 2)[i + 1]).relu() + 1, torch.randn(9, 7), _idx(8, (4, 3)))
    assert compiled.stats.n_kernels == 1
    source = compiled.kernels[0].source
    if emitter == "triton":
        assert "mask & index_in_range" in source                 # the gathered load is range-masked
        assert "tl.store(index_error_flag + tl.zeros_like(offsets), 1, mask & ~index_in_range)" in source
    else:
        assert "(index_in_range) ? arg0_ptr[" in source          # read only where in range
        assert "err |= (!(index_in_range)) ? CAPTURE_INDEX_ERROR : 0;" in source


def test_embedding_then_layer_norm_is_one_kernel(emitter):
    compiled = check(lambda w, i, g: F.layer_norm(F.embedding(i, w), (48,), g),
                     torch.randn(10, 48), _idx(10, (2, 3)), torch.randn(48), rtol=1e-5)
    assert compiled.stats.n_kernels == 1
    assert ("embedding = tl.load(" if emitter == "triton" else "const float embedding = ") in compiled.kernels[0].source


def test_gather_along_long_rows_feeds_a_looped_reduction(emitter):
    compiled = check(lambda x, i: torch.gather(x, 1, i).sum(-1), torch.randn(3, 2100), _idx(2100, (3, 2050)),
                     rtol=1e-5, atol=1e-4)
    assert compiled.stats.n_kernels == 1
    assert ("for col_start" if emitter == "triton" else "for (int64_t r0 = 0; r0 < 2050;") in compiled.kernels[0].source


def test_gather_at_argmax_reads_the_reduction_in_registers():
    compiled = check(lambda x: torch.gather(x, 1, x.argmax(1, keepdim=True)), torch.randn(6, 37))
    assert compiled.stats.n_kernels == 1


# --------------------------------------------------------------------------- out-of-range indices

# name -> (fn, table, a valid index, an index too large, one too negative). Extra index
# arguments (x[a, b]) stay valid; gather/index_select/embedding reject any negative index,
# advanced indexing one below -size.
OUT_OF_RANGE = {
    "gather": (lambda x, i: torch.gather(x, 1, i), torch.randn(4, 6),
               torch.tensor([[0, 5]] * 4), torch.tensor([[0, 6]] * 4), torch.tensor([[0, -1]] * 4)),
    "index_select": (lambda x, i: torch.index_select(x, 0, i), torch.randn(4, 6),
                     torch.tensor([3, 0]), torch.tensor([4, 0]), torch.tensor([-1, 0])),
    "embedding": (lambda w, i: F.embedding(i, w), torch.randn(10, 8),
                  torch.tensor([[9, 0]]), torch.tensor([[10, 0]]), torch.tensor([[-1, 0]])),
    "advanced indexing": (lambda x, i: x[i], torch.randn(5, 3),
                          torch.tensor([-5, 4]), torch.tensor([5, 0]), torch.tensor([-6, 0])),
}


def _raises_like_eager(fn, args, what):
    with pytest.raises((IndexError, RuntimeError)):
        fn(*args)
    with pytest.raises((IndexError, RuntimeError), match=f"index out of range in {what}"):
        capture.compile(fn, backend=backend())(*args)


@pytest.fixture
def fresh_capture():
    capture.reset()
    codegen.reset()
    yield
    capture.reset()


def _compiled_graph():
    (graph,) = codegen.COMPILED
    assert not graph.runs_eagerly, graph.stats.eager_reason
    return graph


@pytest.mark.parametrize("what", sorted(OUT_OF_RANGE))
def test_out_of_range_index_raises_like_eager_and_valid_calls_still_match(what, fresh_capture):
    fn, table, good, too_large, too_negative = OUT_OF_RANGE[what]
    compiled = capture.compile(fn, backend=backend())
    assert torch.equal(compiled(table, good), fn(table, good))
    for bad in (too_large, too_negative):
        with pytest.raises((IndexError, RuntimeError)):
            fn(table, bad)
        with pytest.raises(IndexError, match=f"index out of range in {what} \\(capture (triton|cpu) kernel"):
            compiled(table, bad)
    assert torch.equal(compiled(table, good), fn(table, good))
    assert _compiled_graph().kernels[0].index_checks == (what,)


@pytest.mark.parametrize("what", sorted(OUT_OF_RANGE))
def test_every_index_value_raises_exactly_when_eager_does(what):
    fn, table, good, _, _ = OUT_OF_RANGE[what]
    compiled = compile_fn(fn, table, good)
    size = {"gather": table.shape[1]}.get(what, table.shape[0])
    for value in range(-size - 2, size + 2):
        index = torch.full_like(good, value)
        try:
            expected = fn(table, index)
        except (IndexError, RuntimeError):
            with pytest.raises(IndexError, match=f"index out of range in {what}"):
                compiled(table, index)
        else:
            assert torch.equal(compiled(table, index), expected), value


@pytest.mark.parametrize("bad", [(9, 0), (-10, 0), (0, 7), (0, -8)], ids=["rows_high", "rows_low", "cols_high",
                                                                        "cols_low"])
def test_two_index_tensors_out_of_range_raise(bad, fresh_capture):
    x = torch.randn(9, 7)
    fn = lambda x, a, b: x[a, b]              # noqa: E731
    compiled = capture.compile(fn, backend=backend())
    a, b = torch.tensor([-9, 8, bad[0]]), torch.tensor([-7, 6, bad[1]])
    with pytest.raises(IndexError):
        fn(x, a, b)
    with pytest.raises(IndexError, match="index out of range in advanced indexing"):
        compiled(x, a, b)
    a[-1], b[-1] = 0, 0
    assert torch.equal(compiled(x, a, b), fn(x, a, b))


def test_first_call_with_a_bad_index_raises_and_keeps_the_graph_compiled(fresh_capture):
    fn = lambda w, i: F.embedding(i, w) * 2         # noqa: E731
    compiled = capture.compile(fn, backend=backend())
    w = torch.randn(10, 8)
    with pytest.raises(IndexError, match="index out of range in embedding"):
        compiled(w, torch.tensor([3, 10]))
    assert torch.equal(compiled(w, torch.tensor([3, 9])), fn(w, torch.tensor([3, 9])))
    _compiled_graph()


def test_index_computed_in_the_kernel_is_checked_after_the_arithmetic(fresh_capture):
    x = torch.randn(9, 7)
    _raises_like_eager(lambda x, i: (x * 2)[i + 1].relu(), (x, torch.tensor([0, 8])), "advanced indexing")
    _raises_like_eager(lambda x, i: torch.index_select(x, 0, i - 1), (x, torch.tensor([0, 8])), "index_select")


def test_index_into_a_table_that_is_not_loaded_is_checked(fresh_capture):
    """The check is on the op, not the load: a broadcast table drops the indexed dim from
    its address, an arange has no load at all."""
    _raises_like_eager(lambda b, i: b.expand(5, 7)[i] * 2, (torch.randn(7), torch.tensor([0, 5])), "advanced indexing")
    _raises_like_eager(lambda x, i: torch.arange(10.0)[i] + x, (torch.randn(2), torch.tensor([0, 10])),
                       "advanced indexing")


def test_masked_off_lanes_never_report_an_index_out_of_range():
    """Lanes past the end of a row and lanes of another cat input read index 0, which
    ``i - 1`` makes -1; they must not count."""
    check(lambda x, i: torch.gather(x, 1, i - 1).sum(-1), torch.randn(3, 2100), _idx(2101, (3, 2050), low=1),
          rtol=1e-5, atol=1e-4)
    check(lambda x, i, y: torch.cat([torch.index_select(x, 0, i - 1), y]), torch.randn(4, 3),
          torch.tensor([1, 4]), torch.randn(5, 3))


def test_index_out_of_range_in_a_cat_input_raises(fresh_capture):
    _raises_like_eager(lambda x, i, y: torch.cat([torch.index_select(x, 0, i - 1), y]).relu(),
                       (torch.randn(4, 3), torch.tensor([0, 4]), torch.randn(5, 3)), "index_select")


def test_boolean_mask_index_runs_the_graph_as_captured_with_a_reason():
    x = torch.randn(5, 7)
    compiled = codegen.compile_graph(graph_of(lambda x: x[x > 0] * 2, 1), [x])
    assert compiled.runs_eagerly and "depends on data" in compiled.stats.eager_reason
    assert torch.equal(compiled(x), x[x > 0] * 2)


# --------------------------------------------------------------------------- cat / stack


CATS = {
    "dim0_three_inputs": (lambda a, b, c: torch.cat([a, b, c]), lambda: (torch.randn(3, 7), torch.randn(1, 7),
                                                                          torch.randn(5, 7))),
    "dim1_transposed_and_broadcast": (lambda a, b, c: torch.cat([a, b.t(), c.expand(5, 2)], 1),
                                      lambda: (torch.randn(5, 37), torch.randn(3, 5), torch.randn(5, 1))),
    "last_dim_3d_odd": (lambda a, b: torch.cat([a, b], -1), lambda: (torch.randn(2, 3, 517), torch.randn(2, 3, 514))),
    "with_empty_input": (lambda a, b: torch.cat([a, b[:0], a * 2]), lambda: (torch.randn(3, 4), torch.randn(2, 4))),
    "mixed_dtypes": (lambda a, b: torch.cat([a, b], 1), lambda: (torch.randn(4, 3), torch.randint(0, 9, (4, 2)))),
    "stack_dim0": (lambda a, b: torch.stack([a, b]), lambda: (torch.randn(5, 7), torch.randn(7, 5).t())),
    "stack_last": (lambda a, b, c: torch.stack([a, b, c.expand(5, 7)], -1),
                   lambda: (torch.randn(5, 7), torch.randn(7, 5).t(), torch.randn(7))),
    "view_of_cat": (lambda a, b: torch.cat([a.view(6, 5), b]).reshape(-1)[3:] * 2,
                    lambda: (torch.randn(30), torch.randn(2, 5))),
}


@pytest.mark.parametrize("name", sorted(CATS))
def test_cat_matches_eager(name):
    fn, make = CATS[name]
    assert check(fn, *make()).stats.n_kernels == 1


def test_cat_fuses_with_producers_and_consumers():
    compiled = check(lambda x, y: torch.cat([x * 2, y.exp()], 1).relu().sum(-1), torch.randn(6, 5), torch.randn(6, 3))
    assert compiled.stats.n_kernels == 1
    source = compiled.kernels[0].source
    assert ("tl.where(" if helpers_codegen.EMITTER == "triton" else " ? ") in source and count_loads(source) == 2


@pytest.mark.parametrize("cols", [(15, 12), (1500, 1200)])
def test_softmax_of_cat_along_the_row_is_one_kernel(cols):
    a, b = torch.randn(4, cols[0]), torch.randn(4, cols[1])
    compiled = check(lambda a, b: torch.cat([a, b], -1).softmax(-1), a, b, rtol=1e-5)
    assert compiled.stats.n_kernels == 1


# --------------------------------------------------------------------------- slice_scatter


SLICE_SCATTERS = {
    "middle_of_dim0": (lambda b, s: torch.slice_scatter(b, s, 0, 2, 5), lambda: (torch.randn(7, 5), torch.randn(3, 5))),
    "negative_start_last_dim": (lambda b, s: torch.slice_scatter(b, s, -1, -4), lambda: (torch.randn(3, 9), torch.randn(3, 4))),
    "whole_dim_transposed_src": (lambda b, s: torch.slice_scatter(b, s.t(), 1), lambda: (torch.randn(3, 6), torch.randn(6, 3))),
    "empty_slice": (lambda b, s: torch.slice_scatter(b, s, 0, 4, 4), lambda: (torch.randn(6, 2), torch.randn(0, 2))),
    "end_past_the_size": (lambda b, s: torch.slice_scatter(b, s, 1, 3, 100), lambda: (torch.randn(2, 5), torch.randn(2, 2))),
}


@pytest.mark.parametrize("name", sorted(SLICE_SCATTERS))
def test_slice_scatter_matches_eager(name):
    fn, make = SLICE_SCATTERS[name]
    assert check(fn, *make()).stats.n_kernels == 1


def test_rotate_half_backward_is_one_kernel():
    """RoPE's ``rotate_half`` backward: two slice_scatters into zeros, negated, added to
    the gradient of the other term — pointwise, so one kernel without library calls."""
    def fn(g, cos, sin):
        half = g.shape[-1] // 2
        zeros = torch.zeros_like(g)
        first = torch.slice_scatter(zeros, g[..., half:] * sin[..., half:], -1, 0, half)
        second = torch.slice_scatter(zeros, -(g[..., :half] * sin[..., :half]), -1, half)
        return g * cos + first + second
    args = (torch.randn(2, 3, 5, 8), torch.randn(5, 8), torch.randn(5, 8))
    assert check(fn, *args).stats.n_kernels == 1
