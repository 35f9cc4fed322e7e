"""Every lowered op, alone, run as a generated Triton kernel (interpreter) against eager.

Ops come from tables of (name, function, input domain). Every op runs on at least two
layouts (a transposed or broadcast operand, and a size that is not a multiple of the
block: a 1031-element vector is two programs, the second mostly masked); a core set
runs on all of them (contiguous, transposed, a strided slice with an offset, broadcast
rows and columns, 3-d). The index arithmetic is op-independent, so the cross product
would add compile time (every kernel is also compiled for sm_90) but no coverage.
Each case asserts the graph became kernels only (no torch fallback).
"""
import math

import pytest
import torch
import torch.nn.functional as F

import capture
from helpers_codegen import backend, check

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.usefixtures("emitter")]   # masked-off lanes divide by zero

torch.manual_seed(0)


def positive(x):
    return x.abs() + 0.1


def _layouts_2d():
    return {
        "contiguous": lambda: torch.randn(5, 37),
        "transposed": lambda: torch.randn(37, 5).t(),
        "sliced": lambda: torch.randn(6, 40)[1:, 3:],
    }


UNARY_LAYOUTS = dict(_layouts_2d(), odd_1d=lambda: torch.randn(1031))

UNARY = {
    "neg": (lambda x: -x, None),
    "abs": (torch.abs, None),
    "exp": (torch.exp, None),
    "exp2": (torch.exp2, None),
    "log": (torch.log, positive),
    "log2": (torch.log2, positive),
    "log1p": (torch.log1p, positive),
    "expm1": (torch.expm1, None),
    "sqrt": (torch.sqrt, positive),
    "rsqrt": (torch.rsqrt, positive),
    "sin": (torch.sin, None),
    "cos": (torch.cos, None),
    "tanh": (torch.tanh, None),
    "sigmoid": (torch.sigmoid, None),
    "erf": (torch.erf, None),
    "relu": (torch.relu, None),
    "gelu_erf": (F.gelu, None),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), None),
    "silu": (F.silu, None),
    "hardtanh": (F.hardtanh, None),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), None),
    "elu": (F.elu, None),
    "softplus": (F.softplus, None),
    "hardswish": (F.hardswish, None),
    "floor": (lambda x: torch.floor(x * 3), None),
    "ceil": (lambda x: torch.ceil(x * 3), None),
    "reciprocal": (torch.reciprocal, positive),
    "square": (lambda x: x ** 2, None),
    "cube": (lambda x: x ** 3, None),
    "pow_half": (lambda x: x ** 0.5, positive),
    "pow_minus_one": (lambda x: x ** -1, positive),
    "pow_2_5": (lambda x: x ** 2.5, positive),
    "scalar_pow": (lambda x: 2.0 ** x, None),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), None),
    "clamp_min": (lambda x: x.clamp(min=0.1), None),
    "clamp_max": (lambda x: x.clamp(max=0.1), None),
    "isnan": (lambda x: torch.isnan(x.log()), None),
    "logical_not": (lambda x: torch.logical_not(x > 0), None),
    "to_half": (lambda x: x.to(torch.float16), None),
    "to_bfloat16": (lambda x: x.to(torch.bfloat16), None),
    "to_int32": (lambda x: (x * 10).to(torch.int32), None),
    "to_bool": (lambda x: x.to(torch.bool), None),
    "int_to_float": (lambda x: (x * 10).to(torch.int64).to(torch.float32) / 3, None),
    "clone": (torch.clone, None),
}

BINARY_LAYOUTS = {
    "contiguous": lambda: (torch.randn(5, 37), torch.randn(5, 37)),
    "transposed": lambda: (torch.randn(37, 5).t(), torch.randn(5, 37)),
    "broadcast_row": lambda: (torch.randn(5, 37), torch.randn(37)),
    "broadcast_col": lambda: (torch.randn(5, 1), torch.randn(5, 37)),
    "odd_1d": lambda: (torch.randn(1031), torch.randn(1031)),
}

BINARY = {
    "add": (torch.add, None),
    "add_alpha": (lambda x, y: torch.add(x, y, alpha=0.5), None),
    "sub": (torch.sub, None),
    "mul": (torch.mul, None),
    "div": (torch.div, positive),
    "maximum": (torch.maximum, None),
    "minimum": (torch.minimum, None),
    "eq": (lambda x, y: (x > 0) == (y > 0), None),
    "ne": (lambda x, y: (x > 0) != (y > 0), None),
    "lt": (torch.lt, None),
    "le": (torch.le, None),
    "gt": (torch.gt, None),
    "ge": (torch.ge, None),
    "where": (lambda x, y: torch.where(x > 0, x, y), None),
    "masked_fill": (lambda x, y: x.masked_fill(y > 0, -math.inf), None),
    "logical_and": (lambda x, y: torch.logical_and(x > 0, y > 0), None),
    "logical_or": (lambda x, y: torch.logical_or(x > 0, y > 0), None),
    "add_scalar": (lambda x, y: x + 2.5 + y * 3, None),
    "rsub": (lambda x, y: 1 - x * y, None),
    "lerp": (lambda x, y: torch.lerp(x, y, 0.3), None),
    "addcmul": (lambda x, y: torch.addcmul(x, x, y, value=0.5), None),
}

