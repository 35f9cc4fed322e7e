"""``index_put`` with ``accumulate`` (an embedding's backward) as an atomic scatter-add.

Triton emitter, in the interpreter on CPU tensors, against eager: the base is written by
one kernel and the values added by a second that computes the index (clamp) and the
values (padding mask) itself, where it was a library call plus a ``full`` and a
``clamp`` kernel. Repeated indices, negative ones (counted from the end) and an index
out of range (raises like eager) are covered.
"""
import pytest
import torch

import capture
import codegen


pytestmark = pytest.mark.usefixtures("fresh_codegen")   # conftest resets capture; kernels are counted


def _index_put(w, i, v):
    return w.index_put((i,), v, accumulate=True)


def test_embedding_backward_is_a_fill_and_one_scatter_kernel():
    torch.manual_seed(0)
    emb, twin = torch.nn.Embedding(50, 32, padding_idx=3), torch.nn.Embedding(50, 32, padding_idx=3)
    twin.load_state_dict(emb.state_dict())
    idx = torch.randint(0, 50, (2, 12))
    idx[0, :4] = 7                                     # one row gets four additions
    idx[1, 0] = 3                                      # the padding row gets none
    capture.compile(lambda i: emb(i) * 2, backend="triton")(idx).sum().backward()
    (twin(idx) * 2).sum().backward()
    torch.testing.assert_close(emb.weight.grad, twin.weight.grad)
    (backward,) = [g for g in codegen.COMPILED if g.role == "backward"]
    assert not backward.runs_eagerly and backward.stats.n_externs == 0
    assert backward.stats.n_kernels == 2
    assert sum("tl.atomic_add(" in k.source for k in backward.kernels) == 1


def test_index_put_accumulate_into_an_input_with_negative_and_repeated_indices():
    g = torch.Generator().manual_seed(1)
    w, v = torch.randn(20, 3, 8, generator=g), torch.randn(5, 4, 3, 8, generator=g)
    idx = torch.randint(-20, 20, (5, 4), generator=g)
    idx[0] = 2
    compiled = capture.compile(_index_put, backend="triton")
    torch.testing.assert_close(compiled(w, idx, v), _index_put(w, idx, v))
    (graph,) = codegen.COMPILED
    assert graph.stats.n_externs == 0 and not graph.runs_eagerly


def test_an_index_out_of_range_raises_like_eager():
    w, v = torch.zeros(20, 8), torch.randn(6, 8)
    idx = torch.tensor([0, 3, 20, 1, 2, 5])
    with pytest.raises(IndexError):
        _index_put(w, idx, v)
    compiled = capture.compile(_index_put, backend="triton")
    with pytest.raises(IndexError):
        compiled(w, idx, v)
    (graph,) = codegen.COMPILED
    assert not graph.runs_eagerly and any("tl.atomic_add(" in k.source for k in graph.kernels)
