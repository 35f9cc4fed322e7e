"""Errors capture raises, and the record it keeps of why a frame was not captured.

``Unsupported``: the tracer met something it cannot capture. ``BackendCompilerFailed``
and its kinds: a backend the user passed to ``capture.compile`` failed (raised, returned
something not callable, or its callable returned the wrong outputs).
"""
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


class TracedRaise(Exception):
    """The traced code raised ``exc`` (an ExceptionVariable) at the current instruction.

    The translator sends it to the innermost handler of the exception table covering
    the instruction, in the frame that raised it or, unwinding inlined calls, in a
    caller. Uncaught in the compiled frame, the rewritten frame raises it after the
    graph -- unless ``synthesized`` (capture made the exception object itself, e.g. a
    KeyError of a traced dict): then the frame breaks there and Python raises its own.
    """

    def __init__(self, exc, synthesized: bool = False):
        super().__init__(repr(exc))
        self.exc = exc  # an ExceptionVariable, or a real exception (the translator wraps it)
        self.synthesized = synthesized

    @property
    def exc_type(self) -> type:
        return type(self.exc) if isinstance(self.exc, BaseException) else self.exc.python_type()


class InternalError(RuntimeError):
    """A bug of capture's while tracing a frame (``config.internal_errors == "raise"``);
    the original exception is its ``__cause__``."""


class InternalErrorWarning(RuntimeWarning):
    """Warned when an internal error sent a frame to eager (the default); the frame
    still ran correctly, uncompiled."""


@dataclasses.dataclass(frozen=True)
class BreakReason:
    reason: str
    where: str  # "file.py:LINE" of the user's code

    def __str__(self) -> str:
        return f"{self.reason} at {self.where}"


class BackendCompilerFailed(Exception):
    """A backend passed to ``capture.compile`` raised while compiling a graph; the
    backend's exception is chained as ``__cause__``.

    ``backend``: the backend's name; ``where``: the compiled frame (file:line). With
    ``options={"suppress_errors": True}`` the frame runs eagerly instead, with a
    ``BackendFallbackWarning``.
    """

    def __init__(self, backend: str, reason: str, where: str | None = None):
        self.backend = backend
        self.reason = reason
        self.where = where
        super().__init__(backend, reason, where)

    def __str__(self) -> str:
        frame = f" compiling the graph of {self.where}" if self.where else ""
        return f"backend {self.backend!r} failed{frame}: {self.reason}"


class BackendReturnedNonCallable(BackendCompilerFailed):
    """The backend returned something that is not callable (it must return a callable
    taking the graph's inputs, as torch.compile's backends do)."""


class BackendOutputMismatch(BackendCompilerFailed):
    """The backend's callable returned outputs the graph does not have: not a tuple or
    list, the wrong number of them, or a non-tensor where the graph gives a tensor.
    Raised at run time, on the call that got them (``suppress_errors`` does not apply:
    the callable already ran)."""

    def __str__(self) -> str:
        frame = f" for the graph of {self.where}" if self.where else ""
        return f"backend {self.backend!r}: the callable it returned{frame} {self.reason}"


class BackendFallbackWarning(RuntimeWarning):
    """A backend failed and ``suppress_errors`` is on: the frame runs eagerly."""
