"""One frame's way from bytecode to a cache entry, as values.

``compile_frame`` traces the frame under a ``BreakPlan``. A trace either finishes
(``TraceResult``: the graph, the replacement frame, its guards) or stops at something it
cannot capture (``BreakAt``); ``plan_break`` turns a stop into the next plan or into
None (the frame runs eagerly, under the guards collected so far). At most three traces:

1. straight through (``TRACE_TO_END``);
2. stopping right before the instruction that failed: the graph so far, then a *bridge*
   runs that instruction natively and calls a resume function for the rest
   (``BRIDGE``), or, where no bridge can continue after it (loops, try/with blocks ...),
   the rest of the frame runs natively from that instruction (``NATIVE_TAIL``);
3. once more with a native tail, if the stack at the break could not be handed to a
   bridge.

The trace is deterministic given the guarded values: a frame that ran eagerly under
the guards that led there would fail the same way again, so it is not retraced.
"""
from __future__ import annotations

import dataclasses
import logging
import traceback
import types
import warnings

from capture import _C, config, logs, resume
from capture.backends import compile_with, graph_entry
from capture.exc import (BackendCompilerFailed, BackendFallbackWarning, BreakReason, InternalError, InternalErrorWarning,
                         TracedRaise, Unsupported)
from capture.frame_codegen import FrameCodegen
from capture.records import CacheEntry, HitCounter
from capture.runtime import grad_mode_restorer, run_without_hook
from capture.symbolic.output_graph import OutputGraph
from capture.symbolic.translator import InstructionTranslator, Stopped, code_location
from capture.variables.base import NullVariable
from capture.variables.builder import wrap
from capture.variables.cells import CellBox
from capture.variables.ctx_manager import GradModeExit
from capture.variables.tensor import TensorVariable
from guards import build_guard_function
from guards.sources import ClosureSource, LocalSource

log_breaks = logs.get("graph_breaks")
log_graph = logs.get("graph")
log_bytecode = logs.get("bytecode")
log_dynamic = logs.get("dynamic")

TRACE_TO_END, BRIDGE, NATIVE_TAIL = "trace to the end", "bridge", "native tail"


@dataclasses.dataclass(frozen=True)
class Frame:
    """A frame the hook handed us: the function and its arguments, all positional."""

    func: types.FunctionType
    args: tuple
    shape_policy: object = None  # capture.dynamic.ShapePolicy: which input sizes are symbolic

    @property
    def code(self) -> types.CodeType:
        return self.func.__code__

    @property
    def arg_names(self) -> tuple:
        return self.code.co_varnames[:num_args(self.code)]

    def location(self) -> str:
        return code_location(self.code, self.code.co_firstlineno)


@dataclasses.dataclass(frozen=True)
class BreakPlan:
    kind: str  # TRACE_TO_END, BRIDGE or NATIVE_TAIL
    index: int | None = None  # instruction to stop before
    reason: BreakReason | None = None  # why the frame breaks there


PLAN_NO_BREAK = BreakPlan(TRACE_TO_END)


@dataclasses.dataclass
class TraceResult:
    entry: CacheEntry
    graph_ops: bool  # the graph computes something (a break after it ended a captured graph)


@dataclasses.dataclass
class BreakAt:
    error: Unsupported  # what could not be captured (``root_index``: where, in this frame)
    output: OutputGraph  # what the trace collected up to there (its guards)
    needs_native_tail: bool = False  # the state at a planned break cannot go to a bridge
    internal: Exception | None = None  # a bug of ours stopped the trace
    backend_error: BackendCompilerFailed | None = None  # the user's backend failed on the graph


@dataclasses.dataclass
class BreakTail:
    """What the rewritten frame hands over at a break."""

    bridge: types.CodeType  # a bridge, or the rest of the code run natively
    values: list  # locals, then stack values (bottom first, NULLs left out), as trackers
    needs_closure: bool


def compile_frame(frame: Frame, backend, fullgraph: bool = False, recorder=None,
                  suppress_errors: bool = False) -> CacheEntry:
    """The cache entry for ``frame``: a rewritten frame running captured graphs, or the
    original code run eagerly (and why). A user backend's failure raises
    BackendCompilerFailed, or with ``suppress_errors`` warns and runs the frame eagerly."""
    plan, stop = PLAN_NO_BREAK, None
    try:
        for _ in range(3):
            outcome = trace(frame, plan, backend, recorder)
            if isinstance(outcome, TraceResult):
                if plan.reason is not None:
                    _note_break(recorder, plan.reason, after_graph=outcome.graph_ops)
                return outcome.entry
            stop = outcome
            if stop.backend_error is not None:
                return _backend_failed(frame, stop, fullgraph or not suppress_errors, recorder)
            if stop.internal is not None:
                return _internal_error(frame, stop.output, stop.internal, fullgraph, recorder)
            if fullgraph:
                raise Unsupported(stop.error.reason, stop.error.where or frame.location()) from None
            next_plan = plan_break(frame, plan, stop)
            if next_plan is None:
                where = stop.error.where or frame.location()
                no_resume = "" if plan.kind == TRACE_TO_END else " (no resume point)"
                return _eager(frame, stop.output, BreakReason(stop.error.reason + no_resume, where), recorder)
            plan = next_plan
        raise Unsupported("graph break could not be placed")
    except (Unsupported, BackendCompilerFailed):
        raise
    except Exception as e:
        output = stop.output if stop is not None else OutputGraph(frame.code, frame.func.__globals__,
                                                                   frame.shape_policy)
        return _internal_error(frame, output, e, fullgraph, recorder)


