"""Dynamic shapes: graphs, recompiles and kernels when the input sizes vary.

``python -m bench dynamic`` calls each model over a sweep of sizes (for the
transformers models: batch sizes 1..17 and sequence lengths 1..64, each batch size
with every sequence length) under capture and torch.compile (both with their default
``dynamic=None``) and reports, per compiler, the graphs compiled, the recompiles, the
frames that hit the cache limit, whether every output equals eager, and with
``--kernels`` the distinct kernels generated (capture's triton backend, under the
interpreter without CUDA, vs TorchInductor). Capture's ``cpu`` backend (C kernels) runs
too: ``generated`` counts the graphs that run generated kernels (the others run as
captured) and the calls that ran them, so a sweep shows one set of kernels serving
every size. ``--full`` runs every (batch, sequence)
pair; the default samples them (batch sizes 1, 2, 3, 8, 17 and 12 sequence lengths);
``--sweep issue`` is issue 12's check (3 batch sizes x 20 sequence lengths). ``--order``
says which size varies first (``batch``: every sequence length of the first batch size,
then the next batch size; ``seq``: the other way round; ``random``: shuffled with a fixed
seed), ``--no-ones`` drops batch size 1 and sequence length 1 (user code branches on
them, e.g. transformers' ``q_length > 1``: those need graphs of their own).
"""
from __future__ import annotations

import argparse
import os
import random
import time
import warnings

import torch

FULL_BATCHES = list(range(1, 18))
FULL_SEQS = list(range(1, 65))
QUICK_BATCHES = [1, 2, 3, 8, 17]
QUICK_SEQS = [1, 2, 3, 5, 8, 13, 16, 21, 32, 34, 55, 64]
ISSUE_BATCHES = [1, 4, 9]
ISSUE_SEQS = [1, 2, 3, 4, 5, 7, 8, 11, 13, 16, 17, 21, 24, 31, 32, 40, 47, 55, 63, 64]
SWEEPS = {"quick": (QUICK_BATCHES, QUICK_SEQS), "issue": (ISSUE_BATCHES, ISSUE_SEQS),
          "full": (FULL_BATCHES, FULL_SEQS)}


def _mlp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 16),
                                torch.nn.LayerNorm(16)).eval()
    return model, lambda b, s: (torch.randn(b, 32),)


def _hf(factory):
    def make():
        from bench import models
        models.transformers_status()
        torch.manual_seed(0)
        model = factory().eval()
        return model, lambda b, s: (torch.randint(0, 1000, (b, s)),)
    return make


def scenarios() -> dict:
    from bench import models
    return {"mlp_batch": (_mlp, "an MLP over 20 batch sizes (2..21)"),
            "hf_gpt2": (_hf(models._hf_gpt2), "GPT-2 tiny over batch x sequence length"),
            "hf_llama": (_hf(models._hf_llama), "Llama tiny over batch x sequence length"),
            "hf_bert": (_hf(models._hf_bert), "BERT tiny over batch x sequence length")}


def sizes(name: str, sweep: str = "quick", order: str = "batch", ones: bool = True) -> list:
    if name == "mlp_batch":
        return [(b, 0) for b in range(2, 22)]
    batches, seqs = SWEEPS[sweep]
    if not ones:
        batches, seqs = [b for b in batches if b != 1], [s for s in seqs if s != 1]
    pairs = [(b, s) for b in batches for s in seqs]
    if order == "seq":
        pairs = [(b, s) for s in seqs for b in batches]
    elif order == "random":
        random.Random(0).shuffle(pairs)
    return pairs


def _main_output(out):
    if isinstance(out, torch.Tensor):
        return out
    for key in ("logits", "last_hidden_state"):
        if hasattr(out, key):
            return getattr(out, key)
    return out[0]


def _capture_counts() -> dict:
    from capture.state import FRAMES
    from codegen.compile import COMPILED
    graphs = sum(1 for r in FRAMES.values() for e in r.entries if e.kind == "graph")
    generated = [g for g in COMPILED if not g.runs_eagerly]
    return {"graphs": graphs, "recompiles": sum(len(r.recompiles) for r in FRAMES.values()),
            "limit_hits": sum(1 for r in FRAMES.values() if r.limit_hit),
            "frames": sum(1 for r in FRAMES.values() if r.entries),
            "generated": f"{len(generated)}/{len(COMPILED)} {sum(g.generated_calls for g in generated)}c"
            if COMPILED else None}


def run_capture(model, make_inputs, pairs, backend: str) -> dict:
    import capture
    from codegen import config
    config.RECORD_GENERATED_KERNELS = True    # off in a user's process (it keeps every kernel)
    capture.reset()
    kernels_before = _capture_kernels() if backend == "triton" else 0
    compiled = capture.compile(model, backend=backend)
    return _sweep(model, compiled, make_inputs, pairs, _capture_counts,
                  lambda: _capture_kernels() - kernels_before if backend == "triton" else None)


