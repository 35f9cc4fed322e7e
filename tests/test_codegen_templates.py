"""The ``tl.dot`` matmul template: products with their pointwise neighbours fused in.

Every case runs in Triton's interpreter on CPU tensors against eager (float32 exactly
to rounding, half types at their tolerance); ``test_codegen_sm90`` compiles the same
kernels for an H100 at every autotune config (tensor-core instructions, no spills).
Shapes are small and ragged (not multiples of the tiles) so masks are exercised.
"""
import pytest
import torch
import torch.nn.functional as F

from helpers_codegen import check, compile_fn

HALF_TOL = {torch.bfloat16: (2e-2, 2e-2), torch.float16: (2e-3, 2e-3)}


def _linear_args(dtype, m=40, k=48, n=40):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(m, k, generator=g).to(dtype), (torch.randn(n, k, generator=g) / k ** 0.5).to(dtype),
            torch.randn(n, generator=g).to(dtype)]


def test_linear_bias_gelu_is_one_kernel_without_externs():
    compiled = check(lambda x, w, b: F.gelu(F.linear(x, w, b)), *_linear_args(torch.float32), rtol=1e-5, atol=1e-5)
    assert compiled.stats.n_kernels == 1 and compiled.stats.n_externs == 0
    source = compiled.kernels[0].source
    assert "tl.dot(" in source and "tl.erf(" in source
    assert compiled.stats.kernel_bytes == compiled.stats.floor_bytes      # the product never touches memory


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_linear_bias_gelu_in_half_types(dtype):
    compiled = check(lambda x, w, b: F.gelu(F.linear(x, w, b), approximate="tanh"), *_linear_args(dtype),
                     rtol=HALF_TOL[dtype][0], atol=HALF_TOL[dtype][1])
    assert compiled.stats.n_kernels == 1 and compiled.stats.n_externs == 0


def test_ragged_mm_and_a_3d_linear():
    g = torch.Generator().manual_seed(1)
    check(lambda x, y: x @ y, torch.randn(40, 37, generator=g), torch.randn(37, 24, generator=g), rtol=1e-5, atol=1e-5)
    x, w, b = torch.randn(2, 19, 33, generator=g), torch.randn(17, 33, generator=g), torch.randn(17, generator=g)
    compiled = check(lambda x, w, b: F.linear(x, w, b).relu(), x, w, b, rtol=1e-5, atol=1e-5)
    assert compiled.stats.n_kernels == 1


def test_bmm_with_fused_prologue_and_residual_epilogue():
    """Scaling an operand and reading the other transposed happen inside the template
    (prologue); the residual add and the cast to half after it are its epilogue."""
    def fn(q, k, r):
        return (torch.bmm(q * 0.5, k.transpose(1, 2)) + r).to(torch.float16)
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(3, 20, 18, generator=g), torch.randn(3, 26, 18, generator=g), torch.randn(3, 20, 26, generator=g))
    compiled = check(fn, *args, rtol=1e-3, atol=1e-3)
    assert compiled.stats.n_kernels == 1 and compiled.stats.n_externs == 0


def test_addmm_with_scaling_and_a_broadcast_bias_row():
    g = torch.Generator().manual_seed(3)
    args = (torch.randn(1, 24, generator=g), torch.randn(20, 30, generator=g), torch.randn(30, 24, generator=g))
    check(lambda b, x, y: torch.addmm(b, x, y, beta=0.5, alpha=2.0), *args, rtol=1e-5, atol=1e-5)
    check(lambda b, x, y: torch.baddbmm(b, x, y, beta=0.0), torch.randn(2, 16, 20, generator=g),
          torch.randn(2, 16, 24, generator=g), torch.randn(2, 24, 20, generator=g), rtol=1e-5, atol=1e-5)


def test_expensive_operand_is_computed_once_before_the_template():
    """An operand that would be recomputed for every tile of the other one is realized
    first (config.MATMUL_PROLOGUE_MAX_OPS); the result is still right."""
    def fn(x, w):
        return torch.tanh(torch.sigmoid(x.exp() * 2 + 1).log1p()) @ w
    g = torch.Generator().manual_seed(4)
    compiled = check(fn, torch.randn(20, 32, generator=g), torch.randn(32, 24, generator=g), rtol=1e-5, atol=1e-5)
    assert compiled.stats.n_kernels == 2


