"""Differential tests for graph breaks: hypothesis generates small programs as Python
source text (tensor ops, Python int control flow, for/while loops over ints,
data-dependent ``if`` on tensors, prints, ``.item()`` in arithmetic, list appends,
early returns, calls to helpers that break, ``torch.no_grad()`` blocks), ``exec``s them into functions, and compares capture
(backend="eager", and a third of them also backend="triton") against eager: outputs
and how they alias the inputs, printed text, raised exceptions, grad mode afterwards
and the list argument the program appends to.

The second setting's programs take ``(x, *rest, **kw)`` and append to ``kw["out"]``.
Every program starts by binding every variable it may read, so any statement can go
anywhere; all tensor variables keep shape (2, 3).
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import textwrap

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capture
from helpers_compare import assert_same, assert_same_aliasing, global_state, restore_global_state

TENSORS = ("x", "y", "a", "b")
INTS = ("n", "m")
CONSTS = (0.5, 1.0, 2.0, -1.0, 3.0)

PRELUDE = """\
a = x * 1.0
b = y + 0.0
n = 1
m = 2
acc = []
"""
EPILOGUE = "return (x, y, a, b), (n, m), acc"


# ------------------------------------------------------------------ grammar

@st.composite
def tensor_expr(draw, loop_vars=()):
    u = draw(st.sampled_from(TENSORS))
    v = draw(st.sampled_from(TENSORS))
    c = draw(st.sampled_from(CONSTS))
    k = draw(st.sampled_from(INTS + tuple(loop_vars)))
    forms = [
        f"{u} + {v}",
        f"{u} * {v}",
        f"({u} * {c}).tanh()",
        f"{u}.relu() - {v}",
        f"{u} + {v}.sum()",
        f"{u}.view(-1).view(2, 3) * {c}",
        f"{u}.view(3, 2).t() + {v}",
        f"{u} * {k}",
        f"torch.sigmoid({u}) + {c}",
        f"{u}.sum(0, keepdim=True) + {v}",
    ]
    return draw(st.sampled_from(forms))


@st.composite
def int_expr(draw, loop_vars=()):
    p = draw(st.sampled_from(INTS + tuple(loop_vars)))
    q = draw(st.sampled_from(INTS))
    c = draw(st.integers(0, 5))
    return draw(st.sampled_from([f"{p} + {c}", f"({p} * {q} + {c}) % 7", f"{p} - {q}", f"max({p}, {c})"]))


def indent(lines: list[str], by: int = 1) -> list[str]:
    return ["    " * by + line for line in lines]


@st.composite
def block(draw, depth, loop_vars, with_out, min_size=1, max_size=4):
    n = draw(st.integers(min_size, max_size))
    lines = []
    for _ in range(n):
        lines += draw(statement(depth, loop_vars, with_out))
    return lines


@st.composite
def statement(draw, depth, loop_vars, with_out):
    kinds = ["tensor", "tensor", "tensor", "int", "print", "item", "item_int", "append", "helper", "mid_expr",
             "tolist"]
    if loop_vars:
        kinds += ["loop_exit"]
    if with_out:
        kinds += ["append_out"]
    if depth < 2:
        kinds += ["if_int", "if_tensor", "for", "if_tensor", "for", "no_grad"]
        if depth == 0:
            kinds += ["while"]
    kinds += ["return"]
    kind = draw(st.sampled_from(kinds))
    t = draw(st.sampled_from(TENSORS[2:] + TENSORS[:1]))  # assign to a, b or x
    u = draw(st.sampled_from(TENSORS))
    i = draw(st.sampled_from(INTS))
    if kind == "tensor":
        return [f"{t} = {draw(tensor_expr(loop_vars))}"]
    if kind == "int":
        return [f"{i} = {draw(int_expr(loop_vars))}"]
    if kind == "print":
        const = draw(st.sampled_from(["'hello'", "42", "3.5", "None", "(1, 'two')"]))
        extra = draw(st.sampled_from(["", f", {i}", f", {u}.shape", f", len(acc)"]
                                     + [f", {lv}" for lv in loop_vars]))
        return [f"print({const}{extra})"]
    if kind == "item":
        c = draw(st.sampled_from(CONSTS))
        return [f"{t} = {t} * ({u}.mean().item() + {c})"]
    if kind == "item_int":
        return [f"{i} = {i} + int({u}.sum().item() > 0)"]
    if kind == "append":
        return [f"acc.append({draw(tensor_expr(loop_vars))})"]
    if kind == "append_out":
        return [f"out.append({u} * {draw(st.sampled_from(CONSTS))})"]
    if kind == "return":
        return [EPILOGUE]
    if kind == "helper":
        return [f"{t} = {draw(st.sampled_from(['noisy', 'gated']))}({u}, {i})"]
    if kind == "mid_expr":  # a break with values pending on the stack
        helper = draw(st.sampled_from(["noisy", "gated"]))
        c = draw(st.sampled_from(CONSTS))
        return [draw(st.sampled_from([f"{t} = {u} * {c} + {helper}({t}, {i})",
                                      f"acc.append({helper}({u}, {i}))",
                                      f"{t} = torch.cat([{u}, {helper}({t}, {i})], 0).view(2, 2, 3).sum(0)"]))]
    if kind == "tolist":
        return [f"{i} = {i} + len([v for v in {u}.view(-1).tolist() if v > 0])"]
    if kind == "loop_exit":
        c = draw(st.integers(0, 2))
        var = loop_vars[-1]
        # `continue` would skip a while loop's increment: only for-loops get it
        exit_ = draw(st.sampled_from(["break", "continue"])) if var.startswith("i") else "break"
        return [f"if {var} >= {c}:", "    " + exit_]
    if kind == "no_grad":
        return ["with torch.no_grad():"] + indent(draw(block(depth + 1, loop_vars, with_out, max_size=3)))
    if kind == "if_int":
        c = draw(st.integers(0, 4))
        lines = [f"if {i} > {c}:"] + indent(draw(block(depth + 1, loop_vars, with_out, max_size=3)))
        if draw(st.booleans()):
            lines += ["else:"] + indent(draw(block(depth + 1, loop_vars, with_out, max_size=3)))
        return lines
    if kind == "if_tensor":
        cond = draw(st.sampled_from([f"{u}.sum() > 0", f"{u}.max() > 1", f"({u} > 0).any()", f"{u}.mean() < 0"]))
        lines = [f"if {cond}:"] + indent(draw(block(depth + 1, loop_vars, with_out, max_size=3)))
        if draw(st.booleans()):
            lines += ["else:"] + indent(draw(block(depth + 1, loop_vars, with_out, max_size=3)))
        return lines
    if kind == "for":
        var = f"i{depth}"
        k = draw(st.integers(0, 3))
        body = draw(block(depth + 1, loop_vars + (var,), with_out, max_size=3))
        return [f"for {var} in range({k}):"] + indent(body)
    if kind == "while":
        var = f"w{depth}"
        k = draw(st.integers(0, 3))
        body = draw(block(depth + 1, loop_vars + (var,), with_out, max_size=3))
        return [f"{var} = 0", f"while {var} < {k}:"] + indent(body + [f"{var} += 1"])
    raise AssertionError(kind)


@st.composite
def program(draw, with_out=False):
    body = draw(block(0, (), with_out, min_size=2, max_size=6))
    if with_out:  # *args/**kwargs calling convention, and a list argument the program appends to
        header = ["def prog(x, *rest, **kw):", "    y = rest[0]", "    out = kw['out']"]
    else:
        header = ["def prog(x, y):"]
    lines = header + indent(PRELUDE.splitlines() + body + [EPILOGUE])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ running

HELPERS = """\
def noisy(t, k):
    print("noisy", k)
    return t * 2 + k


