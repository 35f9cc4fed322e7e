"""Differential tests of eager's aliasing and mutation semantics at the compiled path's
boundary, on generated programs over inputs of several dtypes that alias each other in
the ways user code does (the same tensor twice, ``x`` and ``x[1:]``, ``x`` and
``x.t()``, ``x`` and a column of it) with the statements where a functional compiler
must put eager's semantics back:

* in-place ops on inputs and on views of inputs (``x.t().mul_(2)``, ``x[0] = 1``),
  through ``detach()`` and ``.data`` (the write is visible through the input), mutated
  inputs that are also returned, metadata mutations (``x.t_()``, ``x.unsqueeze_(0)``);
* ``out=`` arguments (inputs, views of inputs, of another shape: resized);
* integer and bool tensors, Python scalars and type promotion, in-place ops whose result
  type cannot be written back (eager raises);
* ``torch.no_grad()`` / ``torch.enable_grad()`` / ``torch.inference_mode()`` /
  ``torch.set_grad_enabled`` inside the function (inference tensors made there),
  ``requires_grad_``, inputs requiring grad or not (a leaf, a non-leaf view of one) and
  the leaves' ``.grad`` after a backward pass through every output;
* custom ``torch.autograd.Function``s (one saving its input, one writing it in place
  with ``mark_dirty``).

Every program runs eagerly and compiled (``backend`` "cpu" or "triton") on identical
inputs, twice (compile, then cache hit), and everything observable is compared
(``test_compiled_path_hypothesis.compare``: values, dtypes, ``is``/``_base``/storage/
strides, inputs afterwards, grad mode, exception type, printed text, gradients).

``CAPTURE_BOUNDARY_EXAMPLES`` sets the number of programs (default: a small derandomized
CI sample); ``CAPTURE_BOUNDARY_RANDOM=1`` draws fresh ones; ``CAPTURE_DYNAMIC_LOG=file``
logs one line per program.
"""
from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import capture
import fx_graph
import helpers_dynamic
from test_compiled_path import ScaleInPlace
from test_compiled_path_hypothesis import compare, run_call

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # masked-off lanes divide by zero

