"""Training with dynamic shapes through the compiled path: a training graph (grad on,
parameters requiring grad) with symbolic sizes is traced by AOT autograd from its own
symbolic fakes, so its forward and backward graphs are generated over symbolic sizes —
one entry serves every later batch size and sequence length — and every step's loss
and gradients equal eager's. What the symbolic path does not take yet runs as captured
with a named reason.
"""
from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F

import capture
from codegen.compile import COMPILED
from helpers_modules import assert_same, n_entries

import helpers_codegen


class Block(torch.nn.Module):
    """A pre-norm attention block: heads split with the batch and sequence sizes, causal
    SDPA, heads merged, a residual (its backward takes sizes the forward saved)."""

    def __init__(self):
        super().__init__()
        self.norm, self.qkv, self.out = torch.nn.LayerNorm(16), torch.nn.Linear(16, 48), torch.nn.Linear(16, 16)

    def forward(self, x):
        b, s, c = x.shape
        q, k, v = self.qkv(self.norm(x)).split(c, 2)
        q, k, v = (t.view(b, s, 2, c // 2).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.out(y.transpose(1, 2).reshape(b, s, c))


def _grads(model) -> list:
    return [p.grad for p in model.parameters()]


@pytest.mark.usefixtures("emitter")
def test_training_steps_over_batch_and_sequence_sizes_share_one_symbolic_graph():
    torch.manual_seed(0)
    model = Block()
    reference = copy.deepcopy(model)
    compiled = capture.compile(model, backend=helpers_codegen.backend())
    pairs = [(2, 5), (3, 7), (4, 9)]
    for batch, seq in pairs:
        x = torch.randn(batch, seq, 16)
        for m in (model, reference):
            m.zero_grad()
        out, want = compiled(x), reference(x)
        out.pow(2).sum().backward()
        want.pow(2).sum().backward()
        assert_same(out, want, atol=1e-5, rtol=1e-5)
        assert_same(_grads(model), _grads(reference), atol=1e-5, rtol=1e-5)
    assert n_entries(Block.forward) == 2                    # static, then symbolic
    symbolic = [g for g in COMPILED if g.lowering is not None and g.lowering.symbolic]
    assert sorted(g.role for g in symbolic) == ["backward", "forward"]
    assert all(not g.runs_eagerly and g.generated_calls == len(pairs) - 1 for g in symbolic)
    backward, = [g for g in symbolic if g.role == "backward"]
    assert backward.lowering.size_params                    # sizes the forward saved, read as ints


def test_symbolic_training_graphs_the_path_does_not_take_run_as_captured_with_the_reason(caplog):
    """An output that is a view of an input; BatchNorm's running statistics (written
    inputs). Both stay eager's (views, buffers, gradients) and the log names why."""
    def scale(x, w):
        return x * w, x[1:]
    w = torch.randn(4, requires_grad=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    reference = copy.deepcopy(model)
    compiled, compiled_model = capture.compile(scale, backend="cpu"), capture.compile(model, backend="cpu")
    with caplog.at_level(logging.INFO, logger="capture.output_code"):
        for n in (3, 5, 6):
            x = torch.randn(n, 4, requires_grad=True)
            got, want = compiled(x, w), scale(x, w)
            assert_same(got, want)
            assert got[1]._base is x
            for m in (model, reference):
                m.zero_grad()
            compiled_model(x.detach()).sum().backward()
            reference(x.detach()).sum().backward()
            assert_same(_grads(model) + list(model[0].buffers()), _grads(reference) + list(reference[0].buffers()),
                        atol=1e-5, rtol=1e-5)
    assert n_entries(scale) == 2
    assert "symbolic sizes (dynamic shapes) with outputs aliasing inputs" in caplog.text
    assert "symbolic sizes (dynamic shapes) with written inputs (e.g. BatchNorm's" in caplog.text