def gated(t, k):
    if t.sum() > k:
        return t - 1
    return t + k
"""


def define(source: str):
    ns = {"torch": torch}
    exec(compile(HELPERS, "<breaks_hypothesis_helpers>", "exec"), ns)
    exec(compile(source, "<breaks_hypothesis>", "exec"), ns)
    return ns["prog"]


def run(fn, args, with_out=False):
    buf = io.StringIO()
    state = global_state()
    with contextlib.redirect_stdout(buf):
        try:
            out, exc = (fn(*args[:-1], out=args[-1]) if with_out else fn(*args)), None
        except Exception as e:  # noqa: BLE001 - compared with eager
            out, exc = None, (type(e), str(e))
    after = global_state()
    restore_global_state(state)
    return out, exc, buf.getvalue(), after


def inputs(seed: int, with_out: bool, flip: bool, grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, generator=g, requires_grad=grad)
    y = torch.randn(2, 3, generator=g)
    if flip:
        with torch.no_grad():
            x, y = (-x).requires_grad_(grad), -y * 2
    return (x, y, []) if with_out else (x, y)


def differential(source: str, seed: int, with_out: bool, backend: str = "eager", grad: bool = False):
    fn = define(source)
    compiled = capture.compile(fn, backend=backend)
    # first call compiles, the second takes other branches (signs flipped), the
    # third repeats the first inputs (cache hits on every frame)
    for flip in (False, True, False):
        args = inputs(seed, with_out, flip, grad)
        e_args, c_args = copy.deepcopy(args), copy.deepcopy(args)
        e_out, e_exc, e_text, e_state = run(fn, e_args, with_out)
        c_out, c_exc, c_text, c_state = run(compiled, c_args, with_out)
        note = f"\n--- program ---\n{source}\n--- flip={flip} seed={seed} backend={backend} grad={grad}"
        assert c_exc == e_exc, f"exception {c_exc} != eager {e_exc}{note}"
        assert c_text == e_text, f"printed {c_text!r} != eager {e_text!r}{note}"
        assert c_state == e_state, f"global state after the call {c_state} != eager {e_state}{note}"
        try:
            assert_same(c_out, e_out)
            assert_same(c_args, e_args, "inputs after the call")
            assert_same_aliasing(c_out, c_args, e_out, e_args)
        except AssertionError as err:
            raise AssertionError(f"{err}{note}") from None


EXAMPLES = int(os.environ.get("CAPTURE_HYPOTHESIS_EXAMPLES", "60"))  # raise for a longer search
COMMON = dict(deadline=None, derandomize=True, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])


@settings(max_examples=EXAMPLES, **COMMON)
@given(source=program(), seed=st.integers(0, 2 ** 16), grad=st.booleans())
def test_generated_programs_match_eager(source, seed, grad):
    capture.reset()
    differential(source, seed, with_out=False, grad=grad)


@settings(max_examples=EXAMPLES, **COMMON)
@given(source=program(with_out=True), seed=st.integers(0, 2 ** 16))
def test_generated_programs_with_list_argument_side_effects(source, seed):
    capture.reset()
    differential(source, seed, with_out=True)


@settings(max_examples=max(EXAMPLES // 3, 1), **COMMON)
@given(source=program(), seed=st.integers(0, 2 ** 16), grad=st.booleans())
def test_generated_programs_match_eager_on_the_compiled_path(source, seed, grad):
    """The same programs through backend="triton" (each graph functionalized, kernels in
    the interpreter), an input that requires grad or not: also grad mode afterwards
    and requires_grad of every output."""
    capture.reset()
    differential(source, seed, with_out=False, backend="triton", grad=grad)


def test_grammar_produces_valid_programs():
    """A fixed program in the grammar's style runs both ways (sanity check of the harness)."""
    source = textwrap.dedent("""\
        def prog(x, y):
            a = x * 1.0
            b = y + 0.0
            n = 1
            m = 2
            acc = []
            for i0 in range(2):
                a = a + b
                print('hello', i0)
                if a.sum() > 0:
                    acc.append(a * 2)
            n = n + int(b.sum().item() > 0)
            return (x, y, a, b), (n, m), acc
        """)
    differential(source, 3, with_out=False)
