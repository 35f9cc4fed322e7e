"""The model-suite harness behind ``python -m bench``: eager vs compiled, side by side.

For every model of :mod:`bench.models`, in eval mode (inference, under ``no_grad``) and
in train mode (one forward + backward step, ``loss = output.float().sum()``), and for
every backend:

- ``capture-eager``   ``capture.compile(m, backend="eager")``
- ``capture-cpu``     ``capture.compile(m, backend="cpu")`` — capture's C kernels (CPU tensors)
- ``capture-triton``  ``capture.compile(m, backend="triton")`` — only with ``--triton``
  or when CUDA is present; without CUDA it runs under ``TRITON_INTERPRET=1``
- ``tc-eager``        ``torch.compile(m, backend="eager")`` (the reference front end)
- ``tc-inductor``     ``torch.compile(m, backend="inductor")`` (the reference compiler)

it measures:

- correctness against eager: every output tensor, and in train mode every parameter's
  gradient and (after the first step) every buffer, e.g. batch-norm running stats; once
  on the first call and again after timing on inputs with other values (a value baked
  into a graph shows up there). ``max_err`` is the largest absolute difference.
- first-call time (trace + compile + run once), in seconds.
- steady per-call latency: each compiled variant is timed interleaved with eager
  (:func:`bench.timing.interleaved_samples`, as ``per_call_interleaved``: warm-up, then
  rounds of one eager batch and one compiled batch); ``ms`` is the median per-call time
  over the rounds, ``spread`` is max - min over the rounds, ``speedup`` is the median over
  rounds of eager time / compiled time (a round's two batches run back to back, so other
  load on the machine mostly cancels out of their ratio).
- graphs and breaks (``capture.explain`` / ``torch._dynamo.explain``; breaks counts the
  break reasons each lists), recompiles (capture: ``capture.report()``; torch.compile:
  frames compiled after the first call), guards (capture: guards of the cache entries in
  ``capture.report()``; torch.compile: ``explain().out_guards``).
- kernels and modeled bytes: for ``capture-triton`` through an optional hook,
  ``codegen.stats_for(compiled)`` or else ``codegen.stats()`` (see :func:`codegen_stats`);
  for ``tc-inductor``
  from ``torch._inductor.metrics`` (kernels generated while compiling; bytes only where
  inductor models them, i.e. GPU kernels). ``-`` where unknown.

A model or backend that cannot run here gets a row saying why; the rest still runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Mapping

import torch

import capture
from bench import models as model_suite
from bench import training
from bench.breaks import _dynamo_where
from bench.case import Case, _compare, _first_line, _why, _zip_pairs
from bench.progress import Progress
from bench.table import Row, _fmt_bytes, _short_paths
from bench.timing import interleaved_samples

ALL_BACKENDS = ("capture-eager", "capture-cpu", "capture-triton", "tc-eager", "tc-inductor")
DEFAULT_BACKENDS = ("capture-eager", "capture-cpu", "tc-eager", "tc-inductor")  # + capture-triton with --triton or CUDA
CODEGEN_BACKENDS = ("cpu", "triton")      # capture backends whose kernels and bytes codegen reports
MODES = ("eval", "train")

# Tolerances of the correctness check (torch.allclose): graph-replaying backends should
# match eager to rounding; code generators may reorder float arithmetic.
TOLERANCE = {"capture-eager": (1e-4, 1e-5), "tc-eager": (1e-4, 1e-5),
             "capture-triton": (1e-3, 1e-4), "capture-cpu": (1e-3, 1e-4), "tc-inductor": (1e-3, 1e-4)}


@dataclasses.dataclass
class Settings:
    quick: bool = False
    models: str | None = None  # comma list
    backends: str | None = None  # comma list
    modes: str | None = None  # comma list
    triton: bool = False
    device: str | None = None
    repeats: int | None = None
    inductor_budget: float | None = None  # seconds of inductor compiling before the rest is skipped
    progress: bool = True

    def __post_init__(self):
        if self.repeats is None:
            self.repeats = 7 if self.quick else 15
        if self.inductor_budget is None and self.quick:
            self.inductor_budget = 25.0
        # target seconds of one timed batch (of `calls` calls) of one variant
        self.batch_seconds = 0.02 if self.quick else 0.05


@contextlib.contextmanager
def _quiet():
    """Silence torch's and capture's loggers (graph-break chatter); warnings are
    recorded by the caller."""
    names = ("torch._dynamo", "torch._inductor", "torch._logging", "torch.fx", "capture", "transformers")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# ------------------------------------------------------------------ backends

def codegen_stats(compiled) -> dict:
    """Kernels and modeled bytes of capture's Triton code generator, where it tells.

    Read through an optional hook, so the harness runs whatever codegen offers:

    - ``codegen.stats_for(compiled)`` — given what ``capture.compile(...,
      backend="triton")`` returned, after it ran: ``None`` (unknown) or a mapping /
      object with ``kernels`` and ``bytes`` (and optionally ``eager_bytes``);
    - otherwise ``codegen.stats()`` — every graph compiled since ``codegen.reset()``
      (the harness resets it before each variant): ``n_kernels``, ``compiled_bytes``,
      ``eager_bytes``; graphs that codegen ran as captured are named in the note.

    Returns ``{"kernels", "bytes", "eager_bytes", "note"}``, each None where unknown.
    """
    out = {"kernels": None, "bytes": None, "eager_bytes": None, "note": None}
    try:
        import codegen
    except Exception as e:  # noqa: BLE001
        out["note"] = f"codegen does not import: {_why(e)}"
        return out
    try:
        hook = getattr(codegen, "stats_for", None)
        if hook is not None:
            stats = hook(compiled)
        elif callable(getattr(codegen, "stats", None)):
            stats = codegen.stats()
        else:
            return out
    except Exception as e:  # noqa: BLE001 - an optional hook must not stop the run
        out["note"] = f"codegen stats failed: {_why(e)}"
        return out
    if stats is None:
        return out

    def field(*names):
        for name in names:
            value = stats.get(name) if isinstance(stats, Mapping) else getattr(stats, name, None)
            if isinstance(value, (list, tuple)):
                value = len(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return int(value)
        return None
    out["kernels"] = field("n_kernels", "kernels")
    out["bytes"] = field("bytes", "compiled_bytes")
    out["eager_bytes"] = field("eager_bytes")
    eager_graphs = [g for g in getattr(codegen, "COMPILED", []) if getattr(g, "runs_eagerly", False)]
    if eager_graphs:
        why = getattr(getattr(eager_graphs[0], "stats", None), "eager_reason", None)
        out["note"] = (f"codegen ran {len(eager_graphs)} graph(s) as captured (no kernels)"
                       + (f": {_first_line(why, 120)}" if why else ""))
    return out


class Backend:
    name = ""
    family = ""  # "capture" | "torch.compile"

    def available(self, settings: Settings) -> str | None:
        """None, or why this backend cannot run here."""
        return None

    def reset(self):
        raise NotImplementedError

    def compile(self, model):
        raise NotImplementedError

    def explain(self, case: Case) -> dict:
        raise NotImplementedError

    def after(self, compiled, row: Row):
        """Fill recompiles / guards / kernels after the variant ran."""

    def close(self):
        """Undo any process-wide setting made for the run."""


class CaptureBackend(Backend):
    family = "capture"

    def __init__(self, backend: str):
        self.backend = backend
        self.name = f"capture-{backend}"

    def available(self, settings):
        if self.backend == "triton":
            if torch.cuda.is_available():
                return None
            if os.environ.get("TRITON_INTERPRET") != "1":
                return ("no CUDA here and TRITON_INTERPRET is not 1 (it must be set before triton is "
                        "imported: run `python -m bench --triton`, which sets it, or export TRITON_INTERPRET=1)")
        if self.backend == "cpu" and settings.device not in (None, "cpu"):
            return f"C kernels run on CPU tensors only (device {settings.device})"
        return None

    def reset(self):
        capture.reset()
        if self.backend in CODEGEN_BACKENDS:
            with contextlib.suppress(Exception):
                import codegen
                codegen.reset()

    def compile(self, model):
        return capture.compile(model, backend=self.backend)

    def explain(self, case):
        capture.reset()
        with case.grad_context():
            ex = capture.explain(case.fresh())(*case.inputs)
        capture.reset()
        # every break, including those with nothing captured before them (a frame that
        # ran eagerly), which newer explains list apart as ``eager_breaks``
        breaks = list(ex.break_reasons) + list(getattr(ex, "eager_breaks", None) or [])
        return dict(graphs=ex.graph_count, breaks=len(breaks),
                    break_reasons=[f"{_first_line(r.reason, 120)} @ {_short_where(r.where)}" for r in breaks])

    def after(self, compiled, row):
        rep = capture.report()
        row.recompiles = sum(len(f.recompiles) for f in rep.frames)
        row.guards = sum(len(e.guards) for f in rep.frames for e in f.entries)
        if any(f.cache_limit_hit for f in rep.frames):
            row.notes.append("cache limit hit: a frame fell back to eager")
        if self.backend in CODEGEN_BACKENDS:
            stats = codegen_stats(compiled)
            row.kernels, row.bytes, row.eager_bytes = stats["kernels"], stats["bytes"], stats["eager_bytes"]
            if row.mode == "train":
                for key, value in training.role_stats().items():
                    setattr(row, key, value)
            if row.kernels == 0 and not row.bytes:  # every graph ran as captured: nothing modeled
                row.bytes = row.eager_bytes = None
            if stats["note"]:
                row.notes.append(stats["note"])
            if row.bytes is not None and row.eager_bytes:
                row.notes.append(f"modeled bytes moved per call: compiled {_fmt_bytes(row.bytes)}, "
                                 f"eager {_fmt_bytes(row.eager_bytes)}")


class TorchCompileBackend(Backend):
    family = "torch.compile"

    def __init__(self, backend: str):
        self.backend = backend
        self.name = f"tc-{backend}"
        self._frames_after_first = 0
        self._saved = None

    def available(self, settings):
        try:
            import torch._dynamo  # noqa: F401 - the reference (imported by bench only)
        except Exception as e:  # noqa: BLE001
            return f"torch._dynamo does not import: {_why(e)}"
        if self.backend == "inductor":
            try:
                import torch._inductor.config  # noqa: F401
            except Exception as e:  # noqa: BLE001
                return f"torch._inductor does not import: {_why(e)}"
        return None

    def reset(self):
        import torch._dynamo
        from torch._dynamo.utils import counters
        torch._dynamo.reset()
        counters.clear()
        if self.backend == "inductor":
            from torch._inductor import metrics
            metrics.reset()
            self._no_graph_caches()

    def _no_graph_caches(self):
        """First call = a real compile: inductor's FX-graph and AOT-autograd caches would
        otherwise turn a repeated run into a cache hit (~0.3 s). Compiled C++ kernels are
        still reused from inductor's cache directory (``--inductor-cold`` empties it)."""
        import torch._functorch.config as functorch_config
        import torch._inductor.config as inductor_config
        if self._saved is None:
            self._saved = (inductor_config.fx_graph_cache, functorch_config.enable_autograd_cache)
        inductor_config.fx_graph_cache = False
        functorch_config.enable_autograd_cache = False

    def close(self):
        if self._saved is not None:
            import torch._functorch.config as functorch_config
            import torch._inductor.config as inductor_config
            inductor_config.fx_graph_cache, functorch_config.enable_autograd_cache = self._saved
            self._saved = None

    def compile(self, model):
        return torch.compile(model, backend=self.backend)

    def frames_compiled(self) -> int:
        from torch._dynamo.utils import counters
        return int(counters["frames"]["total"])

    def explain(self, case):
        import torch._dynamo
        torch._dynamo.reset()
        with case.grad_context():
            ex = torch._dynamo.explain(case.fresh())(*case.inputs)
        torch._dynamo.reset()
        return dict(graphs=ex.graph_count, breaks=len(ex.break_reasons), guards=len(ex.out_guards),
                    break_reasons=[f"{_first_line(r.reason, 120)} @ {_dynamo_where(r)}" for r in ex.break_reasons])

    def after(self, compiled, row):
        row.recompiles = self.frames_compiled() - self._frames_after_first
        if self.backend == "inductor":
            from torch._inductor import metrics
            row.kernels = int(metrics.generated_kernel_count) or None
            row.bytes = int(metrics.num_bytes_accessed) or None
            if row.kernels is None and row.graphs:
                row.notes.append("no inductor kernels generated (graphs ran library ops / fell back)")


