"""The Python-semantics corpus (bench/semantics/fam_*.py), eager vs capture.

Each program runs twice eagerly and twice through ``capture.compile(fullgraph=True)``
(and, if that breaks, without fullgraph), comparing returned values, raised
exceptions, mutated arguments, printed text, warnings and module state
(bench/semantics/judge.py). Required:

- never a wrong answer, never an internal error (for every program);
- one graph for every program torch.compile takes whole (``tc_whole``), except the
  ones marked ``gap`` -- those must break cleanly (capture.Unsupported with a reason),
  and a gap mark that capture no longer needs fails here until it is removed.

``python -m bench semantics`` prints the same verdicts as pass rates per family, next
to torch.compile's. A hypothesis test below adds random container programs (dict,
list, deque, Counter operations around tensors; graph breaks allowed, answers must
match); ``CAPTURE_HYPOTHESIS_EXAMPLES`` raises its example count for local runs.
"""
from __future__ import annotations

import os
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capture
from bench.semantics.all_programs import load_all
from bench.semantics.corpus import Program, differences, run_twice
from bench.semantics.judge import CaptureFrontend, judge

PROGRAMS = load_all()
FRONTEND = CaptureFrontend()


@pytest.mark.parametrize("prog", PROGRAMS, ids=[p.id for p in PROGRAMS])
def test_program_matches_eager(prog):
    verdict = judge(prog, FRONTEND)
    assert verdict.status not in ("wrong", "error"), f"{prog.id}: {verdict.status}: {verdict.detail}"
    if prog.gap:
        assert verdict.status == "break", \
            f"{prog.id} is marked gap={prog.gap!r} but capture now takes it whole: remove the mark"
    elif prog.tc_whole:
        assert verdict.status == "whole", f"{prog.id}: torch.compile takes it whole; capture: {verdict.detail}"


# ------------------------------------------------ random container programs

EXAMPLES = int(os.environ.get("CAPTURE_HYPOTHESIS_EXAMPLES", "25"))  # raise for a longer search

KEYS = ("a", "b", "c")
STATEMENTS = [
    "d[{k}] = x * {n}",
    "d.setdefault({k}, x + {n})",
    "v = d.pop({k}, None)\nif v is not None:\n    acc.append(v)",
    "d.update({{{k}: x - {n}}})",
    "acc.append(len(d))",
    "acc.append(sorted(d.keys()))",
    "acc.append({k} in d)",
    "acc.append(d.get({k}, {n}))",
    "keys = d.keys()\nd[{k}] = x\nacc.append(len(keys))",
    "acc.extend(list(d.values()))",
    "xs.append(x * {n})",
    "if xs:\n    acc.append(xs.pop(0))",
    "xs.insert(0, x + {n})",
    "if xs:\n    xs[0].add_({n})",
    "xs.reverse()",
    "q.append({n})\nq.appendleft(-{n})",
    "if q:\n    acc.append(q.popleft())",
    "cnt[{k}] += {n}",
    "acc.append(dict(cnt))",
    "del d[{k}]" if False else "d.pop({k}, None)",
]


@st.composite
def container_program(draw):
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        template = draw(st.sampled_from(STATEMENTS))
        lines.append(template.format(k=repr(draw(st.sampled_from(KEYS))), n=draw(st.integers(1, 3))))
    return "\n".join(lines)


def _make(body: str):
    source = ("import collections\n"
              "def prog(x, xs, d):\n"
              "    acc = []\n"
              "    q = collections.deque()\n"
              "    cnt = collections.Counter()\n"
              + textwrap.indent(body, "    ") + "\n"
              "    return acc, d, xs, list(q), cnt\n")
    ns: dict = {}
    exec(compile(source, "<container program>", "exec"), ns)
    return ns["prog"]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(container_program())
def test_random_container_programs_match_eager(body):
    fn = _make(body)
    prog = Program("containers", "random", fn,
                   lambda: (torch.randn(3), [torch.randn(3)], {"a": torch.randn(3)}))
    expected = run_twice(prog, fn)
    compiled = capture.compile(fn, backend="eager")  # breaks allowed (deque, Counter): answers must match
    try:
        actual = run_twice(prog, compiled)
    finally:
        capture.reset()
    diffs = [d for e, a in zip(expected, actual) for d in differences(e, a)]
    assert not diffs, f"program:\n{body}\n" + "\n".join(diffs)
