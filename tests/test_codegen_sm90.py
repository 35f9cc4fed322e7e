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
