"""The callback the C hook calls on a cache miss: decide, trace, compile, cache.

It returns the code object the hook should run instead of the frame, or None to
run the frame as it is. Whatever happens inside (including bugs of ours) the user's
frame still runs: a frame we cannot capture runs eagerly under the guards that led
to the failure, so the decision is not retaken on every call.
"""
from __future__ import annotations

import dataclasses
import dis
import logging
import os
import traceback
import types
import warnings


from capture import _C, config, logs
from capture import resume
from capture.exc import BreakReason, Unsupported
from capture.frame_codegen import FrameCodegen
from capture.resume import dis_instructions, why_not_resumable
from capture.skipfiles import is_skipped_file
from capture.symbolic.output_graph import OutputGraph
from capture.symbolic.translator import BreakHere, InstructionTranslator, code_location
from capture.variables.base import NullVariable
from capture.variables.builder import wrap
from capture.variables.cells import CellBox
from capture.variables.ctx_manager import GradModeExit, grad_mode_restorer
from capture.variables.tensor import TensorVariable
from guards import build_guard_function
from guards.sources import ClosureSource, LocalSource

log_breaks = logs.get("graph_breaks")
log_recompiles = logs.get("recompiles")
log_guards = logs.get("guards")
log_graph = logs.get("graph")
log_bytecode = logs.get("bytecode")


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

    @property
    def hits(self):
        """Runs of this entry, the compiling call included (None: eager entries are not counted)."""
        return None if self.counter is None else self.counter.hits


@dataclasses.dataclass
class GuardFailure:
    entry_index: int
    source_name: str
    reason: str  # "expected 8, got 16" style
    user_line: str | None
    guard_text: str

    def summary(self) -> str:
        """``L['x'].shape[0]: expected 8, got 16`` for a tensor property, else ``source: reason``."""
        attr = self.reason.split(":", 1)[0]
        joined = "." if attr.split("[")[0] in _TENSOR_PROPERTIES else ": "
        return f"{self.source_name}{joined}{self.reason}"

    def text(self) -> str:
        return self.summary() + (f" (read at {self.user_line})" if self.user_line else "")


_TENSOR_PROPERTIES = {"dtype", "device", "shape", "stride", "requires_grad"}


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

    @property
    def where(self) -> str:
        return f"{self.code.co_filename}:{self.code.co_firstlineno}"

    @property
    def recompile_reasons(self) -> list:
        """Per recompile: (frame name, ["L['x']: shape[0]: expected 8, got 16 (read at f.py:3)", ...])."""
        return [(self.code.co_name, [f.text() for f in r.failures]) for r in self.recompiles]


FRAMES: dict = {}  # code -> FrameRecord
SKIPPED: set = set()  # user and library codes we marked to run as they are (reset clears)
FORCED_CODES: set = set()  # codes passed to capture.compile: traced even from skipped files


def mark_skip(code):
    _C.set_skip(code)
    SKIPPED.add(code)


def force(code):
    """Trace ``code`` when its frame runs, even if an earlier skip mark says otherwise."""
    FORCED_CODES.add(code)
    if _C.is_skipped(code):
        _C.set_cache(code, None)
        SKIPPED.discard(code)


class Recorder:
    """Collects graphs and breaks for capture.explain."""

    def __init__(self):
        self.graphs: list = []
        self.break_reasons: list[BreakReason] = []  # breaks that ended a captured graph
        self.eager_breaks: list[BreakReason] = []  # breaks with nothing captured before them
        self.guards: list = []


def _num_args(code) -> int:
    return code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)


