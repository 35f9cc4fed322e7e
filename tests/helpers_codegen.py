"""Helpers for the code generator tests: compile an FX graph with codegen — Triton
kernels run in the interpreter (conftest sets TRITON_INTERPRET=1), C kernels compiled
here — and compare with eager. ``EMITTER`` is set per test by conftest's ``emitter``
fixture (tests using it run once per emitter)."""
from __future__ import annotations

import re

import torch
from torch import fx

import codegen

EMITTER = "triton"
BACKENDS = {"triton": "triton", "cpp": "cpu"}


def backend() -> str:
    """The ``capture.compile`` backend that forces the current emitter."""
    return BACKENDS[EMITTER]


def plain_loops(source: str) -> str:
    """A C kernel's source without the copies of its interleaved blocks (the lines naming
    ``x1_c0`` ... ``_c3``, codegen/emit/cpp_pointwise.py): its loop body once, as counted."""
    return "\n".join(line for line in source.splitlines() if not re.search(r"_c\d+\b", line))


def count_stores(source: str) -> int:
    """Stores in a generated kernel's source (either emitter)."""
    if EMITTER == "triton":
        return source.count("tl.store(")
    return len(re.findall(r"_ptr\[[^\]]*\] = ", plain_loops(source)))


def count_loads(source: str) -> int:
    if EMITTER == "triton":
        return source.count("tl.load(")
    return plain_loops(source).count("_ptr[") - count_stores(source)


def count_calls(source: str, fn: str) -> int:
    """Calls of the float32 math function ``fn`` (``exp``: ``tl.exp(``, ``expf(`` or a
    ``capture_expf`` variant)."""
    if EMITTER == "triton":
        return source.count(f"tl.{fn}(")
    return len(re.findall(rf"\b(capture_)?{fn}f(_[a-z]+)?\(", plain_loops(source)))   # capture_expf_nonpositive too


def graph_of(fn, n_args: int) -> fx.GraphModule:
    """A graph calling ``fn`` as one node; decomposition (make_fx) traces through it."""
    def call(*args):            # a named function: FX cannot print a lambda without its source
        return fn(*args)
    graph = fx.Graph()
    inputs = [graph.placeholder(f"arg{i}") for i in range(n_args)]
    graph.output(graph.call_function(call, tuple(inputs)))
    return fx.GraphModule(torch.nn.Module(), graph)


def compile_fn(fn, *args, fuse=True):
    """codegen.compile_graph on a graph calling ``fn``; fails if it would run eagerly."""
    gm = fn if isinstance(fn, fx.GraphModule) else graph_of(fn, len(args))
    compiled = codegen.compile_graph(gm, list(args), fuse=fuse, emitter=EMITTER)
    assert not compiled.runs_eagerly, f"graph runs eagerly: {compiled.stats.eager_reason}"
    return compiled


def as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def clone(x):
    if isinstance(x, torch.Tensor):
        out = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype)
        return out.copy_(x)
    return x


def assert_close(got, expected, rtol=1.3e-6, atol=1e-5, what="output"):
    got, expected = as_tuple(got), as_tuple(expected)
    assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape, f"{what}[{i}]: shape {tuple(g.shape)} != {tuple(e.shape)}"
        assert g.dtype == e.dtype, f"{what}[{i}]: dtype {g.dtype} != {e.dtype}"
        if e.dtype.is_floating_point:
            torch.testing.assert_close(g, e, rtol=rtol, atol=atol, equal_nan=True,
                                       msg=lambda m: f"{what}[{i}]: {m}")
        else:
            assert torch.equal(g, e), f"{what}[{i}]: values differ\n{g}\n{e}"


def check(fn, *args, rtol=1.3e-6, atol=1e-5, fuse=True, kernels_only=True):
    """Compile ``fn``, run it on copies of ``args`` and compare with eager; returns the
    CompiledGraph. ``kernels_only`` asserts nothing fell back to an extern call."""
    compiled = compile_fn(fn, *[clone(a) for a in args], fuse=fuse)
    if kernels_only:
        assert compiled.stats.n_externs == 0, f"extern calls: {compiled.stats.externs}"
    expected = fn(*[clone(a) for a in args])
    got = compiled(*[clone(a) for a in args])
    assert not compiled.runs_eagerly, f"generated code failed: {compiled.stats.eager_reason}"
    assert_close(got, expected, rtol, atol)
    return compiled
