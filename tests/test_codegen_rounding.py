"""Division with rounding, remainders, round/sign/trunc, pow with a tensor exponent,
any/all and float64 — torch's semantics (Python's signs, ties to even), run in the
interpreter against eager, special values included."""
import math

import pytest
import torch
import torch.nn.functional as F

from helpers_codegen import check

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.usefixtures("emitter")]   # masked lanes divide by zero

torch.manual_seed(0)

SPECIAL = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.3, 0.0, -0.0, 7.0, -7.0,
                        math.inf, -math.inf, math.nan, 1e30, -3.75])


def _signed_floats(*shape):
    return torch.randn(*shape) * 5


def _divisors(*shape):
    d = torch.randn(*shape) * 3
    return torch.where(d.abs() < 0.1, torch.full_like(d, 0.5), d)


FLOAT_DIVISION = {
    "floor_divide": lambda a, b: a // b,
    "remainder": lambda a, b: a % b,
    "fmod": torch.fmod,
    "div_trunc": lambda a, b: torch.div(a, b, rounding_mode="trunc"),
    "div_floor_scalar": lambda a, b: torch.div(a, -2.5, rounding_mode="floor") + b % 1.5,
}

LAYOUTS = {
    "contiguous": lambda: (_signed_floats(5, 37), _divisors(5, 37)),
    "transposed_broadcast": lambda: (_signed_floats(37, 5).t(), _divisors(37)),
    "odd_1d": lambda: (_signed_floats(1031), _divisors(1031)),
}


# Every op on contiguous inputs; the core ops on every layout (index arithmetic is
# op-independent, so the cross product adds compile time, not coverage).
DIVISION_CASES = [(op, layout) for op in sorted(FLOAT_DIVISION) for layout in sorted(LAYOUTS)
                  if layout == "contiguous" or op in ("floor_divide", "remainder")]


@pytest.mark.parametrize("op, layout", DIVISION_CASES)
def test_float_division_with_rounding_matches_eager(op, layout):
    check(FLOAT_DIVISION[op], *LAYOUTS[layout]())


def test_float_division_special_values_match_eager():
    a = SPECIAL.repeat(len(SPECIAL))
    b = SPECIAL.repeat_interleave(len(SPECIAL))
    check(lambda a, b: (a // b, a % b, torch.fmod(a, b), torch.div(a, b, rounding_mode="trunc")), a, b)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_integer_division_follows_python_signs(dtype):
    a = torch.randint(-50, 50, (5, 37), dtype=dtype)
    b = torch.randint(1, 7, (37,), dtype=dtype) * torch.tensor([1, -1], dtype=dtype).repeat(19)[:37]
    check(lambda a, b: (a // b, a % b, torch.fmod(a, b), torch.div(a, b, rounding_mode="trunc"), a // 3, a % -4,
                        a / b), a, b)


def test_round_ties_to_even_and_keeps_the_sign_of_zero():
    def fn(x):
        return torch.round(x), torch.round(x, decimals=2), torch.round(x * 100, decimals=-1), torch.trunc(x)
    check(fn, torch.cat([SPECIAL, torch.randn(40) * 4]))
    out = check(fn, SPECIAL)(SPECIAL)[0]          # a graph is called with the sizes it was compiled for
    assert torch.equal(out[:6], torch.tensor([-2.0, -2.0, -0.0, 0.0, 2.0, 2.0]))
    assert math.copysign(1.0, out[2].item()) == -1.0


def test_sign_of_floats_ints_and_bools():
    x = torch.cat([SPECIAL, torch.randn(20)])
    check(lambda x, i, b: (torch.sign(x), torch.sgn(x), torch.sign(i), torch.sign(b)),
          x, torch.randint(-3, 4, (37,)), torch.randn(37) > 0)


def test_pow_with_a_tensor_exponent_matches_eager_special_cases_included():
    base = torch.tensor([-2.0, -2.0, -2.0, -0.0, -0.0, 0.0, 0.0, 1.0, math.nan, -1.0, -1.0, 2.0, 0.5, -math.inf, 3.0])
    exponent = torch.tensor([3.0, 2.0, 0.5, 3.0, -1.0, 0.0, -2.0, math.nan, 0.0, math.inf, -math.inf, -math.inf,
                             math.inf, 3.0, 1.5])
    check(lambda x, y: x ** y, base, exponent, rtol=1e-5)
    x, y = torch.randn(5, 37) * 2, torch.randint(-3, 4, (37,)).float()
    check(lambda x, y: (x ** y, x.abs() ** (y / 3), 2.0 ** y, (-1.5) ** y), x, y, rtol=1e-5)


ANY_ALL = {
    "any_last": lambda x: (x > 0.5).any(-1),
    "all_first_keepdim": lambda x: (x > -1.5).all(0, keepdim=True),
    "any_all_dims": lambda x: ((x > 2).any(), (x > -3).all()),
    "any_of_floats": lambda x: torch.any(torch.relu(x), dim=1),
}


@pytest.mark.parametrize("op", sorted(ANY_ALL))
def test_any_all_match_eager(op):
    x = torch.randn(6, 37)
    x[2] = -5.0                       # a row where any(x > ...) is False
    check(ANY_ALL[op], x)
    check(ANY_ALL[op], torch.randn(37, 6).t())


def test_any_over_long_rows_fuses_with_its_producer(emitter):
    x = torch.randn(3, 2100)
    x[1, -1] = 9.0
    compiled = check(lambda x: ((x * 2) > 10).any(-1) | (x < -20).all(-1), x)
    assert compiled.stats.n_kernels == 1
    assert ("for col_start" if emitter == "triton" else "r0 < 2100") in compiled.kernels[0].source


def test_float64_kernels_keep_double_precision(emitter):
    x = torch.randn(5, 37, dtype=torch.float64)
    y = torch.randn(37, dtype=torch.float64)
    compiled = check(lambda x, y: ((x * 0.1 + y).exp().sum(-1), (x - 1 / 3).softmax(-1), x // y, x.clamp(-0.1, 0.1),
                                   (x + y).float(), x.abs().sqrt(), F.layer_norm(x, (37,))), x, y,
                     rtol=1e-13, atol=1e-13)
    source = "".join(k.source for k in compiled.kernels)
    if emitter == "triton":
        assert "tl.float64" in source and "tl.sqrt(" in source and "tl.rsqrt" not in source
    else:
        assert "const double" in source and " sqrt(" in source and "sqrtf" not in source


def test_float64_tanh_and_erf_stay_extern_calls():
    compiled = check(lambda x: torch.tanh(x) + F.gelu(x), torch.randn(5, 7, dtype=torch.float64), kernels_only=False,
                     rtol=1e-13, atol=1e-13)
    assert {target for _, target, _, _ in compiled.stats.externs} == {"aten.tanh.default", "aten.gelu.default"}
