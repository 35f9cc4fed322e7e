"""Indirect loads (gather, index_select, embedding, advanced indexing) and cat/stack
lowered to kernels — run in the interpreter against eager on contiguous, transposed,
broadcast and odd-sized inputs, fused with their producers and consumers."""
import pytest
import torch
import torch.nn.functional as F

import codegen
from helpers_codegen import check, compile_fn, graph_of

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

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


def test_gather_fuses_with_pointwise_producers_and_consumers():
    compiled = check(lambda x, i: ((x * 2)[i + 1]).relu() + 1, torch.randn(9, 7), _idx(8, (4, 3)))
    assert compiled.stats.n_kernels == 1
    assert "mask & (" in compiled.kernels[0].source          # the gathered load is range-masked


def test_embedding_then_layer_norm_is_one_kernel():
    compiled = check(lambda w, i, g: F.layer_norm(F.embedding(i, w), (48,), g),
                     torch.randn(10, 48), _idx(10, (2, 3)), torch.randn(48), rtol=1e-5)
    assert compiled.stats.n_kernels == 1
    assert "embedding = tl.load(" in compiled.kernels[0].source


def test_gather_along_long_rows_feeds_a_looped_reduction():
    compiled = check(lambda x, i: torch.gather(x, 1, i).sum(-1), torch.randn(3, 2100), _idx(2100, (3, 2050)),
                     rtol=1e-5, atol=1e-4)
    assert compiled.stats.n_kernels == 1 and "for col_start" in compiled.kernels[0].source


def test_gather_at_argmax_reads_the_reduction_in_registers():
    compiled = check(lambda x: torch.gather(x, 1, x.argmax(1, keepdim=True)), torch.randn(6, 37))
    assert compiled.stats.n_kernels == 1


def test_out_of_range_index_reads_zero_instead_of_faulting():
    x, i = torch.randn(4, 5), torch.tensor([0, 3])
    compiled = compile_fn(lambda x, i: torch.index_select(x, 0, i), x, i)
    out = compiled(x, torch.tensor([3, 40]))
    assert torch.equal(out[0], x[3]) and torch.equal(out[1], torch.zeros(5))


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
    assert "tl.where(" in source and source.count("tl.load(") == 2


@pytest.mark.parametrize("cols", [(15, 12), (1500, 1200)])
def test_softmax_of_cat_along_the_row_is_one_kernel(cols):
    a, b = torch.randn(4, cols[0]), torch.randn(4, cols[1])
    compiled = check(lambda a, b: torch.cat([a, b], -1).softmax(-1), a, b, rtol=1e-5)
    assert compiled.stats.n_kernels == 1
