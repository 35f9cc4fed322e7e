"""``capture.report()``: what was compiled, behind which guards, and why it recompiled.

Per compiled frame: its cache entries with their guards in readable form and hit
counts, and every recompile with the guard that failed, expected vs actual, and the
user line that read the value. ``str(report)`` is text; ``to_html(path)`` writes a
self-contained page. ``python -m capture.report script.py`` runs a script and prints
the report at exit.
"""
from __future__ import annotations

import dataclasses
import html
import types

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


@dataclasses.dataclass
class FrameReport:
    name: str
    where: str
    entries: list[EntryReport]
    recompiles: list  # list[records.Recompile]
    cache_limit_hit: bool


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
            for e in f.entries:
                hits = "not counted" if e.hits is None else str(e.hits)
                what = f"graph of {e.ops} op(s)" if e.kind == "graph" else f"runs eagerly: {e.reason}"
                if e.kind == "graph" and e.reason:
                    what += f", then a graph break: {e.reason}"
                out.append(f"  entry {e.index}: {what}; hits: {hits}")
                out.extend(f"    guard: {g}" for g in e.guards)
            for i, r in enumerate(f.recompiles):
                out.append(f"  recompile {i + 1}:")
                if not r.failures:
                    out.append("    (no guard failed: the previous entry could not run)")
                for fail in r.failures:
                    line = f"    entry {fail.entry_index} failed: {fail.summary()}"
                    if fail.user_line:
                        line += f"\n      value read at {fail.user_line}"
                    out.append(line)
        return "\n".join(out)

    def to_html(self, path: str | None = None) -> str:
        page = _html(self)
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
                               _op_count(e.graph), str(e.reason) if e.reason else None, e.source)
                   for i, e in enumerate(record.entries)]
        frames.append(FrameReport(code.co_name, record.where, entries, list(record.recompiles), record.limit_hit))
    return Report(frames)


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
    """Resume functions keep the file and first line of the frame they continue."""
    return code.co_name.startswith("__resume_") and any(
        code.co_filename == w.co_filename and code.co_firstlineno == w.co_firstlineno for w in wanted)


def _html(report: Report) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>capture report</title><style>",
             "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}",
             "pre{background:#f5f5f5;padding:.6em;overflow:auto}.fail{color:#a00}",
             "details{margin:.3em 0}h2{font-size:1.1em;border-bottom:1px solid #ccc}</style></head><body>",
             f"<h1>capture report</h1><p>{len(report.frames)} compiled frame(s)</p>"]
    for f in report.frames:
        parts.append(f"<h2>{e(f.name)} <small>{e(f.where)}</small></h2>")
        if f.cache_limit_hit:
            parts.append("<p class='fail'>cache limit hit: this frame now runs eagerly</p>")
        for entry in f.entries:
            hits = "not counted" if entry.hits is None else entry.hits
            what = f"graph of {entry.ops} op(s)" if entry.kind == "graph" else f"runs eagerly: {e(entry.reason or '')}"
            if entry.kind == "graph" and entry.reason:
                what += f", then a graph break: {e(entry.reason)}"
            parts.append(f"<details open><summary>entry {entry.index}: {what}; hits: {hits}</summary>")
            parts.append("<pre>" + e("\n".join(entry.guards)) + "</pre>")
            if entry.graph:
                parts.append("<details><summary>graph</summary><pre>" + e(entry.graph) + "</pre></details>")
            if entry.replacement_source:
                parts.append("<details><summary>rewritten frame</summary><pre>" + e(entry.replacement_source)
                             + "</pre></details>")
            parts.append("</details>")
        for i, r in enumerate(f.recompiles):
            parts.append(f"<p>recompile {i + 1}:</p><ul>")
            for fail in r.failures:
                where = f" <small>(read at {e(fail.user_line)})</small>" if fail.user_line else ""
                parts.append(f"<li class='fail'>entry {fail.entry_index}: <code>{e(fail.summary())}</code>"
                             f"{where}</li>")
            parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def main(argv=None):
    import argparse
    import runpy
    import sys
    parser = argparse.ArgumentParser(prog="python -m capture.report",
                                     description="run a script and print capture's guard/recompile report at exit")
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    parser.add_argument("--html", help="also write the report as an HTML page here")
    ns = parser.parse_args(argv)
    sys.argv = [ns.script] + ns.args
    try:
        runpy.run_path(ns.script, run_name="__main__")
    finally:
        report = build()
        print(report)
        if ns.html:
            report.to_html(ns.html)


if __name__ == "__main__":
    main()