def _capture_kernels() -> int:
    import codegen
    return len({k.source for k in codegen.generated_kernels()})


def run_torch_compile(model, make_inputs, pairs, backend: str) -> dict:
    import torch._dynamo  # the baseline (bench only)
    torch._dynamo.reset()
    counter = {"graphs": 0}
    if backend == "eager":
        def counting(gm, example_inputs):
            counter["graphs"] += 1
            return gm.forward
        target = counting
    else:
        from torch._inductor import metrics
        metrics.reset()
        target = "inductor"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(model, backend=target)

    def counts():
        from torch._dynamo.utils import counters
        graphs = counter["graphs"] if backend == "eager" else int(counters["stats"]["unique_graphs"])
        frames = int(counters["stats"]["unique_graphs"])
        return {"graphs": graphs, "recompiles": max(0, graphs - 1) if frames else 0,
                "limit_hits": int(sum(counters["recompiles"].values())) if "recompiles" in counters else 0,
                "frames": None, "generated": None}

    def kernels():
        if backend == "eager":
            return None
        from torch._inductor import metrics
        return int(metrics.generated_kernel_count)
    return _sweep(model, compiled, make_inputs, pairs, counts, kernels)


def _sweep(model, compiled, make_inputs, pairs, counts, kernels) -> dict:
    worst, start = 0.0, time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b, s in pairs:
            args = make_inputs(b, s)
            got, want = _main_output(compiled(*args)), _main_output(model(*args))
            worst = max(worst, float((got - want).abs().max()) if got.numel() else 0.0)
    out = counts()
    out.update(kernels=kernels(), max_abs_diff=worst, calls=len(pairs), seconds=time.perf_counter() - start)
    return out


def measure(names, full=False, with_kernels=False, order="batch", ones=True, sweep=None, counts_only=False) -> list:
    rows = []
    for name in names:
        factory, _ = scenarios()[name]
        pairs = sizes(name, sweep or ("full" if full else "quick"), order, ones)
        variants = [("capture", "eager", run_capture), ("torch.compile", "eager", run_torch_compile),
                    ("capture", "cpu", run_capture)][:2 if counts_only else 3]
        if with_kernels:
            variants += [("capture", "triton", run_capture), ("torch.compile", "inductor", run_torch_compile)]
        for compiler, backend, runner in variants:
            model, make_inputs = factory()
            result = runner(model, make_inputs, pairs, backend)
            rows.append(dict(scenario=name, compiler=compiler, backend=backend, **result))
    return rows


def print_table(rows):
    print(f"{'scenario':<10} {'compiler':<14} {'backend':<9} {'calls':>5} {'graphs':>6} {'recomp':>6} "
          f"{'limit':>5} {'kernels':>7} {'generated':>10} {'max |diff|':>10} {'seconds':>8}")
    for r in rows:
        kernels = "-" if r["kernels"] is None else str(r["kernels"])
        print(f"{r['scenario']:<10} {r['compiler']:<14} {r['backend']:<9} {r['calls']:>5} {r['graphs']:>6} "
              f"{r['recompiles']:>6} {r['limit_hits']:>5} {kernels:>7} {r['generated'] or '-':>10} "
              f"{r['max_abs_diff']:>10.2e} {r['seconds']:>8.1f}")
    print("(graphs: graphs compiled over the sweep; recomp: recompiles (capture: cache misses of a frame that "
          "already had entries; torch.compile: graphs - 1); limit: frames that hit the cache limit; kernels: "
          "distinct generated kernels (capture triton: kernel sources, interpreter without CUDA; inductor: "
          "generated_kernel_count); generated: capture graphs running generated kernels / graphs compiled, "
          "and the calls (c) that ran generated kernels)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench dynamic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="mlp_batch,hf_gpt2,hf_llama",
                        help=f"comma list of {', '.join(scenarios())}")
    parser.add_argument("--full", action="store_true", help="every (batch 1..17, sequence 1..64) pair")
    parser.add_argument("--sweep", choices=sorted(SWEEPS), help="which (batch, sequence) pairs (default quick)")
    parser.add_argument("--order", choices=["batch", "seq", "random"], default="batch",
                        help="batch: all sequence lengths per batch size; seq: all batch sizes per length")
    parser.add_argument("--no-ones", action="store_true", help="leave out batch size 1 and sequence length 1")
    parser.add_argument("--counts-only", action="store_true",
                        help="graphs and recompiles only: capture and torch.compile with the eager backend")
    parser.add_argument("--kernels", action="store_true",
                        help="also capture's triton backend and TorchInductor, counting kernels (slow on CPU)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.kernels and not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    print_table(measure(args.scenarios.split(","), args.full, args.kernels, args.order, not args.no_ones,
                        args.sweep, args.counts_only))


if __name__ == "__main__":
    main()
