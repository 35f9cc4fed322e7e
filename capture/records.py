"""What we keep about compiled frames: cache entries, recompiles and their guard
failures, per code object (in ``capture.state.FRAMES``), for capture.report,
capture.explain and capture.reset."""
from __future__ import annotations

import dataclasses
import types

from capture.dynamic import DynamicDims
from capture.exc import BreakReason


class HitCounter:
    """Bumped by the rewritten frame on every cache hit (one attribute add)."""

    __slots__ = ("hits",)

    def __init__(self):
        self.hits = 0


@dataclasses.dataclass
class CacheEntry:
    guard: object  # guards.GuardFunction
    code: types.CodeType
    kind: str  # "graph" or "eager"
    graph: object = None  # fx.GraphModule
    source: str = ""  # generated Python of the replacement frame
    reason: BreakReason | None = None
    counter: HitCounter | None = None
    compiled: object = None  # what the backend returned for the graph
    specializations: list = dataclasses.field(default_factory=list)  # fx_graph.symbolic.Specialization
    dynamic_sizes: list = dataclasses.field(default_factory=list)  # "L['x'].size()[0]" of each symbol

    @property
    def hits(self):
        """Runs of this entry, the compiling call included (None: eager entries are not counted)."""
        return None if self.counter is None else self.counter.hits


_TENSOR_PROPERTIES = {"dtype", "device", "shape", "stride", "requires_grad"}


@dataclasses.dataclass
class GuardFailure:
    entry_index: int
    source_name: str
    reason: str  # "expected 8, got 16" style
    user_line: str | None
    guard_text: str
    kind: str = ""  # the guard's class name (guards.kinds)
    value: object = None  # the value that failed, for the report's advice (numbers and strings only)
    source_expr: str = ""  # how the guard read it (a closure cell reads through __func.__closure__)

    def summary(self) -> str:
        """``L['x'].shape[0]: expected 8, got 16`` for a tensor property, else ``source: reason``."""
        attr = self.reason.split(":", 1)[0]
        joined = "." if attr.split("[")[0] in _TENSOR_PROPERTIES else ": "
        return f"{self.source_name}{joined}{self.reason}"

    def text(self) -> str:
        return self.summary() + (f" (read at {self.user_line})" if self.user_line else "")


@dataclasses.dataclass
class Recompile:
    failures: list  # one GuardFailure per existing entry


@dataclasses.dataclass
class FrameRecord:
    """Everything we know about one compiled code object (for explain/report/reset)."""

    code: types.CodeType
    entries: list = dataclasses.field(default_factory=list)
    recompiles: list = dataclasses.field(default_factory=list)  # list[Recompile]
    limit_hit: bool = False
    dynamic: DynamicDims = dataclasses.field(default_factory=DynamicDims)  # sizes learned across compiles
    dynamic_mode: object = None  # the ``dynamic=`` it was compiled with

    @property
    def where(self) -> str:
        return f"{self.code.co_filename}:{self.code.co_firstlineno}"

    @property
    def recompile_reasons(self) -> list:
        """Per recompile: (frame name, ["L['x']: shape[0]: expected 8, got 16 (read at f.py:3)", ...])."""
        return [(self.code.co_name, [f.text() for f in r.failures]) for r in self.recompiles]


class Recorder:
    """Collects graphs and breaks for capture.explain."""

    def __init__(self):
        self.graphs: list = []
        self.break_reasons: list[BreakReason] = []  # breaks that ended a captured graph
        self.eager_breaks: list[BreakReason] = []  # breaks with nothing captured before them
        self.guards: list = []
        self.specializations: list = []  # symbolic sizes the traces turned into numbers
