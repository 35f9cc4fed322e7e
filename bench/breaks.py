"""``python -m bench.breaks``: programs with graph breaks, capture vs torch.compile.

Each program runs through ``capture.explain`` and ``torch._dynamo.explain``; the table
shows, side by side, graphs, graph breaks and captured ops of both, and whether each
compiler's results (outputs, printed text, state it mutates) match eager, checked with
``capture.compile(backend="eager")`` and ``torch.compile(backend="eager")``.

Counting:
- *graphs*: graphs handed to the backend while running the program once.
- *breaks*: what each ``explain`` reports as ``graph_break_count``; both define it as
  ``graph_count - 1`` (so -1 when nothing is captured). The ``brk*`` column clamps it at
  0; the totals line also gives how many break reasons each listed (capture lists every
  break, including one that makes a whole frame run eagerly).
- *ops*: call_function / call_method / call_module nodes of all graphs, ``getitem``
  excluded, counted the same way for both.

``measure()`` returns one dict per program (used by tests); ``main()`` prints the table,
a totals line and the verdict "capture breaks <= torch.compile breaks: yes/no".
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import io
import logging
import operator
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

import capture


# ------------------------------------------------------------------ programs

@dataclasses.dataclass
class Program:
    name: str
    make: object  # () -> callable (function or nn.Module)
    inputs: object  # () -> tuple of args
    setup: object = None  # () -> None: reset global state before each run
    state: object = None  # () -> snapshot of global state after a run


def t(*shape):
    return torch.randn(*shape)


def print_mid(x):
    y = x.sin() + 1
    print("between", tuple(y.shape))
    return y * 2


def item_if(x):
    m = x.mean()
    if m.item() > 0:
        return x - m
    return x + m


def tolist_loop(x, idx):
    picked = []
    for i in idx.tolist():
        picked.append(x[i] * 2)
    return torch.stack(picked).sum()


def data_dependent_if(x, y):
    a = x * y
    if a.sum() > 0:
        b = a + 1
    else:
        b = a - 1
    return b.relu()


def data_dependent_while(x):
    steps = 0
    while x.abs().max() > 1:
        x = x / 2
        steps += 1
    return x, steps


def time_call(x):
    start = time.time()
    y = x.cos() * 2
    return y + 1, time.time() >= start


def numpy_call(x):
    y = x + 1
    a = np.sin(y.numpy())
    return torch.from_numpy(a) * 2


def _squares(n):
    for i in range(n):
        yield i * i


def generator_next(x):
    g = _squares(4)
    y = x + next(g)
    y = y * next(g)
    return y + next(g)


def id_builtin(x, y):
    z = x * 2
    return z + 1 if id(x) == id(y) else z - 1


def _noisy_helper(v):
    v = v * 3
    print("helper", tuple(v.shape))
    return v + 1


def inlined_helper_print(x):
    y = x + 1
    z = _noisy_helper(y)
    return z.sigmoid()


def three_breaks(x):
    a = x + 1
    print("one")
    b = a * 2
    k = b.max().item()
    c = b - a * k
    if c.sum() > 0:
        c = c * 10
    return a, b, c


def loop_print(x):
    for i in range(3):
        x = x * 2 + i
        print("step", i)
    return x


def no_grad_print(x, w):
    y = x * w
    with torch.no_grad():
        z = y * 2
        print("inside no_grad")
        z = z + 1
    return y + z


class Tracker:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        print("enter", self.name)
        return self

    def __exit__(self, *exc):
        print("exit", self.name)
        return False


def user_context_manager(x):
    y = x + 1
    with Tracker("blk"):
        y = y * 2
    return y - 1


def try_except_print(x, d):
    y = x * 2
    try:
        v = d["k"]
    except KeyError:
        print("missing")
        v = 0
    return y + v


EVENTS: list = []


def global_append_print(x):
    EVENTS.append("start")
    y = x + 1
    EVENTS.append(y.sum())
    print("events", len(EVENTS))
    return y * 2


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.counter = 0

    def forward(self, x):
        self.counter += 1
        h = self.lin(x)
        print("forward", self.counter)
        return h.relu() * self.counter


def class_def_inside(x):
    y = x.relu()

    class Box:
        def __init__(self, v):
            self.v = v

    return Box(y + 1).v * 2


def stdout_write(x):
    y = x + 1
    sys.stdout.write("written\n")
    return y * 2


_user_log = logging.getLogger("bench.breaks.user")


def logging_call(x):
    y = x * 2
    _user_log.info("sum %s", 1)
    return y + 1


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        if h.mean() > 0:
            return self.b(h).relu()
        return self.b(-h)


_COUNTING = Counting()


def _reset_events():
    EVENTS.clear()


def _reset_counting():
    _COUNTING.counter = 0


def programs() -> list[Program]:
    torch.manual_seed(0)
    gate = Gate()
    return [
        Program("print_mid", lambda: print_mid, lambda: (t(8),)),
        Program("item_if", lambda: item_if, lambda: (t(8),)),
        Program("tolist_loop", lambda: tolist_loop, lambda: (t(5), torch.tensor([0, 3, 4]))),
        Program("data_dependent_if", lambda: data_dependent_if, lambda: (t(4), t(4))),
        Program("data_dependent_while", lambda: data_dependent_while, lambda: (t(4) * 10,)),
        Program("time_call", lambda: time_call, lambda: (t(4),)),
        Program("numpy_call", lambda: numpy_call, lambda: (t(4),)),
        Program("generator_next", lambda: generator_next, lambda: (t(4),)),
        Program("id_builtin", lambda: id_builtin, lambda: (t(4), t(4))),
        Program("inlined_helper_print", lambda: inlined_helper_print, lambda: (t(4),)),
        Program("three_breaks", lambda: three_breaks, lambda: (t(4),)),
        Program("loop_print", lambda: loop_print, lambda: (t(4),)),
        Program("no_grad_print", lambda: no_grad_print, lambda: (t(4), t(4).requires_grad_())),
        Program("user_context_manager", lambda: user_context_manager, lambda: (t(4),)),
        Program("try_except_print", lambda: try_except_print, lambda: (t(4), {})),
        Program("global_append_print", lambda: global_append_print, lambda: (t(4),), setup=_reset_events,
                state=lambda: list(EVENTS)),
        Program("module_counter_print", lambda: _COUNTING, lambda: (t(2, 4),), setup=_reset_counting,
                state=lambda: _COUNTING.counter),
        Program("class_def_inside", lambda: class_def_inside, lambda: (t(4),)),
        Program("stdout_write", lambda: stdout_write, lambda: (t(4),)),
        Program("logging_call", lambda: logging_call, lambda: (t(4),)),
        Program("module_data_dependent_gate", lambda: gate, lambda: (t(2, 4),)),
    ]


# ------------------------------------------------------------------ measuring

def _count_ops(graphs) -> int:
    n = 0
    for gm in graphs:
        for node in gm.graph.nodes:
            if node.op in ("call_function", "call_method", "call_module") and node.target is not operator.getitem:
                n += 1
    return n


def _close(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.allclose(a.detach(), b.detach(), equal_nan=True))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _run(prog: Program, fn, args):
    if prog.setup:
        prog.setup()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            out, exc = fn(*args), None
        except Exception as e:  # noqa: BLE001 - compared with eager
            out, exc = None, (type(e).__name__, str(e))
    state = copy.deepcopy(prog.state()) if prog.state else None
    return out, exc, buf.getvalue(), state


def _matches(prog: Program, compiled, target, args) -> tuple[bool, str]:
    e_args, c_args = copy.deepcopy(args), copy.deepcopy(args)
    e = _run(prog, target, e_args)
    c = _run(prog, compiled, c_args)
    for what, a, b in (("exception", c[1], e[1]), ("printed text", c[2], e[2]), ("state", c[3], e[3]),
                       ("inputs", c_args, e_args), ("output", c[0], e[0])):
        if not _close(a, b):
            return False, f"{what}: {a!r} != eager {b!r}"[:300]
    return True, ""


def _first_line(text: str) -> str:
    text = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return text[:140]


def _dynamo_where(reason) -> str:
    stack = getattr(reason, "user_stack", None) or []
    if not stack:
        return "?"
    frame = stack[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"


def measure_one(prog: Program) -> dict:
    import torch._dynamo  # the baseline we compare against (bench only)

    target = prog.make()
    args = prog.inputs()
    silent = io.StringIO()

    capture.reset()
    if prog.setup:
        prog.setup()
    with contextlib.redirect_stdout(silent):
        cap = capture.explain(target)(*copy.deepcopy(args))
    capture.reset()
    cap_ok, cap_why = _matches(prog, capture.compile(target, backend="eager"), target, args)
    capture.reset()

    torch._dynamo.reset()
    if prog.setup:
        prog.setup()
    with contextlib.redirect_stdout(silent), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn = torch._dynamo.explain(target)(*copy.deepcopy(args))
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tc_ok, tc_why = _matches(prog, torch.compile(target, backend="eager"), target, args)
    torch._dynamo.reset()

    return dict(
        program=prog.name,
        capture_graphs=cap.graph_count, capture_breaks=cap.graph_break_count,
        capture_breaks_normalized=max(cap.graph_count - 1, 0), capture_ops=_count_ops(cap.graphs),
        capture_reasons=[f"{r.reason} @ {r.where.rsplit('/', 1)[-1]}" for r in cap.break_reasons],
        capture_matches_eager=cap_ok, capture_mismatch=cap_why,
        torch_compile_graphs=dyn.graph_count, torch_compile_breaks=dyn.graph_break_count,
        torch_compile_breaks_normalized=max(dyn.graph_count - 1, 0), torch_compile_ops=_count_ops(dyn.graphs),
        torch_compile_reasons=[f"{_first_line(r.reason)} @ {_dynamo_where(r)}" for r in dyn.break_reasons],
        torch_compile_break_reasons=len(dyn.break_reasons),
        torch_compile_matches_eager=tc_ok, torch_compile_mismatch=tc_why,
    )


def measure(names=None) -> list[dict]:
    """One row per program (see ``measure_one``); ``names`` selects programs."""
    import torch._dynamo

    quiet = [logging.getLogger(name) for name in ("torch._dynamo", "torch._logging", "capture")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # dynamo's graph-break warnings, capture's internal-error fallbacks (both in the rows)
        logger.setLevel(logging.CRITICAL)
    rows = []
    try:
        for prog in programs():
            if names and prog.name not in names:
                continue
            rows.append(measure_one(prog))
            torch._dynamo.reset()
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return rows


def totals(rows: list[dict]) -> dict:
    keys = ("capture_graphs", "capture_breaks", "capture_breaks_normalized", "capture_ops", "torch_compile_graphs",
            "torch_compile_breaks", "torch_compile_breaks_normalized", "torch_compile_ops")
    out = {k: sum(r[k] for r in rows) for k in keys}
    out["torch_compile_break_reasons"] = sum(r["torch_compile_break_reasons"] for r in rows)
    out["capture_matches_eager"] = sum(r["capture_matches_eager"] for r in rows)
    out["torch_compile_matches_eager"] = sum(r["torch_compile_matches_eager"] for r in rows)
    return out


def verdict(rows: list[dict]) -> bool:
    """Compare breaks per program as max(graphs - 1, 0): torch.compile's raw count is -1
    for a frame it skips entirely, which would reward capturing nothing."""
    tot = totals(rows)
    return tot["capture_breaks_normalized"] <= tot["torch_compile_breaks_normalized"]


def print_table(rows: list[dict], details: bool = True, file=None):
    file = file or sys.stdout
    header = (f"{'program':<28} | {'capture: graphs':>15} {'breaks':>6} {'brk*':>4} {'ops':>4} {'ok':>3} | "
              f"{'torch.compile: graphs':>21} {'breaks':>6} {'brk*':>4} {'ops':>4} {'ok':>3}")
    print(header, file=file)
    print("-" * len(header), file=file)

    def yn(b):
        return "yes" if b else "NO"
    for r in rows:
        flag = "  <- capture breaks more" if r["capture_breaks"] > r["torch_compile_breaks"] else ""
        print(f"{r['program']:<28} | {r['capture_graphs']:>15} {r['capture_breaks']:>6} "
              f"{r['capture_breaks_normalized']:>4} {r['capture_ops']:>4} {yn(r['capture_matches_eager']):>3} | "
              f"{r['torch_compile_graphs']:>21} {r['torch_compile_breaks']:>6} "
              f"{r['torch_compile_breaks_normalized']:>4} {r['torch_compile_ops']:>4} "
              f"{yn(r['torch_compile_matches_eager']):>3}{flag}", file=file)
    print("-" * len(header), file=file)
    tot = totals(rows)
    n = len(rows)
    print(f"{'TOTAL (' + str(n) + ' programs)':<28} | {tot['capture_graphs']:>15} {tot['capture_breaks']:>6} "
          f"{tot['capture_breaks_normalized']:>4} {tot['capture_ops']:>4} {tot['capture_matches_eager']:>3} | "
          f"{tot['torch_compile_graphs']:>21} {tot['torch_compile_breaks']:>6} "
          f"{tot['torch_compile_breaks_normalized']:>4} {tot['torch_compile_ops']:>4} "
          f"{tot['torch_compile_matches_eager']:>3}", file=file)
    capture_reasons = sum(len(r["capture_reasons"]) for r in rows)
    print("(brk* = max(graphs - 1, 0) for both; ok = results match eager; break reasons listed: capture "
          f"{capture_reasons}, torch.compile {tot['torch_compile_break_reasons']})", file=file)
    if details:
        worse = [r for r in rows if r["capture_breaks"] > r["torch_compile_breaks"]
                 or r["capture_breaks_normalized"] > r["torch_compile_breaks_normalized"]
                 or r["capture_ops"] < r["torch_compile_ops"]
                 or not r["capture_matches_eager"] or not r["torch_compile_matches_eager"]]
        if worse:
            print("\nPrograms where capture breaks more or captures fewer ops, or a result differs from eager:",
                  file=file)
        for r in worse:
            what = []
            if r["capture_breaks"] > r["torch_compile_breaks"]:
                what.append("more breaks")
            if r["capture_ops"] < r["torch_compile_ops"]:
                what.append(f"fewer ops captured ({r['capture_ops']} vs {r['torch_compile_ops']})")
            print(f"  {r['program']}: {', '.join(what)}", file=file)
            for reason in r["capture_reasons"]:
                print(f"    capture:       {reason}", file=file)
            for reason in r["torch_compile_reasons"]:
                print(f"    torch.compile: {reason}", file=file)
            if not r["capture_matches_eager"]:
                print(f"    capture result differs: {r['capture_mismatch']}", file=file)
            if not r["torch_compile_matches_eager"]:
                print(f"    torch.compile result differs: {r['torch_compile_mismatch']}", file=file)
    print(f"\ncapture breaks <= torch.compile breaks: {'yes' if verdict(rows) else 'no'} "
          f"(per program max(graphs - 1, 0): {tot['capture_breaks_normalized']} vs "
          f"{tot['torch_compile_breaks_normalized']}; raw graph_break_count sums, where torch.compile counts -1 "
          f"for a frame it skips: {tot['capture_breaks']} vs {tot['torch_compile_breaks']}; ops captured: "
          f"{tot['capture_ops']} vs {tot['torch_compile_ops']})", file=file)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.breaks", description=__doc__.splitlines()[0])
    parser.add_argument("programs", nargs="*", help="only these programs (default: all)")
    parser.add_argument("--brief", action="store_true", help="no per-program break reasons")
    args = parser.parse_args(argv)
    rows = measure(args.programs or None)
    print_table(rows, details=not args.brief)
    return rows


if __name__ == "__main__":
    main()
