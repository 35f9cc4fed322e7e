"""Which frames the hook runs as they are: skip marks on code objects.

A frame from a skipped file (capture.skipfiles) or a generated code object (``<genexpr>``
...) is marked once, in C, so the hook never calls back for it again. Code passed to
capture.compile is traced even from a skipped file (``force``).
"""
from __future__ import annotations

from capture import _C
from capture.skipfiles import is_skipped_file
from capture.state import FORCED_CODES, SKIPPED


def mark_skip(code):
    _C.set_skip(code)
    SKIPPED.add(code)


def force(code):
    """Trace ``code`` when its frame runs, even if an earlier skip mark says otherwise."""
    FORCED_CODES.add(code)
    if _C.is_skipped(code):
        _C.set_cache(code, None)
        SKIPPED.discard(code)


def skip_frame(code, forced: set) -> bool:
    """Whether the hook should run ``code`` as it is (marking it, unless some compile
    asked for it); ``forced``: the codes this compile traces whatever their file."""
    if code in forced:
        return False
    if not (is_skipped_file(code.co_filename) or code.co_name.startswith("<") and code.co_name != "<lambda>"):
        return False
    if code not in FORCED_CODES:  # another compile asked for it: leave it unmarked
        mark_skip(code)
    return True
