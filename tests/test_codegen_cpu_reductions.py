"""Reductions in the C emitter's two special forms, against eager.

Column sums (codegen/emit/cpp_outer.py): rows outside, contiguous columns inside with
chunked partial sums; full-size values stored in the same pass or after the sums,
per-column values, half types and integers, row counts the chunks do not divide, and
the same bits for any thread count. Row sums and max/min along a contiguous row
(codegen/emit/cpp_lanes.py): lanes of partials, NaN and infinities in any lane."""
import pytest
import torch
import torch.nn.functional as F

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


def _lanes(compiled) -> bool:
    return any("_lanes[" in k.source for k in compiled.kernels)


def test_layer_norm_sums_keep_lanes_of_partials():
    compiled = check(lambda x, w, b: torch.nn.functional.layer_norm(x, (768,), w, b),
                     _randn(8, 768), _randn(768, seed=1), _randn(768, seed=2), **SUM_TOL)
    assert _lanes(compiled) and compiled.stats.n_kernels == 1


@pytest.mark.parametrize("op, cols", [("amax", 96), ("amin", 96), ("softmax", 96), ("softmax", 120)])
def test_max_and_min_lanes_with_nan_and_infinities_in_single_lanes(op, cols):
    x = _randn(6, 4, cols)                  # 120: lanes of 40 (32 does not divide it)
    x[1, 2, 37] = float("nan")
    x[2, 0, 5] = float("inf")
    x[3, 1, 95] = float("-inf")
    x[4, 3, :] = float("-inf")
    x[5, 0, 64] = float("nan")
    fn = {"amax": lambda x: x.amax(-1), "amin": lambda x: x.amin(-1),
          "softmax": lambda x: torch.softmax(x, -1)}[op]
    compiled = check(fn, x, **SUM_TOL)
    assert _lanes(compiled)


def test_rows_not_a_multiple_of_the_lanes_keep_one_accumulator():
    compiled = check(lambda x: x.sum(-1), _randn(16, 100), **SUM_TOL)
    assert not _lanes(compiled) and not _outer(compiled)


def test_gathered_rows_check_their_index_once_per_row_and_still_raise():
    weight, ids = _randn(10, 64), torch.tensor([[1, 9], [0, 3]])
    compiled = check(lambda w, i: torch.nn.functional.embedding(i, w).sum(-1), weight, ids, **SUM_TOL)
    assert _lanes(compiled)
    with pytest.raises(IndexError):
        compiled(weight, torch.tensor([[1, 10], [0, 3]]))


def _inverse(compiled) -> bool:
    return any("_inverse = " in k.source for k in compiled.kernels)


@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (1, 77), (3, 96)])
def test_softmax_multiplies_by_its_sums_reciprocal_at_any_row_length(shape):
    x = _randn(*shape)
    x[0, 0] = float("inf") if shape[1] > 1 else x[0, 0]
    if shape[0] > 2 and shape[1] > 5:
        x[1, :] = float("-inf")                 # every term NaN, like eager
        x[2, 5] = float("nan")
    compiled = check(lambda x: torch.softmax(x, -1), x, **SUM_TOL)
    assert _inverse(compiled) and "capture_expf_nonpositive(" in compiled.kernels[0].source


def test_other_divisions_by_a_row_sum_stay_divisions():
    compiled = check(lambda x: x.exp() / x.exp().sum(-1, keepdim=True), _randn(4, 50), **SUM_TOL)
    assert not _inverse(compiled)
    compiled = check(lambda x, y: (x - x.amax(-1, keepdim=True)).exp() / (y - x.amax(-1, keepdim=True)).exp().sum(
        -1, keepdim=True), _randn(4, 50), _randn(4, 50, seed=1), **SUM_TOL)
    assert not _inverse(compiled)
    assert "capture_expf(" in compiled.kernels[0].source        # exp(y - max(x)) may overflow


def test_log_softmax_keeps_v_minus_max_in_its_output_softmax_keeps_its_exps_there():
    log_softmax = check(lambda x: torch.log_softmax(x, -1), _randn(8, 120), **SUM_TOL).kernels[0].source
    assert "_row[" not in log_softmax and "sub_1_ptr_value = sub_1_ptr[" in log_softmax
    assert "capture_expf_nonpositive" not in log_softmax.split("sub_1_ptr_value")[1]     # the exps are not read back
    layer_norm = check(lambda x: F.layer_norm(x, (100,)), _randn(8, 100), **SUM_TOL).kernels[0].source
    assert "_ptr_value = " not in layer_norm           # cheap summands: the last pass reads the input again
    x = _randn(8, 100)
    x[3, 7], x[5, :] = float("nan"), float("-inf")
    softmax = check(lambda x: torch.softmax(x, -1), x, **SUM_TOL).kernels[0].source
    assert "_row[" not in softmax and "div_ptr_value = div_ptr[" in softmax


def test_softmax_keeps_its_exps_in_a_row_array_where_its_output_cannot_hold_them():
    def two_outputs(x):
        s = torch.softmax(x, -1)
        return s, s * 2
    for fn, x in [(two_outputs, _randn(8, 100)), (lambda x: torch.softmax(x, -1, dtype=torch.float32).bfloat16(),
                                                   _randn(8, 100))]:
        source = check(fn, x, **SUM_TOL).kernels[0].source
        assert "_row[" in source and "_ptr_value = " not in source


@pytest.mark.parametrize("cols", [1000, 1024])
def test_row_softmax_same_bits_for_any_thread_count(cols):
    x = _randn(64, cols)
    compiled = check(lambda x: torch.softmax(x, -1), x, **SUM_TOL)
    assert "omp parallel" in compiled.kernels[0].source
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compiled(x)
        torch.set_num_threads(2)
        two = compiled(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


@pytest.mark.parametrize("cols", [1000, 77])
def test_softmax_and_log_softmax_hold_their_bounds_against_float64(cols):
    """exp(v - max) (1.05 ulp), the row sum (float32, lanes or one accumulator), a multiply
    by its reciprocal (1.5 ulp) or v - max - log(sum): within a few ulp of float64 on every
    element, however far apart the row's values are; summing exp(v) without the max
    (overflow past 88) or log(softmax) (0, then -inf, below e^-104) would not be."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(24, cols, generator=g) * 40 + 1000
    x[1] *= 5                                   # a row spread over +-1000: most terms underflow
    softmax = check(lambda x: torch.softmax(x, -1), x, **SUM_TOL)(x)
    exact = torch.softmax(x.double(), -1)
    normal = exact >= 2.0 ** -126
    assert ((softmax.double() - exact).abs() <= 4e-7 * exact)[normal].all()
    assert ((softmax.double() - exact).abs() <= 2.0 ** -148)[~normal].all() and (exact < 1e-60).any()
    log_softmax = check(lambda x: torch.log_softmax(x, -1), x, **SUM_TOL)(x)
    exact = torch.log_softmax(x.double(), -1)
    assert ((log_softmax.double() - exact).abs() <= 3e-6 + 2.0 ** -22 * exact.abs()).all() and exact.min() < -200
