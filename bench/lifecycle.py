"""``python -m bench lifecycle``: does a long-running process keep what it compiled?

A notebook, a server or a training job builds and drops models for hours. This mode
compiles and drops ``--functions`` functions (each a fresh code object, as ``exec`` or
a re-run notebook cell makes them) and ``--modules`` modules (new instances of one
block class), then ``capture.reset()``, and reports the RSS growth per 1,000 of each
after ``gc.collect()`` (and glibc's ``malloc_trim``), whether every dropped module's
weak reference is dead (before ``reset``, and after it), and the tensors still alive.
A first round of the same work warms up every process-wide cache (imports, torch's
dispatch tables, the allocator's high-water mark) and is not counted. Then one compiled
function is called ``--calls`` times: its RSS must stay flat.

Goal (issue 14): growth <= 2 MB per 1,000 after reset, every module collected, flat RSS
under repeated calls. The machine may be shared: RSS is not a timing and barely moves
with load, but the default backend compiles C kernels (seconds on a busy machine).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import time
import warnings
import weakref

import torch
from torch import nn

import capture

GOAL_MB_PER_1000 = 2.0


class Block(nn.Module):
    """A residual MLP block: the 'instantiate, compile, run, drop' unit."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        return self.norm(x + self.fc2(self.fc1(x).relu()))


FUNCTION_SOURCE = """
def step(x):
    y = x * 3.0 + 1.0
    return y.sin().sum(0)
"""


def rss_mb() -> float:
    """Resident set size after a full collection and returning free heap to the OS."""
    while gc.collect():  # finalizers run in one pass can leave garbage for the next
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: RSS keeps the allocator's free pages
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def live_tensors() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance on some torch objects warns of deprecations
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def compile_and_drop_functions(n: int, backend: str) -> None:
    x = torch.randn(16, 32)
    for _ in range(n):
        namespace = {"torch": torch}
        exec(FUNCTION_SOURCE, namespace)  # a new code object each time
        capture.compile(namespace["step"], backend=backend)(x)


def compile_and_drop_modules(n: int, backend: str) -> list:
    """Weak references to the ``n`` modules compiled, run and dropped."""
    refs, x = [], torch.randn(16, 32)
    for _ in range(n):
        block = Block()
        refs.append(weakref.ref(block))
        capture.compile(block, backend=backend)(x)
        del block
    return refs


def one_round(functions: int, modules: int, backend: str) -> dict:
    start, before = time.perf_counter(), rss_mb()
    compile_and_drop_functions(functions, backend)
    after_functions = rss_mb()
    refs = compile_and_drop_modules(modules, backend)
    after_modules = rss_mb()
    alive_before_reset = sum(r() is not None for r in refs)
    capture.reset()
    after_reset = rss_mb()
    return dict(functions_mb=after_functions - before, modules_mb=after_modules - after_functions,
                total_mb=after_reset - before, modules_alive_before_reset=alive_before_reset,
                modules_alive_after_reset=sum(r() is not None for r in refs), seconds=time.perf_counter() - start)


def repeated_calls(calls: int, backend: str) -> dict:
    """RSS after a tenth of ``calls`` and after all of them (one compiled function)."""
    namespace = {"torch": torch}
    exec(FUNCTION_SOURCE, namespace)
    step = capture.compile(namespace["step"], backend=backend)
    x = torch.randn(16, 32)
    for _ in range(calls // 10):
        step(x)
    early = rss_mb()
    for _ in range(calls - calls // 10):
        step(x)
    late = rss_mb()
    capture.reset()
    return dict(calls=calls, rss_after_tenth_mb=early, growth_mb=late - early)


def measure(functions: int = 1000, modules: int = 200, calls: int = 100_000, backend: str = "codegen") -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. Triton without a GPU: said once in the table
        capture.reset()
        one_round(functions, modules, backend)  # warm-up: process-wide caches fill here
        tensors = live_tensors()
        counted = one_round(functions, modules, backend)
        calls_row = repeated_calls(calls, backend)
    counted["tensors_left"] = live_tensors() - tensors
    counted["mb_per_1000"] = counted["total_mb"] * 1000 / max(functions + modules, 1)
    return dict(backend=backend, functions=functions, modules=modules, round=counted, calls=calls_row)


def verdict(result: dict) -> bool:
    r = result["round"]
    return (r["mb_per_1000"] <= GOAL_MB_PER_1000 and r["modules_alive_before_reset"] == 0
            and r["modules_alive_after_reset"] == 0 and result["calls"]["growth_mb"] <= 1.0)


def print_report(result: dict) -> None:
    r, c = result["round"], result["calls"]
    print(f"backend {result['backend']}: {result['functions']} functions and {result['modules']} modules "
          f"compiled, run and dropped ({r['seconds']:.0f} s, after a warm-up round of the same)")
    print(f"  RSS growth: functions {r['functions_mb']:+.1f} MB, modules {r['modules_mb']:+.1f} MB, "
          f"after reset {r['total_mb']:+.1f} MB = {r['mb_per_1000']:+.2f} MB per 1,000 "
          f"(goal <= {GOAL_MB_PER_1000})")
    print(f"  dropped modules still alive: {r['modules_alive_before_reset']} before reset, "
          f"{r['modules_alive_after_reset']} after; tensors left: {r['tensors_left']}")
    print(f"  one function called {c['calls']:,} times: RSS {c['growth_mb']:+.2f} MB after the first tenth")
    print("  verdict:", "ok" if verdict(result) else "NOT MET")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench lifecycle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--modules", type=int, default=200)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--backend", default="codegen", help="codegen (default), eager, cpu, triton")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print_report(measure(args.functions, args.modules, args.calls, args.backend))


if __name__ == "__main__":
    main()
