"""Kernels per model, capture's code generator vs TorchInductor, side by side.

``python -m bench kernels`` compiles each bench model (forward, eval mode, no_grad) twice:

* capture — ``capture.compile(m, backend="triton")``; without CUDA the kernels run in
  Triton's interpreter on CPU tensors, so the result is also checked against eager;
* Inductor — ``torch.compile(m)`` with ``cpu_backend="triton"`` in a child process (no
  ``TRITON_INTERPRET``): Inductor writes Triton for the CPU tensors as it would for a
  GPU. Its cache key asks Triton for the active driver, which a machine without a GPU
  does not have, so ``torch.utils._triton.triton_backend`` is pointed at an sm_90
  target, and ``AsyncCompile.triton`` is replaced by a stub that records the kernel
  instead of compiling it (compiling is not needed to count; the run then fails, which
  is expected and ignored).

Columns: ``kernels`` are generated kernels (Triton; capture's include its matmul
templates, ``tmpl``, which replace library GEMMs), ``externs`` library calls (GEMMs,
convolutions, ...), ``launches`` both. Inductor (default settings, no max-autotune)
calls the library for every GEMM, so the like-for-like comparison is launches, and
capture's kernels other than templates against Inductor's kernels. Inductor's kernel count is
``torch._inductor.metrics.generated_kernel_count``; its externs and bytes come from its
scheduler nodes after fusion (``get_read_write_buffers_sizes``, Inductor's own model);
capture's bytes from ``codegen.stats()`` (kernels' modeled loads/stores plus externs'
inputs/outputs). ``floor``: inputs read once and outputs written once.

``--train`` compiles one training step instead (eval mode, so no dropout; parameters
require grad; loss ``output.float().sum()``): a forward and a backward row per model.
capture's graphs are split by their ``role``; its gradients are checked against eager
(``ok``). Inductor compiles its backward lazily at the first ``backward()``, which the
stub kernels never reach, so ``force_non_lazy_backward_lowering`` compiles it with the
forward, and each scheduler run is attributed by ``V.graph.is_backward``. In training
both run attention as one op: Inductor calls a library flash-attention kernel (an
extern) forward and backward; capture's ``capture::flash_attention`` pair
(``fx_graph/attention_op.py``) is its attention template (which also writes the
logsumexp) forward and two backward templates (dq; dk and dv), counted in ``tmpl``.

The goal (issue 15): capture <= Inductor on every model: launches, and kernels other
than matmul templates (the ``<=`` column checks both).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

MODELS = ("mlp", "cnn", "gpt2_block", "encoder_layer", "hf_gpt2", "hf_bert", "hf_llama")


# --------------------------------------------------------------------------- capture


def capture_counts(name: str, train: bool = False) -> dict:
    """Forward (no_grad) counts, or with ``train`` one forward+backward step with the
    parameters requiring grad: counts per role and gradients checked against eager."""
    import torch

    import capture
    import codegen
    from bench import models
    spec = {s.name: s for s in models.suite()}[name]
    ok, why = models.available(spec)
    if not ok:
        return {"error": why}
    capture.reset()
    codegen.reset()
    model = spec.make().eval()
    args = spec.inputs()
    compiled = capture.compile(model, backend="triton")
    if train:
        return _capture_train(spec, model, compiled, args)
    with torch.no_grad():
        got, expected = spec.main_output(compiled(*args)), spec.main_output(model(*args))
    return dict(_graph_counts(list(codegen.COMPILED)), correct=bool(torch.allclose(got, expected, rtol=1e-3, atol=1e-4)))


def _capture_train(spec, model, compiled, args) -> dict:
    import torch

    import codegen
    spec.main_output(compiled(*args)).float().sum().backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    spec.main_output(model(*args)).float().sum().backward()
    correct = all(torch.allclose(g, p.grad, rtol=1e-3, atol=1e-4) for g, p in zip(got, model.parameters()))
    graphs = list(codegen.COMPILED)
    return {role: _graph_counts([g for g in graphs if (g.role == "backward") == (role == "backward")])
            for role in ("forward", "backward")} | {"correct": correct}


def _graph_counts(graphs) -> dict:
    """Kernels (templates), externs and modeled bytes of capture's compiled ``graphs``."""
    from codegen.stats import GraphStats
    stats = GraphStats()
    for g in graphs:
        if not g.runs_eagerly:
            stats = stats.merge(g.stats)
    templates = sum(1 for g in graphs if not g.runs_eagerly for k in g.kernels if k.kind in ("matmul", "attention", "attention_backward"))
    return {"kernels": stats.n_kernels, "templates": templates, "externs": stats.n_externs,
            "bytes": stats.compiled_bytes, "floor": stats.floor_bytes, "graphs": len(graphs),
            "ran_eagerly": [g.stats.eager_reason for g in graphs if g.runs_eagerly],
            "extern_targets": sorted({target for _, target, _, _ in stats.externs})}


