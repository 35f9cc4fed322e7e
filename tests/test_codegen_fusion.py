"""The scheduler: what fuses into one kernel, what is refused (and why), what is stored,
and the shape of the generated code — all checked against eager results."""
import logging
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F

import codegen
import fx_graph
from helpers_codegen import assert_close, check, compile_fn, count_calls, count_loads, count_stores

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.usefixtures("emitter")]   # masked-off lanes divide by zero

torch.manual_seed(0)


def _ten_pointwise_ops(x, y):
    a = x * 2.0
    a = a + y
    a = torch.exp(-a.abs())
    a = a - 0.5
    a = torch.tanh(a)
    a = a * a
    a = torch.sigmoid(a)
    a = a.clamp(0.1, 0.9)
    a = torch.sqrt(a)
    return torch.where(x > 0, a, -a)


# --------------------------------------------------------------------------- kernel counts


def test_chain_of_ten_pointwise_ops_is_one_kernel():
    compiled = check(_ten_pointwise_ops, torch.randn(33, 65), torch.randn(65))
    assert compiled.stats.n_kernels == 1
    assert count_stores(compiled.kernels[0].source) == 1


def test_softmax_over_last_dim_is_one_kernel(emitter):
    compiled = check(lambda x: x.softmax(-1), torch.randn(4, 10, 77))
    assert compiled.stats.n_kernels == 1
    assert ("persistent" if emitter == "triton" else "loops: rows 40, reduced 77") in compiled.kernels[0].source


def test_log_softmax_is_one_kernel():
    assert check(lambda x: F.log_softmax(x, -1), torch.randn(12, 77)).stats.n_kernels == 1


@pytest.mark.parametrize("shape", [(6, 96), (2, 5, 33), (3, 3000)])
def test_layer_norm_is_one_kernel(shape):
    w, b = torch.randn(shape[-1]), torch.randn(shape[-1])
    compiled = check(lambda x, w, b: F.layer_norm(x, (shape[-1],), w, b), torch.randn(shape), w, b,
                     rtol=1e-5, atol=1e-5)
    assert compiled.stats.n_kernels == 1


def test_rms_norm_is_one_kernel():
    compiled = check(lambda x, w: F.rms_norm(x, (48,), w), torch.randn(7, 48), torch.randn(48), rtol=1e-5)
    assert compiled.stats.n_kernels == 1


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_linear_bias_gelu_is_one_extern_and_at_most_one_kernel(approximate, emitter):
    compiled = check(lambda x, w, b: F.gelu(F.linear(x, w, b), approximate=approximate),
                     torch.randn(9, 24), torch.randn(40, 24), torch.randn(40), kernels_only=False, rtol=1e-5)
    if emitter == "cpp":          # a small product: the C template with the bias and GELU fused
        assert compiled.stats.n_externs == 0 and compiled.stats.n_kernels == 1
        return
    assert compiled.stats.n_externs == 1 and compiled.stats.n_kernels <= 1
    assert "addmm" in compiled.stats.externs[0][1]


def test_pointwise_producers_fuse_into_a_reduction():
    assert check(lambda x, y: ((x * 2 + y) ** 2).sum(-1), torch.randn(9, 50), torch.randn(50)).stats.n_kernels == 1


def test_reduction_consumers_fuse_when_they_share_the_rows():
    compiled = check(lambda x: (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-3), torch.randn(8, 40),
                     rtol=1e-5)
    assert compiled.stats.n_kernels == 1


def test_reductions_over_different_rows_are_separate_kernels():
    compiled = check(lambda x: (x.sum(0), x.sum(1)), torch.randn(8, 40), rtol=1e-5)
    assert compiled.stats.n_kernels == 2


def test_results_match_with_and_without_fusion():
    def fn(x, w):
        h = F.layer_norm(x, (32,)) * w
        return h.softmax(-1) + h.relu(), (h * h).mean()
    x, w = torch.randn(6, 32), torch.randn(32)
    fused = check(fn, x, w, rtol=1e-5)
    unfused = check(fn, x, w, rtol=1e-5, fuse=False)
    assert fused.stats.n_kernels < unfused.stats.n_kernels
    assert_close(fused(x, w), unfused(x, w), rtol=1e-5)


