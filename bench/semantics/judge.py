"""Run one corpus program through a compiler and say how it went.

Verdicts:
- ``whole``: compiled with fullgraph=True (one graph, no break) and both calls'
  outcomes equal eager's;
- ``break``: fullgraph=True refused it with the compiler's own "unsupported" error,
  and without fullgraph (graph breaks allowed) both outcomes equal eager's;
- ``wrong``: an outcome differs from eager (a silent wrong answer);
- ``error``: the compiler failed in itself (capture.InternalError, a crash).

Compilers: ``capture`` (``capture.compile(..., backend="eager")``) and, in bench only,
``torch.compile`` (``backend="eager"``) -- the backends run the captured graphs as they
are, so this measures the front ends.
"""
from __future__ import annotations

import dataclasses

import capture
from bench.semantics.corpus import Program, differences, run_twice


@dataclasses.dataclass
class Verdict:
    status: str  # whole | break | wrong | error
    detail: str = ""


class CaptureFrontend:
    name = "capture"
    user_errors = (Exception,)

    def reset(self):
        capture.reset()

    def compile(self, fn, fullgraph):
        return capture.compile(fn, backend="eager", fullgraph=fullgraph)

    def classify(self, exc) -> str | None:
        """"break" / "error" for the compiler's own exceptions, None for the program's."""
        if isinstance(exc, capture.InternalError):
            return "error"
        if isinstance(exc, capture.Unsupported):
            return "break"
        return None


class TorchCompileFrontend:
    name = "torch.compile"

    def __init__(self):
        import torch._dynamo  # bench only: the baseline
        self._dynamo = torch._dynamo

    def reset(self):
        self._dynamo.reset()

    def compile(self, fn, fullgraph):
        import torch
        return torch.compile(fn, backend="eager", fullgraph=fullgraph)

    def classify(self, exc) -> str | None:
        exc_mod = self._dynamo.exc
        if isinstance(exc, exc_mod.InternalTorchDynamoError):
            return "error"
        if isinstance(exc, (exc_mod.Unsupported, exc_mod.UserError)):
            return "break"
        if isinstance(exc, exc_mod.TorchDynamoException) or type(exc).__module__.startswith("torch._dynamo"):
            return "break"
        return None


def _compiler_failure(frontend, outcomes) -> str | None:
    for o in outcomes:
        if o.exception is not None:
            kind = frontend.classify(o.exception)
            if kind is not None:
                return kind
    return None


def judge(prog: Program, frontend, expected=None) -> Verdict:
    """Verdict for ``prog`` under ``frontend`` (``expected``: eager outcomes, computed if None)."""
    expected = expected or run_twice(prog, prog.fn)
    frontend.reset()
    try:
        whole = run_twice(prog, frontend.compile(prog.fn, fullgraph=True))
    finally:
        frontend.reset()
    kind = _compiler_failure(frontend, whole)
    if kind == "error":
        return Verdict("error", _first_error(whole))
    if kind is None:
        diffs = [d for e, a in zip(expected, whole) for d in differences(e, a)]
        return Verdict("wrong", "; ".join(diffs)) if diffs else Verdict("whole")
    reason = _first_error(whole)
    try:
        broken = run_twice(prog, frontend.compile(prog.fn, fullgraph=False))
    finally:
        frontend.reset()
    kind = _compiler_failure(frontend, broken)
    if kind is not None:
        return Verdict("error", f"without fullgraph: {_first_error(broken)}")
    diffs = [d for e, a in zip(expected, broken) for d in differences(e, a)]
    return Verdict("wrong", "; ".join(diffs)) if diffs else Verdict("break", reason)


def _first_error(outcomes) -> str:
    for o in outcomes:
        if o.exception is not None:
            return f"{type(o.exception).__name__}: {str(o.exception).splitlines()[0][:300]}"
    return ""
