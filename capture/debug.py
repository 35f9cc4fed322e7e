"""CAPTURE_DEBUG_DIR: one folder per compiled frame entry with everything about it.

``<dir>/<function>_<first line>_<n>/`` holds the original and rewritten bytecode
(``dis``), the FX graph, the guard function's source, the replacement frame's source
and, when the backend is our code generator (its compiled graph offers ``source()``),
the generated kernels and wrapper (rewritten when a backward graph compiles at the
first ``backward()``). ``<n>`` numbers the entries of one process in
order.
"""
from __future__ import annotations

import dis
import io
import itertools
import os
import weakref

from capture import config
from capture.resume import display_name

_numbers = itertools.count()


def _dis(code) -> str:
    buf = io.StringIO()
    dis.dis(code, file=buf)
    return buf.getvalue()


def dump_entry(code, entry) -> str | None:
    """Write ``entry`` (a records.CacheEntry of ``code``) under CAPTURE_DEBUG_DIR; the folder, or None."""
    if not config.debug_dir:
        return None
    folder = os.path.join(config.debug_dir, f"{display_name(code).strip('<>')}_{code.co_firstlineno}_{next(_numbers)}")
    os.makedirs(folder, exist_ok=True)
    parts = {"original_bytecode.txt": _dis(code), "rewritten_bytecode.txt": _dis(entry.code),
             "guards.py": entry.guard.source, "replacement.py": entry.source or f"# runs eagerly: {entry.reason}\n"}
    if entry.graph is not None:
        parts["graph.txt"] = entry.graph.print_readable(print_output=False)
    generated = getattr(entry.compiled, "source", None)  # codegen.CompiledGraph.source(): kernels + wrapper
    if callable(generated):
        parts["kernels.py"] = generated()
        if hasattr(entry.compiled, "on_graph"):  # the compiled path: backward graphs come later
            entry.compiled.on_graph = _rewriter(os.path.join(folder, "kernels.py"), weakref.WeakMethod(generated))
    for name, text in parts.items():
        _write(os.path.join(folder, name), text)
    return folder


def _rewriter(path: str, generated: weakref.WeakMethod):
    """Rewrite ``path`` with the compiled entry's source each time it compiles a graph
    (held weakly: the dump must not keep the compiled entry alive)."""
    def rewrite():
        source = generated()
        if source is not None:
            _write(path, source())
    return rewrite


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
