"""A bench run's result: its rows (``Row``), as a terminal table with notes, and as
JSON, CSV and a PNG chart."""
from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter

from bench.case import _first_line


@dataclasses.dataclass
class Row:
    model: str
    mode: str
    backend: str
    status: str = "ok"  # ok | mismatch | cannot run | skipped
    reason: str = ""
    correct: bool | None = None
    max_err: float | None = None
    first_call_s: float | None = None
    eager_ms: float | None = None
    eager_spread_ms: float | None = None
    ms: float | None = None
    spread_ms: float | None = None
    speedup: float | None = None
    calls: int | None = None  # calls per timed batch
    rounds: int | None = None  # timed batches per variant
    graphs: int | None = None
    breaks: int | None = None
    break_reasons: list = dataclasses.field(default_factory=list)
    recompiles: int | None = None
    guards: int | None = None
    kernels: int | None = None
    bytes: int | None = None  # modeled bytes read + written per call
    eager_bytes: int | None = None  # the same for eager PyTorch running the graphs op by op
    fw_kernels: int | None = None  # train mode, capture codegen backends: the forward graphs' kernels ...
    bw_kernels: int | None = None  # ... and the backward graphs' (bench.training)
    fw_bytes: int | None = None
    bw_bytes: int | None = None
    saved_bytes: int | None = None  # train mode: bytes kept for the backward after one forward
    eager_saved_bytes: int | None = None
    notes: list = dataclasses.field(default_factory=list)


def _fmt_ms(v) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _fmt_int(v) -> str:
    return "-" if v is None else str(v)


def _fmt_bytes(v) -> str:
    if v is None:
        return "-"
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if v >= size:
            return f"{v / size:.1f}{unit}"
    return str(v)


COLUMNS = [("model", 13, "<"), ("mode", 5, "<"), ("backend", 14, "<"), ("ok", 3, ">"), ("max err", 7, ">"),
           ("1st s", 6, ">"), ("eager ms", 8, ">"), ("ms", 8, ">"), ("±%", 4, ">"), ("speedup", 7, ">"),
           ("graphs", 6, ">"), ("breaks", 6, ">"), ("recomp", 6, ">"), ("guards", 6, ">"), ("kernels", 7, ">"),
           ("bytes", 6, ">")]


def _cells(r: dict) -> list[str]:
    ok = "yes" if r["correct"] else ("NO" if r["correct"] is False else "-")
    spread = (f"{100 * r['spread_ms'] / r['ms']:.0f}" if r["ms"] and r["spread_ms"] is not None else "-")
    return [r["model"], r["mode"], r["backend"], ok,
            "-" if r["max_err"] is None else f"{r['max_err']:.0e}" if r["max_err"] else "0",
            "-" if r["first_call_s"] is None else f"{r['first_call_s']:.2f}",
            _fmt_ms(r["eager_ms"]), _fmt_ms(r["ms"]), spread,
            "-" if r["speedup"] is None else f"{r['speedup']:.2f}x",
            _fmt_int(r["graphs"]), _fmt_int(r["breaks"]), _fmt_int(r["recompiles"]), _fmt_int(r["guards"]),
            _fmt_int(r["kernels"]), _fmt_bytes(r["bytes"])]


def format_table(result: dict) -> str:
    rows = result["rows"]
    header = " ".join(f"{name:{align}{width}}" for name, width, align in COLUMNS)
    out = [header, "-" * len(header)]
    last_model = None
    skipped_models = set()
    for r in rows:
        if last_model is not None and r["model"] != last_model:
            out.append("")
        last_model = r["model"]
        if r["status"] == "skipped" and r["reason"].startswith("cannot run") and r["model"] not in skipped_models:
            skipped_models.add(r["model"])
            out.append(f"{r['model']:<13} {'-':<5} {'(all)':<14} {r['reason']}")
            continue
        if r["model"] in skipped_models:
            continue
        if r["status"] in ("cannot run", "skipped"):
            label = "cannot run" if r["status"] == "cannot run" else "skipped"
            why = r["reason"] if not r["reason"].startswith(label) else r["reason"][len(label):].lstrip(": ")
            out.append(f"{r['model']:<13} {r['mode']:<5} {r['backend']:<14} {label}: {_first_line(why, 110)}")
            continue
        cells = _cells(r)
        out.append(" ".join(f"{c:{align}{width}}" for c, (_, width, align) in zip(cells, COLUMNS)))
    meta = result["meta"]
    out.append("-" * len(header))
    out.append(f"ms: median per call ({'inference, no_grad' if 'eval' in meta['modes'] else ''}"
               f"{'; ' if len(meta['modes']) > 1 else ''}{'train: forward+backward' if 'train' in meta['modes'] else ''})"
               f", timed interleaved with eager ({meta['repeats']} rounds); ±%: max-min over rounds; "
               f"speedup: median over rounds of eager/compiled; 1st s: first call (compile + run); tc = torch.compile; "
               f"'-': not known/not measured")
    out.append(f"{meta['cpus']} CPUs, torch threads: {meta['torch_threads']}, device {meta['device']}, torch {meta['torch']}"
               f"{', transformers ' + meta['transformers'] if meta['transformers'] else ''}; run took {meta['seconds']:.0f} s")
    if meta.get("triton_interpret") and "capture-triton" in meta["backends"] and meta["device"] == "cpu":
        out.append("capture-triton ran its kernels in the Triton interpreter on CPU (TRITON_INTERPRET=1): its ms is "
                   "the interpreter's, not a GPU's (timed with 3 rounds of 1 call)")
    load = meta.get("load_before")
    if load is not None and meta["cpus"] and load > 0.5 * meta["cpus"]:
        out.append(f"warning: load average was {load:.1f} on {meta['cpus']} CPUs before the run: other processes "
                   "were busy, so timings are noisy (see the ±% column"
                   + ("; --threads 1 steadies them)" if meta["torch_threads"] > 1 else ")"))
    return "\n".join(out)


