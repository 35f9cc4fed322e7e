"""Errors the tracer raises, and the record it keeps of why a frame was not captured."""
from __future__ import annotations

import dataclasses


class Unsupported(Exception):
    """The tracer met something it cannot capture.

    With ``fullgraph=True`` this reaches the user; otherwise the frame runs eagerly
    and the reason is recorded (see ``BreakReason``).
    """

    def __init__(self, reason: str, where: str | None = None):
        self.reason = reason
        self.where = where
        self.root_index = None  # instruction index in the compiled frame where it surfaced
        self._where_is_user = False
        super().__init__(self._text())

    def _text(self) -> str:
        return f"{self.reason} (at {self.where})" if self.where else self.reason

    def located(self, where: str, in_user_code: bool = True) -> "Unsupported":
        """Attach the innermost file:line in the user's own code (library frames only
        until a user frame is seen); outer frames keep it."""
        if self.where is None or (in_user_code and not self._where_is_user):
            self.where = where
            self._where_is_user = in_user_code
            self.args = (self._text(),)
        return self


class MissingAttribute(Unsupported):
    """The traced object really lacks the attribute (what AttributeError means);
    ``getattr(obj, name, default)`` and ``hasattr`` fall back on it."""


class NonTensorResult(Unsupported):
    """A graph op gave a Python value: it cannot stay in the graph (its value would be
    baked in); a Python function of torch's can be inlined instead."""


@dataclasses.dataclass(frozen=True)
class BreakReason:
    reason: str
    where: str  # "file.py:LINE" of the user's code

    def __str__(self) -> str:
        return f"{self.reason} at {self.where}"
