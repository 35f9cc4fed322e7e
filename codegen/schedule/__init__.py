"""Scheduling: computations fused into kernels over an iteration space, placed, named
and ordered with the extern calls (``scheduler.Scheduler``)."""
