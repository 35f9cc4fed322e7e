"""Differential tests of dynamic shapes: generated programs that compute with their
inputs' sizes, each called with a *sequence* of sizes, compiled (``backend="cpu"``: C
kernels; ``backend="triton"``: Triton's interpreter) under ``dynamic=None``,
``dynamic=True`` and ``mark_dynamic`` on every dimension, and compared with eager at
every call.

The programs use sizes the ways user code does: reshapes and views with ``-1`` and with
``x.shape[0]``, ``x.size(-1) // 2``, split/chunk/narrow/slices by size expressions,
``numel()``, expand and broadcasting, cat/stack, reductions, softmax/layer_norm/matmul
over symbolic dimensions, branches on sizes, small loops over ``range(x.shape[0])``,
``torch.arange(x.shape[1])`` and masks made from it, in-place writes into inputs and
into views of inputs, and outputs that are inputs or views of them. Sizes are drawn
from 0 (rarely), 1, 2, primes and powers of two, and repeat earlier ones.

At each call everything observable is compared with eager (``test_compiled_path_hypothesis.compare``):
values, dtypes, shapes, strides, ``is``/``_base``/storage sharing, inputs afterwards,
grad mode, ``requires_grad``, the exception type, gradients (``grad=True``: inputs are
views of leaves that require grad, and a backward pass runs after each call). A graph
the compiled path failed on (it runs as captured) fails the test too. Recompiles must
have a reason: with symbolic sizes, a new entry for a size >= 2 needs a failed guard on
a size relation or on a size the trace specialized (``capture.report``'s failures).

``CAPTURE_DYNAMIC_EXAMPLES`` sets the number of programs per test (default: a small
derandomized CI sample); large local runs: ``CAPTURE_DYNAMIC_EXAMPLES=1000``, with
``CAPTURE_DYNAMIC_RANDOM=1`` for programs CI never saw and ``CAPTURE_DYNAMIC_LOG=file``
to count the programs per backend and mode.
"""
from __future__ import annotations

import copy
import math
import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

import capture
import fx_graph
import helpers_dynamic

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # masked-off lanes divide by zero

CONSTS = ("0.5", "2.0", "-1.0")
PRELUDE = ["a = x * 1.0", "b = y + 0.0"]
SIZES = (1, 2, 3, 4, 5, 7, 8, 13, 16)


# ------------------------------------------------------------------ grammar

def _names(draw):
    return draw(st.sampled_from("xyab")), draw(st.sampled_from("xyab")), draw(st.sampled_from(CONSTS))


@st.composite
def same_shape(draw):
    """An expression of the shape of its operands, (B, N), that computes with sizes."""
    u, w, c = _names(draw)
    forms = [
        f"{u} + {w}",
        f"{u}.reshape(-1).view({u}.shape[0], -1) * {c}",
        f"{u}.view(-1, {u}.size(-1)) + {w}",
        f"torch.cat([{u}[:, :{u}.size(-1) // 2], {w}[:, {u}.size(-1) // 2:]], dim=1)",
        f"torch.cat({u}.split(2, dim=0), 0) * {c}",
        f"torch.cat({u}.chunk(3, dim=1), 1) - {w}",
        f"torch.cat([{u}.narrow(0, 0, {u}.shape[0] // 2), {w}[{u}.shape[0] // 2:]])",
        f"torch.softmax({u}, -1) * {w}",
        f"F.layer_norm({u}, ({u}.shape[-1],)) + {w}",
        f"torch.tanh({u} @ {w}.t() @ {w} / ({u}.shape[1] + 1))",
        f"{u} * torch.arange({u}.shape[1]) + {w}",
        f"{u}.masked_fill(torch.arange({u}.shape[-1]) >= {u}.shape[-1] // 2, {c})",
        f"{u}.sum(0, keepdim=True).expand({u}.shape[0], -1) + {w}",
        f"{u}.mean(-1, keepdim=True) * {w}",
        f"{u}.amax(0) - {w}",
        f"{u} / ({u}.numel() + 1)",
        f"{u} * {u}.shape[0] - {w} * {u}.size(1)",
        f"torch.stack([{u}, {w}], -1).sum(-1)",
        f"{u}.unsqueeze(0).expand(2, -1, -1).sum(0)",
        f"torch.where({u} > 0, {u}, {w})",
        f"{u}.new_zeros({u}.shape) + torch.ones({u}.shape[0], 1) * {w}",
        f"{u}.index_select(0, torch.arange({u}.shape[0] - 1, -1, -1)) * {c}",
        f"F.pad({u}, (0, 1))[:, :-1] + {w}",
        f"{u}.cumsum(1) * {c}",
        f"{u}.t().contiguous().t() + {w}[-1:]",
        f"{u}.flatten()[: {u}.numel()].view_as({w})",
    ]
    return draw(st.sampled_from(forms))


