"""Kernels and memory traffic of the code generator, per model and block.

``python -m bench codegen`` compiles each case with ``backend="triton"`` (kernels run in
Triton's interpreter when there is no GPU, so the numbers are modeled from shapes, not
timed) and prints, per case: kernels, extern calls, bytes the compiled graph moves,
bytes eager PyTorch moves running the same graph op by op, and the floor (inputs read
once, outputs written once). Fused pointwise and normalization blocks must stay within
1.2x of the floor; the verdict column says whether they do.

Then it compiles each case with ``backend="cpu"`` (C kernels), times it against eager
(interleaved rounds, ``--threads`` torch threads) and divides the bytes the C kernels
move (modeled the same way) by the median time: the achieved bandwidth, next to this
machine's streaming-copy bandwidth measured in the same run (``torch`` copying a
64 MiB tensor, far larger than the caches). Fused blocks should reach
``BANDWIDTH_TARGET`` of it.

A case with a matrix product (linear+GELU) is bound by its arithmetic, not its bytes,
at one thread: its verdict is against a roofline, the larger of its bytes at the copy's
bandwidth and its multiply-add flops at this machine's GEMM rate (``torch.mm`` of
``GEMM_SIZE``-square float32 matrices, measured in the same run): ``%roof`` is that
time over the measured one, held to the same ``BANDWIDTH_TARGET``. For every case
without a product it equals ``%copy`` (the bar for pointwise and normalization blocks
is unchanged). ``--cpu-time`` (one thread only) times both by the calling
thread's CPU time instead of the wall clock: on a machine shared with other work, the
time the thread waited for a core does not count.

What the times include: ``cpu us`` is the user-visible call (frame hook, guards, the
generated wrapper, output allocation, library calls and kernels), and ``%copy``/``%roof``
and the verdict use it. On these small cases the per-call overhead is 5-11 us, 7-15%
of a fused block's time, so the table also shows ``kern us``: the time inside
the generated C functions only (their calls through ``codegen._C.Kernel``: the C code
plus the conversion of its int arguments; no guards, wrapper, allocation or library calls), timed in its own
interleaved rounds by the same clock, and ``k%copy``: the kernels' modeled bytes over it,
against the same copy bandwidth. That is the fused block's own bandwidth; the call-time
columns stay the user-visible number. ``--inductor`` adds torch.compile's inductor
(default settings) on the same cases in the same interleaved rounds: ``ind us`` and
``ind%`` (the same modeled bytes as ours over inductor's call time).

Last, the throughput of the C kernels' float32 vector math (``cpp_math``: exp, exp below
a row's max, sigmoid, tanh, erf; ns/element, one loop over L1-resident values, the best
round) and, for each case that calls it, the ceiling it sets: the case's bytes at the
copy's bandwidth over the time of its math alone. A ceiling under ``BANDWIDTH_TARGET``
means that case is bound by arithmetic at eager's numerics on this CPU, not by memory.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import os
import sys
import time

FUSED_BLOCK_LIMIT = 1.2  # compiled bytes / floor for a fused pointwise or normalization block
BANDWIDTH_TARGET = 0.7   # C kernels of a fused block: achieved / streaming-copy bandwidth
COPY_BYTES = 64 << 20    # the streaming copy: far beyond L2/L3, so it measures memory
GEMM_SIZE = 512          # the GEMM-rate probe: 268 MFLOP, a few ms; large enough for MKL's peak kernels


@dataclasses.dataclass
class Case:
    name: str
    make: object          # () -> callable (function or nn.Module)
    inputs: object        # () -> tuple of tensors
    fused_block: bool     # held to FUSED_BLOCK_LIMIT
    flops: int = 0        # of its matrix products (2 m n k each): the roofline's arithmetic side
    math: tuple = ()      # C vector functions (cpp_math) it calls per element of ``elements``
    elements: int = 0


# Inputs of the vector-math throughput probe, per function: the ranges the cases feed them
# (randn-like values; softmax's exponents are at most 0). Their cost is branch-free, so
# the same for any finite input outside the denormal range.
MATH_RANGES = {"capture_expf": (-10.0, 10.0), "capture_expf_nonpositive": (-20.0, 0.0),
               "capture_sigmoidf": (-8.0, 8.0), "capture_tanhf": (-5.0, 5.0), "capture_erff": (-5.0, 5.0)}
MATH_ELEMENTS = 4096      # L1-resident: the probe measures arithmetic, not memory
NONPOSITIVE_EXP = ("capture_expf_nonpositive",)   # softmax's exp(v - max v)


def _cases():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from bench import models

    def rand(*shape):
        g = torch.Generator().manual_seed(1)
        return lambda: (torch.randn(*shape, generator=g),)

    def pointwise_chain(x):
        y = x * 2 + 1
        y = torch.sigmoid(y) * torch.tanh(y)
        y = torch.relu(y - 0.5) + torch.exp(-y.abs())
        return torch.clamp(y, -1, 1) * 0.5 + x

    def softmax(x):
        return torch.softmax(x, dim=-1)

    def log_softmax(x):
        return F.log_softmax(x, dim=-1)

    def rms_norm(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def gelu_bias(x, b=torch.randn(512)):
        return F.gelu(x + b, approximate="tanh")

    def embedding_layer_norm(weight, ids):
        return F.layer_norm(F.embedding(ids, weight), (768,))

    def embedding_inputs():
        g = torch.Generator().manual_seed(1)
        return torch.randn(1000, 768, generator=g), torch.randint(0, 1000, (4, 64), generator=g)

    def cat_gelu(x, y):
        return F.gelu(torch.cat([x, y * 2], dim=-1))

    def cat_inputs():
        g = torch.Generator().manual_seed(1)
        return torch.randn(256, 512, generator=g), torch.randn(256, 384, generator=g)

    def column_sum(g, x):                # a bias gradient: the product, and its sum over the rows
        y = g * x
        return y, y.sum(0)

    def two_inputs():
        g = torch.Generator().manual_seed(1)
        return torch.randn(256, 512, generator=g), torch.randn(256, 512, generator=g)

    def linear_gelu():
        lin = nn.Linear(256, 512)
        return lambda x: F.gelu(lin(x))

    specs = {s.name: s for s in models.suite()}

    def model(name):
        spec = specs[name]
        return Case(name, lambda: spec.make().eval(), lambda: spec.inputs(), False)

    return [
        Case("pointwise_chain 256x1024", lambda: pointwise_chain, rand(256, 1024), True,
             math=("capture_sigmoidf", "capture_tanhf", "capture_expf"), elements=256 * 1024),
        Case("gelu(x + bias) 256x512", lambda: gelu_bias, rand(256, 512), True, math=("capture_tanhf",),
             elements=256 * 512),
        Case("softmax 128x1000", lambda: softmax, rand(128, 1000), True, math=NONPOSITIVE_EXP, elements=128 * 1000),
        Case("log_softmax 128x1000", lambda: log_softmax, rand(128, 1000), True, math=NONPOSITIVE_EXP,
             elements=128 * 1000),
        Case("softmax 16x8192 (looped)", lambda: softmax, rand(16, 8192), True, math=NONPOSITIVE_EXP,
             elements=16 * 8192),
        Case("layer_norm 256x768", lambda: nn.LayerNorm(768), rand(256, 768), True),
        Case("rms_norm 256x768", lambda: rms_norm, rand(256, 768), True),
        Case("embedding+layer_norm 256x768", lambda: embedding_layer_norm, embedding_inputs, True),
        Case("cat+gelu 256x(512+384)", lambda: cat_gelu, cat_inputs, True, math=("capture_erff",),
             elements=256 * 896),
        Case("g*x, column sum 256x512", lambda: column_sum, two_inputs, True),
        Case("linear+GELU 64x256->512", linear_gelu, rand(64, 256), True, flops=2 * 64 * 256 * 512),
        model("mlp"), model("cnn"), model("gpt2_block"), model("encoder_layer"),
    ]


def measure(names: str | None = None) -> list[dict]:
    import torch

    import capture
    import codegen
    rows = []
    for case in _cases():
        if names and not any(n in case.name for n in names.split(",")):
            continue
        capture.reset()
        codegen.reset()
        fn = case.make()
        args = case.inputs()
        compiled = capture.compile(fn, backend="triton")
        with torch.no_grad():
            got, expected = compiled(*args), fn(*args)
        ok = _close(got, expected)
        s = codegen.stats()
        eager_graphs = [g for g in codegen.COMPILED if g.runs_eagerly]
        ratio = s.compiled_bytes / s.floor_bytes if s.floor_bytes else None
        rows.append(dict(case=case.name, kernels=s.n_kernels, externs=s.n_externs,
                         compiled_bytes=s.compiled_bytes, eager_bytes=s.eager_bytes, floor_bytes=s.floor_bytes,
                         compiled_over_floor=ratio, fused_block=case.fused_block, correct=bool(ok),
                         ran_eagerly=len(eager_graphs),
                         within_limit=None if not case.fused_block or ratio is None
                         else ratio <= FUSED_BLOCK_LIMIT))
    return rows


def _close(got, expected) -> bool:
    """Every output within the bench's tolerance (a case may return a tuple)."""
    import torch
    got, expected = (v if isinstance(v, (tuple, list)) else (v,) for v in (got, expected))
    return len(got) == len(expected) and all(torch.allclose(g, e, rtol=1e-4, atol=1e-4)
                                             for g, e in zip(got, expected))


