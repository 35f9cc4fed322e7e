"""The C emitter's matmul template (codegen/emit/cpp_templates.py): small float32
products read along k become one kernel with their pointwise neighbours, against eager
within float32 matmul tolerances; the others stay library calls, with the reason."""
import pytest
import torch
import torch.nn.functional as F

from helpers_codegen import check, compile_fn

pytestmark = pytest.mark.usefixtures("cpp_only")

MATMUL_TOL = dict(rtol=1e-5, atol=1e-5)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [64, 10, 3 * 4 + 1])       # whole blocks of dot products, a tail, both
def test_linear_bias_gelu_is_one_kernel_with_dot_products_along_k(n):
    x, w, b = _randn(4, 64), _randn(n, 64, seed=1), _randn(n, seed=2)
    compiled = check(lambda x, w, b: F.gelu(F.linear(x, w, b)), x, w, b, **MATMUL_TOL)
    assert compiled.stats.n_kernels == 1
    source = compiled.kernels[0].source
    assert "matmul template" in source and "#pragma omp simd reduction(+:" in source
    assert compiled.stats.kernel_bytes == compiled.stats.floor_bytes      # the product never touches memory


def test_mlp_layers_fuse_bias_and_activation_into_the_next_product():
    w1, b1, w2, b2 = _randn(32, 16), _randn(32, seed=1), _randn(8, 32, seed=2), _randn(8, seed=3)
    compiled = check(lambda x, w1, b1, w2, b2: F.linear(torch.relu(F.linear(x, w1, b1)), w2, b2),
                     _randn(4, 16, seed=4), w1, b1, w2, b2, **MATMUL_TOL)
    assert compiled.stats.n_kernels == 2


def test_batched_product_with_a_scaled_operand_and_a_masked_epilogue():
    """q @ k^T of attention: the scaling is read inside the kernel, the mask after it."""
    q, k = _randn(3, 5, 8), _randn(3, 7, 8, seed=1)
    mask = _randn(5, 7, seed=2) > 0
    compiled = check(lambda q, k, mask: torch.where(mask, torch.bmm(q * 0.5, k.transpose(1, 2)), float("-inf")),
                     q, k, mask, **MATMUL_TOL)
    assert compiled.stats.n_kernels == 1


def test_addmm_scaling_non_contiguous_rows_and_specials():
    bias, x, w = _randn(1, 24), _randn(20, 6, seed=1)[::2], _randn(24, 6, seed=2)
    x[0, 1], x[3, 2], w[5, 0] = float("nan"), float("inf"), float("-inf")
    check(lambda b, x, w: torch.addmm(b, x, w.t(), beta=0.5, alpha=2.0), bias, x, w, **MATMUL_TOL)
    check(lambda x, w: x @ w.t(), _randn(4, 1), _randn(9, 1, seed=1), **MATMUL_TOL)      # k = 1


@pytest.mark.parametrize("case, reason", [
    ("b along n", "reads b along k"),
    ("large", "multiply-adds"),
    ("float64", "float64 products"),
])
def test_other_products_stay_library_calls_with_the_reason(case, reason):
    args = {"b along n": (_randn(4, 16), _randn(16, 16)), "large": (_randn(64, 64), _randn(64, 64).t()),
            "float64": (_randn(4, 16).double(), _randn(16, 16).double().t())}
    compiled = check(lambda a, b: a @ b, *args[case], kernels_only=False, **MATMUL_TOL)
    assert compiled.stats.n_externs == 1, compiled.source()
    assert reason in compiled.loop_ir()