@st.composite
def other_shape(draw):
    """An expression whose shape is not (B, N), for outputs only."""
    u, w, c = _names(draw)
    forms = [
        f"{u}.narrow(0, 0, {u}.shape[0] // 2)", f"{u}.view(-1)", f"{u}.reshape({u}.shape[0], -1, 1)",
        f"{u}[: {u}.size(0) - 1]", f"{u}.split(max({u}.size(-1) // 2, 1), dim=-1)", f"{u}.chunk(2, 1)",
        f"{u}.sum(-1)", f"{u}.shape[0] * 2", f"{u}.size()", f"{u}.numel()", f"torch.stack([{u}, {w}])",
        f"torch.cat([{u}, {w}], 0)", f"{u} @ {w}.t()", f"{u}.t()", f"{u}[1:]", f"{u}.expand(2, -1, -1)",
        f"{u}[:, {u}.shape[1] // 2]", f"{u}.unflatten(0, (1, -1))", f"{u}.new_full(({u}.shape[1],), {c})",
        f"torch.arange({u}.shape[0]) * {c}", f"{u}[{u}.shape[0] // 2:].mean(0)", f"{u}.detach()", f"{u}.mT",
        f"{u}.diagonal()", f"{u}[:1].to(torch.float64)", f"{u}[:, :1] @ {w}[:1]",
    ]
    return draw(st.sampled_from(forms))


@st.composite
def statement(draw, depth=0):
    t, u = draw(st.sampled_from("ab")), draw(st.sampled_from("xy"))
    c = draw(st.sampled_from(CONSTS))
    kinds = ["assign", "assign", "assign", "inplace_input", "inplace_view", "branch"]
    if depth == 0:
        kinds += ["loop"]
    kind = draw(st.sampled_from(kinds))
    if kind == "assign":
        return [f"{t} = {draw(same_shape())}"]
    if kind == "inplace_input":
        w = draw(st.sampled_from("xyab"))
        return [draw(st.sampled_from([f"{u}.add_({w})", f"{u}[: {u}.shape[0] // 2] *= {c}",
                                      f"{u}.narrow(1, 0, {u}.size(1) // 2).zero_()", f"{u}.copy_({t})",
                                      f"{u}[:, {u}.shape[1] - 1] = {c}", f"{u}.mul_({u}.shape[1])"]))]
    if kind == "inplace_view":
        return [draw(st.sampled_from([f"v = {u}.view(-1)", f"v = {u}[{u}.shape[0] // 2:]",
                                      f"v = {u}.narrow(-1, {u}.size(-1) // 2, {u}.size(-1) - {u}.size(-1) // 2)",
                                      f"v = {u}.t()"])),
                draw(st.sampled_from([f"v.mul_({c})", "v.add_(1)", "v.zero_()"]))]
    if kind == "branch":
        cond = draw(st.sampled_from([f"{u}.shape[0] > 4", f"{u}.size(1) % 2 == 0", f"{u}.numel() >= 10",
                                     f"{u}.shape[0] == {u}.shape[1]"]))
        body = draw(statement(depth + 1))
        orelse = draw(statement(depth + 1))
        return [f"if {cond}:"] + ["    " + s for s in body] + ["else:"] + ["    " + s for s in orelse]
    body = draw(st.sampled_from([f"{t} = {t} + i", f"{t}[i] = {t}[i] * {c}", f"{t} = {t} * {c} + {u}[i:i + 1]"]))
    return [f"for i in range({u}.shape[0]):", f"    {body}"]


@st.composite
def program(draw):
    body = [line for lines in draw(st.lists(statement(), min_size=1, max_size=5)) for line in lines]
    items = draw(st.lists(st.one_of(st.sampled_from(["x", "y", "a", "b", "v"]), other_shape(), same_shape()),
                          min_size=1, max_size=3))
    if any(line.lstrip().startswith("v = ") for line in body) is False:
        items = [i if i != "v" else "a" for i in items]
    ret = items[0] if len(items) == 1 else "(" + ", ".join(items) + ")"
    lines = ["def prog(x, y):"] + ["    " + line for line in PRELUDE + body + [f"return {ret}"]]
    return "\n".join(lines) + "\n"


@st.composite
def size_sequence(draw):
    """3 to 6 (B, N) pairs: small primes and powers of two, 1, rarely 0, with repeats."""
    size = st.integers(0, 2 * len(SIZES)).map(lambda i: 0 if i == 0 else SIZES[i % len(SIZES)])
    pairs = draw(st.lists(st.tuples(size, size), min_size=2, max_size=5))
    pairs.append(draw(st.sampled_from(pairs)))          # an earlier size again
    return pairs


