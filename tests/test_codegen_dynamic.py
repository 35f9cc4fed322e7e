"""Generated kernels over symbolic sizes (dynamic shapes): one compiled graph, one set of
kernels, many sizes — each emitter, compared with eager at every size.

A kernel that read a size it was not given (a literal left from the first call, a
missing mask) gives a wrong answer at another size, so every size is checked; a graph
that fell back to running as captured is caught by counting the calls that ran
generated code.
"""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch
import torch.nn.functional as F

import capture
import codegen
from codegen import config
from codegen.compile import COMPILED
from codegen.emit import sm90 as aot
from helpers_compare import assert_same_aliasing
from helpers_modules import assert_same, n_entries

import helpers_codegen


def _ran_generated(graphs) -> int:
    """Calls of ``graphs`` that ran generated kernels; none may run as captured."""
    reasons = [g.stats.eager_reason for g in graphs if g.runs_eagerly]
    assert not reasons, reasons
    return sum(g.generated_calls for g in graphs)


def pointwise_reduction_views(x, b):
    n = x.shape[0]
    y = torch.softmax(x * 2 + b, -1)                   # row kernel over s0 rows
    z = y.view(n, 2, -1).permute(1, 0, 2) * 3          # views as index arithmetic
    return z.sum(1), F.layer_norm(x, (x.shape[-1],)) + y.mean(0), x.reshape(-1)[::3] - 1


@pytest.mark.usefixtures("emitter")
def test_one_graph_of_kernels_serves_every_batch_size():
    b = torch.randn(8)
    cf = capture.compile(pointwise_reduction_views, backend=helpers_codegen.backend(), dynamic=True)
    sizes = [2, 3, 5, 7, 16, 17, 33]
    for n in sizes:
        x = torch.randn(n, 8)
        assert_same(cf(x, b), pointwise_reduction_views(x, b), atol=1e-5, rtol=1e-5)
    assert n_entries(pointwise_reduction_views) == 1
    graphs = [g for g in COMPILED if g.kernels]
    assert len(graphs) == 1 and _ran_generated(graphs) == len(sizes)
    source = graphs[0].source()
    assert "= l_x.shape[0]" in source                      # the wrapper reads the size at run time


def mlp_like(x, w):
    y = x @ w
    n = x.shape[0]
    return torch.relu(y).sum(1) * n + y.view(n, -1).mean(), (y - y.mean(0)).exp()


@pytest.mark.usefixtures("emitter")
def test_twenty_batch_sizes_two_graphs_all_generated():
    w = torch.randn(4, 3)
    cf = capture.compile(mlp_like, backend=helpers_codegen.backend())
    for n in range(2, 22):
        x = torch.randn(n, 4)
        assert_same(cf(x, w), mlp_like(x, w), atol=1e-5, rtol=1e-5)
    assert n_entries(mlp_like) <= 2
    assert _ran_generated(list(COMPILED)) == 20


def test_row_lengths_share_at_most_two_kernels():
    """Softmax and layer norm over row lengths 3 ... 2100 (one fused kernel): the static
    first entry's, then the symbolic entry's persistent variant and looped kernel serve
    every other length (the interpreter makes each length slow here)."""
    def norms(x):
        return torch.softmax(x, -1), F.layer_norm(x, (x.shape[-1],))
    before = len(codegen.generated_kernels())
    cf = capture.compile(norms, backend="triton")
    lengths = [3, 4, 7, 64, 255, 1025, 2100]
    for cols in lengths:
        x = torch.randn(3, cols)
        assert_same(cf(x), norms(x), atol=1e-5, rtol=1e-5)
    assert n_entries(norms) <= 2
    assert _ran_generated(list(COMPILED)) == len(lengths)
    sources = {k.source for k in codegen.generated_kernels()[before:]}
    assert len(sources) <= 3              # static entry: 1; symbolic entry: persistent + looped


