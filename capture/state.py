"""The front end's process-wide state, in one place, and ``reset`` that drops it all.

Every table here holds code objects weakly (by identity, ``capture.weak``): a function
that is compiled and dropped takes its cache entries, records and resume functions with
it. Everything else keeps no state of its own between compiles, except the code
generator (``codegen.reset``), the linecache entries of generated sources and torch's
own caches our compiles fill (``fx_graph.torch_caches``).
"""
from __future__ import annotations

import codegen
from capture import _C, runtime
from capture.weak import WeakIdDict, WeakIdSet
from fx_graph import torch_caches
from guards import build as guard_build

def _forget_record(record) -> None:
    """A compiled code object died: drop what its entries put in linecache and torch.fx."""
    for entry in record.entries:
        forget_entry_sources(entry)


def forget_entry_sources(entry) -> None:
    """Drop what ``entry`` (a records.CacheEntry) registered with linecache: its
    replacement, its guard and the GraphModule sources torch.fx kept while it compiled."""
    runtime.forget_source(entry.filename)
    entry.guard.forget_source()
    torch_caches.forget_sources(entry.fx_sources)


FRAMES = WeakIdDict(_forget_record)  # code -> records.FrameRecord: what was compiled (report, explain)
SKIPPED = WeakIdSet()  # codes marked to run as they are (capture.skip_policy)
FORCED_CODES = WeakIdSet()  # codes passed to capture.compile: traced even from skipped files
# code -> {key: resume function, bridge or native tail made for its breaks} (capture.resume)
RESUME_CODES = WeakIdDict()
ORIGINS = WeakIdDict()  # code made for a break -> resume.Origin
SHARED_CLASSES = WeakIdSet()  # nn.Module classes whose instances share entries (capture.sharing)
LAST_COMPILED_INSTANCE = WeakIdDict()  # nn.Module class -> weak reference to the last instance compiled


def reset() -> None:
    """Drop every cache entry, skip mark, record and generated code; later calls
    recompile from scratch."""
    for code, record in FRAMES.items():
        _C.set_cache(code, None)
        _forget_record(record)
    for code in SKIPPED:
        _C.set_cache(code, None)
    FRAMES.clear()
    SKIPPED.clear()
    FORCED_CODES.clear()
    RESUME_CODES.clear()
    ORIGINS.clear()
    SHARED_CLASSES.clear()
    LAST_COMPILED_INSTANCE.clear()
    runtime.forget_sources()
    guard_build.forget_sources()
    torch_caches.clear_fake_dispatch_cache()
    codegen.reset()
