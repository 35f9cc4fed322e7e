"""The guard/recompile report as one self-contained HTML page (``Report.to_html``).

Per frame: why sizes became dynamic; each recompile with the source line that read
the value that changed (expected vs actual beside it) and advice on what to change;
the guards that differ between cache entries side by side; then each entry's guards,
graph and rewritten frame.
"""
from __future__ import annotations

import html
import linecache
import re

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
pre{background:#f5f5f5;padding:.6em;overflow:auto}.fail{color:#a00}
details{margin:.3em 0}h2{font-size:1.1em;border-bottom:1px solid #ccc;margin-top:2em}
.src{font-family:monospace;background:#fff8e0;border-left:4px solid #e0a000;padding:.3em .6em;margin:.3em 0}
.src .ln{color:#888;margin-right:1em}.changed{background:#ffd0d0;font-weight:bold}
.advice{background:#e8f4ff;border-left:4px solid #3080e0;padding:.4em .6em;margin:.3em 0 1em 0}
table.diff{border-collapse:collapse;margin:.5em 0}table.diff td,table.diff th{border:1px solid #ccc;
padding:.2em .5em;font-family:monospace;font-size:.9em;vertical-align:top}table.diff th{background:#eee}
.dyn{color:#060}
"""


def render_html(report) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>capture report</title>",
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>capture report</h1><p>{len(report.frames)} compiled frame(s)</p>"]
    for f in report.frames:
        parts.append(f"<h2>{e(f.name)} <small>{e(f.where)}</small>: {len(f.entries)} cache entries, "
                     f"{len(f.recompiles)} recompile(s)</h2>")
        if f.cache_limit_hit:
            parts.append("<p class='fail'>cache limit hit: this frame now runs eagerly</p>")
        for size, why in f.dynamic_why.items():
            parts.append(f"<p class='dyn'>dynamic: <code>{e(size)}</code>: {e(why)}</p>")
        parts += _recompiles(f)
        parts += _guard_diff(f)
        parts += _entries(f)
    parts.append("</body></html>")
    return "\n".join(parts)


def _recompiles(f) -> list:
    e = html.escape
    parts = []
    for i, r in enumerate(f.recompiles):
        parts.append(f"<h3>recompile {i + 1}</h3>")
        if not r.failures:
            parts.append("<p>(no guard failed: the previous entry could not run)</p>")
        for j, fail in enumerate(r.failures):
            parts.append(f"<p class='fail'>entry {fail.entry_index} failed: <code>{e(fail.summary())}</code></p>")
            parts.append(_source_line(fail))
            advice = f.advice[i][j] if i < len(f.advice) and j < len(f.advice[i]) else None
            if advice and (j == 0 or advice != f.advice[i][j - 1]):
                parts.append(f"<div class='advice'><b>advice:</b> {e(advice)}</div>")
    return parts


def _source_line(fail) -> str:
    """The user line that read the value, with the value's name marked."""
    e = html.escape
    if not fail.user_line or ":" not in fail.user_line:
        return ""
    filename, _, lineno = fail.user_line.rpartition(":")
    text = linecache.getline(filename, int(lineno)) if lineno.isdigit() else ""
    if not text.strip():
        return f"<div class='src'>read at {e(fail.user_line)}</div>"
    code = e(text.rstrip())
    name = _as_written(fail.source_name)
    if name and name in text:
        code = code.replace(e(name), f"<span class='changed'>{e(name)}</span>")
    return (f"<div class='src'><span class='ln'>{e(fail.user_line)}</span>{code}"
            f"<br><small>{e(fail.summary())}</small></div>")


def _as_written(source_name: str) -> str | None:
    """How the user's code spells a source: ``L['self'].k`` -> ``self.k``, ``G['SCALE']`` -> ``SCALE``."""
    match = re.match(r"^[LG]\['(\w+)'\]((?:\.\w+)*)", source_name)
    return match.group(1) + match.group(2) if match else None


def _guard_diff(f) -> list:
    """The guards whose text differs between entries, one column per entry."""
    e = html.escape
    if len(f.entries) < 2:
        return []
    sources = []
    for entry in f.entries:
        for name in entry.guards_by_source:
            if name not in sources:
                sources.append(name)
    rows = []
    for name in sources:
        cells = ["\n".join(entry.guards_by_source.get(name, ["(not guarded)"])) for entry in f.entries]
        if len(set(cells)) > 1:
            rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    if not rows:
        return []
    head = "".join(f"<th>entry {entry.index}</th>" for entry in f.entries)
    return ["<h3>guards that differ between entries</h3><table class='diff'>", f"<tr>{head}</tr>", *rows, "</table>"]


def _entries(f) -> list:
    e = html.escape
    parts = []
    for entry in f.entries:
        hits = "not counted" if entry.hits is None else entry.hits
        what = f"graph of {entry.ops} op(s)" if entry.kind == "graph" else f"runs eagerly: {e(entry.reason or '')}"
        if entry.kind == "graph" and entry.reason:
            what += f", then a graph break: {e(entry.reason)}"
        parts.append(f"<details><summary>entry {entry.index}: {what}; hits: {hits}</summary>")
        parts.append("<pre>" + e("\n".join(entry.guards)) + "</pre>")
        if entry.specializations:
            parts.append("<p>specialized sizes:</p><pre>" + e("\n".join(entry.specializations)) + "</pre>")
        if entry.graph:
            parts.append("<details><summary>graph</summary><pre>" + e(entry.graph) + "</pre></details>")
        if entry.replacement_source:
            parts.append("<details><summary>rewritten frame</summary><pre>" + e(entry.replacement_source)
                         + "</pre></details>")
        parts.append("</details>")
    return parts