def test_symbolic_rows_branch_between_persistent_and_looped_kernels():
    """One symbolic row kernel, two variants: rows of at most PERSISTENT_MAX_COLS run the
    persistent one with the block of their power-of-two bucket (chosen at each call),
    longer rows the looped one; lengths either side of each boundary are checked."""
    def norms(x):
        return torch.softmax(x, -1), F.layer_norm(x, (x.shape[-1],))
    before = len(codegen.generated_kernels())
    cf = capture.compile(norms, backend="triton", dynamic=True)
    lengths = [3, 16, 17, 2048, 2049]
    for cols in lengths:
        x = torch.randn(3, cols)
        assert_same(cf(x), norms(x), atol=1e-5, rtol=1e-5)
    assert n_entries(norms) == 1 and _ran_generated(list(COMPILED)) == len(lengths)
    sources = [k.source for k in codegen.generated_kernels()[before:]]
    assert len(set(sources)) == 2                       # the persistent variant and the looped kernel
    assert any("persistent (whole rows in registers)" in s for s in sources)
    wrapper = COMPILED[-1].source()
    assert "<= 2048:  # whole rows in registers" in wrapper and "_persistent_bucket(" in wrapper


@pytest.mark.usefixtures("emitter")
def test_sizes_that_vary_together_and_a_broadcast():
    def attn_like(q, k, bias):
        s = (q @ k.transpose(-1, -2)) / 4 + bias[: q.shape[1], : q.shape[1]]
        return torch.softmax(s, -1).sum(-1), q.permute(0, 2, 1).contiguous()
    bias = torch.randn(32, 32)
    cf = capture.compile(attn_like, backend=helpers_codegen.backend(), dynamic=True)
    for t in (3, 5, 9, 16, 23):
        q, k = torch.randn(2, t, 8), torch.randn(2, t, 8)
        assert_same(cf(q, k, bias), attn_like(q, k, bias), atol=1e-5, rtol=1e-5)
    assert n_entries(attn_like) == 1
    assert _ran_generated(list(COMPILED)) == 5


# The persistent variants' column buckets compiled for sm_90 in CI: the largest, unaligned
# (every bucket holds ROW_BLOCK_ELEMENTS at 8 warps; each compile costs seconds on our
# CPUs). CAPTURE_SM90_ALL_BUCKETS=1 compiles all 12, aligned and not.
QUICK_SM90 = os.environ.get("CAPTURE_SM90_ALL_BUCKETS", "") in ("", "0")
SM90_BUCKET_COLS = (2048,)


@pytest.mark.skipif(not aot.have_cuda_backend(), reason="the installed triton has no CUDA backend")
def test_symbolic_kernels_compile_for_sm90_without_spills():
    cf = capture.compile(pointwise_reduction_views, backend="triton", dynamic=True)
    cf(torch.randn(5, 40), torch.randn(40))
    kernels = [k for g in COMPILED for k in g.kernels]
    assert kernels and all(any(t == "i32" for t in k.signature().values()) for k in kernels)
    buckets = [b for k in kernels for b in k.buckets()]   # the persistent variants at the blocks launches pick
    assert {b.constexprs["COLS"] for b in buckets} >= set(SM90_BUCKET_COLS)
    buckets = [b for b in buckets if not QUICK_SM90 or b.constexprs["COLS"] in SM90_BUCKET_COLS]
    for aligned in (False, True):
        results = aot.check_kernels(kernels + (buckets if not aligned or not QUICK_SM90 else []), aligned=aligned)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert all(r.spill_bytes == 0 for r in results), [(r.name, r.spill_bytes) for r in results]