def _short_where(where) -> str:
    where = str(where)
    return where.rsplit("/", 1)[-1]


def make_backends(names) -> list[Backend]:
    table = {"capture-eager": lambda: CaptureBackend("eager"), "capture-triton": lambda: CaptureBackend("triton"),
             "capture-cpu": lambda: CaptureBackend("cpu"),
             "tc-eager": lambda: TorchCompileBackend("eager"), "tc-inductor": lambda: TorchCompileBackend("inductor")}
    return [table[n]() for n in names]


ALIASES = {"eager": "capture-eager", "triton": "capture-triton", "cpu": "capture-cpu", "inductor": "tc-inductor",
           "torch.compile": "tc-eager", "dynamo": "tc-eager", "tc": "tc-eager"}


def select_backends(settings: Settings) -> list[str]:
    if settings.backends:
        wanted = []
        for name in (n.strip() for n in settings.backends.split(",") if n.strip()):
            name = ALIASES.get(name, name)
            if name not in ALL_BACKENDS:
                raise SystemExit(f"unknown backend {name!r}; known: {', '.join(ALL_BACKENDS)}")
            wanted.append(name)
        return wanted
    names = list(DEFAULT_BACKENDS)
    if settings.triton or torch.cuda.is_available():
        names.insert(1, "capture-triton")
    return names