# --------------------------------------------------------------------------- inductor (child process)


class _Stub:
    """What ``AsyncCompile.triton`` returns instead of a compiled kernel."""

    def __init__(self, name):
        self.name = name

    def run(self, *args, **kwargs):
        raise RuntimeError(f"{self.name}: not compiled (bench kernels only counts)")

    def __getattr__(self, item):
        raise AttributeError(item)


def _patch_inductor(record: dict) -> None:
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config
    import torch.utils._triton as triton_utils
    from torch._inductor import async_compile, metrics, scheduler
    from torch._inductor.virtualized import V
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend

    inductor_config.cpu_backend = "triton"
    inductor_config.fx_graph_cache = False          # a cache hit skips the scheduler (no externs, no bytes)
    inductor_config.fx_graph_remote_cache = False
    # The backward is compiled with the forward (not at the first backward(), which
    # never comes: the stub kernels cannot run the forward).
    functorch_config.force_non_lazy_backward_lowering = True
    target = GPUTarget("cuda", 90, 32)
    triton_utils.triton_backend = lambda: make_backend(target)
    async_compile.AsyncCompile.triton = lambda self, name, source, device_str="cuda": _Stub(name)
    original = scheduler.Scheduler.codegen

    def codegen(self):
        counts = record["backward" if V.graph.is_backward else "forward"]
        for node in self.nodes:
            kind = type(node).__name__
            if kind == "NopKernelSchedulerNode" or type(node.node).__name__ == "MultiOutput":
                continue      # MultiOutput picks an output of a library call's tuple: no launch
            counts["bytes"] += node.get_read_write_buffers_sizes()
            if kind == "ExternKernelSchedulerNode":
                counts["externs"] += 1
                counts["extern_targets"].add(getattr(node.node, "python_kernel_name", None) or type(node.node).__name__)
        before = metrics.generated_kernel_count
        result = original(self)
        counts["kernels"] += metrics.generated_kernel_count - before
        return result
    scheduler.Scheduler.codegen = codegen


def _empty_counts() -> dict:
    return {"kernels": 0, "bytes": 0, "externs": 0, "extern_targets": set()}


_RECORD: dict = {}
_PATCHED: list = []


def inductor_counts(name: str, train: bool = False) -> dict:
    """Inductor's counts for the forward (no_grad), or with ``train`` for the forward and
    backward graphs of a training step (parameters requiring grad)."""
    import torch
    import torch._dynamo

    from bench import models
    spec = {s.name: s for s in models.suite()}[name]
    ok, why = models.available(spec)
    if not ok:
        return {"error": why}
    record = _RECORD
    record.update(forward=_empty_counts(), backward=_empty_counts())
    if not _PATCHED:
        _patch_inductor(record)
        _PATCHED.append(True)
    torch._dynamo.reset()
    model = spec.make().eval()
    args = spec.inputs()
    try:
        with torch.set_grad_enabled(train):
            torch.compile(model)(*args)
    except Exception:  # noqa: BLE001 - expected: the stub kernels cannot run
        pass
    for counts in record.values():
        counts["extern_targets"] = sorted(str(t) for t in counts["extern_targets"])
    return {"forward": record["forward"], "backward": record["backward"]} if train else record["forward"]