@pytest.mark.skipif(not aot.have_cuda_backend(), reason="the installed triton has no CUDA backend")
def test_symbolic_rows_vectorize_where_the_jit_sees_sizes_divisible_by_16():
    """Inductor's 16-byte divisibility without a compile per size: the JIT specializes an
    int argument that is a multiple of 16 at launch; the row kernel over a symbolic length
    then loads and stores 128 bits at a time (and without it, one element at a time)."""
    def norms(x):
        return torch.softmax(x, -1), F.layer_norm(x, (x.shape[-1],))
    cf = capture.compile(norms, backend="triton", dynamic=True)
    cf(torch.randn(6, 48))
    variant = [b for g in COMPILED for k in g.kernels for b in k.buckets() if b.constexprs["COLS"] == 64]
    assert len(variant) == 1
    plain, = aot.check_kernels(variant, aligned=True)
    divisible, = aot.check_kernels(variant, aligned=True, divisible=True)
    assert plain.ok and divisible.ok and plain.spill_bytes == divisible.spill_bytes == 0
    assert plain.vector_accesses == 0 and divisible.vector_accesses > 0 and divisible.scalar_accesses == 0


@pytest.mark.usefixtures("emitter")
def test_cat_and_gathers_along_a_symbolic_dim():
    def gathers(x, i, table):
        return torch.cat([x, x * 2], 0)[i], table[i], x[-i]
    table = torch.randn(50, 4)
    cf = capture.compile(gathers, backend=helpers_codegen.backend(), dynamic=True)
    for n in (3, 6, 11):
        x, i = torch.randn(n, 4), torch.randint(0, n, (n + 2,))
        assert_same(cf(x, i, table), gathers(x, i, table))
    assert n_entries(gathers) == 1
    graphs = list(COMPILED)
    assert _ran_generated(graphs) == 3
    assert not [e for g in graphs for e in g.stats.externs], [e for g in graphs for e in g.stats.externs]