def _internal_error(frame: Frame, output: OutputGraph, error: Exception, fullgraph: bool, recorder) -> CacheEntry:
    """Our bug: a warning with the traceback, and the user's frame still runs (eagerly,
    under the guards collected up to the failure)."""
    reason = BreakReason(f"internal error in capture: {type(error).__name__}: {error}", frame.location())
    logging.getLogger("capture").warning("%s\n%s", reason, "".join(traceback.format_exception(error)))
    if config.internal_errors == "raise":  # the test suite: no internal error passes as a break
        raise InternalError(str(reason)) from error
    warnings.warn(f"capture: {reason}; this frame runs eagerly (a bug in capture: please report it)",
                  InternalErrorWarning, stacklevel=4)
    if fullgraph:
        raise Unsupported(reason.reason, reason.where) from error
    return _eager(frame, output, reason, recorder)


def _backend_failed(frame: Frame, stop: BreakAt, raise_it: bool, recorder) -> CacheEntry:
    """The user's backend failed: raise its error, or warn and run the frame eagerly
    (under the guards collected, so the backend is not asked again for these inputs)."""
    error = stop.backend_error
    if raise_it:
        raise error
    warnings.warn_explicit(f"capture: {error}; running {frame.code.co_name} eagerly (suppress_errors=True)",
                           BackendFallbackWarning, frame.code.co_filename, frame.code.co_firstlineno)
    return _eager(frame, stop.output, BreakReason(f"backend failed: {error.reason}", frame.location()), recorder)


def plan_break(frame: Frame, plan: BreakPlan, stop: BreakAt) -> BreakPlan | None:
    """Where to break on the next trace, and how the rest of the frame runs; None if
    nothing better than running the frame eagerly is left."""
    error = stop.error
    where = error.where or frame.location()
    if plan.kind == TRACE_TO_END and error.root_index is not None:
        inst = resume.dis_instructions(frame.code)[error.root_index]
        why_not = resume.why_not_resumable(frame.code, inst)
        # inside grad-mode with-blocks a bridge can still resume (checked against the stack
        # at the break: needs_native_tail if not)
        if why_not is not None and why_not != resume.IN_HANDLER_REGION:
            return BreakPlan(NATIVE_TAIL, error.root_index,
                             BreakReason(f"{error.reason} (the rest of the frame runs eagerly: {why_not})", where))
        return BreakPlan(BRIDGE, error.root_index, BreakReason(error.reason, where))
    if stop.needs_native_tail and plan.kind != NATIVE_TAIL:
        reason = BreakReason(f"{plan.reason.reason} (the rest of the frame runs eagerly: {error.reason})",
                             plan.reason.where)
        return BreakPlan(NATIVE_TAIL, plan.index, reason)
    return None


def trace(frame: Frame, plan: BreakPlan, backend, recorder=None) -> TraceResult | BreakAt:
    """Trace ``frame`` under ``plan``; compile its graph with ``backend``."""
    output = OutputGraph(frame.code, frame.func.__globals__, frame.shape_policy)
    try:
        tx = _translator(frame, output, plan)
        raised = raise_line = None
        try:
            result = tx.run()
        except TracedRaise as r:  # uncaught in the frame: the rewritten frame raises it
            result = raised = r.exc
            raise_line = tx.lineno()  # where this frame raises (or calls what raised)
        if raised is not None:
            tail, return_vt, needed = None, None, [raised]
        elif isinstance(result, Stopped):
            tail = break_tail(tx, frame.code, result.inst, native=plan.kind == NATIVE_TAIL)
            if tail is None:
                return BreakAt(Unsupported("break inside a try block or a with-block we do not trace"), output,
                               needs_native_tail=True)
            return_vt, needed = None, tail.values
        else:
            tail, return_vt, needed = None, result, [result]
        entry = _graph_entry(frame, output, return_vt, tail, plan.reason, backend, recorder, needed,
                             (raised, raise_line))
        return TraceResult(entry, graph_ops=output.has_ops())
    except Unsupported as e:
        return BreakAt(e, output)
    except BackendCompilerFailed as e:
        return BreakAt(Unsupported(str(e)), output, backend_error=e)
    except Exception as e:  # our bug: compile_frame reports it
        return BreakAt(Unsupported(f"internal error in capture: {type(e).__name__}"), output, internal=e)


def _translator(frame: Frame, output: OutputGraph, plan: BreakPlan) -> InstructionTranslator:
    func, code = frame.func, frame.code
    tx = InstructionTranslator(code, func.__globals__, output, {}, {})
    tx.break_at = plan.index
    for name, value in zip(frame.arg_names, frame.args):
        tx.symbolic_locals[name] = wrap(tx, value, LocalSource(name))
    for i, name in enumerate(code.co_freevars):
        tx.cells[name] = CellBox(real_cell=func.__closure__[i], source=ClosureSource(name, i))
    return tx