def test_reduction_after_a_product_stays_outside_the_template_with_a_reason():
    def fn(q, k):
        return (q @ k.transpose(-1, -2)).softmax(-1)
    g = torch.Generator().manual_seed(5)
    compiled = check(fn, torch.randn(2, 24, 16, generator=g), torch.randn(2, 20, 16, generator=g), rtol=1e-5, atol=1e-5)
    assert compiled.stats.n_kernels == 2
    assert any("matmul template's epilogue" in d.reason for d in compiled.stats.fusion_decisions)


def test_small_or_fp64_products_stay_library_calls_with_the_reason():
    g = torch.Generator().manual_seed(6)
    compiled = compile_fn(lambda x, y: (x @ y).relu(), torch.randn(4, 32, generator=g), torch.randn(32, 32, generator=g))
    ((_, _, reason, _),) = compiled.stats.externs
    assert "a dimension below 16" in reason
    compiled = check(lambda x, y: x @ y, torch.randn(20, 20, dtype=torch.float64, generator=g),
                     torch.randn(20, 20, dtype=torch.float64, generator=g), kernels_only=False)
    assert compiled.stats.n_externs == 1 and "torch.float64" in compiled.stats.externs[0][2]


def test_gathered_rows_feed_a_product():
    """An embedding lookup read inside the template, index checks included."""
    def fn(table, ids, w):
        return F.embedding(ids, table) @ w
    g = torch.Generator().manual_seed(7)
    args = (torch.randn(30, 24, generator=g), torch.randint(0, 30, (2, 9), generator=g), torch.randn(24, 20, generator=g))
    check(fn, *args, rtol=1e-5, atol=1e-5)
    bad = (args[0], torch.full((2, 9), 31), args[2])
    compiled = compile_fn(fn, *bad)
    with pytest.raises(IndexError):
        compiled(*bad)


# --------------------------------------------------------------------------- attention


def _qkv(dtype=torch.float32, batch=2, heads=3, rows=40, keys=40, dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, heads, rows, dim, generator=g).to(dtype),
            torch.randn(batch, heads, keys, dim, generator=g).to(dtype),
            torch.randn(batch, heads, keys, dim, generator=g).to(dtype))


def _one_attention_kernel(compiled):
    assert compiled.stats.n_kernels == 1 and compiled.stats.n_externs == 0, compiled.stats
    assert compiled.kernels[0].kind == "attention"
    kernel = compiled.kernels[0].source.split("@triton.jit")[-1]          # the kernel, not its helpers
    assert kernel.count("tl.dot(") + kernel.count("_dot_bf16(") == 2   # scores and output; nothing else in memory


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_is_one_flash_attention_kernel(causal):
    compiled = check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal), *_qkv(),
                     rtol=1e-5, atol=1e-5)
    _one_attention_kernel(compiled)
    assert compiled.stats.kernel_bytes == compiled.stats.floor_bytes


def test_sdpa_with_additive_and_boolean_masks_and_ragged_keys():
    q, k, v = _qkv(rows=24, keys=37, dim=16, seed=1)
    g = torch.Generator().manual_seed(2)
    additive = torch.randn(24, 37, generator=g)
    boolean = torch.rand(2, 1, 24, 37, generator=g) > 0.3
    check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), q, k, v, additive,
          rtol=1e-5, atol=1e-5)
    _one_attention_kernel(check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                                q, k, v, boolean, rtol=1e-5, atol=1e-5))


def test_fully_masked_rows_give_zero_in_sdpa_and_nan_in_a_plain_softmax_as_eager():
    q, k, v = _qkv(rows=20, keys=20, dim=16, seed=3)
    mask = torch.ones(20, 20, dtype=torch.bool)
    mask[3] = False                                     # row 3 sees no key
    check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), q, k, v, mask,
          rtol=1e-5, atol=1e-5)

    def manual(q, k, v, m):
        return (q @ k.transpose(-1, -2)).masked_fill(~m, float("-inf")).softmax(-1) @ v
    compiled = check(manual, q, k, v, mask, rtol=1e-5, atol=1e-5)   # NaN in row 3, compared equal_nan
    _one_attention_kernel(compiled)


