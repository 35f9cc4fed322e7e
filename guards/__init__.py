"""Guards: checks that decide whether a cached translation still applies.

A guard is (source, check, expected). All guards of a cache entry compile into one
generated Python function whose source is kept for reports; on a miss each guard is
evaluated alone to say which failed and why.
"""
from guards.guard import Guard, GuardKind, TensorSpec
from guards.build import GuardFunction, build_guard_function

__all__ = ["Guard", "GuardKind", "TensorSpec", "GuardFunction", "build_guard_function"]
