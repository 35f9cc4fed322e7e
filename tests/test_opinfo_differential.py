"""torch's own OpInfo samples, compiled end to end, against eager.

``torch.testing._internal.common_methods_invocations.op_db`` holds, for every public op,
sample inputs chosen by torch's developers to reach its corner cases (0-d tensors, empty
and size-1 dims, non-contiguous inputs, keyword variants): programs we did not write.
Each sample runs as ``op(input, *args, **kwargs)`` under ``capture.compile`` (frontend,
guards, the compiled path and the code generator) and eagerly on copies of the same
inputs; outputs must agree in shape, dtype, values (``equal_nan``), the strides of their
dimensions of more than one element, and mutated inputs; an exception must be eager's
type. With ``GRAD`` the inputs require grad and the gradients of a fixed random
cotangent are compared too (values only: a backward graph returns its gradients
contiguous where eager returns views of the cotangent, which ``.grad`` accumulation
does not see). Any internal error of capture fails the test (conftest).

CI runs a fixed slice: the first sample of every ``STRIDE``-th op (by name) through
both emitters and one dtype; ``CAPTURE_OPINFO_ALL=1`` runs every op, the first
``CAPTURE_OPINFO_SAMPLES`` (default 3) samples, float32/float64/int64/bool/bfloat16,
with and without grad (float32 without grad, "cpu" emitter only: ~1400 samples, ~6 minutes).
Random ops (dropout, sampling), ops whose result is not determined by their inputs
(``empty``) and decompositions torch itself runs in Python (``_refs``) are left out, as
are the linear-algebra and FFT families (library calls in both paths).
"""
from __future__ import annotations

import os
import re

import pytest
import torch
from torch.testing._internal import common_methods_invocations   # needs expecttest (the test extra)

import capture

ALL = os.environ.get("CAPTURE_OPINFO_ALL") == "1"
SAMPLES = int(os.environ.get("CAPTURE_OPINFO_SAMPLES", "3")) if ALL else 1
STRIDE = 1 if ALL else 12
DTYPES = [torch.float32, torch.float64, torch.int64, torch.bool, torch.bfloat16] if ALL else [torch.float32]
LEFT_OUT = re.compile(r"rand|dropout|bernoulli|multinomial|normal|uniform|empty|poisson|exponential|cauchy|"
                      r"geometric|fractional_max_pool|nonzero|argwhere|unique|masked_select|item|tolist|_refs|"
                      r"linalg|svd|eig|qr|cholesky|lstsq|lu|inverse|det|pinv|matrix_exp|fft|stft|sparse|"
                      r"jiterator|segment_reduce|signal|histc|bincount|quantile|allclose|equal")


def _random_kwargs(kwargs) -> bool:
    """Samples that draw random numbers (attention with dropout, training-mode dropout)."""
    return bool(kwargs.get("dropout_p")) or kwargs.get("training") is True


def _ops():
    ops = sorted((op for op in common_methods_invocations.op_db if not LEFT_OUT.search(op.name)),
                 key=lambda op: (op.name, op.variant_test_name))
    return ops[::STRIDE]


OPS = _ops()


def _leaves(x) -> list:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _leaves(item)]
    return []


def _copy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().clone().requires_grad_(x.requires_grad)
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(item) for item in x)
    return x


def _assert_same(expected, got, what: str) -> None:
    expected, got = _leaves(expected), _leaves(got)
    assert len(expected) == len(got), f"{what}: {len(expected)} tensors eagerly, {len(got)} compiled"
    for i, (e, g) in enumerate(zip(expected, got)):
        assert (e.shape, e.dtype) == (g.shape, g.dtype), f"{what}[{i}]: {e.shape} {e.dtype} vs {g.shape} {g.dtype}"
        wide = [d for d in range(e.dim()) if e.shape[d] > 1]
        if e.numel() > 1 and what == "output":
            assert [e.stride(d) for d in wide] == [g.stride(d) for d in wide], \
                f"{what}[{i}] strides: eager {e.stride()}, compiled {g.stride()} (shape {tuple(e.shape)})"
        rtol, atol = _tolerance(e)
        torch.testing.assert_close(g.detach(), e.detach(), equal_nan=True, rtol=rtol, atol=atol,
                                   msg=lambda m: f"{what}[{i}]: {m}")


