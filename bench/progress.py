"""A one-line progress bar on stderr for ``python -m bench``."""
from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal; one line per
    step otherwise)."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.label = ""

    def _line(self) -> str:
        width = 24
        filled = int(width * self.done / self.total)
        elapsed = time.perf_counter() - self.start
        return (f"bench [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{elapsed:5.0f}s  {self.label}")

    def show(self, label: str):
        self.label = label
        if self.tty:
            self.stream.write("\r\033[K" + self._line())
            self.stream.flush()

    def step(self, label: str | None = None):
        self.done += 1
        if label is not None:
            self.label = label
        if self.tty:
            self.stream.write("\r\033[K" + self._line())
            self.stream.flush()
        elif self.enabled:
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
