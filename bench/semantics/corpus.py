"""Programs of the semantics corpus and what running one can show (see the package
docstring): ``program`` registers, ``run_twice`` runs, ``differences`` compares."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import warnings

import torch


class ProgramWarning(UserWarning):
    """What programs of the corpus warn with (other warnings are not compared)."""


@dataclasses.dataclass(frozen=True)
class Program:
    family: str
    name: str
    fn: object
    inputs: object  # () -> tuple of arguments
    tc_whole: bool = True
    gap: str | None = None
    state: object = None  # () -> snapshot of module state the program changes
    reset: object = None  # () -> None: restore that state before a run
    between: object = None  # () -> None: run between the two calls (e.g. change a class attribute)

    @property
    def id(self) -> str:
        return f"{self.family}/{self.name}"


PROGRAMS: list = []


def program(family, inputs=None, tc_whole=True, gap=None, state=None, reset=None, between=None, name=None):
    """Register ``fn`` as a program of ``family`` (``inputs`` defaults to one (3,) tensor)."""
    def register(fn):
        make = inputs or (lambda: (torch.randn(3),))
        PROGRAMS.append(Program(family, name or fn.__name__, fn, make, tc_whole, gap, state, reset, between))
        return fn
    return register


@dataclasses.dataclass
class Outcome:
    value: object = None
    error: tuple | None = None  # (type, text) of the exception raised
    args_after: object = None
    printed: str = ""
    warned: tuple = ()
    state: object = None
    exception: BaseException | None = None  # the raw exception (for internal-error checks)


def fresh_inputs(prog: Program, seed: int = 0) -> tuple:
    torch.manual_seed(seed)
    return prog.inputs()


def run_outcome(prog: Program, fn, seed: int = 0, catch=(Exception,)) -> Outcome:
    """Run ``fn`` (the program or a compiled version) on fresh inputs and record all
    that can be observed. Exceptions in ``catch`` are recorded; others propagate."""
    args = fresh_inputs(prog, seed)
    out = Outcome()
    buf = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buf):
        warnings.simplefilter("always")
        try:
            out.value = fn(*args)
        except catch as e:  # noqa: BLE001 - the outcome is what we compare
            out.error = (type(e), str(e))
            out.exception = e
    out.printed = buf.getvalue()
    out.warned = tuple(str(w.message) for w in caught if issubclass(w.category, ProgramWarning))
    out.args_after = _snapshot(args)
    out.state = _snapshot(prog.state()) if prog.state is not None else None
    return out


def run_twice(prog: Program, fn, catch=(Exception,)) -> list:
    """Two calls on fresh inputs (seeds 0 and 1), ``prog.between`` in between, from the
    state ``prog.reset`` restores (the second call is the compiled cache-hit path)."""
    if prog.reset is not None:
        prog.reset()
    try:
        first = run_outcome(prog, fn, 0, catch)
        if prog.between is not None:
            prog.between()
        return [first, run_outcome(prog, fn, 1, catch)]
    finally:
        if prog.reset is not None:
            prog.reset()


def _snapshot(value):
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - not copyable: compare the live object
        return value


def differences(expected: Outcome, actual: Outcome) -> list[str]:
    """What differs between two outcomes (empty: the same)."""
    diffs = []
    if (expected.error is None) != (actual.error is None):
        diffs.append(f"raised: eager {_err(expected)} vs compiled {_err(actual)}")
    elif expected.error is not None:
        if expected.error[0] is not actual.error[0] or expected.error[1] != actual.error[1]:
            diffs.append(f"exception: eager {_err(expected)} vs compiled {_err(actual)}")
    else:
        diffs += same(expected.value, actual.value, "result")
    diffs += same(expected.args_after, actual.args_after, "arguments after the call")
    diffs += same(expected.state, actual.state, "module state")
    if expected.printed != actual.printed:
        diffs.append(f"printed {actual.printed!r}, eager printed {expected.printed!r}")
    if expected.warned != actual.warned:
        diffs.append(f"warned {actual.warned!r}, eager warned {expected.warned!r}")
    return diffs


def _err(o: Outcome) -> str:
    return "nothing" if o.error is None else f"{o.error[0].__name__}({o.error[1]!r})"


def same(a, b, path: str) -> list[str]:
    """Structural equality; tensors by dtype, shape, requires_grad and values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return [f"{path}: {type(b).__name__}, eager {type(a).__name__}"]
        if a.dtype != b.dtype or a.shape != b.shape or a.requires_grad != b.requires_grad:
            return [f"{path}: tensor {b.dtype}{tuple(b.shape)} rg={b.requires_grad}, "
                    f"eager {a.dtype}{tuple(a.shape)} rg={a.requires_grad}"]
        if not torch.allclose(a.detach(), b.detach(), rtol=1e-5, atol=1e-6, equal_nan=True):
            return [f"{path}: values differ: {b.detach()} vs eager {a.detach()}"]
        return []
    if type(a) is not type(b):
        return [f"{path}: {type(b).__name__} {b!r}, eager {type(a).__name__} {a!r}"]
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            return [f"{path}: keys {list(b.keys())}, eager {list(a.keys())}"]
        return [d for k in a for d in same(a[k], b[k], f"{path}[{k!r}]")]
    if isinstance(a, (list, tuple)) or type(a).__name__ == "deque":
        if len(a) != len(b):
            return [f"{path}: length {len(b)}, eager {len(a)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{path}[{i}]")]
    if isinstance(a, float):
        ok = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
        return [] if ok else [f"{path}: {b!r}, eager {a!r}"]
    if hasattr(a, "__dict__") and type(a).__eq__ is object.__eq__ and not isinstance(a, type):
        return same(vars(a), vars(b), f"{path}.__dict__")
    try:
        equal = a == b
        equal = bool(equal) if not hasattr(equal, "all") else bool(equal.all())
    except Exception:  # noqa: BLE001 - incomparable: identity decides
        equal = a is b
    return [] if equal else [f"{path}: {b!r}, eager {a!r}"]
