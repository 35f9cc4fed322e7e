"""CAPTURE_DEBUG_DIR: one folder per compiled frame entry with everything about it.

``<dir>/<function>_<first line>_<n>/`` holds the original and rewritten bytecode
(``dis``), the FX graph, the guard function's source, the replacement frame's source
and, when the backend is our code generator (its compiled graph offers ``source()``),
the generated kernels and wrapper. ``<n>`` numbers the entries of one process in
order.
"""
from __future__ import annotations

import dis
import io
import itertools
import os

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
    for name, text in parts.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    return folder
