"""The callback the C hook calls on a cache miss: skip, note the recompile, compile,
cache.

It returns the code object the hook should run instead of the frame, or None to
run the frame as it is. Whatever happens inside (including bugs of ours) the user's
frame still runs: a frame we cannot capture runs eagerly under the guards that led
to the failure, so the decision is not retaken on every call. Compiling one frame is
capture.frame_pipeline; what is kept about it, capture.records.
"""
from __future__ import annotations

import contextvars
import warnings

from torch import nn

from capture import cache, config, logs, sharing
from capture.debug import dump_entry
from capture.dynamic import ShapePolicy
from capture.exc import Unsupported
from capture.frame_pipeline import Frame, compile_frame
from capture.records import GuardFailure, Recompile
from capture.skip_policy import mark_skip, skip_frame
from fx_graph import torch_caches
from guards import GuardKind

log_recompiles = logs.get("recompiles")
log_guards = logs.get("guards")


class FrameCompiler:
    """The per-thread callback installed while a compiled function runs."""

    def __init__(self, backend, fullgraph=False, options=None, force_codes=(), recorder=None, dynamic=None):
        self.backend = backend
        self.dynamic = dynamic  # None, True or False: see capture.dynamic
        self.fullgraph = fullgraph
        self.options = dict(options or {})
        self.cache_limit = int(self.options.get("cache_limit", config.cache_limit))
        self.suppress_errors = bool(self.options.get("suppress_errors", config.suppress_errors))
        self.force_codes = set(force_codes)
        self.recorder = recorder

    def __call__(self, func, args):
        code = func.__code__
        if skip_frame(code, self.force_codes):
            return None
        record = cache.record_of(code)
        record.dynamic_mode = self.dynamic
        entries = cache.entries_of(code)
        if entries:
            self._note_recompile(record, entries, func, args)
            if len(entries) >= self.cache_limit:
                return self._cache_limit_hit(record, code)
        frame = Frame(func, args, ShapePolicy(self.dynamic, record.dynamic))
        frame.shape_policy.notice_arguments(frame.arg_names, args)
        mark = torch_caches.sources_mark()
        try:
            # In a copy of the thread's context: torch sets a new context variable for each
            # config patch (make_fx makes one per call), which would stay in the thread's
            # context for good.
            entry = contextvars.copy_context().run(compile_frame, frame, self.backend, self.fullgraph,
                                                   self.recorder, self.suppress_errors)
        except BaseException:  # nothing is cached: keep none of what torch.fx kept meanwhile
            torch_caches.forget_sources(torch_caches.sources_since(mark))
            raise
        entry.fx_sources = torch_caches.sources_since(mark)
        log_guards.debug("guards for %s:\n  %s", code.co_name, "\n  ".join(entry.guard.readable()))
        dump_entry(code, entry)
        cache.install(code, entry)
        return entry.code

    def _note_recompile(self, record, entries, func, args):
        failures = []
        for index, (_, _, entry) in enumerate(entries):
            failure = entry.guard.first_failure(func, args)
            if failure is not None:
                guard, why = failure
                failures.append(GuardFailure(index, guard.source_name, why, guard.user_line, guard.describe(),
                                             type(guard).__name__, _value_of(guard, func, args, entry.guard),
                                             guard.source_expr))
                _note_other_instance(entry.guard, guard, func, args)
        text = failures[-1].text() if failures else "no guard failed (entry could not run)"
        record.note_recompile(Recompile(failures))
        log_recompiles.debug("recompiling %s (%s): %s", record.name, record.where, text)

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



def _value_of(guard, func, args, guard_fn):
    """The failing value, kept only when it is a plain number or string (the report's
    advice quotes it; holding other objects would keep them alive)."""
    try:
        value = guard_fn.value_of(guard, func, args)
    except Exception:  # the value is gone: the failure reason already says so
        return None
    return value if type(value) in (int, float, bool, str) else None


def _note_other_instance(guard_fn, guard, func, args) -> None:
    """An entry expected one module (by identity) from the frame's inputs and got another
    instance of its class: the class's instances share entries from now on."""
    if guard.kind is GuardKind.IDENTITY and guard.source_name.startswith("L["):
        expected = guard.expected.get()
        if isinstance(expected, nn.Module):
            sharing.note_identity_miss(expected, guard_fn.value_of(guard, func, args))