# ------------------------------------------------------------------ running and comparing

def make_inputs(seed: int, shape, aliasing: str, grad: bool, mark: bool):
    """(x, y) of ``shape``: separate, one tensor twice (``same``), or overlapping rows of
    one tensor (``overlapping``); ``grad``: views of leaves that require grad."""
    g = torch.Generator().manual_seed(seed)
    leaves = [torch.randn(*shape, generator=g, requires_grad=grad) for _ in range(2)]
    x, y = (leaf * 1.0 if grad else leaf for leaf in leaves)
    if aliasing == "same":
        y = x
    elif aliasing == "overlapping":
        root = torch.randn(shape[0] + 1, shape[1], generator=g)
        x, y = root[:-1], root[1:]
    if mark:
        for t in (x, y):
            capture.mark_dynamic(t, [0, 1])
    return (x, y), leaves


def differential(source: str, sizes, mode: str, aliasing: str, grad: bool, backend: str, seed: int = 0):
    helpers_dynamic.log_program(f"{backend} {mode} {aliasing} grad={grad} calls={len(sizes)}")
    helpers_dynamic.differential(
        source, sizes, mode, backend, lambda call, shape: make_inputs(seed + call, shape, aliasing, grad, mode == "mark"),
        grad, f"aliasing={aliasing}, ")


# CI: 5 programs (and 2 training ones) here, the op families of test_dynamic_families.py beside them.
EXAMPLES = int(os.environ.get("CAPTURE_DYNAMIC_EXAMPLES", "5"))
BACKENDS = ("cpu", "triton")
MODES = ("none", "true", "mark")
ALIASING = ("separate", "separate", "same", "overlapping")
COMMON = helpers_dynamic.COMMON


# Found by large local runs (each failed before its fix):
# a reduction over one element (every dim 1): the scheduler had no space for it
# (TypeError; the graph ran as captured);
ONE_ELEMENT = "def prog(x, y):\n    a = x.amax(0) - y\n    return a, x.sum(), torch.softmax(y, -1)\n"
# a reduction with no rows (``y.sum(-1)`` of a (0, n) tensor) was scheduled anyway
# (NameError in the wrapper), a mean over an empty dimension divided by 0 in a kernel
# (ZeroDivisionError in the interpreter);
EMPTY = "def prog(x, y):\n    return y.sum(-1), y.argmax(-1), x.mean(0) + 1\n"
# a graph with symbolic sizes that writes x and reads y, called with f(x, x) or with
# overlapping x and y: its functional code read the old y (wrong values, silently);
WRITTEN_ALIAS = "def prog(x, y):\n    v = x.view(-1)\n    v.zero_()\n    return y * -1.0\n"
# a graph with symbolic sizes returning a written input or a view of it returned a new
# tensor (``out is x`` false: later writes through it missed x);
RETURNED_WRITE = "def prog(x, y):\n    a = x.add_(1)\n    y.mul_(2.0)\n    return a, y[0], x.view(-1)\n"
# a gather through one index for the whole kernel (a row of a 1-row tensor): its range
# test was a scalar comparison, which Triton's interpreter does not type as a bool mask.
SCALAR_GATHER = "def prog(x, y):\n    return x.index_select(0, torch.arange(x.shape[0] - 1, -1, -1)) * -1.0\n"
# the same for a load's predicate: writing an empty slice of a 1-row input
# (x[: x.shape[0] // 2] *= -1) reads under a scalar predicate, alone or and-ed with a
# block one (the row kernel of a (3, 13) input).
SCALAR_PREDICATE = "def prog(x, y):\n    x[: x.shape[0] // 2] *= -1.0\n    return x * torch.arange(x.shape[1])\n"
# an output that is a view of an input through view -> slice -> view -> split with
# symbolic sizes, which the index arithmetic did not see as strided: it came back as a
# copy (no shared storage with the input); now the graph runs as captured.
INPUT_VIEW_COPIED = ("def prog(x, y):\n    b = y.flatten()[: y.numel()].view_as(y)\n"
                     "    return b.split(max(b.size(-1) // 2, 1), dim=-1)\n")
# two equal outputs computed from sizes (b / (b.numel() + 1) twice): the code generator's
# common-subexpression pass merged them, so one tensor came back at both positions.
TWIN_OUTPUTS = "def prog(x, y):\n    b = y * y.shape[0]\n    return b / (b.numel() + 1), b / (b.numel() + 1)\n"


