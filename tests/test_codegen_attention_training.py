"""Attention in a training step: ``capture::flash_attention`` and its backward templates.

With the Triton emitter, a differentiated ``scaled_dot_product_attention`` is one op
(``fx_graph.attention_op``): the forward graph runs the flash-attention template, which
also writes the logsumexp it saves, and the backward graph runs two templates (dq; dk
and dv) recomputing the probabilities. Every case runs in Triton's interpreter on CPU
tensors against eager SDPA: the output and the gradients of q, k, v (float32 to
rounding, half types at their tolerance). Sizes are small and ragged (not multiples of
the tiles). ``test_codegen_sm90`` compiles the backward kernels for an H100.
"""
import pytest
import torch
import torch.nn.functional as F

import capture
import codegen
import fx_graph
from fx_graph import attention_op

TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 2e-2), torch.float16: (2e-3, 2e-3)}


pytestmark = pytest.mark.usefixtures("fresh_codegen")   # conftest resets capture; kernels are counted


def _tensors(dtype, rows=24, keys=24, dim=16, heads=2, kv_heads=2, seed=0):
    g = torch.Generator().manual_seed(seed)

    def make(*shape):
        return torch.randn(*shape, generator=g).to(dtype).requires_grad_()
    return make(2, heads, rows, dim), make(2, kv_heads, keys, dim), make(2, kv_heads, keys, dim)


def _masks(rows, keys):
    g = torch.Generator().manual_seed(5)
    additive = torch.randn(2, 1, rows, keys, generator=g)
    additive[1, 0, 3] = float("-inf")                      # a row that sees no key: output and grads 0
    boolean = torch.rand(rows, keys, generator=g) > 0.3
    boolean[4] = False
    return {"additive": additive, "boolean": boolean}


CASES = {   # name: (dtype, rows, keys, kv_heads, mask kind, is_causal)
    "causal": (torch.float32, 24, 24, 2, None, True),
    "additive_mask_ragged_keys": (torch.float32, 24, 37, 2, "additive", False),
    "boolean_mask": (torch.float32, 20, 20, 2, "boolean", False),
    "grouped_query_heads": (torch.float32, 24, 24, 1, None, True),
    "bf16_causal": (torch.bfloat16, 33, 33, 2, None, True),
    "fp16_additive_mask": (torch.float16, 24, 37, 2, "additive", False),
}


def _run(fn, args, grad):
    out = fn(*args)
    out.backward(grad)
    grads = [a.grad for a in args]
    for a in args:
        a.grad = None
    return out.detach(), grads


def _kinds(role) -> list:
    return sorted(k.kind for g in codegen.COMPILED if g.role == role for k in g.kernels
                  if k.kind.startswith("attention"))


@pytest.mark.parametrize("case", CASES)
def test_training_step_runs_flash_attention_forward_and_backward_templates(case):
    dtype, rows, keys, kv_heads, mask_kind, causal = CASES[case]
    q, k, v = _tensors(dtype, rows, keys, kv_heads=kv_heads)
    mask = None if mask_kind is None else _masks(rows, keys)[mask_kind]
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(dtype)

    def attention(q, k, v):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=kv_heads != 2)
        return out.transpose(1, 2).reshape(2, rows, -1) * 2
    grad = torch.randn(2, rows, 2 * 16, generator=torch.Generator().manual_seed(9)).to(dtype)
    got, got_grads = _run(capture.compile(attention, backend="triton"), (q, k, v), grad)
    expected, expected_grads = _run(attention, (q, k, v), grad)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got, expected, rtol=rtol, atol=atol)
    for a, b in zip(got_grads, expected_grads):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=rtol * 10, atol=atol * 10)
    assert not any(g.runs_eagerly for g in codegen.COMPILED), [g.stats.eager_reason for g in codegen.COMPILED]
    assert _kinds("forward") == ["attention"]
    assert _kinds("backward") == ["attention_backward", "attention_backward"]
    externs = [t for g in codegen.COMPILED for _, t, _, _ in g.stats.externs]
    assert not any("flash_attention" in str(t) for t in externs), externs
    forward = [k.source for g in codegen.COMPILED if g.role == "forward" for k in g.kernels if k.kind == "attention"]
    assert ("tl.minimum(KV, (pid + 1) * BLOCK_M)" in forward[0]) is causal     # causal: blocks past the diagonal skipped


def test_a_mask_that_requires_grad_keeps_the_math_composite():
    """The fused op gives the mask no gradient: a mask autograd differentiates keeps
    SDPA's math form, and its gradient is eager's."""
    q, k, v = _tensors(torch.float32)
    mask = torch.randn(24, 24, requires_grad=True)
    fn = lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)   # noqa: E731
    grad = torch.randn(2, 2, 24, 16)
    got, got_grads = _run(capture.compile(fn, backend="triton"), (q, k, v, mask), grad)
    expected, expected_grads = _run(fn, (q, k, v, mask), grad)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(got_grads, expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert _kinds("backward") == []


def _functional_targets(fn, args, fused) -> set:
    gm = torch.fx.symbolic_trace(fn)
    compiled = fx_graph.compile_captured(gm, list(args), lambda functional_gm, example: functional_gm, fused)
    compiled(*args)[0].sum().backward()
    return {str(n.target) for _, g in compiled.graphs for n in g.graph.nodes if n.op == "call_function"}


def test_only_an_emitter_with_attention_templates_gets_the_fused_op():
    """The compiled path makes the op only when asked (the Triton emitter): the C emitter
    keeps the math composite, and so does a graph autograd does not differentiate."""
    def fn(q, k, v):
        return (F.scaled_dot_product_attention(q, k, v, is_causal=True),)
    fused = _functional_targets(fn, _tensors(torch.float32), True)
    assert {"capture.flash_attention.default", "capture.flash_attention_backward.default"} <= fused
    plain = _functional_targets(fn, _tensors(torch.float32), False)
    assert not any("flash_attention" in t for t in plain) and "aten.bmm.default" in plain
    assert codegen.has_template("triton", "attention") and not codegen.has_template("cpp", "attention")
    with torch.no_grad():
        gm = torch.fx.symbolic_trace(fn)
        compiled = fx_graph.compile_captured(gm, list(_tensors(torch.float32)), lambda g, example: g, True)
    assert not any("flash_attention" in str(n.target) for _, g in compiled.graphs for n in g.graph.nodes)


@pytest.mark.parametrize("causal", [False, True])
def test_the_ops_eager_implementations_match_sdpa(causal):
    """What runs where no template computes the op (an extern call, a graph run as
    captured): forward, logsumexp and the backward op against SDPA under autograd,
    with a row that sees no key."""
    q, k, v = _tensors(torch.float32, rows=12, keys=10, dim=8)
    mask = None if causal else _masks(12, 10)["additive"].expand(2, 2, 12, 10)
    out, lse = attention_op.flash_attention(q, k, v, mask, causal, 0.3)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=0.3)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    scores = q @ k.transpose(-1, -2) * 0.3 + (mask if mask is not None else 0)
    if causal:
        scores = scores.masked_fill(~torch.ones(12, 10, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(lse, scores.logsumexp(-1))
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(expected, (q, k, v), grad)
    for a, b in zip(got, want):
        assert not a.isnan().any()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