class FrameCompiler:
    """The per-thread callback installed while a compiled function runs."""

    def __init__(self, backend, fullgraph=False, options=None, force_codes=(), recorder=None):
        self.backend = backend
        self.fullgraph = fullgraph
        self.options = dict(options or {})
        self.cache_limit = int(self.options.get("cache_limit", config.cache_limit))
        self.force_codes = set(force_codes)
        self.recorder = recorder

    def __call__(self, func, args):
        code = func.__code__
        if code not in self.force_codes and (is_skipped_file(code.co_filename) or code.co_name.startswith("<")
                                             and code.co_name != "<lambda>"):
            if code not in FORCED_CODES:  # another compile asked for it: leave it unmarked
                mark_skip(code)
            return None
        record = FRAMES.get(code)
        if record is None:
            record = FRAMES[code] = FrameRecord(code)
        entries = _C.get_cache(code)
        if entries is None:
            entries = []
            _C.set_cache(code, entries)
        if entries:
            self._note_recompile(record, entries, func, args)
            if len(entries) >= self.cache_limit:
                return self._cache_limit_hit(record, code)
        entry = self._compile(func, args, record)
        entries.append((entry.guard.fn, entry.code, entry))
        record.entries.append(entry)
        return entry.code

    def _note_recompile(self, record, entries, func, args):
        failures = []
        for index, (_, _, entry) in enumerate(entries):
            failure = entry.guard.first_failure(func, args)
            if failure is not None:
                guard, why = failure
                failures.append(GuardFailure(index, guard.source_name, why, guard.user_line, guard.describe()))
        text = failures[-1].text() if failures else "no guard failed (entry could not run)"
        record.recompiles.append(Recompile(failures))
        log_recompiles.debug("recompiling %s (%s): %s", record.code.co_name, record.where, text)

    def _cache_limit_hit(self, record, code):
        if not record.limit_hit:
            record.limit_hit = True
            reasons = list(dict.fromkeys(record.recompile_reasons[-1][1])) if record.recompile_reasons else []
            last = "; ".join(reasons[:3]) + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else "") \
                if reasons else "unknown"
            warnings.warn(f"capture: {code.co_name} ({record.where}) hit the cache limit ({self.cache_limit} "
                          f"recompiles); running it eagerly from now on. Why the last call missed every "
                          f"cache entry: {last}. See capture.report() for all recompiles.", stacklevel=3)
        if self.fullgraph:
            raise Unsupported(f"cache limit ({self.cache_limit}) reached for {code.co_name}", record.where)
        mark_skip(code)
        return None

    def _compile(self, func, args, record) -> CacheEntry:
        code = func.__code__
        arg_names = code.co_varnames[:_num_args(code)]
        output = None
        break_at = None
        native_tail = False
        pending_reason = None
        try:
            for _ in range(3):
                output = OutputGraph(code, func.__globals__)
                try:
                    entry = self._trace(func, args, output, break_at, native_tail, pending_reason)
                    break
                except Unsupported as e:
                    where = e.where or code_location(code, code.co_firstlineno)
                    if self.fullgraph:
                        raise Unsupported(e.reason, where) from None
                    if break_at is None and e.root_index is not None:
                        # Retrace and stop right before the failing instruction. Where no
                        # bridge can continue after it (loops, try/with blocks, ...), the
                        # rest of the frame runs natively from that instruction instead.
                        why_not = why_not_resumable(code, dis_instructions(code)[e.root_index])
                        # inside grad-mode with-blocks a bridge can still resume (checked
                        # against the stack at the break; _NeedNativeTail if not)
                        native_tail = why_not is not None and why_not != resume.IN_HANDLER_REGION
                        pending_reason = BreakReason(
                            e.reason + (f" (the rest of the frame runs eagerly: {why_not})" if native_tail else ""),
                            where)
                        break_at = e.root_index
                        continue
                    if isinstance(e, _NeedNativeTail) and not native_tail:
                        native_tail = True
                        pending_reason = BreakReason(
                            f"{pending_reason.reason} (the rest of the frame runs eagerly: {e.reason})",
                            pending_reason.where)
                        continue
                    reason = BreakReason(e.reason if break_at is None else f"{e.reason} (no resume point)", where)
                    self._note_break(reason)
                    entry = self._eager_entry(code, output, arg_names, func, reason)
                    break
            else:
                raise Unsupported("graph break could not be placed")
        except Unsupported:
            raise
        except Exception as e:  # our bug: the user's frame must still run
            where = code_location(code, code.co_firstlineno)
            reason = BreakReason(f"internal error in capture: {type(e).__name__}: {e}", where)
            logging.getLogger("capture").warning("%s\n%s", reason, traceback.format_exc())
            if self.fullgraph:
                raise Unsupported(reason.reason, where) from e
            self._note_break(reason)
            entry = self._eager_entry(code, output or OutputGraph(code, func.__globals__), arg_names, func, reason)
        log_guards.debug("guards for %s:\n  %s", code.co_name, "\n  ".join(entry.guard.readable()))
        if config.debug_dir:
            _dump(code, entry)
        return entry

    def _note_break(self, reason: BreakReason, after_graph: bool = False):
        log_breaks.debug("graph break: %s", reason)
        if self.recorder is not None:
            (self.recorder.break_reasons if after_graph else self.recorder.eager_breaks).append(reason)

    def _eager_entry(self, code, output, arg_names, func, reason) -> CacheEntry:
        # The trace is deterministic given the guarded values, so under the guards
        # collected up to the failure it would fail the same way again.
        guard = build_guard_function(output.guards, arg_names, func.__globals__, name=_guard_name(code))
        return CacheEntry(guard, _positional_copy(code), "eager", reason=reason)

    def _trace(self, func, args, output: OutputGraph, break_at=None, native_tail=False,
               pending_reason=None) -> CacheEntry:
        code = func.__code__
        arg_names = code.co_varnames[:_num_args(code)]
        tx = InstructionTranslator(code, func.__globals__, output, {}, {})
        tx.break_at = break_at
        for name, value in zip(arg_names, args):
            tx.symbolic_locals[name] = wrap(tx, value, LocalSource(name))
        for i, name in enumerate(code.co_freevars):
            tx.cells[name] = CellBox(real_cell=func.__closure__[i], source=ClosureSource(name, i))
        cg = FrameCodegen(func.__globals__)
        counter = HitCounter()
        cg.counter = counter
        try:
            return_vt = tx.run()
            tail = None
            needed = [return_vt]
        except BreakHere as b:
            tail = self._break_tail(tx, code, b.inst, native_tail)
            needed = tail.values
        tensors = _collect_tensors(needed + output.side_effects.values())
        gm, out_nodes = output.finish(tensors)
        cg.output_index = {node: i for i, node in enumerate(out_nodes)}
        graph_fn = None
        if output.has_ops() or out_nodes:
            log_graph.debug("graph for %s:\n%s", code.co_name, gm.print_readable(print_output=False))
            example_inputs = [i.example for i in output.inputs]
            compiled = self.backend(gm, example_inputs)
            if not callable(compiled):
                raise Unsupported(f"backend returned {type(compiled).__name__}, not a callable")
            graph_fn = _run_without_hook(compiled)
            if self.recorder is not None:
                self.recorder.graphs.append(gm)
        input_exprs = [cg.object_ref(i.example) if i.bound else cg.source_expr(i.source) for i in output.inputs]
        replay = output.side_effects.replay(cg)
        if tail is None:
            new_code, source = cg.generate(code, graph_fn, input_exprs, return_vt, replay=replay)
        else:
            new_code, source = cg.generate(code, graph_fn, input_exprs, None, tail=tail, replay=replay)
            self._note_break(pending_reason, after_graph=output.has_ops())
        guard = build_guard_function(output.guards, arg_names, func.__globals__, name=_guard_name(code),
                                     example=(func, args), dict_watch=_C.DictWatch)
        cg.install()
        log_bytecode.debug("replacement for %s:\n%s", code.co_name, source)
        if self.recorder is not None:
            self.recorder.guards.extend(guard.readable())
        return CacheEntry(guard, new_code, "graph", graph=gm, source=source, counter=counter,
                          reason=pending_reason if tail is not None else None)

    def _break_tail(self, tx, code, inst, native_tail: bool) -> "BreakTail":
        """What the rewritten frame does at the break: hand stack and locals to a bridge
        (or, with ``native_tail``, to the rest of the code run natively)."""
        stack_kinds, stack_values, values = [], [], []
        for vt in tx.stack:
            if isinstance(vt, NullVariable):
                stack_kinds.append(resume.NULL)
            else:
                stack_kinds.append(resume.VALUE)
                stack_values.append(vt)
        local_names = []
        for name in code.co_varnames + code.co_cellvars:
            if name in local_names or name.startswith(("__stack", "__post")):
                continue  # our own hand-over slots: dead once the prologue has run
            if name in code.co_cellvars:
                box = tx.cells.get(name)
                if box is not None and box.value is not None:
                    local_names.append(name)
                    values.append(box.value)
            elif name in tx.symbolic_locals:
                local_names.append(name)
                values.append(tx.symbolic_locals[name])
        values += stack_values  # locals come first: zero-arg super() reads the first local
        layout = resume.Layout(tuple(stack_kinds), tuple(local_names))
        on_error = None
        regions = resume.covering_handlers(code, inst.offset)
        if regions and not native_tail:
            exits = [v for v in tx.stack if isinstance(v, GradModeExit)]
            if len(exits) != regions:
                raise _NeedNativeTail("break inside a try block or a with-block we do not trace")
            on_error = grad_mode_restorer(exits[0].restore)
        if native_tail:
            return BreakTail(resume.native_tail_code(code, inst.offset, layout), values, bool(code.co_freevars))
        next_offset = tx.instructions[tx.ip + 1].offset if tx.ip + 1 < len(tx.instructions) else None
        if next_offset is None:
            raise Unsupported("break at the last instruction")
        bridge = resume.bridge_code(code, inst, layout, next_offset, on_error)
        return BreakTail(bridge, values, bool(code.co_freevars))