@settings(max_examples=EXAMPLES, **COMMON)
@example(source=ONE_ELEMENT, sizes=[(1, 1), (1, 1)], mode="none", aliasing="separate", backend="cpu")
@example(source=EMPTY, sizes=[(0, 2), (2, 0)], mode="none", aliasing="separate", backend="cpu")
@example(source=EMPTY, sizes=[(0, 2), (2, 0)], mode="none", aliasing="separate", backend="triton")
@example(source=WRITTEN_ALIAS, sizes=[(8, 4), (5, 3)], mode="true", aliasing="same", backend="triton")
@example(source=WRITTEN_ALIAS, sizes=[(8, 4), (5, 3)], mode="mark", aliasing="overlapping", backend="cpu")
@example(source=SCALAR_GATHER, sizes=[(1, 5), (1, 3)], mode="none", aliasing="separate", backend="triton")
@example(source=SCALAR_PREDICATE, sizes=[(1, 4), (3, 13)], mode="none", aliasing="separate", backend="triton")
@example(source=INPUT_VIEW_COPIED, sizes=[(8, 7), (5, 6)], mode="true", aliasing="separate", backend="triton")
@example(source=TWIN_OUTPUTS, sizes=[(16, 5), (7, 8)], mode="true", aliasing="separate", backend="cpu")
@example(source=RETURNED_WRITE, sizes=[(4, 3), (5, 6)], mode="true", aliasing="separate", backend="cpu")
@given(source=program(), sizes=size_sequence(), mode=st.sampled_from(MODES),
       aliasing=st.sampled_from(ALIASING), backend=st.sampled_from(BACKENDS))
def test_generated_size_programs_match_eager_at_every_size(source, sizes, mode, aliasing, backend):
    capture.reset()
    differential(source, sizes, mode, aliasing, False, backend)


@settings(max_examples=max(EXAMPLES // 2, 1), **COMMON)
@given(source=program(), sizes=size_sequence(), mode=st.sampled_from(MODES), backend=st.sampled_from(BACKENDS))
def test_generated_size_programs_train_like_eager_at_every_size(source, sizes, mode, backend):
    capture.reset()
    differential(source, sizes, mode, "separate", True, backend)


# ------------------------------------------------------------------ training-shaped programs

class TinyAttention(torch.nn.Module):
    """A training step's shape: projections, layer norm, causal attention over the
    sequence (mask from ``torch.arange`` of it), a pooled head and cross-entropy."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.qkv = torch.nn.Linear(6, 8), torch.nn.Linear(8, 24)
        self.norm, self.head = torch.nn.LayerNorm(8), torch.nn.Linear(8, 3)

    def forward(self, x, target):
        h = self.norm(torch.relu(self.inp(x)))
        q, k, v = self.qkv(h).split(8, dim=-1)
        seq = x.shape[1]
        causal = torch.arange(seq)[None, :] > torch.arange(seq)[:, None]
        scores = (q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))).masked_fill(causal, float("-inf"))
        out = h + torch.softmax(scores, -1) @ v
        logits = self.head(out.mean(1))
        return F.cross_entropy(logits, target), logits


TRAIN_SIZES = [(4, 8), (3, 5), (1, 7), (6, 8), (2, 1)]


# Each backend and each mode once (all six pairs cost 60 s of CI for little more).
@pytest.mark.parametrize("backend, mode", [("cpu", "none"), ("triton", "true"), ("cpu", "mark")])
def test_training_step_gradients_match_eager_at_every_size(backend, mode):
    eager = TinyAttention()
    model = copy.deepcopy(eager)
    compiled = capture.compile(model, backend=backend, dynamic={"true": True}.get(mode))
    for call, (batch, seq) in enumerate(TRAIN_SIZES):
        g = torch.Generator().manual_seed(call)
        x, target = torch.randn(batch, seq, 6, generator=g), torch.randint(0, 3, (batch,), generator=g)
        if mode == "mark":
            capture.mark_dynamic(x, [0, 1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", fx_graph.InternalErrorWarning)
            loss, logits = compiled(x, target)
            loss.backward()
        e_loss, e_logits = eager(x, target)
        e_loss.backward()
        where = f"call {call} at (batch, seq) = {(batch, seq)}, backend={backend}, dynamic={mode}"
        assert not [w for w in caught if issubclass(w.category, fx_graph.InternalErrorWarning)], where
        torch.testing.assert_close(logits, e_logits, rtol=1e-4, atol=1e-5, msg=lambda m: f"{where}: logits: {m}")
        for (name, p), e_p in zip(model.named_parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, e_p.grad, rtol=1e-4, atol=1e-5, msg=lambda m: f"{where}: {name}.grad: {m}")
            p.grad, e_p.grad = None, None