# --------------------------------------------------------------------------- what is stored


def test_values_used_only_inside_a_kernel_never_touch_memory(emitter):
    compiled = check(lambda x: x.softmax(-1), torch.randn(4, 77))
    source = compiled.kernels[0].source
    if emitter == "triton":
        assert count_stores(source) == 1 and count_loads(source) == 1
    else:   # one read of x per pass (max, sum); exp(x - max) waits in the output, scaled there in place
        written = re.findall(r"(\w+)_ptr\[[^\]]*\] = ", source)
        assert set(written) == {"div"} and count_stores(source) == 2 and count_loads(source) == 3
        assert source.count("div_ptr[") == 3 and "_row[" not in source
    assert compiled.stats.kernel_bytes == compiled.stats.floor_bytes


def test_intermediate_used_by_two_consumers_is_computed_once():
    def fn(x):
        e = x.exp()
        return e + 1, e * 2
    compiled = check(fn, torch.randn(5, 37))
    assert compiled.stats.n_kernels == 1
    assert count_calls(compiled.kernels[0].source, "exp") == 1


def test_transposed_read_of_a_fused_value_is_refused_with_a_reason():
    def fn(x, y):
        e = (x * y).exp()       # two inputs: realized, not recomputed in each consumer
        return e + e.t()        # e[i, j] and e[j, i]: another program computes e[j, i]
    compiled = check(fn, torch.randn(24, 24), torch.randn(24, 24))
    assert compiled.stats.n_kernels == 2
    assert any("another program" in d.reason for d in compiled.stats.fusion_decisions)


def test_cheap_value_with_two_consumers_is_recomputed_in_each():
    """exp(x) read at [i, j] and [j, i] reads x no more than a buffer of it would: each
    read recomputes it, in one kernel (config.recompute_in_consumers)."""
    def fn(x):
        e = x.exp()
        return e + e.t()
    compiled = check(fn, torch.randn(24, 24))
    assert compiled.stats.n_kernels == 1
    assert count_calls(compiled.kernels[0].source, "exp") == 2


def test_dependency_through_an_extern_call_is_refused():
    def fn(x, w):
        h = x.exp()
        return h * (h @ w)      # h's kernel runs before the matmul, the product after it
    compiled = check(fn, torch.randn(8, 8), torch.randn(8, 8), kernels_only=False, rtol=1e-5)
    assert any("leaves the kernel" in d.reason for d in compiled.stats.fusion_decisions)


def test_unlowered_op_runs_through_torch_and_is_reported():
    compiled = check(lambda x: torch.cumsum(x.exp(), 1) * 2, torch.randn(5, 9), kernels_only=False, rtol=1e-5)
    assert [e[1] for e in compiled.stats.externs] == ["aten.cumsum.default"]
    assert compiled.stats.n_kernels == 2


def test_mutated_input_is_written_back_after_all_reads():
    def fn(x, y):
        before = x * 2
        x.add_(y)
        return before + x
    x, y = torch.randn(6, 10), torch.randn(10)
    expected_x = x + y
    expected = fn(x.clone(), y)
    compiled = compile_fn(fn, x.clone(), y)
    got = compiled(x, y)
    assert_close(got, expected)
    assert_close(x, expected_x, what="mutated input")


# --------------------------------------------------------------------------- generated code


@pytest.mark.emitters("triton")
def test_kernel_source_reads_like_the_triton_tutorials():
    compiled = check(lambda x, y: (x + y).relu(), torch.randn(5, 37), torch.randn(5, 37))
    source = compiled.kernels[0].source
    assert re.search(r"def fused_add_relu\(arg0_ptr, arg1_ptr, relu_ptr, n_elements: tl.constexpr, BLOCK_SIZE: tl.constexpr\)",
                     source), source
    assert "pid = tl.program_id(0)" in source and "mask = offsets < n_elements" in source
    assert "# fx nodes: add, relu" in source and "# reads 1.4 KiB (arg0, arg1); writes 740 B (relu)" in source