EXAMPLES = int(os.environ.get("CAPTURE_BOUNDARY_EXAMPLES", "10"))
PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("CAPTURE_BOUNDARY_SHRINK") else [])
COMMON = dict(deadline=None, derandomize=not os.environ.get("CAPTURE_BOUNDARY_RANDOM"), print_blob=True,
              database=None, phases=PHASES,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
DTYPES = ("float32", "float32", "float64", "int64", "int32", "bool")
# how y relates to x (x is (3, 4))
ALIASING = {"separate": None, "same": "x", "rows": "x[1:]", "transpose": "x.t()", "column": "x[:, 1]",
            "expand": "x[0].expand(3, 4)"}
GRAD = ("none", "view", "leaf", "y")
# float32 sums (z.sum()) summed in another order reach float64 results: float32's rounding
TOLERANCE = {**helpers_dynamic.TOLERANCE, torch.float64: helpers_dynamic._scaled(1e-5, 1e-6)}      # who requires grad: nobody, x a view of a leaf, x a leaf, y only


class Double(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t)
        return t * 2

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        return grad * 2 + t * 0


# Metadata mutations; a program has at most one: two that undo each other around a grad
# mode switch (``y.t_()``, then ``y.t_()`` under no_grad) leave eager's y with autograd
# history its backward rejects, where the compiled path sees no change (not compared).
META = ("t_()", "unsqueeze_(0)", "squeeze_()", "requires_grad_()", "requires_grad_(False)", "detach_()",
        "transpose_(0, -1)")
NAMESPACE = {"torch": torch, "F": F, "Double": Double, "ScaleInPlace": ScaleInPlace}


# ------------------------------------------------------------------ grammar

def _inplace(u, w):
    return [f"{u}.mul_(2)", f"{u}.add_(1)", f"{u}.zero_()", f"{u}.fill_(1)", f"{u}[0] = 0", f"{u}[:, 1:] = 1",
            f"{u}.copy_({u}.flip(0))", f"{u}.t().mul_(2)", f"{u}.add_({w}.sum())", f"{u}.div_(2)",
            f"{u}.clamp_(0, 1)", f"{u}.neg_()", f"{u}.logical_not_()", f"{u} += 1", f"{u} *= 0.5",
            f"{u}.detach().add_(1)", f"{u}.data.mul_(2)", f"{u}.view(-1)[:2].fill_(5)", f"{u}.masked_fill_({u} > 0, 1)",
            f"{u}.copy_({w}.sum())", f"{u}.sub_({w}.mean().to({u}.dtype))", f"{u}.diagonal().add_(1)",
            f"{u}.bitwise_and_(3)", f"{u}.pow_(2)", f"{u}.abs_()"]


def _out(u, w):
    return [f"torch.add({w}, 1, out={u})", f"torch.mul({u}, 2, out={u})", f"torch.neg({w}, out={u})",
            f"torch.sum({w}, 0, out={u})", f"torch.abs({w}, out={u}[0])", f"torch.mul({w}, 0.5, out={u})"]


def _assign(u, w):
    return [f"{u} * 2.5", f"{u} + True", f"{u} / 2", f"{u} // 2", f"torch.where({u} > 0, {u}, 0.5)",
            f"{u}.float().mean()", f"{u}.int() & 1", f"{u}.sum(0)", f"{u}.to(torch.float64)", f"{u}.bool()",
            f"{u}.int() * {w}.sum()", f"{u}.detach()", f"{u}.t()", f"{u}[1:]", f"{u} * {w}.sum()",
            f"{u}.clone()", f"Double.apply({u})", f"{u}.view(-1)", f"{u} + {w}", f"{u}.data",
            f"torch.maximum({u}, {u}.flip(0))", f"{u}.reshape(2, 6)", f"{u} == {w}.sum()"]


@st.composite
def statement(draw, depth=0):
    u, w = draw(st.sampled_from(["x", "y", "a"])), draw(st.sampled_from(["x", "y", "a", "z"]))
    kind = draw(st.sampled_from(["inplace", "inplace", "out", "assign", "assign", "meta", "grad", "function"]
                                + (["block"] if depth == 0 else [])))
    if kind == "inplace":
        return [draw(st.sampled_from(_inplace(u, w)))]
    if kind == "out":
        return [draw(st.sampled_from(_out(draw(st.sampled_from(["x", "y", "z", "a"])), w)))]
    if kind == "assign":
        return [f"a = {draw(st.sampled_from(_assign(u, w)))}"]
    if kind == "meta":
        return [draw(st.sampled_from([f"{u}.{form}" for form in META]))]
    if kind == "grad":
        return [f"torch.set_grad_enabled({draw(st.booleans())})"]
    if kind == "function":
        return [draw(st.sampled_from([f"a = ScaleInPlace.apply({u})", f"a = Double.apply({u}) + {w}.sum()"]))]
    block = draw(st.sampled_from(["torch.no_grad()", "torch.enable_grad()", "torch.inference_mode()"]))
    body = draw(st.lists(statement(depth + 1), min_size=1, max_size=2))
    return [f"with {block}:"] + ["    " + line for lines in body for line in lines]


@st.composite
def program(draw):
    body = [line for lines in draw(st.lists(statement(), min_size=1, max_size=4)) for line in lines]
    if sum(line.endswith(tuple("." + m for m in META)) for line in body) > 1:
        body = [line[:len(line) - len(line.lstrip())] + "pass" if line.endswith(tuple("." + m for m in META)) else line
                for line in body]
    items = ["x", "y", "z", "a", "x.t()", "y[0]", "a.view(-1)", "x.detach()", "a * 1", "y.sum()", "x[1:]"]
    chosen = draw(st.lists(st.sampled_from(items), min_size=1, max_size=3))
    ret = chosen[0] if len(chosen) == 1 else "(" + ", ".join(chosen) + ")"
    lines = ["def prog(x, y, z):", "    a = z"] + ["    " + line for line in body] + [f"    return {ret}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ inputs

def make_inputs(seed: int, dtype: str, aliasing: str, grad: str):
    """(x, y, z) and the leaves whose gradients are compared: x (3, 4) of ``dtype``, y
    as ``ALIASING`` says, z a float32 (3, 4) of its own."""
    g = torch.Generator().manual_seed(seed)
    x, other = _random(dtype, g), _random(dtype, g)
    z = torch.randn(3, 4, generator=g)
    leaves = []
    floating = x.is_floating_point()
    if floating and grad in ("view", "leaf"):
        x.requires_grad_(True)
        leaves.append(x)
        if grad == "view":
            x = x * 1.0
    if ALIASING[aliasing] is None:
        y = other
        if floating and grad == "y":
            y.requires_grad_(True)
            leaves.append(y)
            y = y * 1.0
    else:
        y = eval(ALIASING[aliasing], {"x": x})
    return (x, y, z), leaves


def _random(dtype: str, g):
    if dtype == "bool":
        return torch.rand(3, 4, generator=g) > 0.5
    if dtype.startswith("int"):
        return torch.randint(-3, 4, (3, 4), generator=g, dtype=getattr(torch, dtype))
    return torch.randn(3, 4, generator=g, dtype=getattr(torch, dtype))


def build(source: str):
    namespace = dict(NAMESPACE)
    exec(compile(source, "<boundary_hypothesis>", "exec"), namespace)
    return namespace["prog"]


def differential(source: str, seed: int, dtype: str, aliasing: str, grad: str, backend: str):
    helpers_dynamic.log_program(f"boundary {backend} dtype={dtype} aliasing={aliasing} grad={grad}")
    eager_fn, compiled_fn = build(source), build(source)
    compiled = capture.compile(compiled_fn, backend=backend)
    note = f"\n--- program (backend={backend}, dtype={dtype}, aliasing={aliasing}, grad={grad}, seed={seed}) ---\n{source}"
    fx_graph.compiled_path.INTERNAL_ERRORS.clear()
    for call in range(2):
        def make(call=call):
            return make_inputs(seed + call, dtype, aliasing, grad)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)        # out= resized: eager warns, so do we
            e = run_call(eager_fn, make, seed + call, grad != "none")
            c = run_call(compiled, make, seed + call, grad != "none")
        try:
            compare(c, e, None, None, TOLERANCE)
        except AssertionError as err:
            raise AssertionError(f"call {call}: {err}{note}") from None
    assert not fx_graph.compiled_path.INTERNAL_ERRORS, f"compiled path failed: {fx_graph.compiled_path.INTERNAL_ERRORS}{note}"


@settings(max_examples=EXAMPLES, **COMMON)
@given(source=program(), seed=st.integers(0, 2 ** 16), dtype=st.sampled_from(DTYPES),
       aliasing=st.sampled_from(sorted(ALIASING)), grad=st.sampled_from(GRAD), backend=st.sampled_from(("cpu", "triton")))
def test_generated_programs_keep_eagers_aliasing_and_mutations(source, seed, dtype, aliasing, grad, backend):
    capture.reset()
    differential(source, seed, dtype, aliasing, grad, backend)