def test_hand_written_attention_with_scale_and_causal_mask_buffer_fuses():
    """``(q @ kᵀ) * scale``, ``masked_fill(tril == 0, -inf)``, softmax, ``@ v`` (the bench's
    GPT-2 block): one kernel reading the mask buffer inside."""
    def attention(q, k, v, tril):
        att = (q @ k.transpose(-2, -1)) * (1.0 / 32 ** 0.5)
        att = att.masked_fill(tril[:, :, :40, :40] == 0, float("-inf"))
        return att.softmax(-1) @ v
    tril = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
    _one_attention_kernel(check(attention, *_qkv(), tril, rtol=1e-5, atol=1e-5))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sdpa_in_half_types(dtype):
    compiled = check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                     *_qkv(dtype, rows=33, keys=33), rtol=HALF_TOL[dtype][0], atol=HALF_TOL[dtype][1])
    _one_attention_kernel(compiled)


def test_attention_with_small_heads_or_other_users_lowers_op_by_op():
    q, k, v = _qkv(dim=8)                                   # head size below 16: no fused kernel
    compiled = check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), q, k, v, rtol=1e-5, atol=1e-5,
                     kernels_only=False)
    assert not any(kernel.kind == "attention" for kernel in compiled.kernels)

    def probabilities_returned(q, k, v):
        p = (q @ k.transpose(-1, -2)).softmax(-1)
        return p @ v, p                                     # p is needed in memory: not fused
    compiled = check(probabilities_returned, *_qkv(), rtol=1e-5, atol=1e-5)
    assert not any(kernel.kind == "attention" for kernel in compiled.kernels)


def test_half_type_attention_written_out_rounds_the_probabilities_in_the_kernel():
    """In bf16 the softmax runs in float32 and its result is cast back (``_to_copy``)
    before ``@ v``: still one kernel, tensor-core operands."""
    def attention(q, k, v):
        return (q @ k.transpose(-1, -2) * 0.1).softmax(-1) @ v
    compiled = check(attention, *_qkv(torch.bfloat16, keys=37), rtol=2e-2, atol=2e-2)
    _one_attention_kernel(compiled)
    assert "tl.bfloat16 operands" in compiled.kernels[0].source


def test_projection_split_into_heads_is_the_templates_epilogue():
    """``(x @ W + b) * s`` viewed as (batch, rows, heads, dim), permuted to heads first
    and made contiguous (attention's q under training): the permuted copy is stored by
    the template itself; ragged rows, heads and head size exercise the masks."""
    batch, rows, heads, dim = 2, 19, 3, 17
    def fn(x, w, b):
        return (F.linear(x, w, b) * 0.5).view(batch, rows, heads, dim).permute(0, 2, 1, 3).contiguous()
    g = torch.Generator().manual_seed(4)
    args = (torch.randn(batch, rows, 24, generator=g), torch.randn(heads * dim, 24, generator=g),
            torch.randn(heads * dim, generator=g))
    compiled = check(fn, *args, rtol=1e-5, atol=1e-5)
    assert compiled.stats.n_kernels == 1


def test_batched_product_merged_back_from_heads_is_the_templates_epilogue():
    """Attention's output (batch*heads, rows, dim) permuted back to (batch, rows, heads*dim)."""
    batch, heads, rows, dim = 2, 3, 18, 16
    def fn(p, v):
        return torch.bmm(p, v).view(batch, heads, rows, dim).transpose(1, 2).reshape(batch, rows, heads * dim)
    g = torch.Generator().manual_seed(5)
    args = (torch.randn(batch * heads, rows, 20, generator=g), torch.randn(batch * heads, 20, dim, generator=g))
    compiled = check(fn, *args, rtol=1e-5, atol=1e-5)
    assert compiled.stats.n_kernels == 1


def test_a_reversed_copy_of_a_product_stays_outside_the_template_with_a_reason():
    """Reversed rows are read from another program's tile: refused, still correct."""
    g = torch.Generator().manual_seed(6)
    args = (torch.randn(24, 20, generator=g), torch.randn(20, 18, generator=g))
    compiled = check(lambda x, y: (x @ y).flip(0) * 2, *args, rtol=1e-5, atol=1e-5)
    assert compiled.stats.n_kernels == 2
    assert any("does not map" in d.reason or "another program" in d.reason for d in compiled.stats.fusion_decisions)