def _inductor_in_child(names, train: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-m", "bench.kernels", "--inductor-child", ",".join(names)]
                          + (["--train"] if train else []), env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"inductor child failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- table


def measure(names, train: bool = False) -> list:
    """One row per model (forward), or with ``train`` two (its forward and backward graphs)."""
    inductor = _inductor_in_child(names, train)
    rows = []
    for name in names:
        c, i = capture_counts(name, train), inductor[name]
        if not train or "error" in c or "error" in i:
            rows.append({"model": name, "role": "backward" if train else "forward", "capture": c, "inductor": i})
            continue
        for role in ("forward", "backward"):
            rows.append({"model": name, "role": role, "capture": c[role] | {"correct": c["correct"]},
                         "inductor": i[role]})
    return rows


def _kib(n) -> str:
    return "-" if n is None else f"{n / 1024:.0f}"


def print_table(rows) -> None:
    print(f"{'model':<14} {'graph':<8} {'kernels (tmpl)':>18} {'externs':>13} {'launches':>13} {'bytes KiB':>15} "
          f"{'floor':>7} {'<=':>4} {'ok':>4}")
    print(f"{'':<23} {'capture':>11} {'ind.':>6} {'capture ind.':>13} {'capture ind.':>13} {'capture ind.':>15}")
    for r in rows:
        c, i = r["capture"], r["inductor"]
        if "error" in c or "error" in i:
            print(f"{r['model']:<14} {r['role']:<8} {c.get('error') or i.get('error')}")
            continue
        within = _within(c, i)
        print(f"{r['model']:<14} {r['role']:<8} {c['kernels']:>6} ({c['templates']:>2}) {i['kernels']:>6} "
              f"{c['externs']:>6} {i['externs']:>6} "
              f"{c['kernels'] + c['externs']:>6} {i['kernels'] + i['externs']:>6} "
              f"{_kib(c['bytes']):>7} {_kib(i['bytes']):>7} {_kib(c['floor']):>7} "
              f"{'yes' if within else 'NO':>4} {'yes' if c['correct'] else 'NO':>4}"
              + (f"  ({len(c['ran_eagerly'])} graph(s) ran as captured)" if c["ran_eagerly"] else ""))
    print("(eval mode; forward rows without --train: no_grad; with --train: one step's forward and backward graphs, "
          "parameters requiring grad, 'ok' checks the gradients. kernels: generated Triton kernels, (tmpl) of them "
          "capture's matmul and attention templates; externs: library calls; '<=': capture's launches <= Inductor's "
          "and its kernels other than templates <= Inductor's kernels (Inductor without max-autotune has no GEMM "
          "templates: like with like). Bytes are modeled: capture's from codegen.stats(), Inductor's from its "
          "scheduler nodes' read/write sizes.)")


def _within(c: dict, i: dict) -> bool:
    return (c["kernels"] + c["externs"] <= i["kernels"] + i["externs"]
            and c["kernels"] - c["templates"] <= i["kernels"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help=f"comma list (default: {','.join(MODELS)})")
    parser.add_argument("--train", action="store_true", help="forward and backward graphs of a training step")
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    parser.add_argument("--inductor-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inductor_child:
        names = args.inductor_child.split(",")
        print(json.dumps({n: inductor_counts(n, args.train) for n in names}))
        return 0
    if os.environ.get("TRITON_INTERPRET") != "1":
        import torch
        if not torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: kernels run on the CPU
    names = args.models.split(",") if args.models else list(MODELS)
    rows = measure(names, args.train)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    ok = all("error" in r["capture"] or "error" in r["inductor"]
             or (r["capture"]["correct"] and _within(r["capture"], r["inductor"])) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