REDUCTION_LAYOUTS = dict(_layouts_2d(), batched_3d=lambda: torch.randn(3, 4, 33))

REDUCTIONS = {
    "sum_last": lambda x: x.sum(-1),
    "sum_first": lambda x: x.sum(0),
    "sum_all": lambda x: x.sum(),
    "sum_keepdim": lambda x: x.sum(-1, keepdim=True),
    "mean_last": lambda x: x.mean(-1),
    "mean_all_dims": lambda x: x.mean(tuple(range(x.dim()))),
    "amax_last": lambda x: x.amax(-1),
    "amin_first": lambda x: x.amin(0),
    "max_values": lambda x: x.max(-1).values,
    "var_last": lambda x: x.var(-1),
    "var_first_biased": lambda x: x.var(0, unbiased=False),
    "std_last": lambda x: x.std(-1, keepdim=True),
    "prod_last": lambda x: (x * 0.1 + 1).prod(-1),
    "softmax_last": lambda x: x.softmax(-1),
    "softmax_first": lambda x: x.softmax(0),
    "log_softmax": lambda x: F.log_softmax(x, -1),
    "logsumexp": lambda x: torch.logsumexp(x, -1),
    "layer_norm": lambda x: F.layer_norm(x, x.shape[-1:]),
    "rms_norm": lambda x: F.rms_norm(x, x.shape[-1:]),
}


def _matrix(ops, layouts, every_op_on, core_ops):
    """(op, layout) pairs: every op on ``every_op_on``, the core ops on all layouts."""
    return [(op, layout) for op in sorted(ops) for layout in sorted(layouts)
            if layout in every_op_on or op in core_ops]


UNARY_CASES = _matrix(UNARY, UNARY_LAYOUTS, {"transposed", "odd_1d"},
                      {"exp", "relu", "gelu_tanh", "to_half", "clamp", "pow_2_5", "log1p"})
BINARY_CASES = _matrix(BINARY, BINARY_LAYOUTS, {"transposed", "broadcast_row"},
                       {"add", "mul", "div", "where", "maximum", "lt", "masked_fill"})
REDUCTION_CASES = _matrix(REDUCTIONS, REDUCTION_LAYOUTS, {"contiguous", "transposed"},
                          {"sum_last", "sum_first", "softmax_last", "layer_norm", "var_last", "amax_last",
                           "mean_all_dims"})


def _prepare(fn_domain, tensors):
    fn, domain = fn_domain
    if domain is not None:
        tensors = [domain(t) for t in tensors]
    return fn, tensors


@pytest.mark.parametrize("op, layout", UNARY_CASES)
def test_unary_op_matches_eager(op, layout):
    fn, (x,) = _prepare(UNARY[op], [UNARY_LAYOUTS[layout]()])
    rtol, atol = (1e-2, 1e-2) if op in ("to_half", "to_bfloat16") else (1.3e-6, 1e-5)
    check(fn, x, rtol=rtol, atol=atol)


@pytest.mark.parametrize("op, layout", BINARY_CASES)
def test_binary_op_matches_eager(op, layout):
    fn, (x, y) = _prepare(BINARY[op], list(BINARY_LAYOUTS[layout]()))
    check(fn, x, y)


@pytest.mark.parametrize("op, layout", REDUCTION_CASES)
def test_reduction_matches_eager(op, layout):
    check(REDUCTIONS[op], REDUCTION_LAYOUTS[layout](), rtol=1e-5, atol=1e-5)


@pytest.mark.emitters("triton")
@pytest.mark.parametrize("op", ["sum_last", "softmax_last", "layer_norm", "var_last", "amax_last"])
def test_long_rows_use_looped_reduction_and_match(op):
    compiled = check(REDUCTIONS[op], torch.randn(3, 2500), rtol=1e-5, atol=1e-5)
    assert "for col_start in range" in compiled.kernels[0].source


def test_reduction_propagates_nan_like_eager():
    x = torch.randn(4, 9)
    x[1, 3] = math.nan
    check(lambda t: (t.amax(-1), t.amin(-1), t.sum(-1)), x)


