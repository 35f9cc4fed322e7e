"""What to do about a recompile: one piece of advice per guard failure.

Most recompiles are sizes or Python constants. The report (capture.report) shows,
beside each failed guard, what the user can change so the next call reuses a cache
entry: a varying size becomes dynamic (or why it could not), a varying Python number
read from a global, closure or attribute should be an argument or a tensor, a new
object where an identity was guarded should be kept stable.
"""
from __future__ import annotations

import re

_SHAPE = re.compile(r"^shape\[(\d+)\]: expected (\d+), got (\d+)")
_GLOBAL = re.compile(r"^G\[")


def advise(failure, record) -> str:
    """Advice for one ``convert_frame.GuardFailure`` of the frame ``record``."""
    kind, source, reason = failure.kind, failure.source_name, failure.reason
    if kind == "TensorGuard":
        return _tensor_advice(source, reason, record)
    if kind == "SizeGuard":
        return _size_advice(failure, record)
    if kind == "ConstantGuard":
        return _constant_advice(source, failure.value, failure.source_expr)
    if kind in ("IdentityGuard", "ParameterGuard"):
        what = "parameter" if kind == "ParameterGuard" else "object"
        return (f"{source} is a new {what}: the graph was built for the one it saw. Create it once and reuse it "
                f"across calls (modules and functions defined outside the compiled function, not rebuilt per call)"
                + (", and change parameters in place (p.data.copy_) rather than replacing them"
                   if kind == "ParameterGuard" else ""))
    if kind == "TypeGuard":
        return f"{source} changed type: pass values of one type at this place, or expect one entry per type"
    if kind in ("LengthGuard", "DictKeysGuard"):
        return (f"the length or keys of {source} changed: the traced code unrolled over them; keep the container's "
                f"shape fixed, or pass the varying part as a tensor")
    if kind == "GlobalStateGuard":
        return f"{source} differs between calls (e.g. grad mode, autocast): each setting gets its own cache entry"
    if kind == "NoHooksGuard":
        return f"hooks were added to {source} after compiling: register hooks before the first call"
    return "this guard failed; see the guard and the line that read the value"


def _tensor_advice(source: str, reason: str, record) -> str:
    match = _SHAPE.match(reason)
    if match is None:
        what = reason.split(":", 1)[0]
        return (f"{source}'s {what} changed: each {what} gets its own compiled entry; pass tensors with one "
                f"{what} here if you can")
    dim, old, new = (int(g) for g in match.groups())
    size = f"{source}.shape[{dim}]"
    if new < 2 or old < 2:
        return (f"{size} is {new}: sizes 0 and 1 are always compiled apart (broadcasting and empty tensors "
                f"behave differently); other sizes share one dynamic entry")
    why = record.dynamic.why.get(size)
    if record.dynamic_mode is False:
        return (f"{size} varies ({old} then {new}) and dynamic=False keeps every size static: compile with "
                f"dynamic=None (the default) or dynamic=True, or call capture.mark_dynamic(x, {dim}) on the input")
    special = _specialized(record, f"{source}.size()[{dim}]")
    if special is not None:
        return f"{size} varies, but it could not stay dynamic: {special}; avoid using the size as a plain number there"
    if why is not None:
        return f"{size}: {why}; later sizes reuse the dynamic entry"
    if getattr(record, "marked_static", False):
        return f"{size} varies but was marked static (capture.mark_static)"
    return f"{size} varies ({old} then {new}): from this recompile on it is dynamic (one entry for all sizes >= 2)"


def _size_advice(failure, record) -> str:
    reason = failure.reason
    if ">= 2" in failure.guard_text and re.search(r"= [01]\b", reason):
        return ("a dynamic size is now 0 or 1: those sizes are compiled apart (broadcasting and empty tensors "
                "behave differently); other sizes keep sharing the dynamic entry")
    pinned = _pinned(record, failure.guard_text)
    if pinned is not None:
        return f"{failure.guard_text} is a pinned size ({pinned.why}); other values of it get entries of their own"
    at = f" at {failure.user_line}" if failure.user_line else ""
    return (f"the trace relied on {failure.guard_text}{at}; this call breaks it, so it gets its own entry. "
            f"If that branch on sizes is not needed, remove it")


def _pinned(record, guard_text: str):
    """The specialization behind a failed ``size == N`` guard: the same number, the same
    size or the same dimension of a tensor it was tied to (``q``'s head width is ``v``'s)."""
    match = re.match(r"^(.*?)(\.size\(\)\[\d+\]) == (\d+)$", guard_text)
    if match is None:
        return None
    for entry in reversed(record.entries):
        for spec in getattr(entry, "specializations", ()):
            if spec.value == int(match.group(3)) and spec.size.endswith(match.group(2)):
                return spec
    return None


def _constant_advice(source: str, value, expr: str) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    closure = "__closure__" in expr
    if source.startswith("L['") and source.endswith("']") and source.count("[") == 1 and not closure:
        if number:
            return (f"the Python number argument {source} changed: numbers are baked into the graph; pass it as "
                    f"a tensor (torch.tensor({value!r})) if it varies per call")
        return f"argument {source} changed: the graph was specialized on its value"
    where = "a global" if _GLOBAL.match(source) else "a closure variable" if closure else "an attribute"
    if number:
        return (f"{source} is a Python number read from {where} and it changed ({value!r}): the graph baked it in. "
                f"Pass it to the function as an argument, or hold it in a tensor, so one graph serves every value")
    return f"{source} ({where}) changed: the graph was specialized on its value; keep it stable or pass it in"


def _specialized(record, size_name: str) -> str | None:
    for entry in reversed(record.entries):
        for spec in getattr(entry, "specializations", ()):
            if size_name in spec.size:
                return str(spec)
    return None
