"""The front end's process-wide state, in one place, and ``reset`` that drops it all.

Everything else keeps no state of its own between compiles, except the code
generator (``codegen.reset``) and the linecache entries of generated sources.
"""
from __future__ import annotations

import weakref

import codegen
from capture import _C, runtime
from guards import build as guard_build

FRAMES: dict = {}  # code -> records.FrameRecord: what was compiled (report, explain)
SKIPPED: set = set()  # codes marked to run as they are (capture.skip_policy)
FORCED_CODES: set = set()  # codes passed to capture.compile: traced even from skipped files
# code -> {key: resume function, bridge or native tail made for its breaks} (capture.resume);
# held by the user's code object, so they go with it
RESUME_CODES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
ORIGINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # code made for a break -> resume.Origin


def reset() -> None:
    """Drop every cache entry, skip mark, record and generated code; later calls
    recompile from scratch."""
    for code in list(FRAMES) + list(SKIPPED):
        _C.set_cache(code, None)
    FRAMES.clear()
    SKIPPED.clear()
    FORCED_CODES.clear()
    RESUME_CODES.clear()
    ORIGINS.clear()
    runtime.forget_sources()
    guard_build.forget_sources()
    codegen.reset()