# --------------------------------------------------------------------------- constants


def test_constants_and_arange():
    def fn(x):
        rows = torch.arange(5).unsqueeze(1)
        cols = torch.arange(7).unsqueeze(0)
        mask = rows >= cols
        return (torch.full((5, 7), 2.5) + x, torch.zeros(5, 7) + x, torch.ones_like(x) * 3,
                torch.where(mask, x, 0.0), torch.arange(3, 17, 2, dtype=torch.float32), torch.arange(11) * 2)
    check(fn, torch.randn(5, 7))


def test_tril_mask_built_in_graph():
    def fn(x):
        t = x.shape[-1]
        mask = torch.tril(torch.ones(t, t))
        return x.masked_fill(mask == 0, float("-inf")).softmax(-1)
    check(fn, torch.randn(2, 6, 6))


# --------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_ops_compute_in_float32(dtype):
    x, y = torch.randn(6, 45).to(dtype), torch.randn(45).to(dtype)
    tol = 2e-2 if dtype is torch.bfloat16 else 2e-3
    check(lambda a, b: ((a * b).exp() + 1).softmax(-1), x, y, rtol=tol, atol=tol)
    check(lambda a: (a.sum(-1), a.float().mean(-1)), x, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_integer_ops(dtype):
    x = torch.randint(-50, 50, (5, 37), dtype=dtype)
    y = torch.randint(1, 50, (37,), dtype=dtype)
    check(lambda a, b: (a + b, a * b - 3, a > b, torch.maximum(a, b), a.sum(-1), a.abs(), torch.where(a > 0, a, b),
                        a.amax(0), a & b, a | 1), x, y)


def test_bool_ops():
    x, y = torch.randn(5, 37) > 0, torch.randn(5, 37) > 0
    check(lambda a, b: (a & b, a | b, a ^ b, ~a, a.sum(-1), a == b, a.to(torch.float32) * 2), x, y)


# --------------------------------------------------------------------------- views


VIEWS = {
    "transpose_contiguous": lambda x: x.transpose(0, 1).contiguous() * 2,
    "permute_3d": lambda x: x.view(5, 6, 7).permute(2, 0, 1) + 1,
    "reshape_of_transpose": lambda x: x.t().reshape(-1) * 3,
    "slice_step": lambda x: x[1:, ::2] + 1,
    "select_row": lambda x: x[2] * x[3],
    "unsqueeze_expand": lambda x: x[:, :1].expand(30, 7) * x,
    "split_sum": lambda x: sum(t * (i + 1) for i, t in enumerate(x.split(3, dim=1))),
    "unbind": lambda x: x.view(6, 5, 7).unbind(1)[3] + 1,
    "squeeze": lambda x: x.view(30, 1, 7).squeeze(1) - 1,
    "flatten_view": lambda x: x.view(-1).view(7, 30).t() * 2,
    "view_of_reduction": lambda x: x.sum(-1).view(5, 6) + 1,
    "expand_then_reduce": lambda x: x[:, None, :].expand(30, 4, 7).sum(1),
    "flip": lambda x: x.flip(0) * 2 + x.t().flip(0, 1).t(),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_views_are_index_arithmetic(name):
    check(VIEWS[name], torch.randn(30, 7))


def test_graph_returning_views_of_inputs_aliases_them_like_eager():
    x = torch.randn(4, 6)
    from helpers_codegen import compile_fn
    compiled = compile_fn(lambda a: (a.t(), a[1:], a, a.clone()), x)
    t, s, same, copy = compiled(x)
    assert same is x
    assert t.data_ptr() == x.data_ptr() and t.stride() == (1, 6)
    assert s.data_ptr() == x[1:].data_ptr()
    assert copy.data_ptr() != x.data_ptr() and torch.equal(copy, x)


ARG_REDUCTIONS = {
    "argmax_last": lambda x: x.argmax(-1),
    "argmin_first_keepdim": lambda x: x.argmin(0, keepdim=True),
    "argmax_flat": lambda x: x.argmax(),
    "max_dim": lambda x: x.max(-1),
    "min_dim_keepdim": lambda x: x.min(1, keepdim=True),
    "max_all": lambda x: x.max(),
}


@pytest.mark.parametrize("op", sorted(ARG_REDUCTIONS))
def test_argmax_argmin_match_eager_including_ties_and_nan(op):
    x = torch.randint(0, 4, (6, 37)).float()       # many ties: the first index must win
    x[2, 5] = math.nan
    check(ARG_REDUCTIONS[op], x)
    check(ARG_REDUCTIONS[op], torch.randn(3, 2100))  # looped over columns



ZERO_DIM_REDUCTIONS = {
    "argmax_0": lambda x: x.argmax(0),
    "argmin_last_keepdim": lambda x: x.argmin(-1, keepdim=True),
    "argmax_flat": lambda x: x.argmax(),
    "max_0": lambda x: x.max(0),
    "min_last_keepdim": lambda x: x.min(-1, keepdim=True),
    "aminmax": lambda x: torch.aminmax(x, dim=0),
}


@pytest.mark.parametrize("op", sorted(ZERO_DIM_REDUCTIONS))
def test_reductions_of_a_zero_dim_tensor_match_eager(op):
    """A 0-d input has no dimension to reduce: the value is its one element, the index 0
    (the generated code once returned the value cast to int64 as argmax's index)."""
    check(ZERO_DIM_REDUCTIONS[op], torch.tensor(-8.5))
    check(ZERO_DIM_REDUCTIONS[op], torch.tensor(math.nan))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_extern_result_of_another_dtype_than_its_meta_is_read_as_generated(dtype):
    """``_batch_norm_with_update`` on bfloat16: eager's kernel returns the updated running
    stats as bfloat16, torch's meta function says float32; the kernels copying them back
    into the running buffers were generated for float32 and read bfloat16 memory as float
    (garbage stats, C emitter). An extern result is converted to the dtype the kernels
    read (exact here: a widening)."""
    def fn(x, w, b, mean, var):
        return torch.ops.aten._batch_norm_with_update(x, w, b, mean, var, 0.5, 0.6)

    gen = torch.Generator().manual_seed(0)
    args = [torch.randn(5, 5, 5, generator=gen), torch.randn(5, generator=gen), torch.randn(5, generator=gen),
            torch.randn(5, generator=gen), torch.rand(5, generator=gen)]
    args = [a.to(dtype) for a in args]
    eager_args, compiled_args = [a.clone() for a in args], [a.clone() for a in args]
    expected = fn(*eager_args)
    got = capture.compile(fn, backend=backend())(*compiled_args)
    for e, g in zip(expected[:3], got[:3]):
        torch.testing.assert_close(g, e)
    for e, g in zip(eager_args, compiled_args):   # the running mean and variance, updated in place
        torch.testing.assert_close(g, e)

POOLS = {
    "2x2": dict(kernel_size=2),
    "3x3_stride2_padded": dict(kernel_size=3, stride=2, padding=1),
    "3x3_ceil_mode": dict(kernel_size=3, stride=2, ceil_mode=True),
    "dilated_rectangular": dict(kernel_size=(2, 3), stride=1, dilation=(2, 1), padding=(1, 1)),
}


@pytest.mark.parametrize("name", sorted(POOLS))
def test_max_pool2d_values_and_indices_match_eager_with_nan_and_inf(name):
    x = torch.randn(2, 3, 9, 10)
    x[0, 0, 1, 1] = math.nan
    x[1, 1, :4, :4] = -math.inf                  # windows of -inf point at their first position
    compiled = check(lambda t: F.max_pool2d_with_indices(t.relu() * 2, **POOLS[name]), x)
    assert compiled.stats.n_kernels == 1         # the ReLU before the pool is in the same kernel


def test_max_pool2d_then_mean_is_one_kernel():
    assert check(lambda t: F.max_pool2d(t, 2).mean((2, 3)), torch.randn(2, 4, 8, 8)).stats.n_kernels == 1


CONVS = {
    "returned_as_is": lambda x, w, w2: F.conv2d(x, w, padding=1),
    "conv_into_conv": lambda x, w, w2: F.conv2d(F.conv2d(x, w, padding=1), w2),
    "relu_between": lambda x, w, w2: F.conv2d(F.conv2d(x, w, padding=1).relu() * 2, w2),
    "returned_and_reused": lambda x, w, w2: (F.conv2d(x, w), F.conv2d(x, w).sum((2, 3))),
    "permuted_input": lambda x, w, w2: F.conv2d(x.transpose(2, 3).exp(), w),
}


@pytest.mark.parametrize("name", sorted(CONVS))
def test_convolutions_match_eager_and_return_eager_strides(name):
    """CPU convolutions run channels-last (codegen.lower.graph.library_layouts): values and
    the strides of returned tensors stay eager's."""
    args = torch.randn(2, 4, 9, 9), torch.randn(6, 4, 3, 3), torch.randn(5, 6, 1, 1)
    compiled = check(CONVS[name], *args, rtol=1e-5, atol=1e-5, kernels_only=False)
    got, expected = compiled(*args), CONVS[name](*args)
    for g, e in zip(got if isinstance(got, (tuple, list)) else [got], expected if isinstance(expected, tuple) else [expected]):
        assert g.stride() == e.stride()
