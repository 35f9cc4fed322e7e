"""The 3.11 exception table of a code object, decoded once per code object.

Both the tracer (which handler catches a traced raise) and the resume-function writer
(the stack depth at a handler) read it. Kept per code identity and dropped with the code
(``capture.weak``): a cache must not keep users' functions alive.
"""
from __future__ import annotations

from capture.weak import WeakIdDict

_DECODED = WeakIdDict()  # code -> tuple of entries


def exception_entries(code) -> tuple:
    """(start, end, target, depth, lasti) per entry, offsets in bytes."""
    entries = _DECODED.get(code)
    if entries is None:
        entries = _DECODED[code] = tuple(_decode(code.co_exceptiontable))
    return entries


def _decode(table: bytes):
    i = 0

    def varint():
        nonlocal i
        b = table[i]
        i += 1
        value = b & 63
        while b & 64:
            b = table[i]
            i += 1
            value = (value << 6) | (b & 63)
        return value
    while i < len(table):
        start = varint() * 2
        length = varint() * 2
        target = varint() * 2
        depth_lasti = varint()
        yield start, start + length, target, depth_lasti >> 1, bool(depth_lasti & 1)
