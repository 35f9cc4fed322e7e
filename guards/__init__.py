"""Guards: checks that decide whether a cached translation still applies.

A guard is (source, check, expected): ``guards.sources`` says how a value is reached,
``guards.kinds`` has one class per kind of check, a ``GuardSet`` collects the guards
of one trace, and ``guards.build`` compiles them into one generated Python function
whose source is kept for reports; on a miss each guard is evaluated alone to say which
failed and why. Module state sits behind a dict watch (``guards.watch``).
"""
from guards.build import GuardFunction, build_guard_function
from guards.guard import Guard, ParameterSpec, TensorSpec
from guards.guard_set import GuardSet
from guards.kinds import GuardKind

__all__ = ["Guard", "GuardFunction", "GuardKind", "GuardSet", "ParameterSpec", "TensorSpec", "build_guard_function"]