def _calls(source, fn):
    """The argument lists of every ``fn(...)`` call (balanced parentheses)."""
    calls, start = [], source.find(fn + "(")
    while start != -1:
        depth, i = 0, start + len(fn)
        while True:
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            if depth == 0:
                break
            i += 1
        calls.append(source[start + len(fn) + 1:i])
        start = source.find(fn + "(", i)
    return calls


@pytest.mark.parametrize("fn, shape", [
    (lambda x: x.softmax(-1), (3, 2500)),
    (lambda x: F.layer_norm(x, (40,)), (5, 40)),
    (lambda x: x.t().reshape(-1)[::3] * x.sum(), (6, 7)),
])
@pytest.mark.emitters("triton")
def test_every_load_and_store_is_masked(fn, shape):
    compiled = check(fn, torch.randn(shape), rtol=1e-5)
    for kernel in compiled.kernels:
        for args in _calls(kernel.source, "tl.load") + _calls(kernel.source, "tl.store"):
            assert re.search(r",\s*(mask|row_mask|col_mask)\b", args), f"unmasked: {args}"


def test_generated_code_is_deterministic():
    x = torch.randn(6, 40)
    first = compile_fn(lambda t: F.layer_norm(t, (40,)).relu(), x)
    second = compile_fn(lambda t: F.layer_norm(t, (40,)).relu(), x)
    assert first.source() == second.source()


@pytest.mark.emitters("triton")
def test_kernels_are_cached_on_disk_by_source_hash(tmp_path, monkeypatch):
    from codegen.runtime import cache
    monkeypatch.setenv("CAPTURE_CACHE_DIR", str(tmp_path))
    compiled = check(lambda x: x.sigmoid() * 3, torch.randn(8, 8))
    path = cache.kernel_path(compiled.kernels[0].source)
    assert path.is_relative_to(tmp_path) and path.exists()
    assert path.read_text() == compiled.kernels[0].source
    assert path.stem == "k" + cache.source_hash(compiled.kernels[0].source)


@pytest.mark.emitters("triton")
def test_fp_fusion_is_off_at_every_launch_without_touching_the_environment():
    compiled = check(lambda x, y: x * y + 1.0, torch.randn(8, 8), torch.randn(8, 8))
    assert "enable_fp_fusion=False" in compiled.wrapper_source
    assert "TRITON_DEFAULT_FP_FUSION" not in os.environ or os.environ.get("CAPTURE_TEST_USER_SET_FP_FUSION")


def test_loop_ir_and_wrapper_are_readable_text(emitter):
    compiled = check(lambda x: x.softmax(-1), torch.randn(4, 9))
    ir = compiled.loop_ir()
    assert "amax[i0, 0] = max over r1 of load(arg0, 9*i0 + r1)" in ir
    assert "sum_1[i0, 0] = sum over r1 of" in ir
    assert "def call(arg0):" in compiled.wrapper_source
    launch = {"triton": "fused_amax_sub_exp_sum_div[(1,)](arg0, div, 4, 9, ROWS=4, COLS=16, num_warps=1, "
                        "enable_fp_fusion=False)",
              "cpp": "fused_amax_sub_exp_sum_div(arg0.data_ptr(), div.data_ptr())"}[emitter]
    assert launch in compiled.wrapper_source


def test_nan_and_inf_constants_are_emitted_as_floats():
    check(lambda x: (x.masked_fill(x > 1, math.inf), x.masked_fill(x < 0, math.nan)), torch.randn(4, 9))


def test_scalar_output_and_zero_dim_input():
    check(lambda x, s: (x.sum() * s, s + 1), torch.randn(3, 5), torch.tensor(2.0))


def test_graph_with_no_elements():
    check(lambda x: x.exp() + 1, torch.randn(0, 5))


