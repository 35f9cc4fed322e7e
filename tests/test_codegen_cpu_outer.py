"""Column sums in the C emitter (codegen/emit/cpp_outer.py): rows outside, contiguous
columns inside with chunked partial sums; against eager, with full-size values stored
in the same pass or after the sums, per-column values, half types and integers, row
counts the chunks do not divide, and the same bits for any thread count."""
import pytest
import torch

from helpers_codegen import check

pytestmark = pytest.mark.usefixtures("cpp_only")

SUM_TOL = dict(rtol=1e-5, atol=1e-4)        # another summation order than eager's


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _outer(compiled) -> bool:
    return any("_part[" in k.source for k in compiled.kernels)


def test_bias_gradient_and_its_pointwise_input_in_one_pass():
    """GELU backward then the bias gradient: the full-size product and its column sum."""
    def fn(g, x):
        y = g * torch.tanh(x) * 0.5
        return y, y.sum(0)
    compiled = check(fn, _randn(64, 512), _randn(64, 512, seed=1), **SUM_TOL)
    assert _outer(compiled) and compiled.stats.n_kernels == 1


def test_values_reading_the_finished_sums_and_per_column_values():
    def fn(x):
        mean = x.mean(0)
        return x - mean, mean * 2, (x * x).sum(0)
    compiled = check(fn, _randn(96, 160), **SUM_TOL)
    assert _outer(compiled)


@pytest.mark.parametrize("shape, dims", [((12, 5, 40), (0,)), ((6, 7, 48), (0, 1)), ((257, 64), (0,))])
def test_several_column_loops_several_reduced_loops_and_rows_the_chunks_do_not_divide(shape, dims):
    compiled = check(lambda x: (x * 3).sum(dims), _randn(*shape), **SUM_TOL)
    assert _outer(compiled)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.int64])
def test_half_types_sum_in_float_and_integers_exactly(dtype):
    x = _randn(80, 72) * 100
    x = x.to(dtype)
    compiled = check(lambda x: x.sum(0), x, rtol=1e-2 if dtype is torch.bfloat16 else 0, atol=0)
    assert _outer(compiled)


def test_reduced_dimension_contiguous_keeps_the_row_form():
    compiled = check(lambda x: x.sum(1), _randn(64, 256), **SUM_TOL)
    assert not _outer(compiled)


def test_same_bits_for_any_thread_count():
    x, g = _randn(512, 256), _randn(512, 256, seed=1)
    compiled = check(lambda g, x: (g * x).sum(0), g, x, **SUM_TOL)
    assert _outer(compiled) and "omp parallel" in compiled.kernels[0].source
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compiled(g, x)[0]
        torch.set_num_threads(2)
        two = compiled(g, x)[0]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
