"""What we keep about compiled frames: cache entries, recompiles and their guard
failures, per code object (in ``capture.state.FRAMES``), for capture.report,
capture.explain and capture.reset. A record holds its code weakly: it goes with it."""
from __future__ import annotations

import dataclasses
import types
import weakref

from capture import config

from capture.dynamic import DynamicDims
from capture.exc import BreakReason


class HitCounter:
    """Bumped by the rewritten frame on every cache hit (one attribute add)."""

    __slots__ = ("hits",)

    def __init__(self):
        self.hits = 0


@dataclasses.dataclass(eq=False)
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
    filename: str = ""  # the replacement's source in linecache
    fx_sources: tuple = ()  # names of the GraphModule sources torch.fx kept while compiling it

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


class FrameRecord:
    """Everything we know about one compiled code object (for explain/report/reset)."""

    def __init__(self, code: types.CodeType):
        self.code_ref = weakref.ref(code)
        self.name = code.co_name
        self.where = f"{code.co_filename}:{code.co_firstlineno}"
        self.entries: list = []  # CacheEntry, in the order the hook tries them
        self.recompiles: list = []  # Recompile, the last config.recorded_recompiles of them
        self.drops: list = []  # why entries were dropped: an object their guards named died
        self.limit_hit = False
        self.dynamic = DynamicDims()  # sizes learned across compiles
        self.dynamic_mode = None  # the ``dynamic=`` it was compiled with

    @property
    def code(self) -> types.CodeType | None:
        return self.code_ref()

    def note_recompile(self, recompile: Recompile) -> None:
        self.recompiles.append(recompile)
        del self.recompiles[:-config.recorded_recompiles]

    def note_drop(self, entry, cause: str) -> None:
        """``entry`` was dropped: ``cause`` (an object its guards named) died."""
        self.entries = [e for e in self.entries if e is not entry]
        self.drops.append(f"{cause} was collected")
        del self.drops[:-config.recorded_recompiles]

    @property
    def recompile_reasons(self) -> list:
        """Per recompile: (frame name, ["L['x']: shape[0]: expected 8, got 16 (read at f.py:3)", ...])."""
        return [(self.name, [f.text() for f in r.failures]) for r in self.recompiles]


class Recorder:
    """Collects graphs and breaks for capture.explain."""

    def __init__(self):
        self.graphs: list = []
        self.break_reasons: list[BreakReason] = []  # breaks that ended a captured graph
        self.eager_breaks: list[BreakReason] = []  # breaks with nothing captured before them
        self.guards: list = []
        self.specializations: list = []  # symbolic sizes the traces turned into numbers