def format_notes(result: dict) -> str:
    """Mismatches, break reasons and warnings worth reading, one block per model."""
    lines = []
    for r in result["rows"]:
        items = []
        if r["status"] == "mismatch":
            items.append(f"MISMATCH vs eager: {r['reason']}")
        counted = Counter(r["break_reasons"])
        for reason, n in list(counted.items())[:3]:
            items.append(f"break: {reason}" + (f" (x{n})" if n > 1 else ""))
        if len(counted) > 3:
            items.append(f"... {len(counted) - 3} more distinct break reason(s), "
                         f"{sum(list(counted.values())[3:])} break(s) in all")
        notes = [_short_paths(n) for n in r["notes"]]
        items += notes[:4] + ([f"... {len(notes) - 4} more note(s) in the JSON"] if len(notes) > 4 else [])
        if items and (r["status"] not in ("skipped",)):
            lines.append(f"{r['model']} {r['mode']} {r['backend']}:")
            lines += [f"  {i}" for i in items]
    return "\n".join(lines)


def _short_paths(text: str) -> str:
    """/long/path/to/site-packages/pkg/file.py -> file.py"""
    return re.sub(r"(?:/[^\s():/]+)+/([^\s():/]+\.py)", r"\1", text)


def write_json(result: dict, path: str):
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


def write_csv(result: dict, path: str):
    import csv
    fields = [f.name for f in dataclasses.fields(Row)]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in result["rows"]:
            w.writerow({k: (" | ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})


def write_plot(result: dict, path: str):
    """Two bar charts: speedup over eager, and first-call (compile) time, per model and mode."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    rows = [r for r in result["rows"] if r["status"] in ("ok", "mismatch")]
    cases = list(dict.fromkeys(f"{r['model']} {r['mode']}" for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    if not cases:
        raise SystemExit("--plot: no measured rows to draw")
    by = {(f"{r['model']} {r['mode']}", r["backend"]): r for r in rows}
    colors = {"capture-eager": "#1f77b4", "capture-triton": "#9467bd", "tc-eager": "#ff7f0e", "tc-inductor": "#2ca02c"}
    fig, axes = plt.subplots(2, 1, figsize=(min(13.0, max(7.0, 0.25 * len(cases) * max(len(backends), 2))), 6.4), dpi=80)
    width = 0.8 / max(len(backends), 1)
    for ax, key, title, ylabel, log in (
            (axes[0], "speedup", "per-call speedup over eager (higher is better; CPU)", "eager / compiled", True),
            (axes[1], "first_call_s", "first call: trace + compile + run (lower is better)", "seconds", True)):
        for i, b in enumerate(backends):
            xs, ys = [], []
            for j, c in enumerate(cases):
                r = by.get((c, b))
                if r is not None and r[key] is not None:
                    xs.append(j + (i - (len(backends) - 1) / 2) * width)
                    ys.append(r[key])
            ax.bar(xs, ys, width, label=b, color=colors.get(b))
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels(cases, fontsize=7, rotation=30, ha="right")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        if log:
            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        if key == "speedup":
            ax.axhline(1.0, color="black", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    meta = result["meta"]
    fig.suptitle(f"python -m bench{' --quick' if meta['quick'] else ''}: {meta['cpus']} CPUs, "
                 f"torch threads {meta['torch_threads']}, torch {meta['torch']}", fontsize=9, x=0.4)
    fig.legend(handles, labels, fontsize=7, ncol=len(backends), loc="upper right")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)