def select_modes(settings: Settings) -> list[str]:
    if not settings.modes:
        return list(MODES)
    modes = [m.strip() for m in settings.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SystemExit(f"unknown mode(s) {bad}; known: {', '.join(MODES)}")
    return modes


def prepare_triton(settings: Settings, backends: list[str]):
    """``capture-triton`` without CUDA runs under the Triton interpreter, which triton
    reads when it is first imported: set it now if nothing imported triton yet."""
    if "capture-triton" in backends and not torch.cuda.is_available():
        if "triton" not in sys.modules:
            os.environ.setdefault("TRITON_INTERPRET", "1")


# ------------------------------------------------------------------ measuring

def _calls_per_batch(fns, settings: Settings) -> int:
    """Calls per timed batch so that one batch of the slowest variant takes about
    ``settings.batch_seconds``."""
    slowest = 0.0
    for fn in fns:
        fn()  # warm
        start = time.perf_counter()
        fn()
        slowest = max(slowest, time.perf_counter() - start)
    return int(min(max(settings.batch_seconds / max(slowest, 1e-7), 1), 200))


def run_variant(case: Case, backend: Backend, settings: Settings, explained: dict, row: Row):
    """Compile, check, time one backend on one case; fills ``row``."""
    rtol, atol = TOLERANCE.get(backend.name, (1e-4, 1e-5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend.reset()
        # the reference: eager, first step
        ref_model = case.fresh()
        ref_pairs = case.step(ref_model, ref_model, case.inputs)
        ref_buffers = case.buffers(ref_model)

        model = case.fresh()
        try:
            compiled = backend.compile(model)
            start = time.perf_counter()
            got = case.step(model, compiled, case.inputs)
            row.first_call_s = time.perf_counter() - start
        except Exception as e:  # noqa: BLE001 - reported, the rest still runs
            row.status, row.reason = "cannot run", _why(e)
            backend.reset()
            return
        if isinstance(backend, TorchCompileBackend):
            backend._frames_after_first = backend.frames_compiled()
        for key in ("graphs", "breaks", "break_reasons", "guards"):
            if key in explained:
                setattr(row, key, explained[key])
        ok, err, bad = _compare(_zip_pairs(got + case.buffers(model), ref_pairs + ref_buffers), rtol, atol)

        # steady state: timed interleaved with eager
        eager_model = case.fresh()
        eager_fn = case.timed_callable(eager_model, eager_model)
        compiled_fn = case.timed_callable(model, compiled)
        interpreted = interpreted_triton(backend)
        try:
            with case.grad_context():
                if interpreted:
                    calls, rounds, warmup = 1, 3, 1
                else:
                    calls, rounds = _calls_per_batch([eager_fn, compiled_fn], settings), settings.repeats
                    warmup = min(20, max(3, calls))
                samples = interleaved_samples({"eager": eager_fn, "compiled": compiled_fn}, (), calls=calls,
                                              repeats=rounds, warmup=warmup)
        except Exception as e:  # noqa: BLE001
            row.status, row.reason = "cannot run", f"failed while timing: {_why(e)}"
            backend.reset()
            return
        row.calls, row.rounds = calls, rounds
        eager_s, compiled_s = samples["eager"], samples["compiled"]
        row.eager_ms, row.eager_spread_ms = statistics.median(eager_s) * 1e3, (max(eager_s) - min(eager_s)) * 1e3
        row.ms, row.spread_ms = statistics.median(compiled_s) * 1e3, (max(compiled_s) - min(compiled_s)) * 1e3
        # the median of per-round ratios: a round's eager and compiled batches run back to
        # back, so load from other processes mostly cancels out of their ratio
        row.speedup = statistics.median(e / c for e, c in zip(eager_s, compiled_s) if c > 0)

        if case.train:
            row.saved_bytes = training.saved_activation_bytes(model, compiled, case.inputs)
            row.eager_saved_bytes = training.saved_activation_bytes(eager_model, eager_model, case.inputs)
        # again, on inputs with other values (constants baked into a graph show up here)
        try:
            ref2 = case.step(ref_model, ref_model, case.other_inputs)
            got2 = case.step(model, compiled, case.other_inputs)
            ok2, err2, bad2 = _compare(_zip_pairs(got2, ref2), rtol, atol)
        except Exception as e:  # noqa: BLE001
            ok2, err2, bad2 = False, float("nan"), f"second call on other inputs raised {_why(e)}"
        backend.after(compiled, row)
        backend.reset()

    row.correct = ok and ok2
    row.max_err = max(err, err2) if not math.isnan(err2) else err
    if not row.correct:
        row.status = "mismatch"
        row.reason = bad or f"(other inputs) {bad2}"
    seen = set(row.notes)
    for w in caught:
        text = _first_line(_short_paths(str(w.message)), 200)
        if text and text not in seen and not _boring_warning(w):
            seen.add(text)
            row.notes.append(text)


def interpreted_triton(backend) -> bool:
    return (backend.name == "capture-triton" and os.environ.get("TRITON_INTERPRET") == "1"
            and not torch.cuda.is_available())


def _boring_warning(w) -> bool:
    text = str(w.message)
    return issubclass(w.category, (DeprecationWarning, FutureWarning)) or "TF32" in text


def plan(settings: Settings):
    specs = model_suite.select(settings.models, quick=settings.quick)
    backends = select_backends(settings)
    modes = select_modes(settings)
    return specs, modes, backends


def run(settings: Settings, progress_stream=None) -> dict:
    """Run the suite; returns ``{"meta": {...}, "rows": [Row as dict, ...]}``."""
    specs, modes, backend_names = plan(settings)
    prepare_triton(settings, backend_names)
    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    backends = make_backends(backend_names)
    unavailable = {b.name: b.available(settings) for b in backends}
    rows: list[Row] = []
    load_before = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    progress = Progress(len(specs) * len(modes) * len(backends), settings.progress, progress_stream)
    if (settings.progress and load_before is not None and load_before > 0.5 * (os.cpu_count() or 1)
            and torch.get_num_threads() > 1):
        progress.stream.write(f"bench: load average {load_before:.1f} on {os.cpu_count()} CPUs: other processes are "
                              "busy and timings will be noisy (--threads 1 steadies them)\n")
    started = time.perf_counter()
    inductor_spent, inductor_done = 0.0, 0
    try:
        for spec in specs:
            ok, why = model_suite.available(spec)
            if not ok:
                for mode in modes:
                    for b in backends:
                        rows.append(Row(spec.name, mode, b.name, status="skipped", reason=f"cannot run: {why}"))
                        progress.step(f"{spec.name}: skipped")
                continue
            for mode in modes:
                progress.show(f"{spec.name} {mode}: building")
                try:
                    with _quiet(), warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        case = Case(spec, mode, device)
                except Exception as e:  # noqa: BLE001
                    for b in backends:
                        rows.append(Row(spec.name, mode, b.name, status="cannot run",
                                        reason=f"building the model failed: {_why(e)}"))
                        progress.step()
                    continue
                explained_by_family: dict = {}
                for b in backends:
                    row = Row(spec.name, mode, b.name)
                    rows.append(row)
                    progress.show(f"{spec.name} {mode} {b.name}")
                    skip = unavailable[b.name] or _skip_reason(b, settings, mode, inductor_spent, inductor_done)
                    if skip:
                        row.status, row.reason = ("cannot run" if unavailable[b.name] else "skipped"), skip
                    else:
                        _run_one(case, b, settings, explained_by_family, row)
                    if b.name == "tc-inductor" and row.first_call_s is not None:
                        inductor_spent += row.first_call_s
                        inductor_done += 1
                    progress.step()
    finally:
        progress.close()
        for b in backends:
            b.close()
    meta = _meta(settings, device, backend_names, modes, time.perf_counter() - started)
    meta["load_before"] = load_before
    return {"meta": meta, "rows": [dataclasses.asdict(r) for r in rows]}


def _skip_reason(b, settings: Settings, mode: str, inductor_spent: float, inductor_done: int) -> str | None:
    """Why ``--quick`` skips backend ``b`` here, if it does."""
    if b.name != "tc-inductor":
        return None
    if settings.quick and mode == "train":
        return "--quick: inductor in eval mode only (a train compile takes 3-10 s); run without --quick"
    if settings.inductor_budget is not None and inductor_spent >= settings.inductor_budget:
        return (f"--quick: inductor compile budget ({settings.inductor_budget:.0f} s) used up by "
                f"{inductor_done} compile(s) ({inductor_spent:.0f} s); run without --quick")
    return None


def _run_one(case: Case, b, settings: Settings, explained_by_family: dict, row: Row) -> None:
    """Explain (once per backend family and case) and run one variant; fills ``row``."""
    with _quiet():
        if b.family not in explained_by_family:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with contextlib.redirect_stdout(io.StringIO()):
                        explained_by_family[b.family] = b.explain(case)
            except Exception as e:  # noqa: BLE001
                explained_by_family[b.family] = {}
                row.notes.append(f"explain failed: {_why(e)}")
        try:
            run_variant(case, b, settings, explained_by_family[b.family], row)
        except Exception as e:  # noqa: BLE001 - never lose the whole run to one variant
            row.status, row.reason = "cannot run", f"harness error: {_why(e)}"
            with contextlib.suppress(Exception):
                b.reset()


def _meta(settings, device, backends, modes, seconds) -> dict:
    ok, tf = model_suite.transformers_status()
    return dict(
        when=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=round(seconds, 1), quick=settings.quick,
        python=platform.python_version(), torch=torch.__version__, transformers=tf if ok else None,
        machine=platform.machine(), cpus=os.cpu_count(), torch_threads=torch.get_num_threads(), device=device,
        triton_interpret=os.environ.get("TRITON_INTERPRET") == "1", backends=backends, modes=modes,
        repeats=settings.repeats, inductor_budget_s=settings.inductor_budget,
        inductor_kernel_cache=os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default (warm after the first run)"),
    )
