"""Run a generated program at a sequence of sizes, compiled and eagerly, and compare
every call (the differential harness of the dynamic-shape property tests).

``differential(source, calls, mode, backend, inputs)``: ``source`` defines ``prog``;
``calls`` is one size description per call; ``inputs(call, size)`` makes fresh
``(args, leaves)`` for a call (``leaves``: tensors whose gradients are compared, empty
without grad). Each call's outputs, inputs afterwards, grad mode, exception and
gradients are compared with eager (``test_compiled_path_hypothesis.compare``); an
internal error of the compiled path fails the call; under ``dynamic=True`` or marks, a
new cache entry for sizes >= 2 needs a reason in capture's own recompile record
(``recompile_had_a_reason``).

``CAPTURE_DYNAMIC_LOG=file`` appends one line per program (backend, mode, family ...)
so large local runs can be counted.
"""
from __future__ import annotations

import os
import re
import warnings

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase

import capture
import fx_graph
from capture.state import FRAMES
from test_compiled_path_hypothesis import compare, run_call

DYNAMIC = {"none": None, "true": True, "mark": None, "static": True}
PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("CAPTURE_DYNAMIC_SHRINK") else [])
# CAPTURE_DYNAMIC_RANDOM=1: fresh random programs on every run (local runs); CI is derandomized.
COMMON = dict(deadline=None, derandomize=not os.environ.get("CAPTURE_DYNAMIC_RANDOM"), print_blob=True,
              database=None, phases=PHASES,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


def _scaled(rtol, atol):
    """Kernels sum in another order than eager (matmuls, rows of 2100, gradients through
    a layer norm of two columns): results differ by a few ulps of the largest term, so
    the absolute tolerance follows the largest finite value of eager's tensor."""
    def within(expected):
        finite = expected[torch.isfinite(expected)]
        scale = float(finite.abs().max()) if finite.numel() else 0.0
        return dict(rtol=rtol, atol=atol * (1 + scale))
    return within


TOLERANCE = {torch.float32: _scaled(1e-4, 1e-5), torch.bfloat16: _scaled(2e-2, 2e-2)}


def build(source: str, filename: str = "<dynamic_hypothesis>"):
    namespace = {"torch": torch, "F": F}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["prog"]


def log_program(text: str) -> None:
    if os.environ.get("CAPTURE_DYNAMIC_LOG"):         # one line per program: counts of large local runs
        with open(os.environ["CAPTURE_DYNAMIC_LOG"], "a") as log:
            log.write(text + "\n")


def differential(source: str, calls, mode: str, backend: str, inputs, grad: bool = False, note: str = "",
                 static=lambda failure: False, tol=TOLERANCE):
    """Compare ``prog`` compiled (``backend``, ``mode`` in ``DYNAMIC``) with eager at each
    call; ``static(failure)``: a guard failure the program explains by itself (a Python
    int guarded by value, a dimension marked static); ``tol``: ``helpers_compare.assert_same``'s."""
    eager_fn, compiled_fn = build(source), build(source)
    compiled = capture.compile(compiled_fn, backend=backend, dynamic=DYNAMIC[mode])
    note = f"\n--- program (backend={backend}, dynamic={mode}, grad={grad}, {note}calls={calls}) ---\n{source}"
    fx_graph.compiled_path.INTERNAL_ERRORS.clear()
    made_at = []                                   # per cache entry: the size of the call that made it
    for call, size in enumerate(calls):
        def make(size=size, call=call):
            return inputs(call, size)
        entries_before = _entries(compiled_fn)
        e = run_call(eager_fn, make, call, grad)
        with warnings.catch_warnings(record=True) as caught:
            # The modules ignore RuntimeWarning (numpy in the interpreter): record ours apart.
            warnings.simplefilter("always", fx_graph.InternalErrorWarning)
            c = run_call(compiled, make, call, grad)
        internal = [str(w.message) for w in caught if issubclass(w.category, fx_graph.InternalErrorWarning)]
        made_at += [size] * (_entries(compiled_fn) - entries_before)
        try:
            assert not internal, f"internal error (the graph ran as captured): {internal}"
            compare(c, e, None, None, tol)
            if entries_before and _entries(compiled_fn) > entries_before and mode != "none" and _at_least_2(size):
                recompile_had_a_reason(compiled_fn, made_at, size, static)
        except AssertionError as err:
            raise AssertionError(f"call {call} at size {size}: {err}{note}") from None
        assert not fx_graph.compiled_path.INTERNAL_ERRORS, (
            f"compiled path failed at call {call}: {fx_graph.compiled_path.INTERNAL_ERRORS}{note}")


def _at_least_2(size) -> bool:
    values = [d for shape in size.values() for d in shape] if isinstance(size, dict) else size
    return min(values, default=2) >= 2


def _record(fn):
    return FRAMES.get(fn.__code__)


def _entries(fn) -> int:
    record = _record(fn)
    return 0 if record is None else len(record.entries)


def recompile_had_a_reason(fn, made_at, size, static=lambda failure: False):
    """Sizes symbolic from the first call (dynamic=True, mark_dynamic on every dim): a
    new cache entry for sizes >= 2 (0 and 1 specialize) needs, for every entry that
    could have served the call, a failed guard on a size relation, or on a size that
    entry holds static because it was 0 or 1 when it was made (those specialize) or
    because its trace specialized it (``int(n)``: ``entry.specializations``), or one the
    program explains (``static``) -- capture's own recompile record says which."""
    record = _record(fn)
    for failure in record.recompiles[-1].failures:
        entry = record.entries[failure.entry_index]
        if "size()" in failure.guard_text or static(failure):
            continue                               # a relation the trace relied on
        dim = re.match(r"shape\[(\d+)\]", failure.reason)
        assert dim, f"recompile for {size}: entry {failure.entry_index} failed {failure.text()}"
        d = int(dim.group(1))
        name = f"{failure.source_name}.size()[{d}]"
        specialized = any(s.size == name for s in entry.specializations)
        was_0_or_1 = _size_at(made_at[failure.entry_index], failure.source_name, d) <= 1
        assert specialized or was_0_or_1, (
            f"recompile for {size}: entry {failure.entry_index} (made at {made_at[failure.entry_index]}) held "
            f"{name} static without a reason: {failure.text()}; specialized: {entry.specializations}")


def _size_at(size, source_name: str, d: int) -> int:
    """The size dimension ``d`` of input ``source_name`` (``L['x']``) had: ``size`` is a
    shape shared by every input, or a dict of input name -> shape."""
    if isinstance(size, dict):
        return size[re.match(r"L\['(\w+)'\]", source_name).group(1)][d]
    return size[d]