def copy_bandwidth(repeats: int = 15, clock=None) -> float:
    """Bytes per second of ``dst.copy_(src)`` on COPY_BYTES (read + written), the best round."""
    import time

    import torch
    clock = clock or time.perf_counter
    src = torch.ones(COPY_BYTES // 4)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        dst.copy_(src)
        best = min(best, clock() - start)
    return 2 * COPY_BYTES / best


def gemm_rate(repeats: int = 5, clock=None) -> float:
    """Flops per second of ``torch.mm`` on GEMM_SIZE-square float32 matrices, the best round."""
    import time

    import torch
    clock = clock or time.perf_counter
    a, b = torch.randn(GEMM_SIZE, GEMM_SIZE), torch.randn(GEMM_SIZE, GEMM_SIZE)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        torch.mm(a, b)
        best = min(best, clock() - start)
    return 2 * GEMM_SIZE ** 3 / best


def math_throughput(functions, repeats: int = 15, clock=None) -> dict:
    """{C function: seconds per element} of the emitter's float32 vector math
    (``codegen.emit.cpp_math``), each in a loop over MATH_ELEMENTS values in MATH_RANGES,
    compiled like the kernels (``cpp_build``): the best of ``repeats`` rounds."""
    import numpy as np

    from codegen.emit.cpp_ops import PRELUDE
    from codegen.runtime import cpp_build
    clock = clock or time.perf_counter
    loops = [f"""
int64_t bench_{name}(const float* restrict x, float* restrict y, int64_t n, int64_t reps) {{
    for (int64_t k = 0; k < reps; k++) {{
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = {name}(x[i]);
        __asm__ volatile("" ::: "memory");      /* every round computed */
    }}
    return 0;
}}""" for name in functions]
    library = cpp_build.build("\n".join([PRELUDE, *loops]))
    rates, reps = {}, 200
    for name in functions:
        low, high = MATH_RANGES[name]
        x = np.linspace(low, high, MATH_ELEMENTS, dtype=np.float32)
        y = np.empty_like(x)
        function = getattr(library, f"bench_{name}")
        function.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 2
        function.restype = ctypes.c_int64
        best = float("inf")
        for _ in range(repeats):
            start = clock()
            function(x.ctypes.data, y.ctypes.data, MATH_ELEMENTS, reps)
            best = min(best, clock() - start)
        rates[name] = best / (reps * MATH_ELEMENTS)
    return rates


def print_math_table(rows, cases, rates: dict, bandwidth: float) -> None:
    """Per-function throughput, and each case's ceiling from it: its bytes at the copy's
    bandwidth over the time its vector math alone takes (every other operation free)."""
    print("\nfloat32 vector math of the C kernels (codegen/emit/cpp_math.py), one thread, best round: "
          + ", ".join(f"{name} {seconds * 1e9:.3f}" for name, seconds in rates.items()) + " ns/element")
    print(f"{'case':<28} {'math per element':<48} {'ns/el':>6} {'ceiling %copy':>13} {'k%copy':>6}")
    by_name = {r["case"]: r for r in rows}
    for case in cases:
        row = by_name.get(case.name)
        if not case.math or row is None or "cpu_bytes" not in row:
            continue
        seconds = sum(rates[name] for name in case.math) * case.elements
        ceiling = row["cpu_bytes"] / bandwidth / seconds
        kernel = f"{row['kernel_fraction']:>6.0%}" if row.get("kernel_fraction") else f"{'-':>6}"
        print(f"{case.name:<28} {' + '.join(case.math):<48} {seconds / case.elements * 1e9:>6.3f} "
              f"{ceiling:>13.0%} {kernel}")
    print("(ceiling: the case's bytes at the streaming copy's bandwidth over the time of its vector math "
          "alone, every other operation free: a case whose ceiling is under the bar is bound by arithmetic "
          "at eager's numerics on this CPU, not by memory)")


CALLS, WARMUP = 20, 20    # calls per timed round, and untimed calls of each variant first


class KernelTimer:
    """Calls ``compiled`` with the generated C functions of ``graphs`` timed (by ``clock``)
    for the duration of the call: ``rounds(n)`` gives the seconds spent inside them per
    call, per round of ``CALLS`` calls after the ``WARMUP`` first."""

    def __init__(self, graphs, compiled, clock=None):
        from codegen._C import Kernel
        self.compiled, self.clock = compiled, clock or time.perf_counter
        self.functions = [(namespace, name, value) for namespace in (g.wrapper_namespace() for g in graphs)
                          for name, value in namespace.items() if isinstance(value, Kernel)]
        self.spent: list = []          # seconds inside the C functions, per call

    def _timed(self, function):
        clock, spent = self.clock, self.spent

        def call(*args):
            start = clock()
            result = function(*args)
            spent[-1] += clock() - start
            return result
        return call

    def __call__(self, *args):
        self.spent.append(0.0)
        for namespace, name, function in self.functions:
            namespace[name] = self._timed(function)
        try:
            return self.compiled(*args)
        finally:
            for namespace, name, function in self.functions:
                namespace[name] = function

    def rounds(self, repeats: int) -> list:
        timed = self.spent[WARMUP:]
        return [sum(timed[i * CALLS:(i + 1) * CALLS]) / CALLS for i in range(repeats)]


def measure_cpu(rows, names, bandwidth: float, repeats: int = 7, clock=None, flop_rate: float = 0.0,
                inductor: bool = False) -> None:
    """Add C-kernel timings to ``rows`` (matched by case name)."""
    import statistics

    import torch

    import capture
    import codegen
    from bench.timing import interleaved_samples
    by_name = {r["case"]: r for r in rows}
    for case in _cases():
        if case.name not in by_name:
            continue
        capture.reset()
        codegen.reset()
        fn = case.make()
        args = case.inputs()
        compiled = capture.compile(fn, backend="cpu")
        with torch.no_grad():
            ok = _close(compiled(*args), fn(*args))
            variants = {"eager": fn, "cpu": compiled}
            kernels = KernelTimer([g for g in codegen.COMPILED if not g.runs_eagerly], compiled, clock)
            variants["kernels"] = kernels
            if inductor:
                variants["inductor"] = torch.compile(fn)
                ok = ok and _close(variants["inductor"](*args), fn(*args))
            samples = interleaved_samples(variants, args, calls=CALLS, repeats=repeats, warmup=WARMUP,
                                          **({"clock": clock} if clock else {}))
        s = codegen.stats()
        seconds = statistics.median(samples["cpu"])
        kernel_seconds = statistics.median(kernels.rounds(repeats))
        achieved = s.compiled_bytes / seconds
        roofline = max(s.compiled_bytes / bandwidth, case.flops / flop_rate if case.flops else 0.0)
        row = by_name[case.name]
        row.update(cpu_us=seconds * 1e6, eager_us=statistics.median(samples["eager"]) * 1e6,
                   cpu_spread=(max(samples["cpu"]) - min(samples["cpu"])) / seconds,
                   cpu_bytes=s.compiled_bytes, cpu_gbs=achieved / 1e9, cpu_fraction=achieved / bandwidth,
                   cpu_correct=bool(ok), cpu_roof=roofline / seconds, flops=case.flops,
                   kernel_us=kernel_seconds * 1e6, kernel_fraction=s.kernel_bytes / kernel_seconds / bandwidth
                   if kernel_seconds else None,
                   inductor_us=statistics.median(samples["inductor"]) * 1e6 if inductor else None,
                   cpu_within=None if not case.fused_block else roofline / seconds >= BANDWIDTH_TARGET)


def print_cpu_table(rows, bandwidth: float, threads: int, clock_name: str = "wall clock", flop_rate: float = 0.0):
    print(f"\nC kernels (backend=\"cpu\", {threads} thread(s), {clock_name}); streaming copy of "
          f"{COPY_BYTES >> 20} MiB: {bandwidth / 1e9:.1f} GB/s; torch.mm {GEMM_SIZE}^3: {flop_rate / 1e9:.1f} GFLOP/s")
    inductor = any(r.get("inductor_us") for r in rows)
    print(f"{'case':<28} {'eager us':>9} {'cpu us':>9} {'±%':>4} {'speedup':>7} {'KiB':>8} {'GB/s':>6} "
          f"{'%copy':>6} {'%roof':>6} {f'>={BANDWIDTH_TARGET:.0%}':>6} {'kern us':>8} {'k%copy':>6} "
          + (f"{'ind us':>8} {'ind%':>5} " if inductor else "") + f"{'ok':>3}")
    for r in rows:
        if "cpu_us" not in r:
            continue
        verdict = "-" if r["cpu_within"] is None else ("yes" if r["cpu_within"] else "NO")
        kernel = f"{r['kernel_fraction']:>6.0%}" if r["kernel_fraction"] is not None else f"{'-':>6}"
        ind = (f"{r['inductor_us']:>8.1f} {r['cpu_bytes'] / (r['inductor_us'] * 1e-6) / bandwidth:>5.0%} "
               if inductor else "")
        print(f"{r['case']:<28} {r['eager_us']:>9.1f} {r['cpu_us']:>9.1f} {r['cpu_spread'] * 100:>4.0f} "
              f"{r['eager_us'] / r['cpu_us']:>6.2f}x {_kib(r['cpu_bytes']):>8} {r['cpu_gbs']:>6.1f} "
              f"{r['cpu_fraction']:>6.0%} {r['cpu_roof']:>6.0%} {verdict:>6} {r['kernel_us']:>8.1f} {kernel} "
              f"{ind}{'yes' if r['cpu_correct'] else 'NO':>3}")
    print("(us: median per call, timed interleaved with eager; GB/s: modeled bytes the C kernels and extern "
          "calls move / median time; %copy: of the streaming copy above, measured in this run; %roof: the "
          "roofline time, max(bytes / copy bandwidth, product flops / torch.mm's rate), over the median time "
          "(= %copy without a product); the verdict is on %roof, i.e. on the user-visible call time. "
          "kern us: median time inside the generated C functions only (no guards, frame hook, wrapper, "
          "output allocation or library calls); k%copy: the kernels' modeled bytes over it, of the same copy"
          + ("; ind us: torch.compile (inductor) per call in the same rounds, ind%: our modeled bytes over it"
             if inductor else "") + ")")


def _kib(n: int) -> str:
    return f"{n / 1024:.1f}"


def print_table(rows):
    print(f"{'case':<28} {'kernels':>7} {'externs':>7} {'compiled KiB':>12} {'eager KiB':>10} "
          f"{'floor KiB':>10} {'/floor':>7} {'<=1.2x':>7} {'ok':>3}")
    for r in rows:
        ratio = f"{r['compiled_over_floor']:.2f}" if r["compiled_over_floor"] is not None else "-"
        verdict = "-" if r["within_limit"] is None else ("yes" if r["within_limit"] else "NO")
        print(f"{r['case']:<28} {r['kernels']:>7} {r['externs']:>7} {_kib(r['compiled_bytes']):>12} "
              f"{_kib(r['eager_bytes']):>10} {_kib(r['floor_bytes']):>10} {ratio:>7} {verdict:>7} "
              f"{'yes' if r['correct'] else 'NO':>3}" + (f"  ({r['ran_eagerly']} graph(s) ran as captured)"
                                                         if r["ran_eagerly"] else ""))
    print("(bytes are modeled from shapes: compiled = kernels' loads/stores + extern calls' inputs/outputs; "
          "eager = every op of the graph reading its inputs and writing its outputs; floor = graph inputs "
          f"read once, outputs written once. Fused pointwise/normalization blocks must be <= {FUSED_BLOCK_LIMIT}x "
          "the floor.)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench codegen", description=__doc__)
    parser.add_argument("--cases", help="comma list of substrings of case names (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the C timings")
    parser.add_argument("--no-cpu", action="store_true", help="skip the C kernel timings")
    parser.add_argument("--cpu-only", action="store_true", help="only the C kernel timings (no Triton modeling)")
    parser.add_argument("--inductor", action="store_true",
                        help="also time torch.compile (inductor) on each case, in the same rounds")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the thread's CPU time, not the wall clock (a shared machine; needs --threads 1)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") != "1":
        import torch
        if not torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: kernels run on the CPU
    if args.cpu_only:
        rows = [{"case": c.name, "correct": True, "within_limit": None} for c in _cases()
                if not args.cases or any(n in c.name for n in args.cases.split(","))]
    else:
        rows = measure(args.cases)
        print_table(rows)
    if not args.no_cpu:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.cpu_time and torch.get_num_threads() != 1:
            parser.error("--cpu-time counts the calling thread only: use it with --threads 1")
        clock = time.thread_time if args.cpu_time else None
        bandwidth, flop_rate = copy_bandwidth(clock=clock), gemm_rate(clock=clock)
        measure_cpu(rows, args.cases, bandwidth, clock=clock, flop_rate=flop_rate, inductor=args.inductor)
        print_cpu_table(rows, bandwidth, torch.get_num_threads(), "thread CPU time" if clock else "wall clock",
                        flop_rate)
        cases = [c for c in _cases() if c.math]
        functions = list(dict.fromkeys(name for c in cases for name in c.math))
        print_math_table(rows, cases, math_throughput(functions, clock=clock), bandwidth)
    ok = all(r["correct"] and r["within_limit"] is not False and r.get("cpu_correct", True) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
