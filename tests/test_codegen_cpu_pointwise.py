"""Pointwise C kernels in interleaved blocks (codegen/emit/cpp_pointwise.py), against
eager and against the plain loop: the same bits, at sizes with and without a tail, at a
cat's seams, with index checks, and over a symbolic size."""
import re

import pytest
import torch

import capture
import codegen
from codegen import config
from helpers_codegen import check

pytestmark = pytest.mark.usefixtures("cpp_only")


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def _blocked(compiled) -> bool:
    return any("_c3 = " in k.source for k in compiled.kernels)


def _same_bits(a, b) -> bool:
    """Equal bits, NaN where NaN (which NaN an op returns from two may differ: the
    compiler orders a commutative op's operands as it likes)."""
    nan = a.isnan()
    return torch.equal(nan, b.isnan()) and torch.equal(a[~nan].view(torch.int32), b[~nan].view(torch.int32))


def _plain(fn, *args):
    """``fn`` compiled with the plain loop (no interleaved copies), run on ``args``."""
    previous = config.CPP_INTERLEAVE_COPIES
    config.CPP_INTERLEAVE_COPIES = 1
    try:
        compiled = check(fn, *args)
        assert not _blocked(compiled)
        return compiled(*args)
    finally:
        config.CPP_INTERLEAVE_COPIES = previous


def _chain(x):
    y = torch.sigmoid(x * 2 + 1) * torch.tanh(x)
    return torch.nn.functional.gelu(y) + torch.exp(-x.abs())


@pytest.mark.parametrize("n", [1, 7, 31, 33, 1000, 40000])
def test_blocks_and_tails_give_the_plain_loops_bits(n):
    x = _randn(n)
    x[:5] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0])[:min(n, 5)]
    compiled = check(_chain, x)
    assert _blocked(compiled) == (n >= config.CPP_INTERLEAVE_COPIES * config.CPP_INTERLEAVE_WIDTH)
    assert _same_bits(compiled(x), _plain(_chain, x))


def test_cat_seams_and_broadcast_operands_in_blocks():
    def fn(a, b, bias):
        return torch.erf(torch.cat([a, b * 2], dim=-1) + bias)
    a, b, bias = _randn(5, 40), _randn(5, 71, seed=1), _randn(111, seed=2)
    compiled = check(fn, a, b, bias)
    assert _blocked(compiled)
    assert _same_bits(compiled(a, b, bias), _plain(fn, a, b, bias))


def test_index_checks_in_parallel_blocks_still_raise():
    def fn(w, i):
        return torch.tanh(w[i])
    w, i = _randn(1000), torch.randint(0, 1000, (40000,), generator=torch.Generator().manual_seed(1))
    compiled = check(fn, w, i)
    source = compiled.kernels[0].source
    assert _blocked(compiled) and "#pragma omp parallel for reduction(|:err)" in source
    assert re.search(r"err \|= .*_c3\b", source)                 # checked per element, in the block
    for position in (7, 33333, 39999):
        bad = i.clone()
        bad[position] = 1000
        with pytest.raises(IndexError):
            compiled(w, bad)


def test_symbolic_size_runs_its_blocks_and_tail():
    codegen.reset()
    capture.reset()
    cf = capture.compile(lambda x: torch.tanh(x) * torch.sigmoid(x), backend="cpu", dynamic=True)
    for n in (5, 64, 100, 1001):
        x = _randn(n)
        torch.testing.assert_close(cf(x), torch.tanh(x) * torch.sigmoid(x), rtol=1.3e-6, atol=1e-5)
    sources = [k.source for g in codegen.COMPILED for k in getattr(g, "kernels", ())]
    assert any("_c3 = " in s and "/ 32" in s for s in sources)
