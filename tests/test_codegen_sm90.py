"""Every generated kernel also compiles for an H100 (sm_90), with no register spills.

The interpreter accepts code the real compiler rejects and never shows register
pressure, so this compiles, ahead of time and without a GPU, every distinct kernel the
code generator produced in this test session (plus a representative set of its own,
so the file also means something when run alone), in a child process without
TRITON_INTERPRET, and reads registers and spills from ``ptxas -v``.
"""
import os

import pytest
import torch
import torch.nn.functional as F

import codegen
from codegen import aot
from helpers_codegen import compile_fn

pytestmark = pytest.mark.skipif(not aot.have_cuda_backend(),
                                reason="the installed triton has no CUDA (nvidia) backend to compile for sm_90")

# Graphs whose kernels cover each kind of code the emitter writes.
REPRESENTATIVE = [
    (lambda x, y: ((x * 2 + y).exp() - 1).relu().sigmoid().tanh(), (torch.randn(5, 37), torch.randn(37))),
    (lambda x: F.gelu(x) + F.gelu(x, approximate="tanh") + x.log1p().abs() + x.expm1(), (torch.randn(1031),)),
    (lambda x: x.softmax(-1), (torch.randn(6, 33),)),
    (lambda x: x.softmax(-1), (torch.randn(3, 2500),)),
    (lambda x: F.layer_norm(x, (48,)), (torch.randn(2, 3, 48),)),
    (lambda x: (x.argmax(-1), x.max(0), x.var(-1), x.sum()), (torch.randn(7, 40),)),
    (lambda x: x.argmin(-1), (torch.randn(3, 2500),)),
    (lambda x: (x.half() * 2).softmax(-1), (torch.randn(4, 64),)),
    (lambda x: (x + 1, x > 2, x.sum(-1)), (torch.randint(0, 9, (4, 9), dtype=torch.int32),)),
    (lambda x: x.t().reshape(-1)[::3] * 2, (torch.randn(30, 7),)),
    (lambda x, i: (x[i] * 2, torch.cat([x, x.exp()], 1)), (torch.randn(9, 7), torch.randint(-9, 9, (5,)))),
    (lambda x, y: (x // y, x % y, x.round(), x ** y, (x > 0).any(-1)), (torch.randn(5, 37), torch.randn(5, 37))),
    (lambda x: ((x * 0.1).softmax(-1), F.layer_norm(x, (33,))), (torch.randn(4, 33, dtype=torch.float64),)),
]


def _representative_kernels():
    kernels = []
    for fn, args in REPRESENTATIVE:
        kernels += compile_fn(fn, *args).kernels
    return kernels


def test_every_generated_kernel_compiles_for_sm90_without_spills():
    kernels = _representative_kernels() + codegen.generated_kernels()
    results = aot.check_kernels(kernels, jobs=min(2, os.cpu_count() or 1))
    failed = [f"{r.name}: {r.error}" for r in results if not r.ok]
    assert not failed, "kernels that do not compile for sm_90:\n" + "\n".join(failed)
    spilling = [f"{r.name}: {r.spill_bytes} bytes spilled, {r.n_regs} registers" for r in results if r.spill_bytes]
    assert not spilling, "kernels that spill on sm_90:\n" + "\n".join(spilling)
    assert all(r.n_regs is not None and r.n_regs <= 255 for r in results)
    print(f"\n{len(results)} distinct kernels compiled for sm_90; registers: "
          f"max {max(r.n_regs for r in results)}, median {sorted(r.n_regs for r in results)[len(results) // 2]}")


def test_sizes_with_power_of_two_factors_vectorize_on_sm90():
    """Compiled as launched on 16-byte aligned tensors: rows of 3000 (8 divides it) and
    64-wide broadcast adds use vector loads/stores because the sizes are constexprs; an
    odd-length vector cannot (a vector at its end would straddle the mask)."""
    kernels = [compile_fn(lambda x: x.softmax(-1), torch.randn(4, 3000)).kernels[0],
               compile_fn(lambda x, b: x + b, torch.randn(40, 64), torch.randn(64)).kernels[0],
               compile_fn(lambda x, y: x * y, torch.randn(1031), torch.randn(1031)).kernels[0]]
    results = {r.name: r for r in aot.check_kernels(kernels, jobs=min(2, os.cpu_count() or 1), aligned=True)}
    assert all(r.ok for r in results.values()), results
    assert results["fused_amax_sub_exp_sum_div"].vector_accesses > 0
    assert results["triton_add"].vector_accesses > 0 and results["triton_add"].scalar_accesses == 0
    assert results["triton_mul"].vector_accesses == 0