def test_stats_aggregate_since_reset():
    codegen.reset()
    live = [check(lambda x: x.softmax(-1), torch.randn(4, 9)),  # stats() counts the graphs still alive
            check(lambda x: x.exp() @ x, torch.randn(9, 9), kernels_only=False, rtol=1e-5)]  # a library product (both emitters)
    total = codegen.stats()
    assert total.n_kernels == 2 and total.n_externs == 1
    assert "2 kernel(s), 1 extern call(s)" in str(total)
    del live
    assert codegen.stats().n_kernels == 0  # dropped graphs are not held for stats()


def test_failure_on_first_call_falls_back_to_the_captured_graph(monkeypatch, caplog):
    compiled = compile_fn(lambda x: x.exp() * 2, torch.randn(4, 5))

    def broken(*args):
        raise RuntimeError("kernel failed to compile")
    monkeypatch.setattr(compiled, "_call", broken)
    x = torch.randn(4, 5)
    with caplog.at_level(logging.WARNING, logger="capture.output_code"), \
            pytest.warns(fx_graph.InternalErrorWarning, match="kernel failed to compile"):
        assert_close(compiled(x), x.exp() * 2)
    assert compiled.runs_eagerly and "kernel failed to compile" in compiled.stats.eager_reason
    assert any("first call" in r.getMessage() for r in caplog.records)


def test_code_generator_errors_run_the_graph_as_captured(monkeypatch):
    from codegen import compile as compile_module

    def broken(*args, **kwargs):
        raise KeyError("bug")
    monkeypatch.setattr(compile_module, "_build", broken)
    with pytest.warns(fx_graph.InternalErrorWarning, match="KeyError"):
        compiled = codegen.compile_graph(__import__("helpers_codegen").graph_of(lambda x: x + 1, 1), [torch.ones(2)])
    assert compiled.runs_eagerly and "internal error: KeyError" in compiled.stats.eager_reason
    assert_close(compiled(torch.ones(2)), torch.ones(2) + 1)


@pytest.mark.parametrize("fn", [lambda x: x.softmax(-1), lambda x: F.log_softmax(x * 2, -1)],
                         ids=["softmax", "log_softmax"])
def test_long_row_softmax_finds_max_and_sum_in_one_pass_even_with_inf_and_nan(fn, emitter):
    x = torch.randn(5, 2600)
    x[1, :2000] = -math.inf          # masked attention: -inf fill
    x[2, 7] = math.nan
    x[3, :] = -math.inf              # a fully masked row is NaN, as in eager
    x[4, 2500] = math.inf
    compiled = check(fn, x, rtol=1e-5, atol=1e-5)
    source = compiled.kernels[0].source
    assert compiled.stats.n_kernels == 1
    if emitter == "triton":
        assert source.count("for col_start") == 2 and "amax_new = _maximum(" in source     # not 3 passes


def test_sum_over_a_few_elements_is_unrolled_into_its_consumer():
    """Grouped-query attention's backward: the gradient of the repeated key/value heads
    summed over the query groups (a middle dimension of 2) — pointwise loads and adds,
    one kernel with its consumer; a sum over more elements, or along the last dimension
    (contiguous rows), stays a reduction."""
    def gqa(g, s):
        return g.view(2, 3, 2, 5, 7).sum(2) * s
    compiled = check(gqa, torch.randn(2, 6, 5, 7), torch.randn(5, 7), rtol=1e-5)
    assert compiled.stats.n_kernels == 1
    assert not any(node.is_reduction for node in compiled.lowering.nodes if hasattr(node, "is_reduction"))
    for keepdim, shape in ((True, (4, 2)), (False, (3, 5))):
        x = torch.randn(6, *shape).transpose(0, 2)
        check(lambda x: x.sum(1, keepdim=keepdim) + 1, x, rtol=1e-5)
    for fn, x in ((lambda x: x.sum(0) * 2, torch.randn(9, 6)), (lambda x: x.sum(-1) * 2, torch.randn(6, 3))):
        kept = check(fn, x, rtol=1e-5)
        assert any(getattr(node, "is_reduction", False) for node in kept.lowering.nodes)
