"""``capture.report()``: what was compiled, behind which guards, and why it recompiled.

Per compiled frame: its cache entries with their guards in readable form and hit
counts, and every recompile with the guard that failed, expected vs actual, and the
user line that read the value. ``str(report)`` is text; ``to_html(path)`` writes a
self-contained page. ``python -m capture.report script.py`` runs a script and prints
the report at exit (``capture/report/__main__.py``: a package's ``__main__``, so running
it does not re-import the module the ``capture`` package already imported).
"""
from __future__ import annotations

import dataclasses
import types

from capture.advice import advise
from capture.report_html import render_html
from capture.resume import display_name, origin_of
from capture.state import FRAMES


@dataclasses.dataclass
class EntryReport:
    index: int
    kind: str  # "graph" or "eager"
    hits: int | None
    guards: list[str]
    graph: str | None
    ops: int
    reason: str | None  # why it runs eagerly, for eager entries
    replacement_source: str
    guards_by_source: dict = dataclasses.field(default_factory=dict)  # source name -> [guard text]
    specializations: list = dataclasses.field(default_factory=list)  # sizes the trace made numbers
    dynamic_sizes: list = dataclasses.field(default_factory=list)  # symbolic sizes of this entry


@dataclasses.dataclass
class FrameReport:
    name: str
    where: str
    entries: list[EntryReport]
    recompiles: list  # list[records.Recompile]
    cache_limit_hit: bool
    advice: list = dataclasses.field(default_factory=list)  # per recompile, per failure: what to do
    dynamic_why: dict = dataclasses.field(default_factory=dict)  # "L['x'].shape[0]" -> "8 then 16 -> dynamic"
    drops: list = dataclasses.field(default_factory=list)  # why entries went: an object they named died


@dataclasses.dataclass
class Report:
    frames: list[FrameReport]

    def __str__(self) -> str:
        if not self.frames:
            return "capture report: nothing compiled"
        out = [f"capture report: {len(self.frames)} compiled frame(s)"]
        for f in self.frames:
            out.append("")
            out.append(f"== {f.name} ({f.where}): {len(f.entries)} cache entr{'y' if len(f.entries) == 1 else 'ies'}, "
                       f"{len(f.recompiles)} recompile(s)" + ("; CACHE LIMIT HIT, now runs eagerly" if f.cache_limit_hit else ""))
            for size, why in f.dynamic_why.items():
                out.append(f"  dynamic: {size}: {why}")
            for e in f.entries:
                hits = "not counted" if e.hits is None else str(e.hits)
                what = f"graph of {e.ops} op(s)" if e.kind == "graph" else f"runs eagerly: {e.reason}"
                if e.kind == "graph" and e.reason:
                    what += f", then a graph break: {e.reason}"
                out.append(f"  entry {e.index}: {what}; hits: {hits}")
                out.extend(f"    guard: {g}" for g in e.guards)
                out.extend(f"    specialized: {s}" for s in e.specializations)
            for i, r in enumerate(f.recompiles):
                out.append(f"  recompile {i + 1}:")
                if not r.failures:
                    out.append("    (no guard failed: the previous entry could not run)")
                for j, fail in enumerate(r.failures):
                    line = f"    entry {fail.entry_index} failed: {fail.summary()}"
                    if fail.user_line:
                        line += f"\n      value read at {fail.user_line}"
                    out.append(line)
                    if i < len(f.advice) and j < len(f.advice[i]) and (j == 0 or f.advice[i][j] != f.advice[i][j - 1]):
                        out.append(f"      advice: {f.advice[i][j]}")
            out.extend(f"  entry dropped: {why}" for why in f.drops)
        return "\n".join(out)

    def to_html(self, path: str | None = None) -> str:
        page = render_html(self)
        if path is not None:
            with open(path, "w") as f:
                f.write(page)
        return page


def build(fn=None) -> Report:
    wanted = _codes_of(fn) if fn is not None else None
    frames = []
    for code, record in list(FRAMES.items()):
        if wanted is not None and code not in wanted and not _is_resume_of(code, wanted):
            continue
        if not record.entries:
            continue
        entries = [EntryReport(i, e.kind, e.hits, e.guard.readable(),
                               e.graph.print_readable(print_output=False) if e.graph is not None else None,
                               _op_count(e.graph), str(e.reason) if e.reason else None, e.source,
                               _guards_by_source(e.guard), [str(s) for s in e.specializations], list(e.dynamic_sizes))
                   for i, e in enumerate(record.entries)]
        advice = [[advise(fail, record) for fail in r.failures] for r in record.recompiles]
        frames.append(FrameReport(display_name(code), record.where, entries, list(record.recompiles), record.limit_hit,
                                  advice, dict(record.dynamic.why), list(record.drops)))
    return Report(frames)


def _guards_by_source(guard_fn) -> dict:
    out: dict = {}
    for g in guard_fn.guards:
        out.setdefault(g.source_name, []).append(g.describe())
    return out


def _op_count(gm) -> int:
    if gm is None:
        return 0
    return sum(1 for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module")
               and getattr(n.target, "__name__", "") != "getitem")


def _codes_of(fn) -> set:
    target = getattr(fn, "_capture_orig_mod", None) or getattr(fn, "_capture_original", None) or fn
    if hasattr(target, "forward") and not isinstance(target, types.FunctionType):
        target = type(target).forward
    target = getattr(target, "__func__", target)
    code = getattr(target, "__code__", None)
    return {code} if code is not None else set()


def _is_resume_of(code, wanted: set) -> bool:
    """A resume function made for a break in one of the ``wanted`` codes."""
    origin = origin_of(code)
    return origin is not None and origin.root() in wanted