def _tolerance(expected: torch.Tensor) -> tuple:
    """Exact for integers and bool. bfloat16/float16: fused kernels compute in float32 and
    round once where eager rounds after every op (checked against float64: never less
    accurate than eager), so a difference of a few output ulps is relative to the tensor's
    scale (x - mean near 0 in a norm), not to each element."""
    if not (expected.is_floating_point() or expected.is_complex()):
        return 0, 0
    if expected.dtype in (torch.bfloat16, torch.float16):
        finite = expected.detach().float()
        finite = finite[finite.isfinite()]
        return 1.6e-2, 1e-5 + 1.6e-2 * (finite.abs().max().item() if finite.numel() else 0.0)
    return 1e-4, 1e-5


def _run(op, sample, backend: str) -> None:
    kwargs = sample.kwargs

    def fn(inp, *args):
        return op.op(inp, *args, **kwargs)

    capture.reset()
    compiled = capture.compile(fn, backend=backend)
    eager_args = _copy([sample.input, *sample.args])
    compiled_args = _copy([sample.input, *sample.args])
    try:
        expected, error = fn(*eager_args), None
    except Exception as e:  # noqa: BLE001 - compared with the compiled run's exception
        expected, error = None, e
    if error is not None:
        with pytest.raises(type(error)):
            compiled(*compiled_args)
        return
    got = compiled(*compiled_args)
    _assert_same(expected, got, "output")
    _assert_same(eager_args, compiled_args, "input after the call")
    outs = [(e, g) for e, g in zip(_leaves(expected), _leaves(got)) if e.requires_grad and e.is_floating_point()]
    if not outs:
        return
    gen = torch.Generator().manual_seed(0)
    cotangents = [torch.randn(e.shape, generator=gen, dtype=e.dtype) for e, _ in outs]
    wrt = [(e, g) for e, g in zip(_leaves(eager_args), _leaves(compiled_args)) if e.requires_grad]
    expected_grads = torch.autograd.grad([e for e, _ in outs], [e for e, _ in wrt], cotangents, allow_unused=True)
    got_grads = torch.autograd.grad([g for _, g in outs], [g for _, g in wrt], cotangents, allow_unused=True)
    for i, (e, g) in enumerate(zip(expected_grads, got_grads)):
        assert (e is None) == (g is None), f"gradient {i}: eager {e is not None}, compiled {g is not None}"
        if e is not None:
            _assert_same(e, g, f"gradient {i}")


def _samples(op, dtype, grad: bool):
    if dtype not in op.supported_dtypes("cpu") or (grad and not (op.supports_autograd and dtype.is_floating_point)):
        return []
    samples = [s for s in op.sample_inputs("cpu", dtype, requires_grad=grad) if not _random_kwargs(s.kwargs)]
    return samples[:SAMPLES]


def _cases() -> list:
    """(op, backend, grad): every op of the slice through the C emitter, every third
    through Triton's interpreter (every op with ``CAPTURE_OPINFO_ALL=1``)."""
    cases = []
    for i, op in enumerate(OPS):
        for backend in ("cpu", "triton"):
            if backend == "cpu" or ALL or i % 3 == 0:
                cases += [pytest.param(op, backend, grad, id=f"{op.name}.{op.variant_test_name}-{backend}-"
                                       f"{'grad' if grad else 'nograd'}".replace(".-", "-")) for grad in (False, True)]
    return cases


@pytest.mark.parametrize("op, backend, grad", _cases())
def test_opinfo_samples_match_eager(op, backend, grad):
    for dtype in DTYPES:
        for sample in _samples(op, dtype, grad):
            _run(op, sample, backend)
