"""Per-call overhead (compiled minus eager) of capture and torch.compile as models grow.

Cases: a one-op function, a function of 8 tensor arguments, a 100-parameter model,
and sweeps over the number of tensor arguments and of parameters, so the hit-path
cost (hook + guards + rewritten frame) can be read against size. Both compilers use
their "eager" backend, so the graph itself costs the same. A second table sets the
identity path (one instance of a module class compiled) against the entry that 12
instances of the class share (guarded by structure, capture.sharing).
"""
from __future__ import annotations

import argparse
import warnings

import torch
from torch import nn

import capture
from bench.timing import per_call_interleaved
from capture.state import FRAMES


def one_op(x):
    return x + 1


def eight_tensors(a, b, c, d, e, f, g, h):
    return a + b + c + d + e + f + g + h


def n_tensor_function(n: int):
    names = ", ".join(f"t{i}" for i in range(n))
    namespace: dict = {}
    exec(f"def add_{n}({names}):\n    return " + " + ".join(f"t{i}" for i in range(n)), namespace)
    return namespace[f"add_{n}"]


class Stack(nn.Module):
    """``layers`` Linear layers: 2 parameters each."""

    def __init__(self, layers: int, width: int = 4):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(layers)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def cases(sweep: bool):
    torch.manual_seed(0)
    rows = [("one-op", one_op, (torch.randn(8),)),
            ("8 tensors", eight_tensors, tuple(torch.randn(8) for _ in range(8))),
            ("100 params", Stack(50).eval(), (torch.randn(2, 4),))]
    if sweep:
        rows += [(f"{n} tensors", n_tensor_function(n), tuple(torch.randn(4) for _ in range(n))) for n in (1, 4, 16, 32)]
        rows += [(f"{2 * n} params", Stack(n).eval(), (torch.randn(2, 4),)) for n in (5, 25, 100)]
    return rows


def measure(calls: int = 200, repeats: int = 7, sweep: bool = False) -> list[dict]:
    import torch._dynamo  # the baseline (bench only)
    out = []
    for name, fn, args in cases(sweep):
        capture.reset()
        torch._dynamo.reset()
        cap = capture.compile(fn, backend="eager")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tc = torch.compile(fn, backend="eager")
        with torch.no_grad():
            times = per_call_interleaved({"eager": fn, "capture": cap, "torch.compile": tc}, args, calls, repeats)
            ok = torch.allclose(cap(*args), fn(*args)) and torch.allclose(tc(*args), fn(*args))
        eager = times["eager"][0]
        guard_us = _guard_time(fn, args) * 1e6
        dynamic_guard_us = _dynamic_guard_time(fn, args) * 1e6
        cap_over = (times["capture"][0] - eager) * 1e6
        tc_over = (times["torch.compile"][0] - eager) * 1e6
        out.append(dict(case=name, eager_us=eager * 1e6, capture_overhead_us=cap_over, capture_guard_us=guard_us,
                        capture_dynamic_guard_us=dynamic_guard_us,
                        torch_compile_overhead_us=tc_over, correct=bool(ok),
                        capture_time_vs_torch_compile=times["capture"][0] / times["torch.compile"][0]))
    return out