def _graph_entry(frame, output, return_vt, tail, reason, backend, recorder, needed, raising=(None, None)) -> CacheEntry:
    """Compile the graph, write the replacement frame (returning ``return_vt``, raising
    ``raising[0]`` at line ``raising[1]``, or handing over to ``tail``), build its guards."""
    code = frame.code
    cg = FrameCodegen(output.local_objects)
    cg.counter = HitCounter()
    gm, out_nodes = output.finish(collect_tensors(needed + output.side_effects.values()))
    cg.output_index = {node: i for i, node in enumerate(out_nodes)}
    graph_fn = compiled = None
    if output.has_ops() or out_nodes:
        log_graph.debug("graph for %s:\n%s", code.co_name, gm.print_readable(print_output=False))
        compiled = compile_with(backend, gm, [i.example for i in output.inputs], frame.location())
        if not callable(compiled):
            raise Unsupported(f"backend returned {type(compiled).__name__}, not a callable")
        graph_fn = run_without_hook(graph_entry(compiled))
        if recorder is not None:
            recorder.graphs.append(gm)
    output.finish_size_guards()
    input_exprs = [cg.object_ref(i.example) if i.bound else cg.source_expr(i.source) for i in output.inputs]
    replay = output.side_effects.replay(cg)
    new_code, source = cg.generate(code, graph_fn, input_exprs, return_vt, tail=tail, replay=replay,
                                   raise_vt=raising[0], raise_line=raising[1])
    guard = build_guard_function(output.guards, frame.arg_names, name=guard_name(code),
                                 example=(frame.func, frame.args), dict_watch=_C.DictWatch,
                                 lifeline=output.guards.lifeline)
    log_bytecode.debug("replacement for %s:\n%s", code.co_name, source)
    if recorder is not None:
        recorder.guards.extend(guard.readable())
        recorder.specializations.extend(output.shapes.specializations)
    _log_dynamic(code, output.shapes)
    return CacheEntry(guard, new_code, "graph", graph=gm, source=source, counter=cg.counter,
                      reason=reason if tail is not None else None, compiled=compiled,
                      specializations=list(output.shapes.specializations),
                      dynamic_sizes=[output.shapes.read_name(s) for s in output.shapes.reads], filename=cg.filename)


def _eager(frame: Frame, output: OutputGraph, reason: BreakReason, recorder) -> CacheEntry:
    """The original code, run eagerly under the guards collected up to the failure."""
    _note_break(recorder, reason)
    guard = build_guard_function(output.guards, frame.arg_names, name=guard_name(frame.code),
                                 lifeline=output.guards.lifeline)
    return CacheEntry(guard, positional_copy(frame.code), "eager", reason=reason)


def _log_dynamic(code, shapes):
    if shapes.has_symbols:
        log_dynamic.debug("%s: symbolic sizes %s", code.co_name, ", ".join(shapes.read_name(s) for s in shapes.reads))
    for spec in shapes.specializations:
        log_dynamic.debug("%s: %s", code.co_name, spec)


def _note_break(recorder, reason: BreakReason, after_graph: bool = False):
    log_breaks.debug("graph break: %s", reason)
    if recorder is not None:
        (recorder.break_reasons if after_graph else recorder.eager_breaks).append(reason)


def break_tail(tx, code, inst, native: bool) -> BreakTail | None:
    """What the rewritten frame does at the break: hand stack and locals to a bridge
    (or, ``native``, to the rest of the code run natively). None if the break is inside
    a try/with block a bridge cannot reproduce (only grad-mode blocks can be)."""
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
    if native:
        return BreakTail(resume.native_tail_code(code, inst.offset, layout), values, bool(code.co_freevars))
    on_error = None
    regions = resume.covering_handlers(code, inst.offset)
    if regions:
        exits = [v for v in tx.stack if isinstance(v, GradModeExit)]
        if len(exits) != regions:
            return None
        on_error = grad_mode_restorer(exits[0].restore)
    next_offset = tx.instructions[tx.ip + 1].offset if tx.ip + 1 < len(tx.instructions) else None
    if next_offset is None:
        raise Unsupported("break at the last instruction")
    bridge = resume.bridge_code(code, inst, layout, next_offset, on_error)
    return BreakTail(bridge, values, bool(code.co_freevars))


def collect_tensors(vts: list) -> list:
    """Tensors the rewritten frame needs from the graph to rebuild ``vts`` (first use first)."""
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


def num_args(code) -> int:
    return code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)


def positional_copy(code: types.CodeType) -> types.CodeType:
    """The original code taking every argument positionally, as the hook passes them
    (the *args tuple and **kwargs dict already packed)."""
    return code.replace(co_argcount=num_args(code), co_posonlyargcount=0, co_kwonlyargcount=0,
                        co_flags=code.co_flags & ~(0x04 | 0x08))


def guard_name(code) -> str:
    return f"guard_{code.co_name}" if code.co_name.isidentifier() else "guard"

