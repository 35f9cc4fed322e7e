"""The cache entries of one code object, in its two places: the list the C hook tries
(stored on the code object, ``capture._C.get_cache``) and its ``FrameRecord`` (reports).

An entry lives as long as the objects its guards name: when one of them dies its
guards' ``Lifeline`` is cut and the entry is dropped from both places, with the sources
it registered with linecache. Nothing here holds a code object or an entry strongly
from outside those two places.
"""
from __future__ import annotations

import weakref

from capture import _C
from capture.records import CacheEntry, FrameRecord
from capture.state import FRAMES, forget_entry_sources


def record_of(code) -> FrameRecord:
    record = FRAMES.get(code)
    if record is None:
        record = FRAMES[code] = FrameRecord(code)
    return record


def entries_of(code) -> list:
    """The list the hook tries for ``code`` (``(guard fn, code, CacheEntry)`` tuples)."""
    entries = _C.get_cache(code)
    if entries is None:
        entries = []
        _C.set_cache(code, entries)
    return entries


def install(code, entry: CacheEntry) -> None:
    """Add ``entry`` after the existing ones; it is dropped when its lifeline is cut."""
    entries_of(code).append((entry.guard.fn, entry.code, entry))
    record_of(code).entries.append(entry)
    lifeline = entry.guard.lifeline
    if lifeline is not None:
        code_ref, entry_ref = weakref.ref(code), weakref.ref(entry)
        lifeline.on_cut(lambda: _drop(code_ref, entry_ref))


def _drop(code_ref, entry_ref) -> None:
    """Called when an object the entry's guards named died (maybe during gc or exit)."""
    code, entry = code_ref(), entry_ref()
    if code is None or entry is None:
        return
    entries = _C.get_cache(code)
    if entries is not None:
        entries[:] = [item for item in entries if item[2] is not entry]
    record = FRAMES.get(code)
    if record is not None and any(e is entry for e in record.entries):
        record.note_drop(entry, entry.guard.lifeline.cause or "an object")
    forget_entry_sources(entry)