class Block(nn.Module):
    """A pre-norm MLP block (6 parameters): the unit of the compile-each-block pattern."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)

    def forward(self, x):
        return x + self.fc2(self.fc1(self.norm(x)).relu())


def sharing_cases():
    """(name, make a module, input): instances of one class, alone or 12 of them."""
    return [("block", Block, torch.randn(4, 16)), ("100 params", lambda: Stack(50).eval(), torch.randn(2, 4))]


def measure_sharing(calls: int = 200, repeats: int = 7) -> list[dict]:
    """Per-call overhead and guard time of one instance's entry (identity: one id check,
    the tree behind a dict watch, parameters bound) against the entry 12 instances of
    the class share (structure: types, settings and every parameter checked and read)."""
    out = []
    for name, make, x in sharing_cases():
        for path, instances in (("identity", 1), ("structure", 12)):
            capture.reset()
            torch.manual_seed(0)
            modules = [make() for _ in range(instances)]
            compiled = [capture.compile(m, backend="eager") for m in modules]  # all before any call
            with torch.no_grad():
                for c in compiled:
                    c(x)
                module, cm = modules[-1], compiled[-1]
                times = per_call_interleaved({"eager": module, "capture": cm}, (x,), calls, repeats)
                ok = torch.allclose(cm(x), module(x))
            graphs = sum(len(r.entries) for r in FRAMES.values())
            out.append(dict(case=name, path=path, instances=instances, graphs=graphs, correct=bool(ok),
                            eager_us=times["eager"][0] * 1e6,
                            capture_overhead_us=(times["capture"][0] - times["eager"][0]) * 1e6,
                            capture_guard_us=_guard_time(module, (x,), entry=-1) * 1e6))
    return out


def print_sharing_table(rows):
    print(f"\n{'module':<12} {'path':<10} {'instances':>9} {'graphs':>6} {'eager µs':>9} {'capture +µs':>12} "
          f"{'guard µs':>9} {'ok':>3}")
    for r in rows:
        print(f"{r['case']:<12} {r['path']:<10} {r['instances']:>9} {r['graphs']:>6} {r['eager_us']:>9.1f} "
              f"{r['capture_overhead_us']:>12.1f} {r['capture_guard_us']:>9.2f} {'yes' if r['correct'] else 'NO':>3}")
    print("(identity: one instance compiled, its entry checks one id and its tree behind a dict watch; structure: "
          "12 instances compiled, one entry shared, every member's type and parameter checked on each call)")


def _guard_time(fn, args, calls: int = 2000, entry: int = 0) -> float:
    """Seconds one call of capture's generated guard takes on ``args`` (the hit path's check)."""
    import timeit
    from capture import _C
    func, full_args = (type(fn).forward, (fn,) + tuple(args)) if isinstance(fn, nn.Module) else (fn, tuple(args))
    entries = _C.get_cache(func.__code__) or []
    if not entries:
        return float("nan")
    guard = entries[entry][0]
    with torch.no_grad():
        assert guard(func, *full_args) is True
        return min(timeit.repeat(lambda: guard(func, *full_args), number=calls, repeat=5)) / calls


def _dynamic_guard_time(fn, args) -> float:
    """The same with every input size symbolic (``dynamic=True``): shape bound once,
    static sizes and strides checked one by one, then the size relations."""
    capture.reset()
    cap = capture.compile(fn, backend="eager", dynamic=True)
    with torch.no_grad():
        cap(*args)
    return _guard_time(fn, args)


def at_most_half(row) -> bool:
    """capture's overhead <= half of torch.compile's (when both are negative, i.e. both
    beat eager by skipping nn.Module.__call__, capture must beat eager by at least half
    as much as torch.compile does)."""
    return row["capture_overhead_us"] <= 0.5 * row["torch_compile_overhead_us"]


def print_table(rows):
    print(f"{'case':<12} {'eager µs':>9} {'capture +µs':>12} {'(guard µs)':>10} {'(dyn guard)':>11} "
          f"{'t.compile +µs':>14} {'cap/tc over':>12} {'cap/tc time':>12} {'≤ half':>7} {'ok':>3}")
    for r in rows:
        tc = r["torch_compile_overhead_us"]
        ratio = f"{r['capture_overhead_us'] / tc:.2f}" if tc > 0 else "both < 0"
        print(f"{r['case']:<12} {r['eager_us']:>9.1f} {r['capture_overhead_us']:>12.1f} "
              f"{r['capture_guard_us']:>10.2f} {r['capture_dynamic_guard_us']:>11.2f} {tc:>14.1f} {ratio:>12} "
              f"{r['capture_time_vs_torch_compile']:>12.2f} "
              f"{'yes' if at_most_half(r) else 'no':>7} {'yes' if r['correct'] else 'NO':>3}")
    print("(+µs: per-call time minus eager's; negative means faster than eager. guard µs: capture's generated "
          "guard alone on a hit; dyn guard: the same compiled with dynamic=True (symbolic sizes). cap/tc time: whole per-call time, capture over torch.compile)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sweep", action="store_true", help="also sweep tensor and parameter counts")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (1 steadies timings on a busy machine)")
    parser.add_argument("--no-sharing", action="store_true",
                        help="skip the table of one instance's entry vs the entry 12 instances share")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print_table(measure(args.calls, sweep=args.sweep))
    if not args.no_sharing:
        print_sharing_table(measure_sharing(args.calls))


if __name__ == "__main__":
    main()