class _NeedNativeTail(Unsupported):
    """The break's state cannot be handed to a bridge; run the rest natively."""


@dataclasses.dataclass
class BreakTail:
    bridge: types.CodeType
    values: list  # locals, then stack values (bottom first, NULLs left out), as trackers
    needs_closure: bool


def _positional_copy(code: types.CodeType) -> types.CodeType:
    """The original code taking every argument positionally, as the hook passes them
    (the *args tuple and **kwargs dict already packed)."""
    return code.replace(co_argcount=_num_args(code), co_posonlyargcount=0, co_kwonlyargcount=0,
                        co_flags=code.co_flags & ~(0x04 | 0x08))


def _guard_name(code) -> str:
    return f"guard_{code.co_name}" if code.co_name.isidentifier() else "guard"


def _collect_tensors(vts: list) -> list:
    """Tensors the rewritten frame needs from the graph to rebuild ``vts``."""
    found, seen = [], set()

    stack = list(reversed(vts))
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, TensorVariable):
            found.append(v)
        else:
            stack.extend(reversed(v.children()))
    return found


def _run_without_hook(compiled):
    set_callback = _C.set_callback

    def run_graph(*inputs):
        previous = set_callback(None)
        try:
            return compiled(*inputs)
        finally:
            set_callback(previous)
    run_graph.compiled = compiled
    return run_graph


def _dump(code, entry: CacheEntry):
    import io
    folder = os.path.join(config.debug_dir, f"{code.co_name}_{code.co_firstlineno}_{id(entry):x}")
    os.makedirs(folder, exist_ok=True)
    buf = io.StringIO()
    dis.dis(code, file=buf)
    parts = {"original_bytecode.txt": buf.getvalue(), "guards.py": entry.guard.source,
             "replacement.py": entry.source or f"# runs eagerly: {entry.reason}\n"}
    if entry.graph is not None:
        parts["graph.txt"] = entry.graph.print_readable(print_output=False)
    buf = io.StringIO()
    dis.dis(entry.code, file=buf)
    parts["rewritten_bytecode.txt"] = buf.getvalue()
    for name, text in parts.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