@pytest.mark.usefixtures("emitter")
def test_slices_and_selects_with_symbolic_bounds_keep_eager_views():
    def views(x):
        n = x.shape[0]
        return x[n // 2:], x[1:] * 2, x[-1] + x[n - 1], x.flip(0) + 1, x[:, :3]
    cf = capture.compile(views, backend=helpers_codegen.backend(), dynamic=True)
    for n in (4, 5, 9):
        x = torch.randn(n, 6)
        got, want = cf(x), views(x)
        assert_same(got, want)
        for g, w in zip(got, want):
            assert (g._base is x, g.stride(), g.storage_offset()) == (w._base is x, w.stride(), w.storage_offset())
    graphs = list(COMPILED)
    assert _ran_generated(graphs) == 3
    assert not [e for g in graphs for e in g.stats.externs], [e for g in graphs for e in g.stats.externs]


def linear_relu(x, w, b):
    return torch.relu(x @ w + b)


def test_matmul_template_over_a_symbolic_row_count():
    """The tl.dot template with its epilogue: M is a runtime argument, the grid follows it.
    Rows are 16 x batch, at least 32 at every batch size >= 2: the template serves them."""
    w, b = torch.randn(32, 32), torch.randn(32)
    cf = capture.compile(linear_relu, backend="triton")
    for n in (2, 3, 5):
        x = torch.randn(n, 16, 32)
        capture.mark_dynamic(x, 0)
        assert_same(cf(x, w, b), linear_relu(x, w, b), atol=1e-4, rtol=1e-4)
    graphs = list(COMPILED)
    assert _ran_generated(graphs) == 3
    assert [k.kind for g in graphs for k in g.kernels] == ["matmul"]
    assert graphs[0].kernels[0].signature()["M"] == "i32"


@pytest.mark.parametrize("first", [4, 18])
def test_template_or_library_product_does_not_depend_on_the_compiling_size(first):
    """Rows that may be as few as 2 use the library GEMM whichever size compiled the graph
    (at 18 rows this call alone would pick the template): the graph's kernels are the same
    set either way (config, beside MATMUL_MIN_DIM)."""
    w, b = torch.randn(32, 32), torch.randn(32)
    cf = capture.compile(linear_relu, backend="triton", dynamic=True)
    for n in (first, 7, 40):
        x = torch.randn(n, 32)
        assert_same(cf(x, w, b), linear_relu(x, w, b), atol=1e-4, rtol=1e-4)
    graph, = COMPILED
    assert _ran_generated([graph]) == 3
    assert [k.kind for k in graph.kernels] != ["matmul"] and len(graph.stats.externs) == 1
    assert "library kernel: a dimension below 16 (m=2" in str(graph.stats.externs[0])


def gpt2_attention(x, w, tril):
    """GPT-2's block: q, k, v split into heads, scaled scores, the causal mask buffer
    sliced to the sequence length, softmax, heads merged back."""
    batch, seq, width = x.shape
    q, k, v = (x @ w).split(width, 2)
    q, k, v = (t.view(batch, seq, 2, width // 2).transpose(1, 2) for t in (q, k, v))
    att = (q @ k.transpose(-2, -1)) * 0.25
    att = att.masked_fill(tril[:, :, :seq, :seq] == 0, float("-inf"))
    return (att.softmax(-1) @ v).transpose(1, 2).contiguous().view(batch, seq, width)


def sdpa_with_padding_mask(q, k, v, keep):
    """BERT's: an additive mask from a (batch, keys) padding mask."""
    additive = (1.0 - keep[:, None, None, :].to(q.dtype)) * -10000.0
    return F.scaled_dot_product_attention(q, k, v, attn_mask=additive), \
        F.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_attention_template_over_symbolic_batch_and_sequence_length():
    """The fused flash-attention kernel serves every (batch, sequence length): rows and
    keys are runtime arguments, ragged blocks masked, the grid follows them; the heads'
    merge stays the kernel's epilogue. Automatic dynamic: a static graph, then one
    symbolic graph per function for the other sizes; outputs equal eager at each."""
    w, tril = torch.randn(32, 96), torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
    gpt2 = capture.compile(gpt2_attention, backend="triton")
    bert = capture.compile(sdpa_with_padding_mask, backend="triton")
    pairs = [(2, 5), (3, 17), (2, 40)]
    for batch, seq in pairs:
        x = torch.randn(batch, seq, 32)
        assert_same(gpt2(x, w, tril), gpt2_attention(x, w, tril), atol=1e-4, rtol=1e-4)
        q, k, v = (torch.randn(batch, 2, seq, 16) for _ in range(3))
        keep = torch.rand(batch, seq) > 0.3
        keep[:, 0] = True
        assert_same(bert(q, k, v, keep), sdpa_with_padding_mask(q, k, v, keep), atol=1e-5, rtol=1e-5)
    assert n_entries(gpt2_attention) == n_entries(sdpa_with_padding_mask) == 2
    graphs = list(COMPILED)
    assert _ran_generated(graphs) == 2 * len(pairs)
    symbolic = [g for g in graphs if any("i32" in k.signature().values() for k in g.kernels)]
    assert len(symbolic) == 2
    attention = [k for g in symbolic for k in g.kernels if k.kind == "attention"]
    assert len(attention) == 3                           # GPT-2's, BERT's padded and causal ones
    assert all(k.signature()["M"] == k.signature()["KV"] == "i32" for k in attention)
    assert all(k.source.count("tl.dot(") == 2 for k in attention)        # the scores never reach memory


def test_half_type_attention_over_symbolic_sizes_fills_the_mask_in_the_kernel():
    """bf16 GPT-2 attention: the mask's -inf, a bf16 constant, is converted in the kernel
    (a literal becomes a 0-d block first); the symbolic graph keeps the fused kernel."""
    w, tril = torch.randn(32, 96).bfloat16(), torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64).bfloat16()
    gpt2 = capture.compile(gpt2_attention, backend="triton")
    for batch, seq in [(2, 5), (3, 17), (2, 33)]:
        x = torch.randn(batch, seq, 32).bfloat16()
        assert_same(gpt2(x, w, tril), gpt2_attention(x, w, tril), atol=3e-2, rtol=3e-2)
    graphs = list(COMPILED)
    assert _ran_generated(graphs) == 3
    assert [k.kind for g in graphs for k in g.kernels].count("attention") == 2


def _autotuning_backend(gm, example_inputs):
    """The triton emitter with the CUDA launch path (autotune) forced on."""
    return codegen.compile_graph(gm, example_inputs, autotune=True, emitter="triton")


def test_autotune_over_symbolic_sizes_is_keyed_by_size_bucket():
    """On CUDA a kernel over symbolic sizes tunes once per size bucket, over the configs
    the heuristics give at the bucket's sizes. In the interpreter only buckets with one
    config run (timing several needs a GPU); the larger bucket's configs are listed."""
    def linear(x, w):
        return torch.relu(x @ w)
    w = torch.randn(32, 32)
    cf = capture.compile(linear, backend=_autotuning_backend)
    for n in (3, 4, 2):                                # rows 8 x batch: 24, 32, 16
        x = torch.randn(n, 8, 32)
        capture.mark_dynamic(x, 0)
        assert_same(cf(x, w), linear(x, w), atol=1e-5, rtol=1e-5)
    graph, = COMPILED
    assert _ran_generated([graph]) == 3 and ".at(" in graph.wrapper_source
    tuned = graph._call.__globals__[graph.kernels[0].name]
    assert sorted(tuned.tuners) == [(16,), (32,)]        # M only (N, K static); 24 and 32 rows share a bucket
    fma = graph.kernels[0].fma
    assert tuned.configs(24) == config.matmul_configs(32, 32, 32, fma) and len(tuned.configs(24)) == 1
    assert tuned.configs(100) == config.matmul_configs(128, 32, 32, fma) != config.matmul_configs(32, 32, 32, fma)


@pytest.mark.skipif(not aot.have_cuda_backend(), reason="the installed triton has no CUDA backend")
def test_symbolic_template_configs_of_every_size_bucket_compile_for_sm90_without_spills():
    """The matmul and attention templates over symbolic sizes, at the configs a CUDA launch
    tunes over in the smallest bucket and one of 4096 rows/keys."""
    cf = capture.compile(gpt2_attention, backend="triton")
    for batch, seq in ((2, 9), (3, 17)):           # the second call compiles the symbolic graph
        cf(torch.randn(batch, seq, 32), torch.randn(32, 96), torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64))
    x = torch.randn(2, 16, 32)                     # a product over symbolic rows (16 x batch)
    capture.mark_dynamic(x, 0)
    capture.compile(linear_relu, backend="triton")(x, torch.randn(32, 32), torch.randn(32))
    kernels = [k for g in COMPILED for k in g.kernels if k.kind in ("matmul", "attention")
               and "i32" in k.signature().values()]
    assert {k.kind for k in kernels} == {"matmul", "attention"}
    variants = {}
    for kernel in kernels:
        names = [n for n, v in kernel.int_args if not isinstance(v, int)]
        for n in (16, 4096):
            for cfg in kernel.autotune_configs({name: n for name in names}):
                constexprs = {k: v for k, v in cfg.items() if k not in ("num_warps", "num_stages")}
                key = (kernel.name, tuple(sorted(cfg.items())))
                variants[key] = dataclasses.replace(kernel, constexprs=constexprs, num_warps=cfg["num_warps"],
                                                    num_stages=cfg.get("num_stages"))
    results = aot.check_kernels(list(variants.values()), aligned=True)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert all(r.spill_bytes == 0 for r in results), [(r.name, r.spill_bytes) for r in results]


# ------------------------------------------------------------------ output identity

def _view_as_input(x, y):
    return x.view_as(x)


def _reshape_to_same(x, y):
    return x.reshape(x.shape[0], -1)


def _full_slice_and_input(x, y):
    return x[:], x


def _whole_view_and_its_base(x, y):
    b = x + y
    return b.flatten()[: b.numel()].view_as(y), b


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("fn", [_view_as_input, _reshape_to_same, _full_slice_and_input, _whole_view_and_its_base])
def test_outputs_that_are_whole_views_stay_their_own_objects(fn, backend):
    """A graph over symbolic sizes keeps a view covering a whole buffer or input as an
    output: eager returns a new view object there (`x.view_as(x) is not x`), whose
    `_base` is the input or the other output — never the same object twice."""
    compiled = capture.compile(fn, backend=backend, dynamic=True)
    for n in (3, 5, 7):
        x, y = torch.randn(n, 4), torch.randn(n, 4)
        expected, actual = fn(x, y), compiled(x, y)
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = actual if isinstance(actual, tuple) else (actual,)
        for e, a in zip(expected, actual):
            assert torch.equal(e, a)
            mine = [a is x, a._base is x] + [a is o or a._base is o for o in actual]
            theirs = [e is x, e._base is x] + [e is o or e._base is o for o in expected]
            assert mine == theirs, (n, mine, theirs)
    assert _ran_generated(COMPILED) > 0


def _intermediate_and_its_transpose(x, y):
    a = x * 2
    return a, a.t()


def _symbolic_slice_of_intermediate(x, y):
    a = x + y
    return a[: x.shape[0] // 2 + 1], a[1:, 1:]


def _diagonal_of_intermediate(x, y):
    a = x * y
    return a.diagonal(), a


def _expanded_unsqueeze_of_intermediate(x, y):
    a = x.exp()
    return a.unsqueeze(0).expand(3, -1, -1), a[:, None]


def _chain_of_views(x, y):
    a = x - y
    return a.t()[1:].unsqueeze(0).transpose(0, 1), a.sum()


def _views_of_reduction_and_product(x, y):
    s = x.sum(1)
    m = x.t() @ y
    return s.view(-1, 1), s, m.t()[::2]


def _views_of_a_clone_of_an_input(x, y):
    h = x.clone()                  # lowers to x itself: the views must view a copy, one for both
    return h.squeeze(), h.reshape(-1, 1)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("fn", [_intermediate_and_its_transpose, _symbolic_slice_of_intermediate,
                                _diagonal_of_intermediate, _expanded_unsqueeze_of_intermediate, _chain_of_views,
                                _views_of_reduction_and_product, _views_of_a_clone_of_an_input])
def test_symbolic_graph_returns_views_of_intermediates_as_eager(fn, backend):
    """An output that eager returns as a view of a tensor made inside the function is a
    view of that tensor's buffer (its `_base`, storage, strides, offset as eager's), also
    when the view's bounds are symbolic: the viewed value is realized as its own buffer."""
    compiled = capture.compile(fn, backend=backend, dynamic=True)
    for n in (3, 5, 8):
        x, y = torch.randn(n, 4), torch.randn(n, 4)
        expected, actual = fn(x, y), compiled(x, y)
        assert_same(actual, expected, atol=1e-5, rtol=1e-5)
        assert_same_aliasing(actual, (x, y), expected, (x, y))
    assert _ran_generated(COMPILED) == 3


def _plain_sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_sdpa_with_every_dim_symbolic_runs_generated_code_with_the_head_width_pinned(backend):
    """Under dynamic=True the head width is symbolic too; the code generator specializes
    it (a guard: the attention template holds a head as one block, and the default scale
    1/sqrt(E) would be a float of a size), so one graph serves every batch, head count and
    sequence length, and another head width is a new entry (before: the graph ran as
    captured, "SymFloat not generated yet")."""
    compiled = capture.compile(_plain_sdpa, backend=backend, dynamic=True)
    shapes = [(2, 3, 5, 16), (3, 2, 7, 16), (2, 2, 9, 32)]
    for shape in shapes:
        q, k, v = (torch.randn(*shape) for _ in range(3))
        assert_same(compiled(q, k, v), _plain_sdpa(q, k, v), atol=1e-5, rtol=1e-5)
    assert n_entries(_plain_sdpa) == 2
    assert _ran_generated(COMPILED) == len(shapes)
    if backend == "triton":
        assert [k.kind for g in COMPILED for k in g.kernels] == ["attention", "attention"]


def _sdpa_loss(q, k, v):
    return F.scaled_dot_product_attention(q, k, v).square().sum()


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_sdpa_training_with_every_dim_symbolic_runs_generated_code(backend):
    """The same in training: the pinned head width is a guard taken while planning the
    compiled path's outputs, not a change of the inputs' metadata (before: refused as
    "metadata mutation of an input that requires grad", run as captured)."""
    compiled = capture.compile(_sdpa_loss, backend=backend, dynamic=True)
    for shape in [(2, 3, 5, 16), (3, 2, 7, 16)]:
        inputs = [torch.randn(*shape, requires_grad=True) for _ in range(3)]
        twins = [t.detach().clone().requires_grad_() for t in inputs]
        loss, expected = compiled(*inputs), _sdpa_loss(*twins)
        loss.backward()
        expected.backward()
        assert_same(loss, expected, atol=1e-4, rtol=1e-5)
        for got, want in zip(inputs, twins):
            assert_same(got.grad, want.grad, atol=1e-5, rtol=1e-5)
    assert n_entries(_sdpa_loss) == 1
    assert len(COMPILED) == 2 and _ran_generated(COMPILED) == 4          # forward and backward, both calls


# ------------------------------------------------------------------ one element, no elements

def _one_by_one_product(x, y):
    return x.to(y.dtype) @ y.t()                      # (1, n) @ (n, 1): a whole 1x1 buffer


def _empty_view_of_input(x, y):
    return x.flatten()[: x.numel()].view_as(x), y.flatten()[: y.numel()].view_as(y) * 2


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("case", [(_one_by_one_product, lambda n: ((1, n), (1, n))),
                                  (_empty_view_of_input, lambda n: ((n, 0), (0, n)))])
def test_symbolic_graph_outputs_of_one_or_no_element_keep_eager_layout(case, backend):
    """A 1x1 product is a fresh tensor, not a transposed view of its buffer (the C wrapper
    wrote `.t()` for any transposed-looking 2-d window); a view with no elements has
    eager's strides, not the 0s the index arithmetic pins an empty dimension to."""
    fn, shapes = case
    compiled = capture.compile(fn, backend=backend, dynamic=True)
    for n in (3, 5):
        (xs, ys) = shapes(n)
        x, y = torch.randn(*xs, dtype=torch.float64), torch.randn(*ys)
        expected, actual = fn(x, y), compiled(x, y)
        assert_same(actual, expected, atol=1e-5, rtol=1e-5)
        assert_same_aliasing(actual, (x, y), expected, (x, y))
    assert _ran_generated(COMPILED) == 2


def _detached_beside_their_tensors(x, y):
    h = x * y
    return h.detach(), h, x.detach(), x[0].detach(), (h + 1).t().detach()


def _views_of_detached_tensors(x, y):
    h = x * y
    return x.detach().squeeze(), h.detach().t(), h


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("fn", [_detached_beside_their_tensors, _views_of_detached_tensors])
def test_symbolic_graph_returns_detached_outputs_and_their_views_as_eager(fn, backend):
    """``x.detach()`` is eager's tensor of its own over x's memory: a graph over symbolic
    sizes returned the input itself (``out is x``), or ``h.detach()`` and ``h`` as two
    buffers computed apart. A view of one has the detached tensor as ``_base`` (made
    inside), not x or another output: such a graph runs as captured for now."""
    compiled = capture.compile(fn, backend=backend, dynamic=True)
    for n in (3, 5):
        x, y = torch.randn(n, 4), torch.randn(n, 4)
        expected, actual = fn(x, y), compiled(x, y)
        assert_same(actual, expected, atol=1e-5, rtol=1e-5)
        assert_same_aliasing(actual, (x, y), expected, (x, y))
    if fn is _detached_beside_their_tensors:
        assert _ran_generated(COMPILED) == 2
