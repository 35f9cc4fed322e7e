"""``python -m bench``: the model suite, eager vs compiled, side by side (see bench/harness.py).

``python -m bench overhead|breaks|guards|codegen|semantics|kernels|dynamic|lifecycle|ulps [args]``
runs the focused benchmarks: per-call overhead, graph breaks vs torch._dynamo.explain, the
guard-overhead sweep, the code generator's kernels and bytes moved (compiled vs eager vs
floor), the Python-semantics corpus's pass rates per family (capture vs torch.compile),
kernels per model against TorchInductor, graphs/recompiles/kernels over varying input
sizes, what a long-running process keeps of what it compiled and dropped, and the C
kernels' float32 math against float64 over every float32.
"""
from __future__ import annotations

import argparse
import os
import sys

MODES = {"overhead": "bench.overhead", "breaks": "bench.breaks", "guards": "bench.guards",
         "codegen": "bench.codegen", "semantics": "bench.semantics.table", "kernels": "bench.kernels",
         "dynamic": "bench.dynamic", "lifecycle": "bench.lifecycle", "ulps": "bench.ulps"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Model suite, eager vs compiled (capture and torch.compile): correctness, first-call time, "
                    "per-call latency, graphs, breaks, recompiles, guards, kernels. Other modes: "
                    "`python -m bench overhead|breaks|guards|codegen|semantics [--help]`.")
    parser.add_argument("--quick", action="store_true",
                        help="the quick suite (mlp, cnn, gpt2_block), fewer timing rounds, inductor within a "
                             "compile-time budget: about a minute on 2 cores")
    parser.add_argument("--models", help="comma list of models (default: all; with --quick: the quick set); "
                                         "--list shows them")
    parser.add_argument("--backends", help="comma list of capture-eager, capture-cpu, capture-triton, tc-eager, tc-inductor "
                                           "(default: all but capture-triton, which needs --triton or CUDA)")
    parser.add_argument("--modes", help="comma list of eval, train (default: both)")
    parser.add_argument("--triton", action="store_true",
                        help="also run capture's triton backend; without CUDA under TRITON_INTERPRET=1")
    parser.add_argument("--repeats", type=int, help="timed rounds per variant (default 7 with --quick, else 15)")
    parser.add_argument("--inductor-budget", type=float,
                        help="seconds of inductor compiling after which the remaining tc-inductor rows are "
                             "skipped (default 25 with --quick, else no limit)")
    parser.add_argument("--inductor-cold", action="store_true",
                        help="compile inductor kernels from scratch (empty kernel cache dir) instead of reusing "
                             "C++ kernels compiled by earlier runs")
    parser.add_argument("--cold", action="store_true",
                        help="--inductor-cold, and capture's C kernels from scratch too (an empty "
                             "CAPTURE_CACHE_DIR): first calls of a fresh machine")
    parser.add_argument("--threads", type=int,
                        help="torch intra-op threads (default: torch's, one per core); 1 steadies timings on a "
                             "machine other processes keep busy")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--json", metavar="PATH", help="write every row (and run metadata) as JSON")
    parser.add_argument("--csv", metavar="PATH", help="write every row as CSV")
    parser.add_argument("--plot", metavar="PNG", help="draw speedup and compile-time bar charts (matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    return parser.parse_args(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in MODES:
        import importlib
        module = importlib.import_module(MODES[argv[0]])
        sys.argv = [f"python -m bench {argv[0]}"] + argv[1:]
        return module.main(argv[1:])
    args = parse_args(argv)
    wants_triton = args.triton or (args.backends and ("triton" in args.backends))
    if wants_triton and "triton" not in sys.modules:
        # TRITON_INTERPRET is read when triton is first imported (torch._dynamo imports it),
        # so decide before anything imports it: without CUDA, run under the interpreter.
        import torch
        if not torch.cuda.is_available():
            os.environ.setdefault("TRITON_INTERPRET", "1")

    cold_dirs = []
    if args.inductor_cold or args.cold:
        if "torch._inductor" in sys.modules:
            raise SystemExit("--inductor-cold: torch._inductor is already imported; run it in a fresh process")
        import tempfile
        cold_dirs.append(tempfile.mkdtemp(prefix="bench-inductor-"))
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cold_dirs[-1]
        if args.cold:
            cold_dirs.append(tempfile.mkdtemp(prefix="bench-capture-"))
            os.environ["CAPTURE_CACHE_DIR"] = cold_dirs[-1]
    try:
        return _run(args, wants_triton)
    finally:
        import shutil
        for directory in cold_dirs:
            shutil.rmtree(directory, ignore_errors=True)


def _run(args, wants_triton):
    from bench import harness, models, table, training

    if args.list:
        for spec in models.suite():
            ok, why = models.available(spec)
            flag = " [quick]" if spec.quick else ""
            print(f"{spec.name:<14} {spec.description}{flag}" + ("" if ok else f"  (cannot run: {why})"))
        return None
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("--plot needs matplotlib: pip install -e '.[bench]'") from None
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    settings = harness.Settings(quick=args.quick, models=args.models, backends=args.backends, modes=args.modes,
                                triton=bool(wants_triton), device=args.device, repeats=args.repeats,
                                inductor_budget=args.inductor_budget, progress=not args.no_progress)
    result = harness.run(settings)
    print(table.format_table(result))
    train_table = training.format_table(result)
    if train_table:
        print("\n" + train_table)
    notes = table.format_notes(result)
    if notes:
        print("\nNotes (mismatches, graph-break reasons, warnings):")
        print(notes)
    if args.json:
        table.write_json(result, args.json)
        print(f"\nwrote {args.json}")
    if args.csv:
        table.write_csv(result, args.csv)
        print(f"wrote {args.csv}")
    if args.plot:
        table.write_plot(result, args.plot)
        print(f"wrote {args.plot}")
    failed = [r for r in result["rows"] if r["status"] == "mismatch"]
    if failed:
        print(f"\n{len(failed)} result(s) differ from eager: " +
              ", ".join(f"{r['model']}/{r['mode']}/{r['backend']}" for r in failed))
    return result


if __name__ == "__main__":
    main()
